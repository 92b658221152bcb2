"""Attention items: what on an order needs a person, how staff resolve one, and how a successful retry resolves
what its job's failures raised (docs/states.md, "Attention items")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.db import lock_for_update, utcnow
from service.errors import Conflict, NotFound
from service.formats import iso
from service.jobs.models import Job
from service.jobs.registry import on_job_succeeded
from service.orders.models import RESOLVED_BY_SUCCESSFUL_RETRY, Order, OrderAttentionItem

RESOLUTION_NOTE_MAX_LENGTH = 2000
RESOLVED_BY_MAX_LENGTH = 200


def attention_item_view(item: OrderAttentionItem) -> dict[str, Any]:
    """An attention item as staff and scripts see it (its message already has money in dollars, codes masked)."""
    return {"id": item.id, "kind": item.kind, "message": item.message, "created_at": iso(item.created_at),
            "job_id": item.job_id, "open": item.resolved_at is None, "resolved_at": iso(item.resolved_at),
            "resolved_by": item.resolved_by, "resolution_note": item.resolution_note}


def resolve_attention(session: Session, shop_order_id: str, item_id: int, by: str, note: str | None,
                      now: datetime | None = None) -> OrderAttentionItem:
    """Staff mark one of the order's attention items resolved, saying who (`by`) and, optionally, how (`note`).

    404 `attention_item_not_found` unless the item belongs to that order; 409 `attention_already_resolved` when it
    was resolved before (by whom stays as it was)."""
    order_id = session.scalar(sa.select(Order.id).where(Order.shop_order_id == shop_order_id))
    item = session.scalar(lock_for_update(session, sa.select(OrderAttentionItem).where(
        OrderAttentionItem.id == item_id, OrderAttentionItem.order_id == order_id))) if order_id else None
    if item is None:
        raise NotFound(f"Order {shop_order_id!r} has no attention item {item_id}.", code="attention_item_not_found")
    if item.resolved_at is not None:
        raise Conflict(f"Attention item {item_id} was already resolved by {item.resolved_by}.",
                       code="attention_already_resolved")
    item.resolved_at, item.resolved_by = now or utcnow(), by[:RESOLVED_BY_MAX_LENGTH]
    item.resolution_note = (note or "").strip()[:RESOLUTION_NOTE_MAX_LENGTH] or None
    session.commit()
    return item


@on_job_succeeded
def resolve_after_successful_retry(session: Session, job: Job, now: datetime) -> None:
    """A job that succeeds after a person's retry has done what its earlier attempts' failures asked a person for:
    those open items (kinds in RESOLVED_BY_SUCCESSFUL_RETRY) are resolved "retry by <who>". Items this very
    attempt raised stay open."""
    if job.retried_at is None or job.order_id is None:
        return
    session.execute(
        sa.update(OrderAttentionItem)
        .where(OrderAttentionItem.job_id == job.id, OrderAttentionItem.resolved_at.is_(None),
               OrderAttentionItem.kind.in_(RESOLVED_BY_SUCCESSFUL_RETRY),
               OrderAttentionItem.job_attempt < job.attempts)
        .values(resolved_at=now, resolved_by=f"retry by {job.retried_by}"[:RESOLVED_BY_MAX_LENGTH],
                resolution_note=f"Job {job.id} ({job.kind}) succeeded on attempt {job.attempts} after a retry.")
        .execution_options(synchronize_session=False))
