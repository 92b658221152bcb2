"""Redeeming held gift cards after an order completes: planning, the redemption job's steps, cancellation,
a person's retry.

Instagift has no idempotency keys, so the job never trusts a retry blindly:

1. it records its intent (`outcome_unknown = True`, what it will ask for, the balance before) and commits
   BEFORE calling Instagift;
2. a definite answer (success, or a refusal that proves nothing happened) clears `outcome_unknown`;
3. when a run starts with `outcome_unknown` still set (timeout, dropped connection, 5xx, unreadable answer,
   or a worker that died mid-call), it reads the certificate back first: `redeemed` with the face value we
   asked for → the earlier call succeeded (recorded, no second call); balance unchanged and redeemable →
   safe to call again; anything else → parked for a person with the reason.

So a retried job can never produce a second redemption.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service import money
from service.checkout.models import LOCKING_HOLD_STATUSES, Cart, GiftCardHold
from service.checkout.rules import take_back
from service.config import Settings
from service.db import call_provider, lock_for_update, utcnow
from service.errors import (
    Conflict,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
)
from service.jobs import enqueue
from service.jobs.registry import Park, PermanentFailure, RetryLater
from service.logs import masked_last4
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption

log = logging.getLogger("service.redemption")

JOB_KIND = "redeem_gift_card"
PERSON_RECHECK_SECONDS = 6 * 3600
FINAL_STATES = ("succeeded", "shortfall", "failed", "cancelled")


# -- planning, inside the order intake transaction ----------------------------------------------------

def plan_for_completed_order(session: Session, order: Order, settings: Settings) -> None:
    """Create a pending ledger row and one redemption job per held certificate of the order's cart."""
    if not order.cart_token_hash:
        return
    cart = session.scalar(lock_for_update(session, sa.select(Cart).where(
        Cart.token_hash == order.cart_token_hash)))
    if cart is None:
        if order.gift_card_cents:
            order.add_attention("gift_cards_not_held",
                                f"The order took {money.format_usd(order.gift_card_cents)} from gift cards but "
                                "its cart_token matches no cart here: nothing was redeemed.")
        return
    # The order is placed: the cart takes no more changes (its token now answers 404 cart_not_found).
    cart.expires_at = min(cart.expires_at, order.completed_at)
    # Holds whose time ran out still belong to this order (the shopper paid with them); only holds the
    # shopper removed or that verify found unusable are left out.
    holds = list(session.scalars(lock_for_update(session, sa.select(GiftCardHold).where(
        GiftCardHold.cart_id == cart.id, GiftCardHold.status.in_(("active", "expired")),
        # A reused cart token plans nothing twice.
        ~sa.exists().where(GiftCardRedemption.hold_id == GiftCardHold.id))
        .order_by(GiftCardHold.position))))
    if not holds:
        if order.gift_card_cents:
            order.add_attention("gift_cards_not_held",
                                f"The order took {money.format_usd(order.gift_card_cents)} from gift cards but "
                                "its cart holds none: nothing was redeemed.")
        return
    if order.cancelled_at is not None:
        _release(holds, "order cancelled before completion", order.completed_at)
        return
    taken = money.split_order_gift_card_cents(order.gift_card_cents, [(h.id, h.covers_cents) for h in holds])
    covered = sum(h.covers_cents for h in holds)
    if order.gift_card_cents > covered:
        order.add_attention("gift_cards_not_held",
                            f"The order took {money.format_usd(order.gift_card_cents)} from gift cards but its "
                            f"cart held only {money.format_usd(covered)}: the difference was not redeemed.")
    now = order.completed_at
    for hold in holds:
        amount = money.redemption_amount(taken[hold.id], hold.redeem_cents, hold.balance_cents,
                                         settings.gift_card_rounding, splittable=hold.splittable)
        if amount.intended_cents <= 0:
            _release([hold], "the completed order took nothing from this gift card", now)
            continue
        redemption = GiftCardRedemption(
            order_id=order.id, hold_id=hold.id, certificate_id=hold.certificate_id, code_last4=hold.code_last4,
            currency=hold.currency, splittable=hold.splittable, applied_cents=hold.applied_cents,
            taken_cents=taken[hold.id], intended_cents=amount.intended_cents, redeemed_cents=0,
            shortfall_cents=0, forfeit_cents=0, state="pending", outcome_unknown=False, attempts=0,
            created_at=now, updated_at=now)
        session.add(redemption)
        holder = _holder_elsewhere(session, hold) if hold.status == "expired" else None
        if holder is not None and holder.status == "redeeming":
            # Another completed order is already redeeming this certificate: this order cannot have it too.
            error = "the hold had expired and another completed order is redeeming this certificate"
            redemption.state, redemption.error, redemption.shortfall_cents = "failed", error, amount.intended_cents
            hold.status, hold.status_reason, hold.updated_at = "failed", error, now
            order.add_attention("redemption_failed",
                                f"Gift card {masked_last4(hold.code_last4)} was not redeemed: {error}; "
                                f"{money.format_usd(amount.intended_cents)} must be collected another way.")
            continue
        if holder is not None:
            # An open cart took the certificate after this hold ran out. The order is paid and that cart is not:
            # the order keeps the card, and the other cart's verify reports it gone before its shopper pays.
            take_back(session, settings, holder, now)
            session.flush()  # the unique index allows one active/redeeming hold per certificate
        hold.status, hold.updated_at = "redeeming", now
        session.flush()
        enqueue(session, JOB_KIND, {"redemption_id": redemption.id, "hold_id": hold.id},
                dedupe_key=f"redeem:{hold.id}", order_id=order.id, max_attempts=settings.job_max_attempts)


