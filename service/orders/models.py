"""Orders as the shop reported them, and the webhook events that reported them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import BigIntId, UTCDateTime, db, utcnow

WEBHOOK_ID_MAX_LENGTH = 200  # Standard Webhooks ids are short (msg_…); longer ones are refused at intake


class Order(db.Model):
    """A shop order; `shop_order_id` is the shop's `data.id`. `payload` keeps the completed event's data, with its
    `cart_token` replaced by `cart_token_hash`."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    shop_order_id: Mapped[str] = mapped_column(sa.String(100), unique=True)
    number: Mapped[str | None] = mapped_column(sa.String(100))
    # The cart's token as carts keep it: only its SHA-256 (service.hashing), never the token itself.
    cart_token_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    currency: Mapped[str] = mapped_column(sa.String(3))
    total_cents: Mapped[int] = mapped_column(sa.BigInteger)
    gift_card_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    customer_email: Mapped[str | None] = mapped_column(sa.String(320))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the planning job once the post-order effects (cards) have their rows and jobs.
    effects_planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set when something needs a person: e.g. cancelled after its gift cards were redeemed.
    attention: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    events: Mapped[list[OrderEvent]] = relationship(back_populates="order", order_by="OrderEvent.id")

    def add_attention(self, note: str) -> None:
        """Add a note for the merchant; earlier notes stay."""
        self.attention = f"{self.attention} {note}" if self.attention else note


class OrderEvent(db.Model):
    """One accepted webhook. Two unique keys make redelivery harmless: its `webhook-id`, and (order, event
    type), since the same event may be sent again under a new webhook id."""

    __tablename__ = "order_events"
    __table_args__ = (sa.UniqueConstraint("order_id", "event_type"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"))
    event_type: Mapped[str] = mapped_column(sa.String(50))
    webhook_id: Mapped[str] = mapped_column(sa.String(WEBHOOK_ID_MAX_LENGTH), unique=True)
    # SHA-256 of the delivered body: a redelivery under the same webhook id must carry the same bytes (NULL for
    # events recorded before it was kept).
    body_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    order: Mapped[Order] = relationship(back_populates="events")
