"""Redemption's job: redeem one held certificate for one order, exactly once (see service.redemption.rules)."""

from __future__ import annotations

from service.jobs.registry import JobContext, handler
from service.redemption.rules import JOB_KIND, redeem, reopen_for_person_retry


@handler(JOB_KIND, on_person_retry=reopen_for_person_retry)
def redeem_gift_card(ctx: JobContext) -> None:
    """Redeem one held certificate for one order, exactly once (see the rules module's docstring)."""
    redeem(ctx.session, ctx.settings, ctx.providers.instagift, ctx.payload["redemption_id"], ctx.now)
