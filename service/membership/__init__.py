"""Membership cards: an InstantCard plastic card for each unit of an order line whose SKU maps to a template."""
