"""Thank-you cards through Cardly: the rules, the per-order row, the sending job and the credit check.

Exactly one card per order rests on Cardly's idempotency: the `Idempotency-Key` is
`order-{shop_order_id}-g{generation}` and the exact body sent under it is stored with the row. Cardly stores
and replays the answer of every request it started processing (a 402 too), so after an uncertain outcome
(timeout, connection error, 5xx, 429) the job resends the same body under the same key, and only after a
definitive "not placed" (402, 400/422, 401/403) does the next attempt move to the next generation — the
generation is incremented and committed before that next call.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import insert_ignoring_conflict, lock_for_update, utcnow
from service.domain import money
from service.domain.formats import iso
from service.errors import (
    Conflict,
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderPaymentRequired,
    ProviderRejected,
    ProviderResponseInvalid,
    ValidationFailed,
)
from service.jobs.queue import enqueue, wake_parked
from service.jobs.registry import JobContext, Park, PermanentFailure, handler
from service.logs import redact
from service.orders.models import Order
from service.providers.cardly import (
    IDEMPOTENCY_CONFLICT_CODE,
    MAX_IDEMPOTENCY_KEY_LENGTH,
    CardRecipient,
    CardRequest,
    order_body,
    payment_required_amounts,
    preview_body,
)
from service.thank_you.models import ThankYouCard

log = logging.getLogger("service.thank_you")

JOB_KIND = "send_thank_you_card"
# After these answers Cardly has definitely not placed the card under the current key: the next try
# needs a new generation (a 402 and a 422 are stored and would be replayed under the old key).
DEFINITIVE_NOT_PLACED = ("credit", "validation", "configuration")

# -- message templating ------------------------------------------------------------------------------------
MESSAGE_VARIABLES = ("customer.first_name", "customer.last_name", "order.number", "order.id", "shop.name")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}|]*)(?:\|([^{}]*))?\}")


def unknown_message_variables(template: str) -> list[str]:
    """The `{…}` variables in `template` that the service does not know (CARDLY_MESSAGE is checked at start)."""
    found = [m.group(1).strip() for m in _PLACEHOLDER.finditer(template) if m.group(1) is not None]
    return sorted({name for name in found if name not in MESSAGE_VARIABLES})


def render_message(template: str, values: Mapping[str, str | None]) -> str:
    """Fill `{name}` / `{name|fallback}` placeholders; `{{`/`}}` are literal braces; never raises.

    A known variable without a value renders its fallback (or nothing); an unknown variable renders as
    nothing, so a typo never prints braces on a customer's card (start-up refuses such a template anyway).
    """

    def fill(match: re.Match) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = (match.group(1) or "").strip()
        value = values.get(name) if name in MESSAGE_VARIABLES else None
        if value is None or str(value).strip() == "":
            return match.group(2) or ""
        return str(value)

    return _PLACEHOLDER.sub(fill, template)


def message_values(order_data: Mapping[str, Any], settings: Settings) -> dict[str, str | None]:
    """The values a thank-you message may use, from the order as the shop sent it."""
    customer = order_data.get("customer") or {}
    return {"customer.first_name": customer.get("first_name"), "customer.last_name": customer.get("last_name"),
            "order.number": order_data.get("number") or order_data.get("id"), "order.id": order_data.get("id"),
            "shop.name": settings.shop_name}


# -- the rules --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Send:
    """Place this card: `payload` is the orders/place body."""

    payload: dict[str, Any]
    requested_arrival: date | None = None


@dataclass(frozen=True)
class Skip:
    """No card for this order: `reason` is a stable code, `detail` says it for a person."""

    reason: str
    detail: str
    extra: dict[str, Any] = field(default_factory=dict)


def _split_name(name: str | None) -> tuple[str | None, str | None]:
    parts = (name or "").strip().rsplit(" ", 1)
    if not parts or not parts[0]:
        return None, None
    return (parts[0], parts[1]) if len(parts) == 2 else (parts[0], None)


def purchase_order_number(order_data: Mapping[str, Any]) -> str:
    """What a card carries as its purchase order number: the shop's order number, else its order id."""
    return str(order_data.get("number") or order_data.get("id") or "")


