"""The gift-card cents counters (service.metrics), counted from the redemption ledger as it is committed.

One place for every path that writes the ledger (planning at intake, the redemption job, a refusal, a cancellation):
what a flush writes to a `GiftCardRedemption` row is noted, and counted only when its transaction commits (a
rollback, or a close without a commit, forgets it). A row is counted when it is planned (applied) and each time it is settled — moves into
succeeded, shortfall or failed from another state (redeemed, rounding, forfeit, shortfall) — so a job that runs
again on a row already settled, or a redelivered webhook, counts nothing twice. A person's retry reopens a failed
row (its shortfall was counted) and settles it again: then what it redeems is counted too.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from service import metrics
from service.redemption.models import GiftCardRedemption

SETTLED_STATES = ("succeeded", "shortfall", "failed")
# As in the reconciliation report: Instagift has (to our knowledge) taken money off the certificate.
REDEEMED_STATES = ("succeeded", "shortfall")
_PENDING = "gift_card_cents_pending"


@dataclass(frozen=True)
class _Counted:
    applied: int = 0
    redeemed: int = 0
    rounding: int = 0
    forfeit: int = 0
    shortfall: int = 0


def _settled(row: GiftCardRedemption) -> _Counted:
    return _Counted(redeemed=row.redeemed_cents, forfeit=row.forfeit_cents, shortfall=row.shortfall_cents,
                    rounding=row.rounding_cents if row.state in REDEEMED_STATES else 0)


def _newly_settled(row: GiftCardRedemption) -> bool:
    history = sa.inspect(row).attrs.state.history
    if row.state not in SETTLED_STATES or not history.added:
        return False
    before = history.deleted[0] if history.deleted else None
    return before not in SETTLED_STATES


@event.listens_for(Session, "after_flush")
def _note_ledger_writes(session: Session, _flush_context) -> None:
    """Note what this flush wrote to ledger rows (the session still shows the state before the flush)."""
    noted = []
    for row in session.new:
        if isinstance(row, GiftCardRedemption):
            noted.append(_Counted(applied=row.applied_cents))
            if row.state in SETTLED_STATES:
                noted.append(_settled(row))
    for row in session.dirty:
        if isinstance(row, GiftCardRedemption) and _newly_settled(row):
            noted.append(_settled(row))
    if noted:
        session.info.setdefault(_PENDING, []).extend(noted)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    """The transaction holding the noted writes committed: count them once."""
    for counted in session.info.pop(_PENDING, ()):
        metrics.GIFT_CARD_APPLIED_CENTS.inc(counted.applied)
        metrics.GIFT_CARD_REDEEMED_CENTS.inc(counted.redeemed)
        metrics.GIFT_CARD_FORFEIT_CENTS.inc(counted.forfeit)
        metrics.GIFT_CARD_SHORTFALL_CENTS.inc(counted.shortfall)
        if counted.rounding:
            metrics.GIFT_CARD_ROUNDING_CENTS.labels("up" if counted.rounding > 0 else "down").inc(
                abs(counted.rounding))


@event.listens_for(Session, "after_transaction_end")
def _forget_uncommitted(session: Session, transaction) -> None:
    """The session's transaction ended: after a commit the notes were counted (after_commit runs first); after a
    rollback, or a close without a commit, nothing of it happened."""
    if transaction.parent is None:
        session.info.pop(_PENDING, None)