def _holder_elsewhere(session: Session, hold: GiftCardHold) -> GiftCardHold | None:
    """The other cart's hold that now locks this hold's certificate (active or redeeming), if any."""
    return session.scalar(lock_for_update(session, sa.select(GiftCardHold).where(
        GiftCardHold.certificate_id == hold.certificate_id, GiftCardHold.id != hold.id,
        GiftCardHold.status.in_(LOCKING_HOLD_STATUSES))))


def _release(holds: list[GiftCardHold], reason: str, now: datetime | None) -> None:
    for hold in holds:
        hold.status, hold.status_reason = "released", reason
        if now:
            hold.updated_at = now


def on_order_cancelled(session: Session, order: Order, settings: Settings) -> None:
    """Before redemption: cancel pending redemptions and release holds. After: flag the order for a person."""
    redemptions = list(session.scalars(lock_for_update(session, sa.select(GiftCardRedemption).where(
        GiftCardRedemption.order_id == order.id).order_by(GiftCardRedemption.id))))
    for redemption in redemptions:
        # Nothing redeemed and no call in doubt (an `uncertain` row whose doubt was cleared included): cancel it.
        if redemption.state in ("pending", "uncertain") and not redemption.outcome_unknown \
                and redemption.redeemed_cents == 0:
            redemption.state, redemption.error = "cancelled", "order cancelled before redemption"
            redemption.updated_at = order.cancelled_at
            hold = session.get(GiftCardHold, redemption.hold_id)
            _release([hold], "order cancelled before redemption", order.cancelled_at)
    redeemed = sum(r.redeemed_cents for r in redemptions)
    in_doubt = sum(1 for r in redemptions if r.outcome_unknown)
    if redeemed:
        order.add_attention("cancelled_after_redeemed",
                            f"Cancelled after {money.format_usd(redeemed)} was redeemed from gift cards; "
                            "Instagift has no refund API — refund manually.")
    if in_doubt:
        order.add_attention("outcome_unknown",
                            f"Cancelled while {in_doubt} gift card redemption(s) had an unknown outcome; "
                            "what they turn out to have done is noted here.")
    if order.cart_token_hash:
        cart = session.scalar(sa.select(Cart).where(Cart.token_hash == order.cart_token_hash))
        if cart is not None:
            _release([h for h in cart.holds if h.status == "active"], "order cancelled", order.cancelled_at)


