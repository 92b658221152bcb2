"""The merchant console: server-rendered pages under /admin/ for the shop's staff (sign-in, overview, orders,
ledger, reconciliation, failures, cards, audit trail). It reads through the reports' rules and writes only
through the features' own rules; docs/console.md describes it."""