def build_card_request(order_data: Mapping[str, Any], settings: Settings, today: date) -> CardRequest:
    """The card for the order's shipping address, ignoring the rules (the Cardly client words it for Cardly)."""
    cardly = settings.cardly
    customer = order_data.get("customer") or {}
    address = order_data.get("shipping_address") or {}
    first, last = _split_name(address.get("name"))
    if not first:
        first, last = customer.get("first_name"), customer.get("last_name")
    recipient = CardRecipient(
        first_name=first or "", last_name=last or "", address1=address.get("address1") or "",
        address2=address.get("address2") or "", city=address.get("city") or "", region=address.get("region") or "",
        postcode=address.get("postcode") or "", country=(address.get("country") or "").upper(),
        company=address.get("company") or None)
    message = render_message(cardly.message, message_values(order_data, settings))
    variables = None
    if cardly.template:
        variables = {"first_name": customer.get("first_name") or first or "", "message": message,
                     "order_number": purchase_order_number(order_data),
                     "shop_name": settings.shop_name}
    arrival = today + timedelta(days=cardly.arrival_offset_days) if cardly.arrival_offset_days else None
    return CardRequest(
        purchase_order_number=purchase_order_number(order_data), artwork=cardly.artwork,
        recipient=recipient, message=message, template=cardly.template or None, template_variables=variables,
        sender=cardly.sender or None, shipping_method=cardly.shipping_method or None, requested_arrival=arrival)


def skip_reason(order_data: Mapping[str, Any], settings: Settings, *, cancelled: bool = False) -> Skip | None:
    """The first rule that says no card for this order, or None when every rule allows one."""
    cardly = settings.cardly
    if not cardly.enabled:
        return Skip("disabled", "Thank-you cards are turned off (CARDLY_ENABLED=false).")
    if cancelled:
        return Skip("order_cancelled", "The order was cancelled before the card was placed.")
    if not cardly.artwork:
        return Skip("not_configured", "No card artwork is configured (CARDLY_ARTWORK).")
    total = order_data.get("total_cents") or 0
    if total < cardly.min_order_cents:
        return Skip("below_minimum", f"The order total {money.format_usd(total)} is below the minimum "
                    f"{money.format_usd(cardly.min_order_cents)} (CARDLY_MIN_ORDER_CENTS).",
                    {"total_cents": total, "min_order_cents": cardly.min_order_cents})
    address = order_data.get("shipping_address")
    if not address:
        return Skip("no_shipping_address", "The order has no shipping address to post a card to.")
    country = (address.get("country") or "").upper()
    if cardly.countries and country not in cardly.countries:
        return Skip("country_not_allowed", f"Cards are not sent to {country or 'an unknown country'} "
                    f"(CARDLY_COUNTRIES={','.join(cardly.countries)}).")
    customer = order_data.get("customer") or {}
    if cardly.skip_opted_out and customer.get("accepts_mail") is False:
        return Skip("opted_out", "The customer opted out of mail (accepts_mail: false).")
    return None


def thank_you_decision(order_data: Mapping[str, Any], settings: Settings, *, today: date | None = None,
                       cancelled: bool = False) -> Send | Skip:
    """Apply the configured rules to an order: Send(the orders/place body) or Skip(reason)."""
    skip = skip_reason(order_data, settings, cancelled=cancelled)
    if skip is not None:
        return skip
    today = today or utcnow().date()
    request = build_card_request(order_data, settings, today)
    return Send(payload=order_body(request), requested_arrival=request.requested_arrival)


def idempotency_key(shop_order_id: str, generation: int) -> str:
    """`order-{shop_order_id}-g{generation}`, or a hash of the id when that would not fit Cardly's 64 chars."""
    key = f"order-{shop_order_id}-g{generation}"
    if len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and re.fullmatch(r"[A-Za-z0-9._#:-]+", key):
        return key
    digest = hashlib.sha256(shop_order_id.encode()).hexdigest()[:40]
    return f"order-h{digest}-g{generation}"