# -- the job's steps -----------------------------------------------------------------------------------

def reopen_for_person_retry(session: Session, job, now: datetime) -> None:
    """A person retries a dead redemption job (say, after activating the certificate): a row that failed without
    redeeming anything becomes pending again, so the retry really tries; the read-back rules still apply."""
    redemption = _load(session, job.payload["redemption_id"])
    if redemption.state != "failed" or redemption.redeemed_cents > 0 or redemption.outcome_unknown:
        return
    hold = session.get(GiftCardHold, redemption.hold_id)
    if _holder_elsewhere(session, hold) is not None:
        raise Conflict("Another checkout holds this gift card now, so it cannot be redeemed for this order.",
                       code="job_not_retryable")
    hold.status, hold.status_reason, hold.updated_at = "redeeming", "redemption retried by a person", now
    redemption.state, redemption.shortfall_cents, redemption.updated_at = "pending", 0, now
    redemption.error = f"retried by a person after: {redemption.error}"


def _load(session: Session, redemption_id: int) -> GiftCardRedemption:
    # populate_existing: the worker's session keeps attributes across commits, and a locked read must see
    # what other transactions (a cancellation) wrote meanwhile.
    redemption = session.scalar(lock_for_update(session, sa.select(GiftCardRedemption).where(
        GiftCardRedemption.id == redemption_id)).execution_options(populate_existing=True))
    if redemption is None:
        raise PermanentFailure(f"redemption {redemption_id} does not exist")
    return redemption


@dataclass(frozen=True)
class _Attempt:
    """What the ledger row says about its redeem call, read before Instagift is asked anything (no lock is held
    while Instagift answers; the row is locked again afterwards and must still say the same)."""

    redemption_id: int
    certificate_id: str
    splittable: bool
    outcome_unknown: bool
    requested_cents: int | None
    balance_before_cents: int | None
    # When the last call may have started: rows from before that was recorded use their creation.
    started_at: datetime

    @classmethod
    def of(cls, redemption: GiftCardRedemption) -> _Attempt:
        return cls(redemption.id, redemption.certificate_id, redemption.splittable, redemption.outcome_unknown,
                   redemption.requested_cents, redemption.balance_before_cents,
                   redemption.attempt_started_at or redemption.created_at)

    @property
    def taken_cents(self) -> int | None:
        """What the call takes when it succeeds: a split leaves the original with exactly the amount redeemed; a
        whole redemption (non-splittable, which Instagift takes cents included whatever we asked) leaves the face
        value as it was."""
        return self.requested_cents if self.splittable else self.balance_before_cents


@dataclass(frozen=True)
class _ReadBack:
    """What Instagift's lists say about a call that succeeded without us hearing the answer."""

    provider_id: str | None
    child_id: str | None
    child_balance: int | None


# What a call whose outcome was unknown turns out to have done, judged from the certificate read back.
EARLIER_CALL_SUCCEEDED, EARLIER_CALL_NOT_REACHED, EARLIER_CALL_UNCLEAR = "succeeded", "not_reached", "unclear"


