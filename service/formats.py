"""How times and dates are written in every API answer and export (ISO 8601, times in UTC with a `Z`), and how
amounts and waits are written in words for a shopper, in the answer's language."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from babel import Locale
from babel.dates import format_timedelta
from babel.numbers import format_currency
from flask_babel import get_locale


def iso(value: datetime | date | None) -> str | None:
    """A time as UTC ISO 8601 with `Z` ("2026-11-21T10:00:00Z"), a date as YYYY-MM-DD, None as None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _answer_locale() -> Locale:
    # The language chosen for this answer (service.api.languages); English outside a request.
    return get_locale() or Locale.parse("en")


def amount_words(cents: int, currency: str = "USD") -> str:
    """An amount written for the shopper, in the answer's language: 50 → '$0.50' (en), '0,50 US$' (es)."""
    return format_currency(Decimal(cents) / 100, currency, locale=_answer_locale())


def duration_words(seconds: float) -> str:
    """A wait written for the shopper in its largest unit, rounded up (never shorter than the real wait):
    45 → '45 seconds', 61 → '2 minutes', 600 → '10 minutes' / '10 minutos'."""
    unit = 1 if seconds < 60 else 60 if seconds < 3600 else 3600
    whole = max(1, math.ceil(seconds / unit)) * unit
    return format_timedelta(timedelta(seconds=whole), threshold=1, locale=_answer_locale())
