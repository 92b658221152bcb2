"""One order's timeline for the merchant: what the shop told us, what we held, redeemed, sent and printed, and
every job attempt made on the order's behalf, with its error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from service.checkout.models import Cart, GiftCardHold
from service.errors import NotFound
from service.formats import iso
from service.jobs.models import Job
from service.logs import masked_last4, redact
from service.membership import rules as membership
from service.membership.models import MembershipCard
from service.money import format_usd
from service.orders.attention import attention_item_view
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption
from service.reports.failures import job_dict
from service.reports.ledger import ledger_row
from service.thank_you import rules as thank_you
from service.thank_you.models import ThankYouCard


def order_timeline(session: Session, shop_order_id: str) -> dict[str, Any]:
    """The full timeline of the order the shop calls `shop_order_id`; 404 `order_not_found` when unknown.

    The sections (holds, redemptions, cards, jobs, attention items) as they stand, and `entries`: one chronological
    list of everything that happened to the order, each with a sentence for staff (money in dollars, codes masked)."""
    order = session.scalar(sa.select(Order).where(Order.shop_order_id == shop_order_id)
                           .options(selectinload(Order.events), selectinload(Order.attention_items)))
    if order is None:
        raise NotFound(f"There is no order {shop_order_id!r}.", code="order_not_found")
    jobs = session.scalars(sa.select(Job).where(Job.order_id == order.id).order_by(Job.id)
                           .options(selectinload(Job.attempt_log))).all()
    cart = session.scalar(sa.select(Cart).where(Cart.token_hash == order.cart_token_hash)
                          .options(selectinload(Cart.holds))) if order.cart_token_hash else None
    holds = list(cart.holds) if cart else []  # in position order (Cart.holds)
    redemptions = list(session.scalars(sa.select(GiftCardRedemption).where(GiftCardRedemption.order_id == order.id)
                                       .order_by(GiftCardRedemption.id)))
    card = session.scalar(sa.select(ThankYouCard).where(ThankYouCard.order_id == order.id))
    memberships = list(session.scalars(
        sa.select(MembershipCard).where(MembershipCard.order_id == order.id)
        .options(selectinload(MembershipCard.print_job)).order_by(MembershipCard.line_index,
                                                                  MembershipCard.unit_index)))

    body: dict[str, Any] = {"order": order_summary(order)}
    body["attention"] = [attention_item_view(item) for item in order.attention_items]
    body["events"] = [{"type": e.event_type, "webhook_id": e.webhook_id, "occurred_at": iso(e.occurred_at),
                       "received_at": iso(e.received_at)} for e in order.events]
    body["holds"] = [hold_dict(hold) for hold in holds]
    body["verifies"] = [] if cart is None or cart.last_verified_at is None else [{
        "last_verified_at": iso(cart.last_verified_at),
        "refused": [{"gift_card_id": h.id, "code": masked_last4(h.code_last4), "reason": h.status_reason}
                    for h in refused_by_verify(holds)],
    }]
    body["redemptions"] = [ledger_row(row, order.shop_order_id, order.number) for row in redemptions]
    body["thank_you_card"] = thank_you.card_view(card) if card else None
    body["membership_cards"] = [membership.card_view(row) for row in memberships]
    body["jobs"] = [job_dict(job, with_attempts=True) for job in jobs]
    for item in body["jobs"]:
        item.pop("order_id")
    body["entries"] = timeline_entries(order, cart, holds, redemptions, card, memberships, jobs)
    return body


# -- the chronological list ------------------------------------------------------------------------------------

TIMELINE_ENTRY_TYPES = ("event", "hold", "verify", "redemption", "thank_you_card", "membership_card", "job",
                        "job_attempt", "attention")


def usd(cents: int | None) -> str:
    """Dollars for a sentence ("$52.50"); an amount not known yet reads as $0.00."""
    return format_usd(cents or 0)


@dataclass(frozen=True)
class _Entry:
    at: datetime
    type: str
    summary: str
    ref: int | None = None


def timeline_entries(order: Order, cart: Cart | None, holds: list[GiftCardHold],
                     redemptions: list[GiftCardRedemption], card: ThankYouCard | None,
                     memberships: list[MembershipCard], jobs: list[Job]) -> list[dict[str, Any]]:
    """Everything that happened to the order, oldest first (ties keep the order written here): `at`, `type`,
    `summary` (a sentence for staff: money in dollars, codes masked, errors masked) and `ref` (the row's id)."""
    entries: list[_Entry] = []

    def add(at: datetime | None, type_: str, summary: str, ref: int | None = None) -> None:
        if at is not None:
            entries.append(_Entry(at, type_, summary, ref))

    for event in order.events:
        add(event.received_at, "event", f"The shop sent {event.event_type} (webhook {event.webhook_id}).", event.id)
    for hold in holds:
        code = masked_last4(hold.code_last4)
        add(hold.created_at, "hold", f"Gift card {code} applied: {usd(hold.applied_cents)} of its "
                                     f"{usd(hold.balance_cents)} balance held.", hold.id)
        if hold.status != "active" and hold.updated_at != hold.created_at:
            reason = f": {redact(hold.status_reason)}" if hold.status_reason else ""
            add(hold.updated_at, "hold", f"Gift card {code} hold {hold.status}{reason}.", hold.id)
    if cart is not None and cart.last_verified_at is not None:
        refused = [masked_last4(h.code_last4) for h in refused_by_verify(holds)]
        add(cart.last_verified_at, "verify", "The shop verified the gift cards before payment"
            + (f"; refused {', '.join(refused)}." if refused else "; all were still good."))
    for row in redemptions:
        _redemption_entries(add, row)
    if card is not None:
        _thank_you_entries(add, card)
    for member_card in memberships:
        _membership_entries(add, member_card)
    for job in jobs:
        _job_entries(add, job)
    for item in order.attention_items:
        add(item.created_at, "attention", f"Needs attention ({item.kind}): {item.message}", item.id)
        if item.resolved_at is not None:
            note = f": {item.resolution_note}" if item.resolution_note else "."
            add(item.resolved_at, "attention", f"Resolved by {item.resolved_by} ({item.kind}){note}", item.id)
    # Sorted on the instant alone: Python's sort is stable, so entries at the same instant keep the order above.
    entries.sort(key=lambda entry: entry.at)
    return [{"at": iso(e.at), "type": e.type, "summary": e.summary, "ref": e.ref} for e in entries]


def _redemption_entries(add, row: GiftCardRedemption) -> None:
    code = masked_last4(row.code_last4)
    add(row.created_at, "redemption", f"Redemption of {usd(row.intended_cents)} from gift card {code} planned.", row.id)
    if row.redeemed_at is not None:
        split = ""
        if row.child_certificate_id:
            balance = f" holding {usd(row.child_balance_cents)}" if row.child_balance_cents is not None else ""
            split = f"; the rest is on new certificate {row.child_certificate_id}{balance}"
        add(row.redeemed_at, "redemption", f"Redeemed {usd(row.redeemed_cents)} from gift card {code}{split}.",
            row.id)
    if row.state in ("failed", "shortfall", "cancelled", "uncertain"):
        error = f": {redact(row.error)}" if row.error else ""
        add(row.updated_at, "redemption", f"Redemption from gift card {code} is {row.state}"
            + (f" (shortfall {usd(row.shortfall_cents)})" if row.shortfall_cents else "") + f"{error}.", row.id)


def _thank_you_entries(add, card: ThankYouCard) -> None:
    add(card.created_at, "thank_you_card", "Thank-you card planned.", card.id)
    if card.placed_at is not None:
        add(card.placed_at, "thank_you_card", f"Thank-you card placed with Cardly (order {card.cardly_order_id}, "
            f"{thank_you.credits(card.cost_credits)} credits{', test mode' if card.test_mode else ''}).", card.id)
    elif card.status != "pending":
        detail = card.skip_reason or (redact(card.last_error) if card.last_error else None)
        add(card.updated_at, "thank_you_card", f"Thank-you card {card.status}"
            + (f": {detail}." if detail else "."), card.id)


def _membership_entries(add, card: MembershipCard) -> None:
    add(card.created_at, "membership_card", f"Membership card {card.member_number} ({card.sku}) planned.", card.id)
    if card.submitted_at is not None:
        job = card.print_job
        where = f" on InstantCard print job {job.instantcard_print_job_id}" if job and job.instantcard_print_job_id \
            else ""
        cost = f", its share of the cost {usd(card.job_cost_cents)}" if card.job_cost_cents is not None else ""
        add(card.submitted_at, "membership_card", f"Membership card {card.member_number} printed{where}{cost}.",
            card.id)
    elif card.status not in ("pending",):
        error = f": {redact(card.last_error)}" if card.last_error else ""
        add(card.updated_at, "membership_card", f"Membership card {card.member_number} is {card.status}{error}.",
            card.id)


def _job_entries(add, job: Job) -> None:
    add(job.created_at, "job", f"Job {job.id} ({job.kind}) queued.", job.id)
    for attempt in job.attempt_log:
        error = f": {redact(attempt.error)}" if attempt.error else ""
        ended = f" ended {attempt.outcome}{error}" if attempt.finished_at is not None else " is running"
        add(attempt.started_at, "job_attempt",
            f"Job {job.id} ({job.kind}) attempt {attempt.attempt} by {attempt.worker or 'a worker'}{ended}.", job.id)
    if job.retried_at is not None:
        add(job.retried_at, "job", f"Job {job.id} ({job.kind}) retried by {job.retried_by}.", job.id)


def refused_by_verify(holds: list[GiftCardHold]) -> list[GiftCardHold]:
    """The holds the cart's last verify refused: verify keeps only the last time it ran on the cart and marks the
    holds it refused (status_reason "verify: …")."""
    return [hold for hold in holds if (hold.status_reason or "").startswith("verify:")]


def order_summary(order: Order) -> dict[str, Any]:
    """The order as the shop reported it, without the customer's address."""
    return {
        "id": order.shop_order_id, "number": order.number, "currency": order.currency,
        "total_cents": order.total_cents, "gift_card_cents": order.gift_card_cents,
        "customer_email": order.customer_email, "placed_at": iso(order.placed_at),
        "completed_at": iso(order.completed_at), "cancelled_at": iso(order.cancelled_at),
        "needs_attention": any(item.resolved_at is None for item in order.attention_items),
        "has_cart": order.cart_token_hash is not None,
    }


def hold_dict(hold: GiftCardHold) -> dict[str, Any]:
    """A gift-card hold with its code masked."""
    return {
        "id": hold.id, "code": masked_last4(hold.code_last4), "certificate_id": hold.certificate_id,
        "position": hold.position, "status": hold.status, "status_reason": hold.status_reason,
        "splittable": hold.splittable, "balance_cents": hold.balance_cents, "applied_cents": hold.applied_cents,
        "covers_cents": hold.covers_cents, "redeem_cents": hold.redeem_cents, "forfeit_cents": hold.forfeit_cents,
        "accept_forfeit": hold.accept_forfeit, "created_at": iso(hold.created_at), "expires_at": iso(hold.expires_at),
    }


