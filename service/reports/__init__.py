"""Reports for the merchant (the top floor: it reads every feature's tables, no feature imports it): order
timelines, the redemption ledger, reconciliation totals, the comparison with Instagift, the job queue and its
retries, over HTTP and as the `reconcile` command."""