# -- intake -------------------------------------------------------------------------------------------------
def plan_for_completed_order(session: Session, order: Order, settings: Settings) -> None:
    """Decide the order's card (in the order's planning job): a skipped row, or a pending row plus its job."""
    now = utcnow()
    decision = thank_you_decision(order.payload or {}, settings, today=now.date(),
                                  cancelled=order.cancelled_at is not None)
    values: dict[str, Any] = dict(order_id=order.id, generation=1, created_at=now, updated_at=now, calls=0,
                                  outcome_uncertain=False)
    if isinstance(decision, Skip):
        values.update(status="skipped", skip_reason=decision.reason, skip_detail=decision.detail)
        insert_ignoring_conflict(session, ThankYouCard, values, ["order_id"])
        log.info("order %s: thank-you card skipped (%s)", order.shop_order_id, decision.reason)
        return
    values.update(status="pending", request_body=decision.payload, requested_arrival=decision.requested_arrival,
                  idempotency_key=idempotency_key(order.shop_order_id, 1))
    if insert_ignoring_conflict(session, ThankYouCard, values, ["order_id"]):
        enqueue(session, JOB_KIND, {"order_id": order.id}, dedupe_key=f"thank_you:{order.id}", order_id=order.id,
                max_attempts=settings.job_max_attempts)


def on_order_cancelled(session: Session, order: Order, settings: Settings) -> None:
    """A card not yet placed is not sent (recorded as skipped); a placed one is only noted: Cardly orders
    cannot be cancelled reliably once lodged."""
    card = session.scalar(lock_for_update(session, sa.select(ThankYouCard).where(ThankYouCard.order_id == order.id)))
    if card is None:
        return  # not completed yet: planning will see cancelled_at and skip
    if card.status == "placed":
        card.note = (f"The order was cancelled after its card was placed (Cardly order {card.cardly_order_id}); "
                     "Cardly cannot reliably cancel lodged orders — contact Cardly support if it must be stopped.")
    elif card.status != "skipped":
        _skip_cancelled(card)
    card.updated_at = utcnow()


def _skip_cancelled(card: ThankYouCard) -> None:
    detail = "The order was cancelled before the card was placed."
    if card.outcome_uncertain:
        detail += (f" An earlier attempt (Idempotency-Key {card.idempotency_key}) had no definite answer; the job "
                   "looks for it in Cardly's order list.")
    card.status, card.skip_reason, card.skip_detail = "skipped", "order_cancelled", detail


# -- the job -----------------------------------------------------------------------------------------------
def _locked_card(session: Session, order_id: int) -> ThankYouCard | None:
    # populate_existing: the worker's session keeps attributes across commits, and a cancellation may have
    # changed the row while Cardly was being called.
    stmt = sa.select(ThankYouCard).where(ThankYouCard.order_id == order_id).execution_options(populate_existing=True)
    return session.scalar(lock_for_update(session, stmt))


def _iso_date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


@handler(JOB_KIND)
def send_thank_you_card(ctx: JobContext) -> None:
    """Place the order's thank-you card once; see the module docstring for the key discipline."""
    order_id = int(ctx.payload["order_id"])
    session, settings, client = ctx.session, ctx.settings, ctx.providers.cardly
    card = session.scalar(sa.select(ThankYouCard).where(ThankYouCard.order_id == order_id))
    if card is None:
        raise PermanentFailure(f"order {order_id} has no thank-you card row")
    if card.status == "waiting_for_credit" and card.cost_credits is not None:
        cost = card.cost_credits
        session.commit()  # no transaction (nor SQLite write lock) held across the HTTP call
        _park_unless_credit_covers(client, cost, settings)

    card = _locked_card(session, order_id)
    order = session.get(Order, order_id, populate_existing=True)
    if card.status == "skipped" and card.outcome_uncertain:
        _settle_cancelled_uncertain(ctx, order_id, purchase_order_number(order.payload or {}))
        return
    if card.status in ("placed", "skipped"):
        return
    now = ctx.now()
    if order.cancelled_at is not None:
        _skip_cancelled(card)
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
        card.outcome_uncertain = False
    card.idempotency_key = idempotency_key(order.shop_order_id, card.generation)
    card.status, card.failure_kind = "pending", None
    card.calls += 1
    card.last_attempt_at = card.updated_at = now
    body, key = card.request_body, card.idempotency_key
    session.commit()  # record the intent (generation, key, body) before calling Cardly

    try:
        placed = client.place_order(body, key)
    except ProviderError as exc:
        _record_failure(ctx, order_id, exc)  # raises the job's outcome unless the order was cancelled meanwhile
        return
    card = _locked_card(session, order_id)
    cancelled_meanwhile = card.status == "skipped"
    card.status, card.failure_kind, card.last_error, card.skip_reason, card.skip_detail = "placed", None, None, None, None
    card.cardly_order_id, card.cardly_status = placed.order_id, placed.status
    card.cost_credits, card.balance_credits, card.test_mode = placed.cost_credits, placed.balance_credits, placed.test_mode
    card.dispatch_on = _iso_date(placed.delivery.dispatch)
    card.estimated_min_arrival = _iso_date(placed.delivery.estimated_min_arrival)
    card.estimated_max_arrival = _iso_date(placed.delivery.estimated_max_arrival)
    card.cardly_request_id, card.outcome_uncertain = placed.request_id, False
    card.warnings = "; ".join(placed.warnings) or None
    card.placed_at = card.updated_at = ctx.now()
    if cancelled_meanwhile:
        card.note = ("The order was cancelled while the card was being placed; Cardly cannot reliably cancel "
                     "lodged orders — contact Cardly support if it must be stopped.")
    log.info("order %s: thank-you card placed as Cardly order %s (%s credits%s)", order.shop_order_id, placed.order_id,
             placed.cost_credits, ", test mode" if placed.test_mode else "")


