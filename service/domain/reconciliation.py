"""Reconciliation: the redemption ledger, per-day totals, the comparison with Instagift's own list, and the
job queue as the merchant sees it.

Every function takes a session (and a client or clock when it needs one) and a `DateRange`, reads, and returns
plain dicts and dataclasses; rendering (JSON, CSV, a terminal table) happens in the callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.logs import redact
from service.persistence import Job, Order
from service.persistence.jobs import JOB_STATES

REDEMPTION_STATES = ("pending", "uncertain", "succeeded", "shortfall", "failed")
# Redemption states in which Instagift has (to our knowledge) taken money off the certificate.
REDEEMED_STATES = ("succeeded", "shortfall")
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


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with a `Z`, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def dollars(cents: int | None) -> str:
    """Cents as a plain decimal dollar amount with two places ("-1.05"), for CSV and tables."""
    cents = cents or 0
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _paginate(session: Session, stmt: sa.Select, page: int, per_page: int, render) -> Page:
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.scalars(stmt.offset((page - 1) * per_page).limit(per_page))
    return Page(items=[render(row) for row in rows], page=page, per_page=per_page, total=total)


# -- the job queue ----------------------------------------------------------------------------------------------


def job_dict(job: Job, *, with_attempts: bool = False) -> dict[str, Any]:
    """A job as the merchant sees it; error texts are already masked when stored and are masked again here."""
    body: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "state": job.state, "attempts": job.attempts, "failures": job.failures,
        "max_attempts": job.max_attempts, "run_at": iso(job.run_at), "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at), "finished_at": iso(job.finished_at),
        "last_error": redact(job.last_error) if job.last_error else None,
        "parked_reason": redact(job.parked_reason) if job.parked_reason else None,
        "order_id": job.order_id,
    }
    if with_attempts:
        body["attempt_log"] = [
            {"attempt": a.attempt, "worker": a.worker, "outcome": a.outcome, "started_at": iso(a.started_at),
             "finished_at": iso(a.finished_at), "error": redact(a.error) if a.error else None}
            for a in job.attempt_log
        ]
    return body


def list_jobs(session: Session, *, state: str | None = None, kind: str | None = None, page: int = 1,
              per_page: int = DEFAULT_PER_PAGE) -> Page:
    """The queue, newest first, optionally filtered by state and kind; each job with its shop order id."""
    stmt = sa.select(Job).order_by(Job.id.desc())
    if state:
        stmt = stmt.where(Job.state == state)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    page_ = _paginate(session, stmt, page, per_page, lambda job: job_dict(job, with_attempts=True))
    order_ids = {item["order_id"] for item in page_.items if item["order_id"] is not None}
    shop_ids = dict(session.execute(sa.select(Order.id, Order.shop_order_id).where(Order.id.in_(order_ids))).all()) \
        if order_ids else {}
    for item in page_.items:
        item["shop_order_id"] = shop_ids.get(item.pop("order_id"))
    return page_


def job_state_counts(session: Session, window: DateRange | None = None) -> dict[str, int]:
    """How many jobs are in each state (created within `window` when given), plus `retrying`:
    queued jobs that have already failed at least once."""
    counts = dict.fromkeys(JOB_STATES, 0)
    stmt = sa.select(Job.state, sa.func.count()).group_by(Job.state)
    retrying = sa.select(sa.func.count()).select_from(Job).where(Job.state == "queued", Job.failures > 0)
    if window is not None:
        stmt = stmt.where(Job.created_at >= window.start, Job.created_at < window.end)
        retrying = retrying.where(Job.created_at >= window.start, Job.created_at < window.end)
    for state, count in session.execute(stmt):
        counts[state] = count
    counts["retrying"] = session.scalar(retrying) or 0
    return counts

