"""Checkout's job: the periodic release of gift-card holds whose time ran out."""

from __future__ import annotations

import logging

from service.checkout.rules import release_expired_holds
from service.jobs.registry import JobContext, handler

log = logging.getLogger("service.checkout")


@handler("release_expired_holds", every_seconds=60)
def release_expired_holds_job(ctx: JobContext) -> None:
    """Periodic: free certificates whose holds ran out."""
    released = release_expired_holds(ctx.session, ctx.now())
    if released:
        log.info("released %d expired gift card hold(s)", released)