def redeem(session: Session, settings: Settings, client, redemption_id: int, now) -> None:
    """Run one step of a redemption; raises RetryLater/Park/PermanentFailure as the outcome requires."""
    redemption = _load(session, redemption_id)
    if _settled_or_cancelled(session, redemption, now):
        return
    attempt = _Attempt.of(redemption)
    certificate = call_provider(session, _fetch, client, attempt.certificate_id)
    earlier = _earlier_call(attempt, certificate, now) if attempt.outcome_unknown else None
    read_back = _read_back(client, attempt) if earlier == EARLIER_CALL_SUCCEEDED else None

    redemption = _load(session, redemption_id)
    # Re-checked under the row lock: a cancellation may have landed while Instagift was being read.
    if _settled_or_cancelled(session, redemption, now):
        return
    if _Attempt.of(redemption) != attempt:
        # Another run of this job (whose lease had run out) got further meanwhile: what was read may be stale.
        raise RetryLater("the redemption changed while Instagift was being read; reading it again")
    if redemption.outcome_unknown:
        if earlier == EARLIER_CALL_SUCCEEDED:
            _finish(session, redemption, now, redeemed=attempt.taken_cents, provider_id=read_back.provider_id,
                    child_id=read_back.child_id, child_balance=read_back.child_balance,
                    error=None if read_back.provider_id else
                    "redeemed (read back); Instagift's redemption id was not found")
            log.info("redemption %s: an earlier uncertain call had succeeded; recorded without calling again",
                     redemption.id)
            return
        if earlier == EARLIER_CALL_UNCLEAR:
            _park_for_a_person(session, redemption, certificate, now)
        # Unchanged and redeemable: nothing happened at Instagift, so calling again is safe.
        redemption.outcome_unknown = False
        if _settled_or_cancelled(session, redemption, now):  # unless the order was cancelled meanwhile
            session.get(Order, redemption.order_id).add_attention(
                "outcome_settled",
                f"Gift card {masked_last4(redemption.code_last4)}: the call in doubt had not reached Instagift; "
                "nothing was redeemed.")
            session.commit()
            return

    if certificate is None or certificate.unredeemable_reason(now()) is not None:
        reason = "not found at Instagift" if certificate is None else certificate.unredeemable_reason(now())
        _finish(session, redemption, now, state="failed", redeemed=0, error=f"certificate is {reason}")
        raise PermanentFailure(f"gift card {masked_last4(redemption.code_last4)} could not be redeemed: certificate is {reason}")

    if redemption.splittable:
        amount = money.redemption_amount(redemption.intended_cents, redemption.intended_cents,
                                         certificate.face_value_cents, "down").amount_cents
    else:
        # Redeemed whole; Instagift ignores the amount, so ask for exactly the face value it will take.
        amount = money.redeemable_cents(certificate.face_value_cents)
    if amount <= 0:
        _finish(session, redemption, now, state="shortfall", redeemed=0,
                error="balance was spent elsewhere before redemption")
        return

    redemption.requested_cents = amount
    redemption.balance_before_cents = certificate.face_value_cents
    redemption.outcome_unknown = True
    redemption.attempts += 1
    redemption.updated_at = now()
    # The machine's clock, not the job's: it is compared with the times Instagift stamps on its records.
    redemption.attempt_started_at = utcnow()
    attempt = _Attempt.of(redemption)
    session.commit()  # the intent is on record before Instagift hears of it (outside the try: a failed commit
    # means the call was never made)

    try:
        result = client.redeem_certificate(attempt.certificate_id, amount, location_id=settings.instagift.location_id)
    except ProviderRejected as exc:
        if exc.reason == "previously_redeemed":
            _mark_outcome_unknown(session, redemption_id, now, exc)
            raise RetryLater("Instagift says previously redeemed; reading the certificate back next") from exc
        _definite_refusal(session, redemption_id, now, exc)
    except (ProviderRateLimited, ProviderAuthError, ProviderNotFound) as exc:
        _definite_refusal(session, redemption_id, now, exc)
    except ProviderError as exc:
        if not exc.outcome_unknown:
            _definite_refusal(session, redemption_id, now, exc)
        _mark_outcome_unknown(session, redemption_id, now, exc)
        raise RetryLater(f"outcome unknown ({exc}); reading the certificate back before any retry") from exc
    except Exception as exc:
        # A bug or transport surprise after the request may have gone out: treat it as uncertain.
        _mark_outcome_unknown(session, redemption_id, now, exc)
        raise RetryLater(f"outcome unknown ({type(exc).__name__}); reading the certificate back first") from exc

    # Still no transaction open: look for the split's new certificate before locking the row again.
    child_id, child_balance = _child(client, attempt, result.amount_cents)
    redemption = _load(session, redemption_id)
    _finish(session, redemption, now, redeemed=result.amount_cents, provider_id=result.id,
            child_id=child_id, child_balance=child_balance)


