"""Orders: the shop's signed order webhooks, their intake in one transaction, and the order effects that the
features plan (composed in service.features)."""
