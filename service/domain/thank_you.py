"""thank_you effects of orders (placeholder until its issue lands)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.config import Settings
from service.persistence import Order


def plan_for_completed_order(session: Session, order: Order, settings: Settings) -> None:
    """Enqueue this feature's jobs for a completed order, inside the intake transaction."""


def on_order_cancelled(session: Session, order: Order, settings: Settings) -> None:
    """React to a cancellation inside the intake transaction."""
