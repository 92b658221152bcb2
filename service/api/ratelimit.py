"""The rate limiter that HTTP routes share (memory:// or Redis, RATELIMIT_STORAGE_URI)."""

from __future__ import annotations

from flask import request
from flask_limiter import Limiter


def client_address() -> str:
    """The client's address; behind proxies, TRUSTED_PROXIES makes it the shopper's (see create_app)."""
    return request.remote_addr or "unknown"


# Route limits (e.g. cart creation per client). Claim-code lookups have their own per-client *and* per-cart
# limits in service.checkout.limits.LookupLimiter, on the same storage (RATELIMIT_STORAGE_URI).
limiter = Limiter(key_func=client_address, default_limits=[], headers_enabled=True)
