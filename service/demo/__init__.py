"""The demo storefront (development only): a checkout page with the widget and a tiny shop backend."""
