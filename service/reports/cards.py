"""The cards of every order, newest order first: the thank-you card's and each membership card's state."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.membership.models import MembershipCard
from service.orders.models import Order
from service.reports.listing import DEFAULT_PER_PAGE, Page
from service.thank_you.models import ThankYouCard


def cards_page(session: Session, *, page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> Page:
    """One page of the orders that have a thank-you card or a membership card, newest first, with their states."""
    has_card = sa.or_(sa.exists().where(ThankYouCard.order_id == Order.id),
                      sa.exists().where(MembershipCard.order_id == Order.id))
    total = session.scalar(sa.select(sa.func.count()).select_from(Order).where(has_card)) or 0
    orders = session.execute(sa.select(Order.id, Order.shop_order_id, Order.number, Order.completed_at)
                             .where(has_card).order_by(Order.id.desc())
                             .offset((page - 1) * per_page).limit(per_page)).all()
    ids = [row.id for row in orders]
    thank_you = dict(session.execute(sa.select(ThankYouCard.order_id, ThankYouCard.status)
                                     .where(ThankYouCard.order_id.in_(ids))).all()) if ids else {}
    membership: dict[int, list[dict[str, Any]]] = {}
    for card in session.scalars(sa.select(MembershipCard).where(MembershipCard.order_id.in_(ids))
                                .order_by(MembershipCard.id)) if ids else ():
        membership.setdefault(card.order_id, []).append(
            {"id": card.id, "member_number": card.member_number, "status": card.status,
             "at_instantcard": card.instantcard_card_id is not None})
    items = [{"order_id": row.shop_order_id, "number": row.number, "completed_at": row.completed_at,
              "thank_you_card": thank_you.get(row.id), "membership_cards": membership.get(row.id, [])}
             for row in orders]
    return Page(items=items, page=page, per_page=per_page, total=total)
