"""Reconciliation: per-day totals (gift cards, card costs, the job queue) and the comparison with Instagift's own
redemption list. The ledger rows are service.reports.ledger's; ranges and CSV are service.reports.listing's.

Every function takes a session (and a client or clock when it needs one) and a `DateRange`, reads, and returns
plain dicts and dataclasses; rendering (JSON, CSV, a terminal table) happens in the callers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.checkout.models import LOCKING_HOLD_STATUSES, GiftCardHold
from service.db import call_provider
from service.formats import iso
from service.jobs.models import JOB_STATES, Job
from service.jobs.queue import not_periodic
from service.membership.models import MembershipCard, MembershipPrintJob
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption
from service.reports.ledger import ledger_row
from service.reports.listing import DateRange, dollars
from service.thank_you.models import ThankYouCard
from service.thank_you.rules import credits

# Ledger states in which Instagift has (to our knowledge) taken money off the certificate.
REDEEMED_STATES = ("succeeded", "shortfall")


# -- totals ----------------------------------------------------------------------------------------------------


def _empty_totals() -> dict[str, dict[str, int]]:
    return {
        "orders": {"completed": 0, "cancelled": 0, "gift_card_cents": 0},
        "gift_cards": {
            "redemptions": 0, "applied_cents": 0, "taken_cents": 0, "intended_cents": 0, "redeemed_cents": 0,
            "rounding_cents": 0, "shortfall_cents": 0, "forfeit_cents": 0,
            "succeeded": 0, "shortfall": 0, "pending": 0, "uncertain": 0, "failed": 0, "cancelled": 0,
            "unredeemed_cents": 0, "failed_cents": 0,
        },
        "open_holds": {"count": 0, "applied_cents": 0},
        "thank_you_cards": {"placed": 0, "credits_spent": Decimal(0), "test_mode_placed": 0,
                            "test_mode_credits": Decimal(0),
                            "pending": 0, "waiting_for_credit": 0, "failed": 0, "skipped": 0},
        "membership_cards": {"cards": 0, "submitted": 0, "waiting_for_funds": 0, "failed": 0,
                             "print_jobs_submitted": 0, "job_cost_cents": 0, "shipping_cost_cents": 0},
        "jobs": {**dict.fromkeys(JOB_STATES, 0), "retrying": 0},
    }


def _add(into: dict[str, dict[str, int]], section: str, **amounts: int) -> None:
    for key, value in amounts.items():
        into[section][key] += value or 0


def reconciliation_report(session: Session, window: DateRange, now: datetime) -> dict[str, Any]:
    """Totals per UTC day and overall for `window`: gift cards applied vs redeemed (with rounding, shortfalls and
    forfeits apart), open holds, Cardly credits, InstantCard costs and the job queue's states."""
    days = {day: _empty_totals() for day in window.days}

    def bucket(moment: datetime | None) -> dict[str, dict[str, int]] | None:
        return days.get(moment.astimezone(UTC).date()) if window.contains(moment) else None

    def within(column):
        return sa.and_(column >= window.start, column < window.end)

    for completed_at, cancelled_at, gift_card_cents in session.execute(
            sa.select(Order.completed_at, Order.cancelled_at, Order.gift_card_cents)
            .where(sa.or_(within(Order.completed_at), within(Order.cancelled_at)))):
        if (totals := bucket(completed_at)) is not None:
            _add(totals, "orders", completed=1, gift_card_cents=gift_card_cents)
        if (totals := bucket(cancelled_at)) is not None:
            _add(totals, "orders", cancelled=1)

    for row in session.scalars(sa.select(GiftCardRedemption).where(within(GiftCardRedemption.created_at))):
        totals = bucket(row.created_at)
        _add(totals, "gift_cards", redemptions=1, applied_cents=row.applied_cents, taken_cents=row.taken_cents,
             intended_cents=row.intended_cents, forfeit_cents=row.forfeit_cents)
        if row.state in totals["gift_cards"]:
            totals["gift_cards"][row.state] += 1
        if row.state in REDEEMED_STATES:
            _add(totals, "gift_cards", redeemed_cents=row.redeemed_cents, rounding_cents=row.rounding_cents,
                 shortfall_cents=row.shortfall_cents)
        elif row.state in ("pending", "uncertain"):
            _add(totals, "gift_cards", unredeemed_cents=row.intended_cents)
        elif row.state == "failed":
            _add(totals, "gift_cards", failed_cents=row.intended_cents)

    for created_at, applied in session.execute(
            sa.select(GiftCardHold.created_at, GiftCardHold.applied_cents)
            .where(within(GiftCardHold.created_at), GiftCardHold.status.in_(LOCKING_HOLD_STATUSES))):
        _add(bucket(created_at), "open_holds", count=1, applied_cents=applied)

    for created_at, placed_at, status, cost, test_mode in session.execute(
            sa.select(ThankYouCard.created_at, ThankYouCard.placed_at, ThankYouCard.status,
                      ThankYouCard.cost_credits, ThankYouCard.test_mode)
            .where(sa.or_(within(ThankYouCard.created_at), within(ThankYouCard.placed_at)))):
        # A placed card counts on the day Cardly took the credits; the others on the day they were planned.
        totals = bucket(placed_at if status == "placed" else created_at)
        if totals is None:
            continue
        if status != "placed":
            totals["thank_you_cards"][status] += 1
        elif test_mode:
            _add(totals, "thank_you_cards", test_mode_placed=1, test_mode_credits=cost or Decimal(0))
        else:
            _add(totals, "thank_you_cards", placed=1, credits_spent=cost or Decimal(0))

    for created_at, status in session.execute(
            sa.select(MembershipCard.created_at, MembershipCard.status).where(within(MembershipCard.created_at))):
        totals = bucket(created_at)
        _add(totals, "membership_cards", cards=1)
        if status in totals["membership_cards"]:
            totals["membership_cards"][status] += 1
    for submitted_at, cost, shipping in session.execute(
            sa.select(MembershipPrintJob.submitted_at, MembershipPrintJob.cost_cents,
                      MembershipPrintJob.shipping_cost_cents)
            .where(MembershipPrintJob.status == "submitted", within(MembershipPrintJob.submitted_at))):
        _add(bucket(submitted_at), "membership_cards", print_jobs_submitted=1, job_cost_cents=cost,
             shipping_cost_cents=shipping)

    for created_at, state, failures in session.execute(
            sa.select(Job.created_at, Job.state, Job.failures)
            # Housekeeping runs are not the merchant's business and are purged after a day.
            .where(within(Job.created_at), not_periodic())):
        totals = bucket(created_at)
        totals["jobs"][state] += 1
        if state == "queued" and failures:
            totals["jobs"]["retrying"] += 1

    overall = _empty_totals()
    for totals in days.values():
        for section, values in totals.items():
            _add(overall, section, **values)
    for totals in (*days.values(), overall):
        for key in ("credits_spent", "test_mode_credits"):
            totals["thank_you_cards"][key] = credits(totals["thank_you_cards"][key])
    open_now = session.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(GiftCardHold.applied_cents), 0))
        .where(GiftCardHold.status.in_(LOCKING_HOLD_STATUSES))).one()
    return {
        "range": window.as_dict(),
        "generated_at": iso(now),
        "currency": "USD",
        "days": [{"date": day.isoformat(), **totals} for day, totals in days.items()],
        "overall": overall,
        "open_holds_now": {"count": open_now[0], "applied_cents": int(open_now[1])},
    }


