"""The job queue as the merchant sees it: every job with its attempts, newest first, and its shop order id;
dead and parked jobs are the failures a person looks at and retries."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.formats import iso
from service.jobs.models import Job
from service.jobs.queue import is_periodic_key, not_periodic
from service.logs import redact
from service.orders.models import Order
from service.reports.listing import DEFAULT_PER_PAGE, Page


def _paginate(session: Session, stmt: sa.Select, page: int, per_page: int, render) -> Page:
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.scalars(stmt.offset((page - 1) * per_page).limit(per_page))
    return Page(items=[render(row) for row in rows], page=page, per_page=per_page, total=total)


def job_dict(job: Job, *, with_attempts: bool = False) -> dict[str, Any]:
    """A job as the merchant sees it; error texts are already masked when stored and are masked again here."""
    body: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "state": job.state, "attempts": job.attempts, "failures": job.failures,
        "max_attempts": job.max_attempts, "run_at": iso(job.run_at), "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at), "finished_at": iso(job.finished_at),
        "last_error": redact(job.last_error) if job.last_error else None,
        "parked_reason": redact(job.parked_reason) if job.parked_reason else None,
        "order_id": job.order_id,
        "periodic": is_periodic_key(job.dedupe_key),
        "retried_by": job.retried_by, "retried_at": iso(job.retried_at),
    }
    if with_attempts:
        body["attempt_log"] = [
            {"attempt": a.attempt, "worker": a.worker, "outcome": a.outcome, "started_at": iso(a.started_at),
             "finished_at": iso(a.finished_at), "error": redact(a.error) if a.error else None}
            for a in job.attempt_log
        ]
    return body


def _with_shop_order_ids(session: Session, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace each job's `order_id` (our row id) by the shop's order id, in one query."""
    order_ids = {item["order_id"] for item in items if item["order_id"] is not None}
    shop_ids = dict(session.execute(sa.select(Order.id, Order.shop_order_id).where(Order.id.in_(order_ids))).all()) \
        if order_ids else {}
    for item in items:
        item["shop_order_id"] = shop_ids.get(item.pop("order_id"))
    return items


def job_view(session: Session, job: Job) -> dict[str, Any]:
    """One job as the list shows it: the shop's order id, not our row id."""
    return _with_shop_order_ids(session, [job_dict(job)])[0]


def list_jobs(session: Session, *, state: str | None = None, kind: str | None = None, page: int = 1,
              per_page: int = DEFAULT_PER_PAGE, include_periodic: bool = False) -> Page:
    """The queue, newest first, optionally filtered by state and kind; each job with its shop order id.

    Periodic housekeeping runs (thousands a day) are left out unless asked for, or their kind is asked for."""
    stmt = sa.select(Job).order_by(Job.id.desc())
    if not include_periodic and not kind:
        stmt = stmt.where(not_periodic())
    if state:
        stmt = stmt.where(Job.state == state)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    page_ = _paginate(session, stmt, page, per_page, lambda job: job_dict(job, with_attempts=True))
    _with_shop_order_ids(session, page_.items)
    return page_
