"""The rate limiter that HTTP routes share (memory:// or Redis, RATELIMIT_STORAGE_URI)."""

from __future__ import annotations

from flask import request
from flask_limiter import HeaderNames, Limiter


def client_address() -> str:
    """The client's address; behind proxies, TRUSTED_PROXIES makes it the shopper's (see create_app)."""
    return request.remote_addr or "unknown"


# Route limits (e.g. cart creation per client). Claim-code lookups have their own per-client *and* per-cart
# limits in service.checkout.limits.LookupLimiter, on the same storage (RATELIMIT_STORAGE_URI).
# Flask-Limiter's own Retry-After (on every answer of a limited route, recomputed after the problem was written)
# goes by another name: the 429 problem sets Retry-After itself, equal to its `retry_after` member.
limiter = Limiter(key_func=client_address, default_limits=[], headers_enabled=True,
                  header_name_mapping={HeaderNames.RETRY_AFTER: "X-RateLimit-Retry-After"})
