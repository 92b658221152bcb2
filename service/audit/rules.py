"""Writing and reading the audit trail. Callers add an entry in the transaction of the action it records, so an
action and its entry are committed together (or neither)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.audit.models import AUDIT_ACTIONS, AuditEntry
from service.db import utcnow
from service.orders.models import Order

DETAIL_MAX_CHARS = 2000


def record(session: Session, action: str, *, staff: str | None, address: str, order_id: int | None = None,
           detail: str | None = None, now: datetime | None = None) -> AuditEntry:
    """Add one entry to the session (the caller commits). `detail` is written as given: text a person typed (a
    note) goes through `service.logs.redact` first, at the caller."""
    if action not in AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(action=action, staff=staff, address=address[:64], order_id=order_id,
                       detail=detail[:DETAIL_MAX_CHARS] if detail else None, at=now or utcnow())
    session.add(entry)
    return entry


@dataclass(frozen=True)
class AuditLine:
    """An entry as pages show it, with the shop's order id instead of our row id."""

    id: int
    at: datetime
    staff: str | None
    action: str
    address: str
    shop_order_id: str | None
    detail: str | None


def _lines(session: Session, stmt: sa.Select) -> list[AuditLine]:
    rows = session.execute(stmt.add_columns(Order.shop_order_id)
                           .outerjoin(Order, Order.id == AuditEntry.order_id)).all()
    return [AuditLine(e.id, e.at, e.staff, e.action, e.address, shop_order_id, e.detail) for e, shop_order_id in rows]


def audit_lines(session: Session, *, page: int = 1, per_page: int = 50) -> tuple[list[AuditLine], int]:
    """One page of the whole trail, newest first, and how many entries there are in all."""
    total = session.scalar(sa.select(sa.func.count()).select_from(AuditEntry)) or 0
    stmt = (sa.select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .offset((page - 1) * per_page).limit(per_page))
    return _lines(session, stmt), total


def order_audit_lines(session: Session, shop_order_id: str) -> list[AuditLine]:
    """Every entry about the order the shop calls `shop_order_id`, oldest first."""
    return _lines(session, sa.select(AuditEntry).where(Order.shop_order_id == shop_order_id)
                  .order_by(AuditEntry.at, AuditEntry.id))
