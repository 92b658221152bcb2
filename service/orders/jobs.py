"""Orders' job: plan the effects of a completed order that are planned by a job (the post-order cards)."""

from __future__ import annotations

import sqlalchemy as sa

from service.db import lock_for_update
from service.jobs.registry import JobContext, handler
from service.orders import effects
from service.orders.models import Order


@handler(effects.PLAN_JOB)
def plan_order_effects(ctx: JobContext) -> None:
    """Plan the post-order cards of a completed order once (the order row lock makes a rerun a no-op)."""
    order = ctx.session.scalar(lock_for_update(ctx.session, sa.select(Order).where(Order.id == ctx.payload["order_id"]))
                               .execution_options(populate_existing=True))
    if order is None or order.effects_planned_at is not None:
        return
    for effect in effects.planned_by_job():
        effect.plan_for_completed_order(ctx.session, order, ctx.settings)
    order.effects_planned_at = ctx.now()