def _settle_cancelled_uncertain(ctx: JobContext, order_id: int, po_number: str) -> None:
    """The order was cancelled after a placement whose answer was lost: Cardly's order list says what happened,
    so a card that was placed (and cost credits) is recorded as placed, not hidden as skipped."""
    session = ctx.session
    session.commit()  # no transaction held across the HTTP call
    found = ctx.providers.cardly.find_order_by_purchase_order(po_number) if po_number else None
    card = _locked_card(session, order_id)
    if not (card.status == "skipped" and card.outcome_uncertain):
        return
    card.outcome_uncertain, card.updated_at = False, ctx.now()
    if found is None:
        card.skip_detail = ("The order was cancelled before the card was placed; Cardly's order list shows no card "
                            "for it.")
        return
    card.status, card.skip_reason, card.skip_detail = "placed", None, None
    card.cardly_order_id, card.cardly_status, card.cost_credits = found.order_id, found.status, found.cost_credits
    card.test_mode, card.placed_at = found.test_mode, ctx.now()
    card.note = (f"The order was cancelled after its card was placed (Cardly order {found.order_id}, found in "
                 "Cardly's order list after its answer was lost); Cardly cannot reliably cancel lodged orders — "
                 "contact Cardly support if it must be stopped.")


def _park_unless_credit_covers(client, cost: Decimal, settings: Settings) -> None:
    """While waiting for credit, ask for the balance first so that a still-empty account costs no new key."""
    try:
        balance = client.account_balance().credits
    except ProviderError:
        return  # let the placement itself give the definitive answer
    if balance < cost:
        raise Park(f"waiting for Cardly credit: a card costs {cost} credits, the balance is {balance}",
                   settings.cardly.credit_recheck_seconds)


def _record_failure(ctx: JobContext, order_id: int, exc: ProviderError) -> None:
    """Keep what Cardly said on the row, then raise the job outcome it calls for."""
    session, settings = ctx.session, ctx.settings
    card = _locked_card(session, order_id)
    message = redact(str(exc))
    card.last_error, card.cardly_request_id, card.updated_at = message, exc.request_id, ctx.now()
    if card.status == "skipped":  # the order was cancelled meanwhile: this card is done
        card.outcome_uncertain = card.outcome_uncertain or exc.uncertain
        session.commit()
        return
    outcome: Exception
    if isinstance(exc, ProviderPaymentRequired):
        cost, balance = payment_required_amounts(exc)
        card.status, card.failure_kind, card.outcome_uncertain = "waiting_for_credit", "credit", False
        card.cost_credits, card.balance_credits = cost, balance
        outcome = Park(f"waiting for Cardly credit: {exc.reason or message}", settings.cardly.credit_recheck_seconds)
    elif isinstance(exc, ProviderAuthError | ProviderNotFound):
        card.status, card.failure_kind, card.outcome_uncertain = "failed", "configuration", False
        outcome = PermanentFailure(f"Cardly refused our configuration: {message}")
    elif isinstance(exc, ProviderRejected) and exc.code == IDEMPOTENCY_CONFLICT_CODE:
        card.status, card.failure_kind = "failed", "idempotency_conflict"
        outcome = PermanentFailure(f"Cardly saw this key with another request; check Cardly: {message}")
    elif isinstance(exc, ProviderRejected):
        card.status, card.failure_kind, card.outcome_uncertain = "failed", "validation", False
        outcome = PermanentFailure(f"Cardly refused the card: {exc.reason or message}")
    elif isinstance(exc, ProviderResponseInvalid):
        card.status, card.failure_kind, card.outcome_uncertain = "failed", "unreadable_response", True
        outcome = PermanentFailure(f"Cardly's answer could not be read; the card may be placed: {message}")
    elif exc.retryable:
        card.outcome_uncertain = True
        if ctx.job.failures + 1 >= ctx.job.max_attempts:
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
    session.commit()  # no transaction held across the HTTP call
    try:
        balance = ctx.providers.cardly.account_balance().credits
    except ProviderError as exc:
        log.warning("could not check the Cardly balance: %s", exc)
        return
    if cheapest is None or balance >= cheapest:
        woken = wake_parked(session, JOB_KIND, now=ctx.now())
        log.info("Cardly balance %s covers a card: woke %d waiting thank-you card job(s)", balance, woken)


