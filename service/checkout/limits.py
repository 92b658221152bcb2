"""Rate limits on claim-code lookups, per client address and per cart, on the rate-limit storage (the `limits`
library on memory:// or Redis, RATELIMIT_STORAGE_URI)."""

from __future__ import annotations

import logging
import math
import time

from flask_babel import gettext
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from service.config import Settings
from service.errors import RateLimited
from service.formats import duration_words

log = logging.getLogger("service.checkout")


def _limit_reached(subject: str, wait: int) -> RateLimited:
    """The 429 for a used-up lookup limit, in the shopper's words: per connection (`client:…`) or per cart."""
    if subject.startswith("cart:"):
        return RateLimited(wait, reason="too_many_lookups_on_cart", detail=gettext(
            "Many gift card codes were tried on this checkout in a short time. Please wait %(wait)s and try "
            "again, or pay another way.", wait=duration_words(wait)))
    return RateLimited(wait, reason="too_many_lookups", detail=gettext(
        "Many gift card codes were checked from your connection in a short time. Please wait %(wait)s and try "
        "again, or pay another way.", wait=duration_words(wait)))


class LookupLimiter:
    """Rate limits on claim-code lookups per client address and per cart (the `limits` library)."""

    def __init__(self, storage_uri: str, rate_limit: str, key_prefix: str = "checkout"):
        self.storage = storage_from_string(storage_uri, key_prefix=key_prefix) if storage_uri.startswith(
            ("redis", "rediss")) else storage_from_string(storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.items = parse_many(rate_limit)

    @classmethod
    def from_settings(cls, settings: Settings) -> LookupLimiter:
        return cls(settings.ratelimit_storage_uri, settings.lookup_rate_limit,
                   settings.extra.get("ratelimit_key_prefix", "checkout"))

    def hit(self, *subjects: str) -> None:
        """Count one lookup for each subject ("client:…", "cart:…"); 429 with Retry-After when one is used up.

        If the storage (Redis) cannot be reached the limit fails open: checkout keeps working, the error is
        logged and /readyz reports the rate limits unreachable."""
        for subject in subjects:
            for item in self.items:
                # The moving window's hit is atomic and records nothing once the limit is reached.
                try:
                    allowed = self.strategy.hit(item, "lookup", subject)
                except Exception:
                    log.exception("rate-limit storage unreachable; lookup limits are not enforced")
                    return
                if not allowed:
                    stats = self.strategy.get_window_stats(item, "lookup", subject)
                    raise _limit_reached(subject, max(1, math.ceil(stats.reset_time - time.time())))

    def reachable(self) -> bool:
        """True when the rate-limit storage answers."""
        try:
            return bool(self.storage.check())
        except Exception:
            return False

    def clear(self, *subjects: str) -> None:
        for subject in subjects:
            for item in self.items:
                self.strategy.clear(item, "lookup", subject)
