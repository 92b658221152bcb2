"""The orders list for the merchant's staff: newest first, searched by the shop's order id or the last four
characters of a gift card used on the order, filtered by state and by attention items (docs/reconciliation.md)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.formats import iso
from service.logs import masked_last4
from service.orders.models import Order, OrderAttentionItem
from service.redemption.models import GiftCardRedemption
from service.reports.listing import DEFAULT_PER_PAGE, Page

# An order has no state column: cancelled once a cancellation arrived (whether or not it completed), else completed.
ORDER_STATES = ("completed", "cancelled")
ATTENTION_FILTERS = ("open", "resolved")
# What a search for the last four of a claim code looks like once separators and the mask are taken off.
_LAST4 = re.compile(r"[A-Z0-9]{4}")
_NOT_CODE = re.compile(r"[\s\-•*]")


def code_last4_query(q: str) -> str | None:
    """The last four of a claim code that `q` may be ("r2nt", "••••R2NT", "R2-NT" → "R2NT"); None otherwise."""
    candidate = _NOT_CODE.sub("", q).upper()
    return candidate if _LAST4.fullmatch(candidate) else None


def _open_items(order_id) -> sa.Exists:
    return sa.exists().where(OrderAttentionItem.order_id == order_id, OrderAttentionItem.resolved_at.is_(None))


def orders_select(*, q: str | None = None, state: str | None = None, attention: str | None = None) -> sa.Select:
    """The orders matching the filters, newest first (by row id: the order heard of last comes first).

    `q` matches the shop's order id exactly or as a prefix, or (when it can be one) the last four characters of a
    claim code redeemed for the order. `attention`: `open` = at least one open item; `resolved` = items, none open.
    """
    stmt = sa.select(Order).order_by(Order.id.desc())
    if q:
        # The ids each way finds, united: each side uses its own index (an OR would read every order).
        matching: sa.Select | sa.CompoundSelect = sa.select(Order.id).where(
            Order.shop_order_id.startswith(q, autoescape=True))
        last4 = code_last4_query(q)
        if last4 is not None:
            matching = sa.union(matching, sa.select(GiftCardRedemption.order_id)
                                .where(GiftCardRedemption.code_last4 == last4))
        stmt = stmt.where(Order.id.in_(matching))
    if state == "cancelled":
        stmt = stmt.where(Order.cancelled_at.is_not(None))
    elif state == "completed":
        stmt = stmt.where(Order.completed_at.is_not(None), Order.cancelled_at.is_(None))
    if attention == "open":
        stmt = stmt.where(_open_items(Order.id))
    elif attention == "resolved":
        stmt = stmt.where(sa.exists().where(OrderAttentionItem.order_id == Order.id), ~_open_items(Order.id))
    return stmt


def list_orders(session: Session, *, q: str | None = None, state: str | None = None, attention: str | None = None,
                page: int = 1, per_page: int = DEFAULT_PER_PAGE) -> Page:
    """One page of the orders list (rows as `order_row` makes them), newest first, with the total that match."""
    stmt = orders_select(q=q, state=state, attention=attention)
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    orders = list(session.scalars(stmt.offset((page - 1) * per_page).limit(per_page)))
    ids = [order.id for order in orders]
    open_counts: dict[int, int] = {}
    resolved_counts: dict[int, int] = {}
    codes: dict[int, list[str]] = {}
    if ids:
        for order_id, is_open, count in session.execute(
                sa.select(OrderAttentionItem.order_id, OrderAttentionItem.resolved_at.is_(None), sa.func.count())
                .where(OrderAttentionItem.order_id.in_(ids))
                .group_by(OrderAttentionItem.order_id, OrderAttentionItem.resolved_at.is_(None))):
            (open_counts if is_open else resolved_counts)[order_id] = count
        for order_id, last4 in session.execute(
                sa.select(GiftCardRedemption.order_id, GiftCardRedemption.code_last4)
                .where(GiftCardRedemption.order_id.in_(ids)).order_by(GiftCardRedemption.id)):
            codes.setdefault(order_id, []).append(masked_last4(last4))
    items = [order_row(order, open_attention=open_counts.get(order.id, 0),
                       resolved_attention=resolved_counts.get(order.id, 0), codes=codes.get(order.id, []))
             for order in orders]
    return Page(items=items, page=page, per_page=per_page, total=total)


def order_state(order: Order) -> str:
    """`cancelled` once a cancellation arrived, else `completed`."""
    return "cancelled" if order.cancelled_at is not None else "completed"


def order_row(order: Order, *, open_attention: int, resolved_attention: int, codes: list[str]) -> dict[str, Any]:
    """One order as the list shows it: amounts in cents, gift cards masked, how many attention items are open."""
    return {
        "id": order.shop_order_id, "number": order.number, "state": order_state(order), "currency": order.currency,
        "total_cents": order.total_cents, "gift_card_cents": order.gift_card_cents,
        "placed_at": iso(order.placed_at), "completed_at": iso(order.completed_at),
        "cancelled_at": iso(order.cancelled_at), "received_at": iso(order.created_at),
        "gift_cards": codes, "open_attention": open_attention, "resolved_attention": resolved_attention,
    }