# -- views and the merchant preview ------------------------------------------------------------------------
def credits(value: Decimal | int | None) -> str:
    """Cardly credits as a decimal string: two places unless the amount needs more ("2.00", "1.2345")."""
    value = Decimal(value or 0)
    cents = value.quantize(Decimal("0.01"))
    return str(cents if cents == value else value.quantize(Decimal("0.0001")))


def card_view(card: ThankYouCard) -> dict[str, Any]:
    """The order's thank-you card as the merchant sees it (no address: the order holds that)."""
    return {
        "status": card.status, "skip_reason": card.skip_reason, "skip_detail": card.skip_detail,
        "cardly_order_id": card.cardly_order_id, "cardly_status": card.cardly_status,
        "cost_credits": credits(card.cost_credits) if card.cost_credits is not None else None,
        "test_mode": card.test_mode, "generation": card.generation, "idempotency_key": card.idempotency_key,
        "calls": card.calls, "outcome_uncertain": card.outcome_uncertain, "failure_kind": card.failure_kind,
        "last_error": redact(card.last_error) if card.last_error else None,
        "cardly_request_id": card.cardly_request_id, "warnings": card.warnings, "note": card.note,
        "requested_arrival": iso(card.requested_arrival), "dispatch_on": iso(card.dispatch_on),
        "estimated_min_arrival": iso(card.estimated_min_arrival),
        "estimated_max_arrival": iso(card.estimated_max_arrival),
        "created_at": iso(card.created_at), "placed_at": iso(card.placed_at),
    }


def preview_card(order_data: Mapping[str, Any], settings: Settings, client, today: date) -> dict[str, Any]:
    """Cardly's preview of the card a sample order would get, plus what the rules would decide for it."""
    if not settings.cardly.artwork:
        raise Conflict("No card artwork is configured; set CARDLY_ARTWORK first.", code="cardly_not_configured")
    if not order_data.get("shipping_address"):
        raise ValidationFailed({"shipping_address": ["A shipping address is required for a preview."]})
    request = build_card_request(order_data, settings, today)
    try:
        preview = client.preview_order(preview_body(request))
    except ProviderAuthError:
        raise
    except ProviderRejected as exc:
        if exc.http_status in (400, 422):
            raise ValidationFailed({"cardly": [exc.reason or exc.message]},
                                   detail=f"Cardly refused the sample: {exc.reason or exc.message}",
                                   code="cardly_rejected_sample") from None
        raise
    skip = skip_reason(order_data, settings)
    return {
        "card_url": preview.card_url, "envelope_url": preview.envelope_url, "format": preview.format,
        "expires": preview.expires,
        "cost_credits": str(preview.cost_credits) if preview.cost_credits is not None else None,
        "balance_credits": str(preview.balance_credits) if preview.balance_credits is not None else None,
        "delivery": {"requested": preview.delivery.requested, "dispatch": preview.delivery.dispatch,
                     "estimated_min_arrival": preview.delivery.estimated_min_arrival,
                     "estimated_max_arrival": preview.delivery.estimated_max_arrival},
        "test_mode": preview.test_mode, "warnings": list(preview.warnings),
        "message": request.message, "artwork": request.artwork, "template": request.template,
        "would_send": skip is None, "skip_reason": skip.reason if skip else None,
        "skip_detail": skip.detail if skip else None,
    }
