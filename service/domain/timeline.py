"""One order's timeline for the merchant: what the shop told us, what we held, redeemed, sent and printed, and
every job attempt made on the order's behalf, with its error."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from service.domain.checkout import hash_token
from service.domain.reconciliation import credits, iso, job_dict, ledger_row
from service.errors import NotFound
from service.logs import masked_last4, redact
from service.persistence import Job, Order
from service.persistence.checkout import Cart, GiftCardHold, Redemption
from service.persistence.membership import MembershipCard
from service.persistence.thank_you import ThankYouCard


def order_timeline(session: Session, shop_order_id: str) -> dict[str, Any]:
    """The full timeline of the order the shop calls `shop_order_id`; 404 `order_not_found` when unknown."""
    order = session.scalar(sa.select(Order).where(Order.shop_order_id == shop_order_id)
                           .options(selectinload(Order.events)))
    if order is None:
        raise NotFound(f"There is no order {shop_order_id!r}.", code="order_not_found")
    jobs = session.scalars(sa.select(Job).where(Job.order_id == order.id).order_by(Job.id)
                           .options(selectinload(Job.attempt_log))).all()
    body: dict[str, Any] = {"order": order_summary(order)}
    body["events"] = [{"type": e.event_type, "webhook_id": e.webhook_id, "occurred_at": iso(e.occurred_at),
                       "received_at": iso(e.received_at)} for e in order.events]
    cart = session.scalar(sa.select(Cart).where(Cart.token_hash == hash_token(order.cart_token))
                          .options(selectinload(Cart.holds))) if order.cart_token else None
    body["holds"] = [hold_dict(hold) for hold in (cart.holds if cart else [])]
    # verify keeps the last time it ran on the cart and marks the holds it refused (status_reason "verify: …").
    body["verifies"] = [] if cart is None or cart.last_verified_at is None else [{
        "last_verified_at": iso(cart.last_verified_at),
        "refused": [{"gift_card_id": h.id, "code": masked_last4(h.code_last4), "reason": h.status_reason}
                    for h in cart.holds if (h.status_reason or "").startswith("verify:")],
    }]
    body["redemptions"] = [
        ledger_row(row, order.shop_order_id, order.number)
        for row in session.scalars(sa.select(Redemption).where(Redemption.order_id == order.id)
                                   .order_by(Redemption.id))]
    card = session.scalar(sa.select(ThankYouCard).where(ThankYouCard.order_id == order.id))
    body["thank_you_card"] = thank_you_dict(card) if card else None
    body["membership_cards"] = [
        membership_dict(row) for row in session.scalars(
            sa.select(MembershipCard).where(MembershipCard.order_id == order.id)
            .options(selectinload(MembershipCard.print_job)).order_by(MembershipCard.line_index,
                                                                      MembershipCard.unit_index))]
    body["jobs"] = [job_dict(job, with_attempts=True) for job in jobs]
    for item in body["jobs"]:
        item.pop("order_id")
    return body


def order_summary(order: Order) -> dict[str, Any]:
    """The order as the shop reported it, without the customer's address."""
    return {
        "id": order.shop_order_id, "number": order.number, "currency": order.currency,
        "total_cents": order.total_cents, "gift_card_cents": order.gift_card_cents,
        "customer_email": order.customer_email, "placed_at": iso(order.placed_at),
        "completed_at": iso(order.completed_at), "cancelled_at": iso(order.cancelled_at),
        "attention": order.attention, "has_cart": order.cart_token is not None,
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


def thank_you_dict(card: ThankYouCard) -> dict[str, Any]:
    """The order's Cardly thank-you card: status, Cardly's order id, what it cost and whether it was test mode."""
    return {
        "status": card.status, "skip_reason": card.skip_reason, "skip_detail": card.skip_detail,
        "cardly_order_id": card.cardly_order_id, "cardly_status": card.cardly_status,
        "cost_credits": credits(card.cost_credits) if card.cost_credits is not None else None,
        "test_mode": card.test_mode, "generation": card.generation, "calls": card.calls,
        "failure_kind": card.failure_kind, "last_error": redact(card.last_error) if card.last_error else None,
        "note": card.note, "estimated_min_arrival": card.estimated_min_arrival.isoformat()
        if card.estimated_min_arrival else None,
        "estimated_max_arrival": card.estimated_max_arrival.isoformat() if card.estimated_max_arrival else None,
        "created_at": iso(card.created_at), "placed_at": iso(card.placed_at),
    }


def membership_dict(card: MembershipCard) -> dict[str, Any]:
    """One membership card: InstantCard's card id, its print job and what the job cost."""
    job = card.print_job
    return {
        "id": card.id, "line_index": card.line_index, "unit_index": card.unit_index, "sku": card.sku,
        "member_number": card.member_number, "status": card.status, "instantcard_card_id": card.instantcard_card_id,
        "print_job": None if job is None else {
            "id": job.id, "instantcard_print_job_id": job.instantcard_print_job_id, "status": job.status,
            "mode": job.mode, "cost_cents": job.cost_cents, "shipping_cost_cents": job.shipping_cost_cents,
            "submitted_at": iso(job.submitted_at)},
        "job_cost_cents": card.job_cost_cents, "last_error": redact(card.last_error) if card.last_error else None,
        "created_at": iso(card.created_at), "submitted_at": iso(card.submitted_at),
    }
