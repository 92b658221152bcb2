"""What an order effect is, and the list of them the app composes (service.features); orders never imports a feature.

Each feature that acts on orders plans its own effects of a completed order (jobs and their first rows) and
reacts to a cancellation. Redemption is planned inside the intake transaction: it closes the cart and settles its
holds the moment the order exists. The post-order cards are planned by one job written in that same transaction
(so an accepted webhook always leads to them) and run by a worker, which keeps intake fast. A cancellation reaches
every effect, in the same order: those planned at intake first, then those planned by the job.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.orm import Session

from service.config import Settings
from service.orders.models import Order

PLAN_JOB = "plan_order_effects"


class OrderEffect(Protocol):
    """A feature's part in an order's life (a module with these two functions is one)."""

    def plan_for_completed_order(self, session: Session, order: Order, settings: Settings) -> None:
        """Write the rows and jobs of this effect for a completed order, in the caller's transaction."""

    def on_order_cancelled(self, session: Session, order: Order, settings: Settings) -> None:
        """React to the order's cancellation, in the caller's transaction."""


_at_intake: tuple[OrderEffect, ...] | None = None
_by_job: tuple[OrderEffect, ...] = ()


def compose(*, at_intake: Iterable[OrderEffect], by_job: Iterable[OrderEffect]) -> None:
    """Set the order effects, each group in the order they run (service.features does, once, at import)."""
    global _at_intake, _by_job
    _at_intake, _by_job = tuple(at_intake), tuple(by_job)


def _composed() -> tuple[tuple[OrderEffect, ...], tuple[OrderEffect, ...]]:
    if _at_intake is None:
        # An order taken without its effects would lose redemptions and cards silently: refuse instead.
        raise RuntimeError("The order effects are not composed: import service.features (create_app does).")
    return _at_intake, _by_job


def planned_at_intake() -> tuple[OrderEffect, ...]:
    """The effects planned inside the intake transaction (redemption)."""
    return _composed()[0]


def planned_by_job() -> tuple[OrderEffect, ...]:
    """The effects planned by the order's planning job (the post-order cards)."""
    return _composed()[1]


def every_effect() -> tuple[OrderEffect, ...]:
    """Every effect, those planned at intake first: the order a cancellation reaches them in."""
    at_intake, by_job = _composed()
    return at_intake + by_job
