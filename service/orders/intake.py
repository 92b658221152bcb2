"""Order intake: record a verified order event and everything it causes, in one transaction.

What an order causes is each feature's business (service.orders.effects): intake runs the effects planned at
intake and writes the planning job of the others, in the same transaction.

Exactly-once intake rests on two unique keys of `order_events`: the webhook id (a redelivery) and (order,
event type) (the same event under a new webhook id). Under concurrency the database decides which insert
wins; the loser rolls back and reports a duplicate, so there is one order and one set of jobs whatever the
timing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, make_transient_to_detached

from service.config import Settings
from service.db import insert_ignoring_conflict, lock_for_update, utcnow
from service.errors import Conflict
from service.hashing import token_hash
from service.jobs import enqueue
from service.orders import effects
from service.orders.models import Order, OrderEvent

log = logging.getLogger("service.orders")


@dataclass(frozen=True)
class IntakeResult:
    new: bool
    shop_order_id: str
    event_type: str


def record_order_event(session: Session, settings: Settings, *, webhook_id: str, event_type: str,
                       occurred_at: datetime | None, data: dict[str, Any],
                       body_sha256: str | None = None) -> IntakeResult:
    """Store a verified order event and enqueue its effects atomically; duplicates change nothing, and a webhook
    id already used for another body is a Conflict (webhook_id_reused) that changes nothing either."""
    now = utcnow()
    shop_order_id = data["id"]
    duplicate = IntakeResult(new=False, shop_order_id=shop_order_id, event_type=event_type)
    order = _upsert_order(session, event_type, data, now)
    if not insert_ignoring_conflict(
        session, OrderEvent,
        dict(order_id=order.id, event_type=event_type, webhook_id=webhook_id, occurred_at=occurred_at,
             received_at=now, body_sha256=body_sha256),
    ):  # either unique key: a redelivered webhook id, or this order's event again under a new id
        _refuse_reused_webhook_id(session, webhook_id, body_sha256)  # rolls back: nothing of this delivery stays
        return duplicate

    if event_type == "order.completed":
        if order.completed_at is None:
            order.completed_at = now
        for effect in effects.planned_at_intake():
            effect.plan_for_completed_order(session, order, settings)
        enqueue(session, effects.PLAN_JOB, {"order_id": order.id}, dedupe_key=f"order:{order.id}:plan",
                order_id=order.id, max_attempts=settings.job_max_attempts)
    elif event_type == "order.cancelled":
        order.cancelled_at = now
        for effect in effects.every_effect():
            effect.on_order_cancelled(session, order, settings)
    session.commit()
    log.info("order %s: %s accepted", shop_order_id, event_type)
    return IntakeResult(new=True, shop_order_id=shop_order_id, event_type=event_type)


def _refuse_reused_webhook_id(session: Session, webhook_id: str, body_sha256: str | None) -> None:
    """Conflict (webhook_id_reused) when `webhook_id` was recorded with another body: a shop reusing ids would
    otherwise lose the new event without a word. A redelivery (same body) or the order's event again under a
    new id passes. Asked only once the insert lost, so a new event costs no extra query, and in the transaction
    that lost it, so a duplicate costs one transaction; then rolled back, the order's upsert too."""
    recorded = session.execute(sa.select(OrderEvent.body_sha256).where(OrderEvent.webhook_id == webhook_id)).first()
    session.rollback()
    if recorded is None:
        return
    if recorded.body_sha256 is not None and body_sha256 is not None and recorded.body_sha256 != body_sha256:
        log.warning("webhook %s refused: its id was already used for a different body", webhook_id)
        raise Conflict("This webhook-id was already used for a different body; nothing was recorded. Send each "
                       "event under its own webhook-id, and a redelivery with exactly the same body.",
                       code="webhook_id_reused", title="Webhook id reused")


def _upsert_order(session: Session, event_type: str, data: dict[str, Any], now: datetime) -> Order:
    """The event's order: inserted whole when new (racing intakes agree on one row), else locked and filled."""
    completed = event_type == "order.completed"
    values: dict[str, Any] = dict(shop_order_id=data["id"], currency=data.get("currency") or "USD",
                                  total_cents=data.get("total_cents") or 0,
                                  gift_card_cents=data.get("gift_card_cents") or 0, payload={}, created_at=now)
    if completed:
        values.update(_completed_fields(data), completed_at=now)
    new_id = insert_ignoring_conflict(session, Order, values, ["shop_order_id"])
    if new_id:
        # The row is exactly `values` (every other column NULL): attach it as loaded instead of reading it
        # back, one round trip less on every new order.
        order = Order(id=new_id, **{c.key: values.get(c.key) for c in Order.__table__.columns if c.key != "id"})
        make_transient_to_detached(order)
        session.add(order)
        return order
    order = session.execute(lock_for_update(session, sa.select(Order).where(Order.shop_order_id == data["id"]))
                            .execution_options(populate_existing=True)).scalar_one()
    if completed:
        for name, value in _completed_fields(data).items():
            setattr(order, name, value)
    return order


def _completed_fields(data: dict[str, Any]) -> dict[str, Any]:
    customer = data.get("customer") or {}
    cart_token = data.get("cart_token")
    cart_token_hash = token_hash(cart_token) if cart_token else None
    # The cart token is a bearer capability: at rest, as in carts, only its hash.
    payload = {key: value for key, value in _jsonable(data).items() if key != "cart_token"}
    payload["cart_token_hash"] = cart_token_hash
    return dict(number=data.get("number"), cart_token_hash=cart_token_hash, currency=data["currency"],
                total_cents=data["total_cents"], gift_card_cents=data.get("gift_card_cents") or 0,
                customer_email=customer.get("email"), placed_at=data.get("placed_at"), payload=payload)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
