"""Membership cards' jobs: drive a card through InstantCard, submit store batches at their cutoff, and wake the
print jobs that wait for funds."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.errors import ProviderAuthError, ProviderError
from service.jobs.queue import enqueue
from service.jobs.registry import JobContext, Park, PermanentFailure, RetryLater, handler
from service.logs import redact
from service.membership.models import MembershipCard
from service.membership.rules import (
    BATCH_CHECK_KIND,
    BATCH_JOB_KIND,
    CANCEL_REQUESTED,
    FUNDS_CHECK_KIND,
    JOB_KIND,
    advance_card,
    due_batches,
    submit_batch,
    wake_when_funded,
)


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, ProviderError):
        return exc.retryable
    return not isinstance(exc, PermanentFailure)


def _note_error(session: Session, card_ids: list[int], exc: Exception, final: bool, now: datetime) -> None:
    """Keep the reason on the card(s); mark them failed when the job will not try again by itself."""
    session.rollback()
    message = redact(str(exc))[:2000]
    values: dict[str, Any] = {"last_error": message, "updated_at": now}
    query = sa.update(MembershipCard).where(MembershipCard.id.in_(card_ids),
                                            MembershipCard.status.notin_(("submitted", "cancelled")))
    session.execute(query.values(**values))
    if final and not isinstance(exc, ProviderAuthError):  # credentials are fixed by a person, then retried
        # A requested cancellation stays requested: a person's retry must read InstantCard back, not submit.
        session.execute(query.where(MembershipCard.status != CANCEL_REQUESTED).values(status="failed"))
    session.commit()


@handler(JOB_KIND)
def issue_membership_card(ctx: JobContext) -> None:
    """Drive one membership card through InstantCard (draft → finalize → print job → funds → submit)."""
    card_id = int(ctx.payload["card_id"])
    try:
        advance_card(ctx.session, ctx.settings, ctx.providers.instantcard, card_id, ctx.now)
    except (Park, RetryLater):
        raise
    except Exception as exc:
        final = not _retryable(exc) or ctx.job.failures + 1 >= ctx.job.max_attempts
        _note_error(ctx.session, [card_id], exc, final, ctx.now())
        raise


@handler(BATCH_JOB_KIND)
def submit_membership_batch(ctx: JobContext) -> None:
    """Submit one batch print job of cards shipped to the store."""
    submit_batch(ctx.session, ctx.settings, ctx.providers.instantcard, int(ctx.payload["print_job_id"]), ctx.now)


@handler(BATCH_CHECK_KIND, every_seconds=60)
def check_membership_batches(ctx: JobContext) -> None:
    """Enqueue the submit job of every batch whose cutoff has come (or that is full)."""
    for batch_id in due_batches(ctx.session, ctx.settings, ctx.now()):
        enqueue(ctx.session, BATCH_JOB_KIND, {"print_job_id": batch_id}, dedupe_key=f"membership-batch:{batch_id}")


@handler(FUNDS_CHECK_KIND, every_seconds=300)
def check_instantcard_funds(ctx: JobContext) -> None:
    """Wake print jobs parked for funds once the organization balance is positive (each asks Check Balance again)."""
    wake_when_funded(ctx.session, ctx.providers.instantcard, ctx.now())