def flatten_totals(totals: dict[str, dict[str, int]]) -> dict[str, int]:
    """`{"gift_cards": {"redeemed_cents": 1}}` → `{"gift_cards.redeemed_cents": 1}` (CSV columns, tables)."""
    return {f"{section}.{key}": value for section, values in totals.items() if isinstance(values, dict)
            for key, value in values.items()}


def totals_csv_header(report: dict[str, Any]) -> list[str]:
    """Columns of the totals CSV: the day, then every figure (amounts in dollars and in cents)."""
    header = ["date"]
    for key in flatten_totals(report["overall"]):
        if key.endswith("_cents"):
            header.append(key[: -len("_cents")] + "_usd")
        header.append(key)
    return header


def totals_csv_records(report: dict[str, Any]) -> Iterator[list[Any]]:
    """One CSV record per day and a last one for the whole range (date `total`)."""
    rows = [(day["date"], day) for day in report["days"]] + [("total", report["overall"])]
    for label, totals in rows:
        record: list[Any] = [label]
        for key, value in flatten_totals({k: v for k, v in totals.items() if k != "date"}).items():
            if key.endswith("_cents"):
                record.append(dollars(value))
            record.append(value)
        yield record


# -- comparison with Instagift's own list ------------------------------------------------------------------------

IN_STORE_SOURCES = ("in-store", "in_store", "pos", "merchant-dashboard")
# Local rows that may have a counterpart at Instagift (a cancelled row never called it).
COMPARABLE_STATES = ("succeeded", "shortfall", "uncertain", "pending", "failed")


