"""The redemption ledger: one row per held certificate an order redeems, what we asked Instagift and what it did.

Table and column names are plain on purpose: reconciliation reads them directly (see docs/checkout.md).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.checkout.models import GiftCardHold
from service.db import BigIntId, UTCDateTime, db, utcnow
from service.orders.models import Order

REDEMPTION_STATES = ("pending", "uncertain", "succeeded", "shortfall", "failed", "cancelled")


class GiftCardRedemption(db.Model):
    """The ledger: what an order took from one held certificate, what we asked Instagift, what it did.

    Our row, not Instagift's: Instagift's own record of a redemption is `service.providers.instagift.Redemption`
    (its id is kept here as `provider_redemption_id`)."""

    __tablename__ = "redemptions"
    # The ledger (API, CSV and the console's page with its totals) reads a date range in (created_at, id) order.
    __table_args__ = (sa.Index("ix_redemptions_created_at_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    hold_id: Mapped[int] = mapped_column(sa.ForeignKey("gift_card_holds.id"), unique=True)
    certificate_id: Mapped[str] = mapped_column(sa.String(100), index=True)
    # Indexed: staff find an order by the last 4 of the code it used (the orders list's search).
    code_last4: Mapped[str] = mapped_column(sa.String(8), index=True)
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    splittable: Mapped[bool] = mapped_column(sa.Boolean)
    applied_cents: Mapped[int] = mapped_column(sa.BigInteger)      # held on the cart
    taken_cents: Mapped[int] = mapped_column(sa.BigInteger)        # what the completed order took from it
    intended_cents: Mapped[int] = mapped_column(sa.BigInteger)     # whole dollars we mean to redeem
    requested_cents: Mapped[int | None] = mapped_column(sa.BigInteger)  # what the last call asked for
    redeemed_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # what Instagift reports
    shortfall_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)  # intended − redeemed
    forfeit_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)    # redeemed − applied (non-splittable)
    balance_before_cents: Mapped[int | None] = mapped_column(sa.BigInteger)
    state: Mapped[str] = mapped_column(sa.String(16), default="pending", index=True)
    # True from the moment a redeem call may have reached Instagift until its outcome is known.
    outcome_unknown: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    provider_redemption_id: Mapped[str | None] = mapped_column(sa.String(100))
    child_certificate_id: Mapped[str | None] = mapped_column(sa.String(100))
    child_balance_cents: Mapped[int | None] = mapped_column(sa.BigInteger)
    error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)  # redeem calls started
    # When the last redeem call was started, by this machine's clock: read-backs of Instagift's lists stop at
    # records older than this (less a clock-skew allowance). Null on rows from before it was recorded.
    attempt_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    order: Mapped[Order] = relationship()
    hold: Mapped[GiftCardHold] = relationship()

    @hybrid_property
    def rounding_cents(self) -> int:
        """Whole-dollar rounding: what we meant to redeem beyond (or short of) what the order took.

        Splittable: intended − taken (e.g. `up` turns $52.50 taken into $53.00). Non-splittable: applied − taken,
        because everything beyond the whole-dollar applied amount is the forfeit, reported apart (docs/money.md)."""
        if self.splittable:
            return self.intended_cents - self.taken_cents
        return self.applied_cents - self.taken_cents

    @rounding_cents.inplace.expression
    @classmethod
    def _rounding_cents_expression(cls) -> sa.ColumnElement[int]:
        # The same rule in SQL, for sums over many rows (the ledger's totals).
        return sa.case((cls.splittable, cls.intended_cents - cls.taken_cents),
                       else_=cls.applied_cents - cls.taken_cents)