def _settled_or_cancelled(session: Session, redemption: GiftCardRedemption, now) -> bool:
    """True (and committed) when there is nothing to do: a final state, or an order cancelled before any call."""
    if redemption.state in FINAL_STATES:
        session.commit()
        return True
    order = session.get(Order, redemption.order_id)
    session.refresh(order)
    if order.cancelled_at is not None and not redemption.outcome_unknown:
        redemption.state, redemption.error, redemption.updated_at = "cancelled", "order cancelled", now()
        hold = session.get(GiftCardHold, redemption.hold_id)
        if hold.status == "redeeming":
            _release([hold], "order cancelled before redemption", now())
        session.commit()
        return True
    return False


def _fetch(client, certificate_id: str):
    try:
        return client.fetch_certificate(certificate_id)
    except ProviderNotFound:
        return None


def _earlier_call(attempt: _Attempt, certificate, now) -> str:
    """What a call whose outcome was unknown did, judged from the certificate as Instagift shows it now."""
    if certificate is not None and certificate.status == "redeemed" \
            and certificate.face_value_cents == attempt.taken_cents:
        return EARLIER_CALL_SUCCEEDED
    unchanged = (certificate is not None and certificate.unredeemable_reason(now()) is None
                 and certificate.face_value_cents == attempt.balance_before_cents)
    return EARLIER_CALL_NOT_REACHED if unchanged else EARLIER_CALL_UNCLEAR


def _read_back(client, attempt: _Attempt) -> _ReadBack:
    """Instagift's redemption id and the split's new certificate of a call that succeeded unheard."""
    provider_id = _find_provider_redemption(client, attempt, attempt.taken_cents)
    child_id, child_balance = _child(client, attempt, attempt.taken_cents)
    return _ReadBack(provider_id, child_id, child_balance)


def _park_for_a_person(session: Session, redemption: GiftCardRedemption, certificate, now) -> None:
    """The certificate shows neither the call's success nor an untouched balance: a person must look."""
    seen = ("not found" if certificate is None
            else f"status {certificate.status}, face value {money.format_usd(certificate.face_value_cents)}")
    reason = (f"gift card {masked_last4(redemption.code_last4)}: an earlier redeem call of "
              f"{money.format_usd(redemption.requested_cents or 0)} had an unknown outcome and the certificate now "
              f"shows {seen} (balance before was {money.format_usd(redemption.balance_before_cents or 0)}); "
              "a person must check it at Instagift before anything is retried")
    redemption.state, redemption.error, redemption.updated_at = "uncertain", reason, now()
    session.commit()
    raise Park(reason, PERSON_RECHECK_SECONDS)


def _find_provider_redemption(client, attempt: _Attempt, amount_cents: int) -> str | None:
    """Instagift's id for a redemption we could not see answered (newest match since the attempt), if listed."""
    try:
        found = client.find_redemption(attempt.certificate_id, amount_cents, since=attempt.started_at)
    except ProviderError:
        return None
    return found.id if found else None


def _child(client, attempt: _Attempt, redeemed_cents: int) -> tuple[str | None, int | None]:
    """The certificate holding the rest after a split: Instagift's child if found, else the computed rest."""
    before = attempt.balance_before_cents or 0
    rest = before - redeemed_cents
    if not attempt.splittable or rest <= 0:
        return None, None
    try:
        child = client.find_child_certificate(attempt.certificate_id, since=attempt.started_at)
    except ProviderError:
        child = None
    if child is not None:
        return child.id, child.face_value_cents
    log.info("redemption %s: Instagift's list did not show the split's new certificate; its balance is computed",
             attempt.redemption_id)
    return None, rest


