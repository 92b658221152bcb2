"""Orders as the shop reported them, and the webhook events that reported them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import BigIntId, UTCDateTime, db, utcnow
from service.jobs.registry import running_job

WEBHOOK_ID_MAX_LENGTH = 200  # Standard Webhooks ids are short (msg_…); longer ones are refused at intake

# What needs a person on an order (docs/states.md, "Attention items"). A new kind goes here and in that table.
ATTENTION_KINDS = (
    "gift_cards_not_held",          # the order took more from gift cards than its cart held: not all redeemed
    "redemption_failed",            # a gift card could not be redeemed: collect the amount another way
    "shortfall",                    # Instagift redeemed less than intended
    "over_redeemed",                # Instagift redeemed more than asked
    "cancelled_after_redeemed",     # gift cards were redeemed for a cancelled order: refund manually
    "outcome_unknown",              # cancelled while a redemption's outcome was unknown
    "outcome_settled",              # what such a redemption turned out to have done
    "thank_you_card_placed_for_cancelled_order",
    "membership_card_printed_for_cancelled_order",
    "legacy_note",                  # a note written before attention items had kinds (migrated text)
)
# A person's retry of the job that raised one of these, once it succeeds, has done what the item asked for.
RESOLVED_BY_SUCCESSFUL_RETRY = ("redemption_failed",)


class Order(db.Model):
    """A shop order; `shop_order_id` is the shop's `data.id`. `payload` keeps the completed event's data, with its
    `cart_token` replaced by `cart_token_hash`."""

    __tablename__ = "orders"
    __table_args__ = (
        # The orders list finds an order by the beginning of its id (LIKE 'SO-10%'); PostgreSQL uses a b-tree for
        # that only with the pattern operator class (the unique index follows the database's collation).
        sa.Index("ix_orders_shop_order_id_prefix", "shop_order_id",
                 postgresql_ops={"shop_order_id": "varchar_pattern_ops"}),
    )

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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    events: Mapped[list[OrderEvent]] = relationship(back_populates="order", order_by="OrderEvent.id")
    attention_items: Mapped[list[OrderAttentionItem]] = relationship(
        back_populates="order", order_by="OrderAttentionItem.id", cascade="all, delete-orphan")

    def add_attention(self, kind: str, message: str) -> OrderAttentionItem:
        """Raise an attention item for the merchant's staff; when a job is running, it is the job's item."""
        if kind not in ATTENTION_KINDS:
            raise ValueError(f"unknown attention kind {kind!r}")
        # The job whose run raised it (none for a webhook): a later successful retry of that job resolves it.
        job = running_job()
        item = OrderAttentionItem(kind=kind, message=message, created_at=utcnow(),
                                  job_id=job.job_id if job else None, job_attempt=job.attempt if job else None)
        self.attention_items.append(item)
        return item


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


class OrderAttentionItem(db.Model):
    """Something on an order that needs a person (kind from ATTENTION_KINDS), until staff or a retry resolve it.

    `message` is written for the merchant's staff: money in dollars, gift-card codes masked."""

    __tablename__ = "order_attention_items"
    __table_args__ = (
        # The orders list's "needs attention" filter and counts read only the open items (a few among many).
        sa.Index("ix_order_attention_items_open", "order_id", postgresql_where=sa.text("resolved_at IS NULL"),
                 sqlite_where=sa.text("resolved_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    message: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The job whose run raised it, and which attempt of that job (a retry resolves only earlier attempts' items).
    job_id: Mapped[int | None] = mapped_column(sa.ForeignKey("jobs.id"), index=True)
    job_attempt: Mapped[int | None] = mapped_column(sa.Integer)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(sa.String(200))
    resolution_note: Mapped[str | None] = mapped_column(sa.Text)

    order: Mapped[Order] = relationship(back_populates="attention_items")
