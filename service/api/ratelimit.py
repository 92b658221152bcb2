"""The rate limiter that HTTP routes share (memory:// or Redis, RATELIMIT_STORAGE_URI), and the client key every
limit counts by."""

from __future__ import annotations

import ipaddress

from flask import request
from flask_limiter import HeaderNames, Limiter

# One IPv6 subscriber gets a whole /64 (RFC 6177 and common ISP practice) and can pick any address in it: counting
# per address would give each shopper 2^64 budgets.
IPV6_CLIENT_PREFIX = 64


def client_key(address: str | None) -> str:
    """What a limit counts by for a client `address`: an IPv4 address itself, an IPv6 address's /64 network
    (an IPv4-mapped IPv6 address counts as its IPv4 address)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_CLIENT_PREFIX), strict=False))
    return str(ip)


def client_address() -> str:
    """The client's key for rate limits (see client_key); behind proxies, TRUSTED_PROXIES makes the address the
    shopper's (see create_app)."""
    return client_key(request.remote_addr)


# Route limits (e.g. cart creation per client). Claim-code lookups have their own per-client *and* per-cart
# limits in service.checkout.limits.LookupLimiter, on the same storage (RATELIMIT_STORAGE_URI).
# Flask-Limiter's own Retry-After (on every answer of a limited route, recomputed after the problem was written)
# goes by another name: the 429 problem sets Retry-After itself, equal to its `retry_after` member.
limiter = Limiter(key_func=client_address, default_limits=[], headers_enabled=True,
                  header_name_mapping={HeaderNames.RETRY_AFTER: "X-RateLimit-Retry-After"})
