"""Checkout: carts, the gift-card holds on them, claim-code lookups and their limits, and verify before payment."""
