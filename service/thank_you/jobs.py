"""Thank-you cards' jobs: place an order's card with Cardly once, and wake the cards waiting for credit.

Exactly one card per order rests on Cardly's idempotency (see service.thank_you.rules): the job records its intent
(generation, key, body) before each call and moves to the next generation only after a definitive "not placed".
"""

from __future__ import annotations

import logging
from decimal import Decimal

import sqlalchemy as sa

from service.config import Settings
from service.db import call_provider
from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderPaymentRequired,
    ProviderRejected,
    ProviderResponseInvalid,
)
from service.jobs.queue import wake_parked
from service.jobs.registry import JobContext, Park, PermanentFailure, RetryLater, handler
from service.logs import redact
from service.orders.models import Order
from service.providers.cardly import IDEMPOTENCY_CONFLICT_CODE, payment_required_amounts
from service.thank_you.models import ThankYouCard
from service.thank_you.rules import (
    DEFINITIVE_NOT_PLACED,
    JOB_KIND,
    PLACED_FOR_CANCELLED_ORDER,
    Skip,
    idempotency_key,
    iso_date,
    locked_card,
    placed_for_cancelled_order,
    purchase_order_number,
    skip_cancelled,
    thank_you_decision,
)

log = logging.getLogger("service.thank_you")


@handler(JOB_KIND)
def send_thank_you_card(ctx: JobContext) -> None:
    """Place the order's thank-you card once; see the module docstring for the key discipline."""
    order_id = int(ctx.payload["order_id"])
    session, settings, client = ctx.session, ctx.settings, ctx.providers.cardly
    card = session.scalar(sa.select(ThankYouCard).where(ThankYouCard.order_id == order_id))
    if card is None:
        raise PermanentFailure(f"order {order_id} has no thank-you card row")
    if card.status == "waiting_for_credit" and card.cost_credits is not None:
        call_provider(session, _park_unless_credit_covers, client, card.cost_credits, settings)

    card = locked_card(session, order_id)
    order = session.get(Order, order_id, populate_existing=True)
    if order.cancelled_at is not None and card.outcome_unknown and card.status != "placed":
        # An earlier placement may have reached Cardly: only Cardly's order list can say whether it did.
        _settle_cancelled_uncertain(ctx, order_id, purchase_order_number(order.payload or {}))
        return
    if card.status in ("placed", "skipped"):
        return
    now = ctx.now()
    if order.cancelled_at is not None:
        skip_cancelled(card)
        return
    if card.status == "waiting_for_credit" or (card.status == "failed" and card.failure_kind in DEFINITIVE_NOT_PLACED):
        # Cardly definitely did not place the card and stored its answer under the old key: move on.
        card.generation += 1
        card.request_body = None
    if card.request_body is None:
        decision = thank_you_decision(order.payload or {}, settings, today=now.date())
        if isinstance(decision, Skip):  # the rules changed since the order came in (e.g. cards turned off)
            card.status, card.skip_reason, card.skip_detail = "skipped", decision.reason, decision.detail
            return
        card.request_body, card.requested_arrival = decision.payload, decision.requested_arrival
        card.outcome_unknown = False
    card.idempotency_key = idempotency_key(order.shop_order_id, card.generation)
    # Set with the intent, cleared by a definite answer: while it is set a cancellation leaves the card to Cardly's
    # word (the call may be in flight, or its answer lost, or the worker may die during it).
    card.status, card.failure_kind, card.outcome_unknown = "pending", None, True
    card.calls += 1
    card.last_attempt_at = card.updated_at = now
    body, key = card.request_body, card.idempotency_key
    try:
        # call_provider commits first: the intent (generation, key, body) is on record before Cardly hears of it.
        placed = call_provider(session, client.place_order, body, key)
    except ProviderError as exc:
        _record_failure(ctx, order_id, exc)  # raises the job's outcome, unless it settled a cancelled order's card
        return
    card = locked_card(session, order_id)
    cancelled_meanwhile = session.get(Order, order_id, populate_existing=True).cancelled_at is not None
    card.status, card.failure_kind, card.last_error, card.skip_reason, card.skip_detail = "placed", None, None, None, None
    card.cardly_order_id, card.cardly_status = placed.order_id, placed.status
    card.cost_credits, card.balance_credits, card.test_mode = placed.cost_credits, placed.balance_credits, placed.test_mode
    card.dispatch_on = iso_date(placed.delivery.dispatch)
    card.estimated_min_arrival = iso_date(placed.delivery.estimated_min_arrival)
    card.estimated_max_arrival = iso_date(placed.delivery.estimated_max_arrival)
    card.cardly_request_id, card.outcome_unknown = placed.request_id, False
    card.warnings = "; ".join(placed.warnings) or None
    card.placed_at = card.updated_at = ctx.now()
    if cancelled_meanwhile:
        card.note = ("The order was cancelled while the card was being placed; Cardly cannot reliably cancel "
                     "lodged orders — contact Cardly support if it must be stopped.")
        order.add_attention(PLACED_FOR_CANCELLED_ORDER,
                            placed_for_cancelled_order(card, "the cancellation came while Cardly was placing it"))
    log.info("order %s: thank-you card placed as Cardly order %s (%s credits%s)", order.shop_order_id, placed.order_id,
             placed.cost_credits, ", test mode" if placed.test_mode else "")