def _finish(session: Session, redemption: GiftCardRedemption, now, *, redeemed: int, state: str | None = None,
            provider_id: str | None = None, child_id: str | None = None, child_balance: int | None = None,
            error: str | None = None) -> None:
    """Record the outcome: amounts, shortfall, forfeit, child certificate; the hold becomes redeemed."""
    redemption.redeemed_cents = redeemed
    redemption.shortfall_cents = max(0, redemption.intended_cents - redeemed)
    asked = redemption.requested_cents or redemption.intended_cents
    if redemption.splittable and redeemed > asked:
        # Instagift should never take more than asked; if it does, the shopper lost value: a person must know.
        over = (f"Instagift redeemed {money.format_usd(redeemed)}, {money.format_usd(redeemed - asked)} more "
                f"than the {money.format_usd(asked)} asked")
        error = f"{error}; {over}" if error else over
        session.get(Order, redemption.order_id).add_attention(
            "over_redeemed", f"Gift card {masked_last4(redemption.code_last4)}: {over}; check it with Instagift.")
    # docs/money.md: forfeit = redeemed − applied; what lies between taken and applied is the rounding, reported apart.
    redemption.forfeit_cents = max(0, redeemed - redemption.applied_cents) if not redemption.splittable else 0
    redemption.state = state or ("shortfall" if redemption.shortfall_cents > 0 else "succeeded")
    redemption.outcome_unknown = False
    redemption.provider_redemption_id = provider_id
    redemption.child_certificate_id, redemption.child_balance_cents = child_id, child_balance
    redemption.error = error
    redemption.updated_at = now()
    if redeemed > 0:
        redemption.redeemed_at = now()
    hold = session.get(GiftCardHold, redemption.hold_id)
    hold.status = "redeemed" if redeemed > 0 else "failed"
    hold.status_reason = redemption.error
    hold.updated_at = now()
    order = session.get(Order, redemption.order_id)
    if redeemed > 0 and order.cancelled_at is not None:
        order.add_attention("cancelled_after_redeemed",
                            f"Gift card {masked_last4(redemption.code_last4)}: {money.format_usd(redeemed)} was "
                            "redeemed after the order was cancelled — refund manually.")
    if redemption.state in ("shortfall", "failed"):
        note = (f"Gift card {masked_last4(redemption.code_last4)}: intended {money.format_usd(redemption.intended_cents)}, "
                f"redeemed {money.format_usd(redeemed)} (shortfall {money.format_usd(redemption.shortfall_cents)})"
                + (f": {redemption.error}." if redemption.error else "."))
        order.add_attention(redemption.state if redemption.state == "shortfall" else "redemption_failed", note)
    session.commit()


def _mark_outcome_unknown(session: Session, redemption_id: int, now, exc: Exception) -> None:
    session.rollback()
    redemption = _load(session, redemption_id)
    redemption.state, redemption.error, redemption.updated_at = "uncertain", str(exc)[:2000], now()
    session.commit()


def _definite_refusal(session: Session, redemption_id: int, now, exc: ProviderError) -> None:
    """Instagift refused without acting: clear the doubt, then fail, park or retry as the cause says."""
    session.rollback()
    redemption = _load(session, redemption_id)
    redemption.outcome_unknown = False
    redemption.error, redemption.updated_at = str(exc)[:2000], now()
    if isinstance(exc, ProviderRateLimited):
        session.commit()
        raise exc
    if isinstance(exc, ProviderAuthError) or exc.reason == "location_required":
        session.commit()
        raise Park(f"Instagift refused the redemption ({exc}); fix the configuration, then retry the job",
                   PERSON_RECHECK_SECONDS)
    redemption.shortfall_cents = redemption.intended_cents
    redemption.state = "failed"
    hold = session.get(GiftCardHold, redemption.hold_id)
    hold.status, hold.status_reason = "failed", redemption.error
    order = session.get(Order, redemption.order_id)
    note = f"Gift card {masked_last4(redemption.code_last4)} could not be redeemed: {exc}"
    order.add_attention("redemption_failed", note)
    session.commit()
    raise PermanentFailure(note)
