"""Order intake: record a verified order event and everything it causes, in one transaction.

Exactly-once intake rests on two unique keys: the webhook id (a redelivery) and (order, event type)
(the same event under a new webhook id). Under concurrency the database decides which insert wins; the
loser rolls back and reports a duplicate, so there is one order and one set of jobs whatever the timing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.config import Settings
from service.domain import membership, redemption, thank_you
from service.persistence import Order, OrderEvent, WebhookReceipt, utcnow
from service.persistence.db import insert_ignoring_conflict, lock_for_update

log = logging.getLogger("service.orders")

# Each feature plans its own effects of a completed order (jobs and their first rows), and reacts to a
# cancellation; they run inside the intake transaction, so an accepted webhook always has its jobs.
EFFECTS = (redemption, thank_you, membership)


@dataclass(frozen=True)
class IntakeResult:
    new: bool
    shop_order_id: str
    event_type: str


def record_order_event(session: Session, settings: Settings, *, webhook_id: str, event_type: str,
                       occurred_at: datetime | None, data: dict[str, Any]) -> IntakeResult:
    """Store a verified order event and enqueue its effects atomically; duplicates change nothing."""
    now = utcnow()
    shop_order_id = data["id"]
    duplicate = IntakeResult(new=False, shop_order_id=shop_order_id, event_type=event_type)
    if not insert_ignoring_conflict(
        session, WebhookReceipt,
        dict(webhook_id=webhook_id, event_type=event_type, shop_order_id=shop_order_id, received_at=now),
        ["webhook_id"],
    ):
        session.rollback()
        return duplicate

    order = _upsert_order(session, event_type, data, now)
    if not insert_ignoring_conflict(
        session, OrderEvent,
        dict(order_id=order.id, event_type=event_type, webhook_id=webhook_id, occurred_at=occurred_at,
             received_at=now),
        ["order_id", "event_type"],
    ):
        session.rollback()
        return duplicate

    if event_type == "order.completed":
        order.completed_at = now
        for effect in EFFECTS:
            effect.plan_for_completed_order(session, order, settings)
    elif event_type == "order.cancelled":
        order.cancelled_at = now
        for effect in EFFECTS:
            effect.on_order_cancelled(session, order, settings)
    session.commit()
    log.info("order %s: %s accepted", shop_order_id, event_type)
    return IntakeResult(new=True, shop_order_id=shop_order_id, event_type=event_type)


def _upsert_order(session: Session, event_type: str, data: dict[str, Any], now: datetime) -> Order:
    """Create the order row once (racing intakes agree on one row) and fill it from a completed event."""
    insert_ignoring_conflict(
        session, Order,
        dict(shop_order_id=data["id"], currency=data.get("currency") or "USD",
             total_cents=data.get("total_cents") or 0, gift_card_cents=data.get("gift_card_cents") or 0,
             payload={}, created_at=now),
        ["shop_order_id"],
    )
    order = session.execute(lock_for_update(session, sa.select(Order).where(Order.shop_order_id == data["id"]))).scalar_one()
    if event_type == "order.completed":
        customer = data.get("customer") or {}
        order.number = data.get("number")
        order.cart_token = data.get("cart_token")
        order.currency = data["currency"]
        order.total_cents = data["total_cents"]
        order.gift_card_cents = data.get("gift_card_cents") or 0
        order.customer_email = customer.get("email")
        order.placed_at = data.get("placed_at")
        order.payload = _jsonable(data)
    return order


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
