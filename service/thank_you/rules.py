"""Thank-you cards through Cardly: the rules, the per-order row, the card request, the views and the preview.

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

from service import money
from service.config import Settings
from service.db import insert_ignoring_conflict, lock_for_update, utcnow
from service.errors import (
    Conflict,
    ProviderAuthError,
    ProviderRejected,
    ValidationFailed,
)
from service.formats import iso
from service.jobs.queue import enqueue
from service.logs import redact
from service.orders.models import Order
from service.providers.cardly import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    CardRecipient,
    CardRequest,
    order_body,
    preview_body,
)
from service.thank_you.message import render_message
from service.thank_you.models import ThankYouCard

log = logging.getLogger("service.thank_you")

JOB_KIND = "send_thank_you_card"
# After these answers Cardly has definitely not placed the card under the current key: the next try
# needs a new generation (a 402 and a 422 are stored and would be replayed under the old key).
DEFINITIVE_NOT_PLACED = ("credit", "validation", "configuration")
# The kind of the order's attention item when Cardly placed (and charged for) the card of a cancelled order (notes
# written before attention items had kinds start with it in brackets; the migration recognises them by it).
PLACED_FOR_CANCELLED_ORDER = "thank_you_card_placed_for_cancelled_order"

# -- message values ------------------------------------------------------------------------------------
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
    cardly, rules = settings.cardly, settings.thank_you
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
    message = render_message(rules.message, message_values(order_data, settings))
    variables = None
    if cardly.template:
        variables = {"first_name": customer.get("first_name") or first or "", "message": message,
                     "order_number": purchase_order_number(order_data),
                     "shop_name": settings.shop_name}
    arrival = today + timedelta(days=rules.arrival_offset_days) if rules.arrival_offset_days else None
    return CardRequest(
        purchase_order_number=purchase_order_number(order_data), artwork=cardly.artwork,
        recipient=recipient, message=message, template=cardly.template or None, template_variables=variables,
        sender=rules.sender or None, shipping_method=rules.shipping_method or None, requested_arrival=arrival)


def skip_reason(order_data: Mapping[str, Any], settings: Settings, *, cancelled: bool = False) -> Skip | None:
    """The first rule that says no card for this order, or None when every rule allows one."""
    cardly, rules = settings.cardly, settings.thank_you
    if not cardly.enabled:
        return Skip("disabled", "Thank-you cards are turned off (CARDLY_ENABLED=false).")
    if cancelled:
        return Skip("order_cancelled", "The order was cancelled before the card was placed.")
    if not cardly.artwork:
        return Skip("not_configured", "No card artwork is configured (CARDLY_ARTWORK).")
    total = order_data.get("total_cents") or 0
    if total < rules.min_order_cents:
        return Skip("below_minimum", f"The order total {money.format_usd(total)} is below the minimum "
                    f"{money.format_usd(rules.min_order_cents)} (CARDLY_MIN_ORDER_CENTS).",
                    {"total_cents": total, "min_order_cents": rules.min_order_cents})
    address = order_data.get("shipping_address")
    if not address:
        return Skip("no_shipping_address", "The order has no shipping address to post a card to.")
    country = (address.get("country") or "").upper()
    if rules.countries and country not in rules.countries:
        return Skip("country_not_allowed", f"Cards are not sent to {country or 'an unknown country'} "
                    f"(CARDLY_COUNTRIES={','.join(rules.countries)}).")
    customer = order_data.get("customer") or {}
    if rules.skip_opted_out and customer.get("accepts_mail") is False:
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
                                  outcome_unknown=False)
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
    """A card not yet placed is not sent (recorded as skipped); a placed one is only noted (Cardly orders cannot be
    cancelled reliably once lodged); one whose placement may have reached Cardly is left for Cardly's word."""
    card = session.scalar(lock_for_update(session, sa.select(ThankYouCard).where(ThankYouCard.order_id == order.id)))
    if card is None:
        return  # not completed yet: planning will see cancelled_at and skip
    if card.status == "placed":
        card.note = (f"The order was cancelled after its card was placed (Cardly order {card.cardly_order_id}); "
                     "Cardly cannot reliably cancel lodged orders — contact Cardly support if it must be stopped.")
        order.add_attention(PLACED_FOR_CANCELLED_ORDER,
                            placed_for_cancelled_order(card, "it had been placed before the order was cancelled"))
    elif card.outcome_unknown and card.status != "skipped":
        # A placement is in flight or its answer was lost: Cardly may have placed the card and spent its credit.
        # The card's job reads Cardly's order list before anything else; a job that is already dead cannot, so
        # another one is queued to do it.
        if card.status == "failed":
            enqueue(session, JOB_KIND, {"order_id": order.id}, dedupe_key=f"thank_you-settle:{order.id}",
                    order_id=order.id, max_attempts=settings.job_max_attempts)
    elif card.status != "skipped":
        skip_cancelled(card)
    card.updated_at = utcnow()


def skip_cancelled(card: ThankYouCard, detail: str = "The order was cancelled before the card was placed.") -> None:
    """Record the card as skipped because its order was cancelled (Cardly has not placed it)."""
    card.status, card.skip_reason, card.skip_detail = "skipped", "order_cancelled", detail
    card.outcome_unknown, card.failure_kind = False, None


def placed_for_cancelled_order(card: ThankYouCard, when: str) -> str:
    """The attention item's message when Cardly placed (and charged for) the card of a cancelled order."""
    return (f"The thank-you card was placed with Cardly (order {card.cardly_order_id}, "
            f"{credits(card.cost_credits)} credits{', test mode' if card.test_mode else ''}) although the order was "
            f"cancelled ({when}). Cardly cannot reliably cancel lodged orders: contact Cardly support if it must be "
            "stopped.")


# -- shared with the job -------------------------------------------------------------------------------------
def locked_card(session: Session, order_id: int) -> ThankYouCard | None:
    """The order's card row, locked and read afresh; None when the order has none."""
    # populate_existing: the worker's session keeps attributes across commits, and a cancellation may have
    # changed the row while Cardly was being called.
    stmt = sa.select(ThankYouCard).where(ThankYouCard.order_id == order_id).execution_options(populate_existing=True)
    return session.scalar(lock_for_update(session, stmt))


def iso_date(value: Any) -> date | None:
    """A date from Cardly's `YYYY-MM-DD…` text; None when it is absent or unreadable."""
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


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
        "calls": card.calls, "outcome_unknown": card.outcome_unknown, "failure_kind": card.failure_kind,
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
