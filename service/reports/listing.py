"""How every report is cut and written: UTC date ranges, pages of a listing, dollar amounts and CSV lines."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from service.formats import iso

MAX_RANGE_DAYS = 366
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


# -- date ranges and pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """A half-open UTC interval [start, end); `days` lists the UTC calendar days it touches."""

    start: datetime
    end: datetime

    @classmethod
    def for_days(cls, first: date, last: date) -> DateRange:
        """Whole UTC days from `first` to `last`, both included."""
        return cls(datetime.combine(first, time.min, UTC), datetime.combine(last + timedelta(days=1), time.min, UTC))

    @classmethod
    def for_day(cls, day: date) -> DateRange:
        """One UTC day."""
        return cls.for_days(day, day)

    @property
    def days(self) -> list[date]:
        first = self.start.astimezone(UTC).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(UTC).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def as_dict(self) -> dict[str, str]:
        return {"from": iso(self.start), "to": iso(self.end)}


@dataclass
class Page:
    """One page of a listing: `items`, where it is, and how many there are in all."""

    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page * self.per_page < self.total else None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "page": self.page, "per_page": self.per_page, "total": self.total,
                "next_page": self.next_page}


def span_label(window: DateRange | None) -> str:
    """A range as it appears in a file name: `2026-12-01_2026-12-03`, or `all`."""
    if window is None:
        return "all"
    return f"{window.days[0].isoformat()}_{window.days[-1].isoformat()}"


def dollars(cents: int | None) -> str:
    """Cents as a plain decimal dollar amount with two places ("-1.05"), for CSV and tables."""
    cents = cents or 0
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def csv_lines(header: Iterable[str], records: Iterable[list[Any]]) -> Iterator[str]:
    """CSV text, one line at a time (RFC 4180 quoting, CRLF line ends), header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for record in itertools.chain([list(header)], records):
        writer.writerow(record)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