def _settle_cancelled_uncertain(ctx: JobContext, order_id: int, po_number: str) -> None:
    """The order was cancelled after a placement whose answer was lost: Cardly's order list says what happened,
    so a card that was placed (and cost credits) is recorded as placed, not hidden as skipped."""
    session = ctx.session
    found = call_provider(session, ctx.providers.cardly.find_order_by_purchase_order, po_number) if po_number else None
    card = locked_card(session, order_id)
    if not card.outcome_unknown or card.status == "placed":
        return  # settled meanwhile (another run of this job, or the settling job a cancellation queued)
    card.updated_at = ctx.now()
    if found is None:
        skip_cancelled(card, "The order was cancelled before the card was placed; Cardly's order list shows no card "
                             "for it.")
        return
    card.status, card.skip_reason, card.skip_detail, card.failure_kind = "placed", None, None, None
    card.outcome_unknown, card.last_error = False, None
    card.cardly_order_id, card.cardly_status, card.cost_credits = found.order_id, found.status, found.cost_credits
    card.test_mode, card.placed_at = found.test_mode, ctx.now()
    card.note = (f"The order was cancelled after its card was placed (Cardly order {found.order_id}, found in "
                 "Cardly's order list after its answer was lost); Cardly cannot reliably cancel lodged orders — "
                 "contact Cardly support if it must be stopped.")
    session.get(Order, order_id).add_attention(PLACED_FOR_CANCELLED_ORDER, placed_for_cancelled_order(
        card, "the cancellation came while Cardly was placing it, and Cardly's order list shows the card"))


def _park_unless_credit_covers(client, cost: Decimal, settings: Settings) -> None:
    """While waiting for credit, ask for the balance first so that a still-empty account costs no new key."""
    try:
        balance = client.account_balance().credits
    except ProviderError:
        return  # let the placement itself give the definitive answer
    if balance < cost:
        raise Park(f"waiting for Cardly credit: a card costs {cost} credits, the balance is {balance}",
                   settings.thank_you.credit_recheck_seconds)


def _record_failure(ctx: JobContext, order_id: int, exc: ProviderError) -> None:
    """Keep what Cardly said on the row, then raise the job outcome it calls for."""
    session, settings = ctx.session, ctx.settings
    card = locked_card(session, order_id)
    cancelled = session.get(Order, order_id, populate_existing=True).cancelled_at is not None
    message = redact(str(exc))
    card.last_error, card.cardly_request_id, card.updated_at = message, exc.request_id, ctx.now()
    last_attempt = ctx.job.failures + 1 >= ctx.job.max_attempts
    not_placed = (isinstance(exc, ProviderAuthError | ProviderNotFound)
                  or (isinstance(exc, ProviderRejected) and exc.code != IDEMPOTENCY_CONFLICT_CODE))
    outcome: Exception
    if cancelled and not_placed:  # Cardly's definite answer for this key: no card, and none will be sent
        skip_cancelled(card, f"The order was cancelled while its card was being placed; Cardly did not place it "
                             f"({exc.reason or message}).")
        session.commit()
        return
    if cancelled:  # Cardly may have placed it: the retry reads Cardly's order list instead of placing again
        card.outcome_unknown = True
        if last_attempt:
            card.status, card.failure_kind = "failed", "provider_unavailable"
        outcome = RetryLater("the order was cancelled while its card was being placed and Cardly gave no definite "
                             f"answer ({message}); the retry reads Cardly's order list")
    elif isinstance(exc, ProviderPaymentRequired):
        cost, balance = payment_required_amounts(exc)
        card.status, card.failure_kind, card.outcome_unknown = "waiting_for_credit", "credit", False
        card.cost_credits, card.balance_credits = cost, balance
        outcome = Park(f"waiting for Cardly credit: {exc.reason or message}", settings.thank_you.credit_recheck_seconds)
    elif isinstance(exc, ProviderAuthError | ProviderNotFound):
        card.status, card.failure_kind, card.outcome_unknown = "failed", "configuration", False
        outcome = PermanentFailure(f"Cardly refused our configuration: {message}")
    elif isinstance(exc, ProviderRejected) and exc.code == IDEMPOTENCY_CONFLICT_CODE:
        card.status, card.failure_kind = "failed", "idempotency_conflict"
        outcome = PermanentFailure(f"Cardly saw this key with another request; check Cardly: {message}")
    elif isinstance(exc, ProviderRejected):
        card.status, card.failure_kind, card.outcome_unknown = "failed", "validation", False
        outcome = PermanentFailure(f"Cardly refused the card: {exc.reason or message}")
    elif isinstance(exc, ProviderResponseInvalid):
        card.status, card.failure_kind, card.outcome_unknown = "failed", "unreadable_response", True
        outcome = PermanentFailure(f"Cardly's answer could not be read; the card may be placed: {message}")
    elif exc.retryable:
        card.outcome_unknown = True
        if last_attempt:
            card.status, card.failure_kind = "failed", "provider_unavailable"
        outcome = exc  # the worker retries with backoff (honouring Retry-After) under the same key
    else:
        card.status, card.failure_kind = "failed", "provider"
        outcome = PermanentFailure(message)
    session.commit()
    raise outcome


@handler("check_cardly_credit", every_seconds=60)
def check_cardly_credit(ctx: JobContext) -> None:
    """While any card waits for credit, check Cardly's balance and wake those jobs once it covers a card."""
    session = ctx.session
    costs = session.scalars(sa.select(ThankYouCard.cost_credits).where(ThankYouCard.status == "waiting_for_credit")).all()
    if not costs:
        return
    known = [c for c in costs if c is not None]
    cheapest = min(known) if known else None
    try:
        balance = call_provider(session, ctx.providers.cardly.account_balance).credits
    except ProviderError as exc:
        log.warning("could not check the Cardly balance: %s", exc)
        return
    if cheapest is None or balance >= cheapest:
        woken = wake_parked(session, JOB_KIND, now=ctx.now())
        log.info("Cardly balance %s covers a card: woke %d waiting thank-you card job(s)", balance, woken)
