"""How times and dates are written in every API answer and export: ISO 8601, times in UTC with a `Z`."""

from __future__ import annotations

from datetime import UTC, date, datetime


def iso(value: datetime | date | None) -> str | None:
    """A time as UTC ISO 8601 with `Z` ("2026-11-21T10:00:00Z"), a date as YYYY-MM-DD, None as None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()
