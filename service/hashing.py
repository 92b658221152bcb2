"""Bearer tokens at rest: the database keeps only their SHA-256, never the token itself."""

from __future__ import annotations

import hashlib


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a bearer token such as a cart token: what the database holds instead of it."""
    return hashlib.sha256(token.encode()).hexdigest()
