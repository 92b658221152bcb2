"""One order's timeline for the merchant: what the shop told us, what we held, redeemed, sent and printed, and
every job attempt made on the order's behalf, with its error."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from service.checkout.models import Cart, GiftCardHold
from service.errors import NotFound
from service.formats import iso
from service.jobs.models import Job
from service.logs import masked_last4
from service.membership import rules as membership
from service.membership.models import MembershipCard
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption
from service.reports.failures import job_dict
from service.reports.ledger import ledger_row
from service.thank_you import rules as thank_you
from service.thank_you.models import ThankYouCard


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
    cart = session.scalar(sa.select(Cart).where(Cart.token_hash == order.cart_token_hash)
                          .options(selectinload(Cart.holds))) if order.cart_token_hash else None
    body["holds"] = [hold_dict(hold) for hold in (cart.holds if cart else [])]
    # verify keeps the last time it ran on the cart and marks the holds it refused (status_reason "verify: …").
    body["verifies"] = [] if cart is None or cart.last_verified_at is None else [{
        "last_verified_at": iso(cart.last_verified_at),
        "refused": [{"gift_card_id": h.id, "code": masked_last4(h.code_last4), "reason": h.status_reason}
                    for h in cart.holds if (h.status_reason or "").startswith("verify:")],
    }]
    body["redemptions"] = [
        ledger_row(row, order.shop_order_id, order.number)
        for row in session.scalars(sa.select(GiftCardRedemption)
                                   .where(GiftCardRedemption.order_id == order.id)
                                   .order_by(GiftCardRedemption.id))]
    card = session.scalar(sa.select(ThankYouCard).where(ThankYouCard.order_id == order.id))
    body["thank_you_card"] = thank_you.card_view(card) if card else None
    body["membership_cards"] = [
        membership.card_view(row) for row in session.scalars(
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
        "attention": order.attention, "has_cart": order.cart_token_hash is not None,
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