def _provider_dict(redemption: Any) -> dict[str, Any]:
    source = getattr(redemption, "source", None)
    return {"id": redemption.id, "amount_cents": redemption.amount_cents,
            "certificate_id": redemption.certificate_id, "created_at": iso(redemption.created_at),
            "source": source, "location_id": getattr(redemption, "location_id", None),
            "in_store": (source or "").lower() in IN_STORE_SOURCES}


def compare_with_instagift(session: Session, provider_redemptions: Iterable[Any], window: DateRange) -> dict[str, Any]:
    """Match Instagift's redemption list (every page, any date) against the local ledger and report, for the window:
    matched pairs, amount mismatches, redemptions Instagift has that we do not (in-store ones are expected),
    redemptions we recorded that Instagift does not have, and ours not yet settled that Instagift has.

    Both sides are matched over all dates so that a redemption recorded just before midnight here and just after it
    at Instagift is not reported twice; only the window's items are reported."""
    theirs = call_provider(session, list, provider_redemptions)  # every page read with no transaction open
    local = session.execute(
        sa.select(GiftCardRedemption, Order.shop_order_id, Order.number)
        .join(Order, Order.id == GiftCardRedemption.order_id)
        .where(GiftCardRedemption.state.in_(COMPARABLE_STATES)).order_by(GiftCardRedemption.id)).all()
    by_provider_id = {row.provider_redemption_id: (row, sid, num) for row, sid, num in local
                      if row.provider_redemption_id}
    # Rows whose call may have reached Instagift without us learning its redemption id: matched by certificate.
    by_certificate: dict[str, list[tuple]] = {}
    for row, sid, num in local:
        if not row.provider_redemption_id:
            by_certificate.setdefault(row.certificate_id, []).append((row, sid, num))

    matched, mismatches, unknown_here, unsettled = [], [], [], []
    seen_local: set[int] = set()
    # API redemptions first so that a certificate match never takes an in-store redemption when ours is there.
    for theirs_item in sorted(theirs, key=lambda r: (_provider_dict(r)["in_store"], str(r.created_at))):
        pair = by_provider_id.get(theirs_item.id)
        matched_by = "redemption_id"
        if pair is None and not _provider_dict(theirs_item)["in_store"]:
            candidates = [p for p in by_certificate.get(theirs_item.certificate_id, []) if p[0].id not in seen_local]
            pair = candidates[0] if candidates else None
            matched_by = "certificate_id"
        provider = _provider_dict(theirs_item)
        if pair is None:
            if window.contains(theirs_item.created_at):
                unknown_here.append({**provider, "expected": provider["in_store"],
                                     "explanation": ("redeemed in store: expected at Instagift only"
                                                     if provider["in_store"] else
                                                     "redeemed through the API but not recorded by this service")})
            continue
        row, shop_order_id, number = pair
        seen_local.add(row.id)
        if not (window.contains(row.created_at) or window.contains(theirs_item.created_at)):
            continue
        expected_cents = row.redeemed_cents if row.state in REDEEMED_STATES else row.intended_cents
        entry = {"instagift": provider, "local": ledger_row(row, shop_order_id, number), "matched_by": matched_by,
                 "difference_cents": theirs_item.amount_cents - expected_cents,
                 "settled_here": row.state in REDEEMED_STATES}
        if not entry["settled_here"]:
            unsettled.append(entry)
        elif entry["difference_cents"]:
            mismatches.append(entry)
        else:
            matched.append(entry)

    missing = [ledger_row(row, sid, num) for row, sid, num in local
               if row.id not in seen_local and row.state in REDEEMED_STATES and row.redeemed_cents > 0
               and window.contains(row.created_at)]
    return {
        "range": window.as_dict(),
        "instagift_redemptions_read": len(theirs),
        "summary": {"matched": len(matched), "amount_mismatches": len(mismatches),
                    "unknown_here": len(unknown_here),
                    "unknown_here_in_store": sum(1 for item in unknown_here if item["expected"]),
                    "missing_at_instagift": len(missing), "unsettled_here": len(unsettled)},
        "matched": matched,
        "amount_mismatches": mismatches,
        "unknown_here": unknown_here,
        "missing_at_instagift": missing,
        # Instagift has a redemption for a row we still show pending/uncertain/failed: the job will settle it
        # (it reads the certificate back) or a person must look.
        "unsettled_here": unsettled,
    }
