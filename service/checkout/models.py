"""Carts and the gift-card holds on them.

Table and column names are plain on purpose: reconciliation reads them directly (see docs/checkout.md).
A claim code is never stored: a hold keeps the certificate id (what redemption needs), the last four
characters for display, and an HMAC of the normalised code to recognise "already applied".
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import BigIntId, UTCDateTime, db, utcnow

# Hold statuses that keep the certificate locked to their cart (the partial unique index covers these).
LOCKING_HOLD_STATUSES = ("active", "redeeming")
HOLD_STATUSES = ("active", "redeeming", "redeemed", "released", "expired", "invalid", "failed")

_LOCKING_SQL = "status IN ('active', 'redeeming')"


class Cart(db.Model):
    """A shopper's checkout cart; only the SHA-256 of its token is stored (the token is a bearer secret)."""

    __tablename__ = "carts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    total_cents: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Abuse limits: CART_FAILURE_LIMIT failed lookups (unknown/malformed codes) within CART_FAILURE_WINDOW_MINUTES
    # (the rows of cart_failed_lookups) lock the cart until `locked_until`; `failed_lookups` is how many of them
    # the window held at the last failure (0 again once the cart locks).
    failed_lookups: Mapped[int] = mapped_column(sa.Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    holds: Mapped[list[GiftCardHold]] = relationship(back_populates="cart", order_by="GiftCardHold.position")


class FailedLookup(db.Model):
    """One failed claim-code lookup on a cart (an unknown or malformed code), kept while it counts toward the
    cart's lock: older than the failure window it is deleted at the cart's next failure or by the periodic
    release_expired_holds job, whichever comes first; all of a cart's go when it locks. So a cart has fewer than
    CART_FAILURE_LIMIT rows here."""

    __tablename__ = "cart_failed_lookups"
    __table_args__ = (sa.Index("ix_cart_failed_lookups_cart_failed_at", "cart_id", "failed_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    cart_id: Mapped[int] = mapped_column(sa.ForeignKey("carts.id"))
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GiftCardHold(db.Model):
    """One certificate applied to one cart. At most one active/redeeming hold per certificate (DB-enforced)."""

    __tablename__ = "gift_card_holds"
    __table_args__ = (
        sa.Index("uq_gift_card_holds_open_certificate", "certificate_id", unique=True,
                 postgresql_where=sa.text(_LOCKING_SQL), sqlite_where=sa.text(_LOCKING_SQL)),
        sa.Index("ix_gift_card_holds_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    cart_id: Mapped[int] = mapped_column(sa.ForeignKey("carts.id"), index=True)
    certificate_id: Mapped[str] = mapped_column(sa.String(100))
    claim_code_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    code_last4: Mapped[str] = mapped_column(sa.String(8))
    currency: Mapped[str] = mapped_column(sa.String(3), default="USD")
    balance_cents: Mapped[int] = mapped_column(sa.BigInteger)  # certificate face value when applied/verified
    certificate_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    splittable: Mapped[bool] = mapped_column(sa.Boolean)
    applied_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)   # whole dollars taken from the card
    covers_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)    # what it pays of the cart total
    redeem_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)    # what Instagift will be asked for
    forfeit_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0)   # non-splittable value beyond due
    accept_forfeit: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    # The forfeit the shopper agreed to when applying (0 without accept_forfeit). A total change or a verify that
    # would make a non-splittable card forfeit more than this releases the hold (docs/checkout.md).
    accepted_forfeit_cents: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    position: Mapped[int] = mapped_column(sa.Integer)  # entry order within the cart
    status: Mapped[str] = mapped_column(sa.String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    cart: Mapped[Cart] = relationship(back_populates="holds")
