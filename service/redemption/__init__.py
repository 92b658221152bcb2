"""Redemption: after an order completes, redeem exactly what it took from each held gift card, once."""
