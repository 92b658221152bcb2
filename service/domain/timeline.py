"""One order's timeline for the merchant: what the shop told us, what we held, redeemed, sent and printed, and
every job attempt made on the order's behalf, with its error."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from service.domain.reconciliation import iso, job_dict
from service.errors import NotFound
from service.persistence import Job, Order


def order_timeline(session: Session, shop_order_id: str) -> dict[str, Any]:
    """The full timeline of the order the shop calls `shop_order_id`; 404 `order_not_found` when unknown."""
    order = session.scalar(sa.select(Order).where(Order.shop_order_id == shop_order_id)
                           .options(selectinload(Order.events)))
    if order is None:
        raise NotFound(f"There is no order {shop_order_id!r}.", code="order_not_found")
    jobs = session.scalars(sa.select(Job).where(Job.order_id == order.id).order_by(Job.id)
                           .options(selectinload(Job.attempt_log))).all()
    body: dict[str, Any] = {"order": order_summary(order)}
    body["events"] = [{"type": e.event_type, "webhook_id": e.webhook_id, "occurred_at": iso(e.occurred_at),
                       "received_at": iso(e.received_at)} for e in order.events]
    body["jobs"] = [job_dict(job, with_attempts=True) for job in jobs]
    for item in body["jobs"]:
        item.pop("order_id")
    return body


def order_summary(order: Order) -> dict[str, Any]:
    """The order as the shop reported it, without the customer's address."""
    return {
        "id": order.shop_order_id, "number": order.number, "currency": order.currency,
        "total_cents": order.total_cents, "gift_card_cents": order.gift_card_cents,
        "customer_email": order.customer_email, "placed_at": iso(order.placed_at),
        "completed_at": iso(order.completed_at), "cancelled_at": iso(order.cancelled_at),
        "attention": order.attention, "has_cart": order.cart_token is not None,
    }
