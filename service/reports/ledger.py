"""The redemption ledger: one row per held certificate an order redeemed, as JSON pages or CSV."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.formats import iso
from service.logs import masked_last4, redact
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption
from service.reports.listing import DEFAULT_PER_PAGE, DateRange, Page, csv_lines, dollars, span_label


def ledger_row(row: GiftCardRedemption, shop_order_id: str | None,
               order_number: str | None) -> dict[str, Any]:
    """One ledger row as JSON: amounts in cents, times in UTC, the code masked to its last 4."""
    return {
        "id": row.id, "order_id": shop_order_id, "order_number": order_number, "state": row.state,
        "certificate_id": row.certificate_id, "code": masked_last4(row.code_last4), "currency": row.currency,
        "splittable": row.splittable, "applied_cents": row.applied_cents, "taken_cents": row.taken_cents,
        "intended_cents": row.intended_cents, "redeemed_cents": row.redeemed_cents,
        "rounding_cents": row.rounding_cents, "shortfall_cents": row.shortfall_cents,
        "forfeit_cents": row.forfeit_cents, "provider_redemption_id": row.provider_redemption_id,
        "child_certificate_id": row.child_certificate_id, "child_balance_cents": row.child_balance_cents,
        "attempts": row.attempts, "error": redact(row.error) if row.error else None,
        "created_at": iso(row.created_at), "redeemed_at": iso(row.redeemed_at),
    }


def _ledger_select(window: DateRange | None, state: str | None) -> sa.Select:
    stmt = (sa.select(GiftCardRedemption, Order.shop_order_id, Order.number)
            .join(Order, Order.id == GiftCardRedemption.order_id)
            .order_by(GiftCardRedemption.created_at, GiftCardRedemption.id))
    if window is not None:
        stmt = stmt.where(GiftCardRedemption.created_at >= window.start,
                          GiftCardRedemption.created_at < window.end)
    if state:
        stmt = stmt.where(GiftCardRedemption.state == state)
    return stmt


def ledger_page(session: Session, window: DateRange | None, *, state: str | None = None, page: int = 1,
                per_page: int = DEFAULT_PER_PAGE) -> Page:
    """One page of the ledger, oldest first; a row belongs to the time it was recorded (order completion)."""
    stmt = _ledger_select(window, state)
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.execute(stmt.offset((page - 1) * per_page).limit(per_page)).all()
    return Page(items=[ledger_row(*row) for row in rows], page=page, per_page=per_page, total=total)


def iter_ledger(session: Session, window: DateRange | None, *, state: str | None = None,
                batch: int = 500) -> Iterator[dict[str, Any]]:
    """Every ledger row in the window, oldest first, read in batches (for CSV exports)."""
    last: tuple[datetime, int] | None = None
    while True:
        stmt = _ledger_select(window, state).limit(batch)
        if last is not None:
            # Keyset pagination: stable even if rows are added while we read.
            stmt = stmt.where(
                sa.tuple_(GiftCardRedemption.created_at, GiftCardRedemption.id) > sa.tuple_(*last))
        rows = session.execute(stmt).all()
        for row in rows:
            yield ledger_row(*row)
        if len(rows) < batch:
            return
        last = (rows[-1][0].created_at, rows[-1][0].id)


LEDGER_CSV_COLUMNS = (
    "id", "order_id", "order_number", "state", "certificate_id", "code", "currency", "splittable",
    "applied_usd", "applied_cents", "taken_usd", "taken_cents", "intended_usd", "intended_cents",
    "redeemed_usd", "redeemed_cents", "rounding_usd", "rounding_cents", "shortfall_usd", "shortfall_cents",
    "forfeit_usd", "forfeit_cents", "child_certificate_id", "child_balance_usd", "child_balance_cents",
    "provider_redemption_id", "attempts", "created_at", "redeemed_at", "error",
)


def _csv_text(value: Any) -> Any:
    # Spreadsheets run cells that start with = + - @ as formulas; text from outside must not.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def ledger_csv_record(item: dict[str, Any]) -> list[Any]:
    """One ledger row as CSV cells: every amount twice, `*_usd` in dollars with two decimals and `*_cents`."""
    record = []
    for column in LEDGER_CSV_COLUMNS:
        if column.endswith("_usd"):
            cents = item[column[: -len("_usd")] + "_cents"]
            record.append("" if cents is None else dollars(cents))
        elif column.endswith("_cents"):
            record.append("" if item[column] is None else item[column])
        elif column == "splittable":
            record.append("true" if item[column] else "false")
        else:
            record.append("" if item[column] is None else _csv_text(item[column]))
    return record


def ledger_csv(session: Session, window: DateRange | None, *, state: str | None = None) -> tuple[Iterator[str], str]:
    """The ledger's CSV (every matching row, a header line first) and its file name: the API's `Accept: text/csv`
    answer and the console's download are this one export."""
    rows = iter_ledger(session, window, state=state)
    return (csv_lines(LEDGER_CSV_COLUMNS, (ledger_csv_record(row) for row in rows)),
            f"redemptions_{span_label(window)}.csv")


LEDGER_TOTAL_FIELDS = ("applied_cents", "taken_cents", "intended_cents", "redeemed_cents", "rounding_cents",
                       "shortfall_cents", "forfeit_cents")


def ledger_totals(session: Session, window: DateRange | None, *, state: str | None = None) -> dict[str, int]:
    """The sums of every matching ledger row (not only one page), summed by the database: the ledger's totals row."""
    sums = [sa.func.coalesce(sa.func.sum(getattr(GiftCardRedemption, field)), 0) for field in LEDGER_TOTAL_FIELDS]
    rows, *totals = session.execute(
        _ledger_select(window, state).order_by(None).with_only_columns(sa.func.count(), *sums)).one()
    return {**{field: int(total) for field, total in zip(LEDGER_TOTAL_FIELDS, totals, strict=True)}, "rows": rows}
