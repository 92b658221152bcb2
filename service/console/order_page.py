"""What the order page shows: the order's timeline (service.reports), its cards and its audit entries."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.audit.rules import order_audit_lines
from service.errors import NotFound
from service.orders.models import Order
from service.reports.timeline import order_timeline


def find_order(session: Session, shop_order_id: str) -> Order:
    """The order the shop calls `shop_order_id`; 404 order_not_found."""
    order = session.scalar(sa.select(Order).where(Order.shop_order_id == shop_order_id))
    if order is None:
        raise NotFound(f"There is no order {shop_order_id!r}.", code="order_not_found")
    return order


def order_page(session: Session, shop_order_id: str) -> dict[str, Any]:
    """The order's timeline (404 order_not_found from it) with its audit entries (oldest first)."""
    return {**order_timeline(session, shop_order_id), "audit": order_audit_lines(session, shop_order_id)}
