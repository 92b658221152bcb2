"""Checkout's job: the periodic release of gift-card holds whose time ran out, and the purge of failed lookups that
no longer count toward a cart's lock."""

from __future__ import annotations

import logging

from service.checkout.rules import purge_old_failed_lookups, release_expired_holds
from service.jobs.registry import JobContext, handler

log = logging.getLogger("service.checkout")


@handler("release_expired_holds", every_seconds=60)
def release_expired_holds_job(ctx: JobContext) -> None:
    """Periodic: free certificates whose holds ran out; forget failed lookups older than the lock's window."""
    released = release_expired_holds(ctx.session, ctx.now())
    if released:
        log.info("released %d expired gift card hold(s)", released)
    purge_old_failed_lookups(ctx.session, ctx.settings, ctx.now())
