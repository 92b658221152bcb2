"""The thank-you card of an order: one row per order, from the rules' decision to Cardly's answer.

Columns are documented for the reconciliation helper in docs/thank-you-cards.md.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import BigIntId, UTCDateTime, db, utcnow
from service.orders.models import Order

THANK_YOU_STATES = ("skipped", "pending", "placed", "waiting_for_credit", "failed")
# failure_kind values: why a card failed (or, for "credit", why it waits).
FAILURE_KINDS = ("configuration", "validation", "credit", "provider_unavailable", "unreadable_response",
                 "idempotency_conflict", "provider")


class ThankYouCard(db.Model):
    """The Cardly thank-you card for one order (order_id is unique: one card per order)."""

    __tablename__ = "thank_you_cards"
    __table_args__ = (
        sa.CheckConstraint("status IN ('skipped','pending','placed','waiting_for_credit','failed')", name="status"),
        sa.CheckConstraint("generation >= 1", name="generation"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), unique=True)
    status: Mapped[str] = mapped_column(sa.String(24), index=True)
    skip_reason: Mapped[str | None] = mapped_column(sa.String(40))  # stable code, e.g. "opted_out"
    skip_detail: Mapped[str | None] = mapped_column(sa.Text)  # the readable explanation
    # Idempotency-Key = order-{shop_order_id}-g{generation}; moves on only after a definitive "not placed".
    generation: Mapped[int] = mapped_column(sa.Integer, default=1)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(64))
    # The exact orders/place body sent under idempotency_key, so a retry resends it byte for byte.
    request_body: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)
    cardly_order_id: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    cardly_status: Mapped[str | None] = mapped_column(sa.String(32))
    cost_credits: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 4))
    balance_credits: Mapped[Decimal | None] = mapped_column(sa.Numeric(14, 4))
    test_mode: Mapped[bool | None] = mapped_column(sa.Boolean)
    requested_arrival: Mapped[date | None] = mapped_column(sa.Date)
    dispatch_on: Mapped[date | None] = mapped_column(sa.Date)
    estimated_min_arrival: Mapped[date | None] = mapped_column(sa.Date)
    estimated_max_arrival: Mapped[date | None] = mapped_column(sa.Date)
    failure_kind: Mapped[str | None] = mapped_column(sa.String(32))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    cardly_request_id: Mapped[str | None] = mapped_column(sa.String(100))  # Cardly's Request-Id of the last answer
    warnings: Mapped[str | None] = mapped_column(sa.Text)  # state.status WARN messages of the placement
    # True while a call under the current key had an unknown outcome (timeout, 5xx, 429 …).
    outcome_unknown: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    calls: Mapped[int] = mapped_column(sa.Integer, default=0)  # orders/place calls made, all generations
    note: Mapped[str | None] = mapped_column(sa.Text)  # e.g. cancelled after the card was placed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    order: Mapped[Order] = relationship()
