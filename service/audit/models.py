"""The audit trail's table: one row per staff action, never updated."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from service.db import BigIntId, UTCDateTime, db, utcnow

# sign_in_failed has no staff name: the token matched nobody (and is never written down).
AUDIT_ACTIONS = ("sign_in", "sign_in_failed", "sign_out", "retry", "resolve")


class AuditEntry(db.Model):
    """One staff action: who (`staff`), what (`action`, `detail`), when (`at`), from where (`address`, the client
    address the rate limiter keys on) and on which order, when it concerns one."""

    __tablename__ = "audit_entries"
    __table_args__ = (sa.Index("ix_audit_entries_order_at", "order_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    staff: Mapped[str | None] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(32))
    address: Mapped[str] = mapped_column(sa.String(64))
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"))
    detail: Mapped[str | None] = mapped_column(sa.Text)
