"""Reconciliation: the redemption ledger, per-day totals, the comparison with Instagift's own list, and the
job queue as the merchant sees it.

Every function takes a session (and a client or clock when it needs one) and a `DateRange`, reads, and returns
plain dicts and dataclasses; rendering (JSON, CSV, a terminal table) happens in the callers.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.checkout.models import LOCKING_HOLD_STATUSES, GiftCardHold
from service.domain.formats import iso
from service.domain.thank_you import credits
from service.jobs.models import JOB_STATES, Job
from service.jobs.queue import is_periodic_key, not_periodic
from service.logs import masked_last4, redact
from service.membership.models import MembershipCard, MembershipPrintJob
from service.orders.models import Order
from service.redemption.models import Redemption
from service.thank_you.models import ThankYouCard

# Redemption states in which Instagift has (to our knowledge) taken money off the certificate.
REDEEMED_STATES = ("succeeded", "shortfall")
MAX_RANGE_DAYS = 366
DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 500


# -- date ranges and pages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateRange:
    """A half-open UTC interval [start, end); `days` lists the UTC calendar days it touches."""

    start: datetime
    end: datetime

    @classmethod
    def for_days(cls, first: date, last: date) -> DateRange:
        """Whole UTC days from `first` to `last`, both included."""
        return cls(datetime.combine(first, time.min, UTC), datetime.combine(last + timedelta(days=1), time.min, UTC))

    @classmethod
    def for_day(cls, day: date) -> DateRange:
        """One UTC day."""
        return cls.for_days(day, day)

    @property
    def days(self) -> list[date]:
        first = self.start.astimezone(UTC).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(UTC).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.start <= moment < self.end

    def as_dict(self) -> dict[str, str]:
        return {"from": iso(self.start), "to": iso(self.end)}


@dataclass
class Page:
    """One page of a listing: `items`, where it is, and how many there are in all."""

    items: list[dict[str, Any]]
    page: int
    per_page: int
    total: int

    @property
    def next_page(self) -> int | None:
        return self.page + 1 if self.page * self.per_page < self.total else None

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "page": self.page, "per_page": self.per_page, "total": self.total,
                "next_page": self.next_page}


def dollars(cents: int | None) -> str:
    """Cents as a plain decimal dollar amount with two places ("-1.05"), for CSV and tables."""
    cents = cents or 0
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def _paginate(session: Session, stmt: sa.Select, page: int, per_page: int, render) -> Page:
    total = session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    rows = session.scalars(stmt.offset((page - 1) * per_page).limit(per_page))
    return Page(items=[render(row) for row in rows], page=page, per_page=per_page, total=total)


# -- the job queue ----------------------------------------------------------------------------------------------


def job_dict(job: Job, *, with_attempts: bool = False) -> dict[str, Any]:
    """A job as the merchant sees it; error texts are already masked when stored and are masked again here."""
    body: dict[str, Any] = {
        "id": job.id, "kind": job.kind, "state": job.state, "attempts": job.attempts, "failures": job.failures,
        "max_attempts": job.max_attempts, "run_at": iso(job.run_at), "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at), "finished_at": iso(job.finished_at),
        "last_error": redact(job.last_error) if job.last_error else None,
        "parked_reason": redact(job.parked_reason) if job.parked_reason else None,
        "order_id": job.order_id,
        "periodic": is_periodic_key(job.dedupe_key),
    }
    if with_attempts:
        body["attempt_log"] = [
            {"attempt": a.attempt, "worker": a.worker, "outcome": a.outcome, "started_at": iso(a.started_at),
             "finished_at": iso(a.finished_at), "error": redact(a.error) if a.error else None}
            for a in job.attempt_log
        ]
    return body


def _with_shop_order_ids(session: Session, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Replace each job's `order_id` (our row id) by the shop's order id, in one query."""
    order_ids = {item["order_id"] for item in items if item["order_id"] is not None}
    shop_ids = dict(session.execute(sa.select(Order.id, Order.shop_order_id).where(Order.id.in_(order_ids))).all()) \
        if order_ids else {}
    for item in items:
        item["shop_order_id"] = shop_ids.get(item.pop("order_id"))
    return items


def job_view(session: Session, job: Job) -> dict[str, Any]:
    """One job as the list shows it: the shop's order id, not our row id."""
    return _with_shop_order_ids(session, [job_dict(job)])[0]


def list_jobs(session: Session, *, state: str | None = None, kind: str | None = None, page: int = 1,
              per_page: int = DEFAULT_PER_PAGE, include_periodic: bool = False) -> Page:
    """The queue, newest first, optionally filtered by state and kind; each job with its shop order id.

    Periodic housekeeping runs (thousands a day) are left out unless asked for, or their kind is asked for."""
    stmt = sa.select(Job).order_by(Job.id.desc())
    if not include_periodic and not kind:
        stmt = stmt.where(not_periodic())
    if state:
        stmt = stmt.where(Job.state == state)
    if kind:
        stmt = stmt.where(Job.kind == kind)
    page_ = _paginate(session, stmt, page, per_page, lambda job: job_dict(job, with_attempts=True))
    _with_shop_order_ids(session, page_.items)
    return page_



# -- the redemption ledger ----------------------------------------------------------------------------------------


def rounding_cents(row: Redemption) -> int:
    """Whole-dollar rounding on one ledger row: what we meant to redeem beyond (or short of) what the order took.

    Splittable: intended − taken (e.g. `up` turns $52.50 taken into $53.00). Non-splittable: applied − taken,
    because everything beyond the whole-dollar applied amount is the forfeit, reported apart."""
    if row.splittable:
        return row.intended_cents - row.taken_cents
    return row.applied_cents - row.taken_cents


def ledger_row(row: Redemption, shop_order_id: str | None, order_number: str | None) -> dict[str, Any]:
    """One ledger row as JSON: amounts in cents, times in UTC, the code masked to its last 4."""
    return {
        "id": row.id, "order_id": shop_order_id, "order_number": order_number, "state": row.state,
        "certificate_id": row.certificate_id, "code": masked_last4(row.code_last4), "currency": row.currency,
        "splittable": row.splittable, "applied_cents": row.applied_cents, "taken_cents": row.taken_cents,
        "intended_cents": row.intended_cents, "redeemed_cents": row.redeemed_cents,
        "rounding_cents": rounding_cents(row), "shortfall_cents": row.shortfall_cents,
        "forfeit_cents": row.forfeit_cents, "provider_redemption_id": row.provider_redemption_id,
        "child_certificate_id": row.child_certificate_id, "child_balance_cents": row.child_balance_cents,
        "attempts": row.attempts, "error": redact(row.error) if row.error else None,
        "created_at": iso(row.created_at), "redeemed_at": iso(row.redeemed_at),
    }


def _ledger_select(window: DateRange | None, state: str | None) -> sa.Select:
    stmt = (sa.select(Redemption, Order.shop_order_id, Order.number)
            .join(Order, Order.id == Redemption.order_id)
            .order_by(Redemption.created_at, Redemption.id))
    if window is not None:
        stmt = stmt.where(Redemption.created_at >= window.start, Redemption.created_at < window.end)
    if state:
        stmt = stmt.where(Redemption.state == state)
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
            stmt = stmt.where(sa.tuple_(Redemption.created_at, Redemption.id) > sa.tuple_(*last))
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


def csv_lines(header: Iterable[str], records: Iterable[list[Any]]) -> Iterator[str]:
    """CSV text, one line at a time (RFC 4180 quoting, CRLF line ends), header first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for record in itertools.chain([list(header)], records):
        writer.writerow(record)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


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

    for row in session.scalars(sa.select(Redemption).where(within(Redemption.created_at))):
        totals = bucket(row.created_at)
        _add(totals, "gift_cards", redemptions=1, applied_cents=row.applied_cents, taken_cents=row.taken_cents,
             intended_cents=row.intended_cents, forfeit_cents=row.forfeit_cents)
        if row.state in totals["gift_cards"]:
            totals["gift_cards"][row.state] += 1
        if row.state in REDEEMED_STATES:
            _add(totals, "gift_cards", redeemed_cents=row.redeemed_cents, rounding_cents=rounding_cents(row),
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
    theirs = list(provider_redemptions)
    local = session.execute(
        sa.select(Redemption, Order.shop_order_id, Order.number).join(Order, Order.id == Redemption.order_id)
        .where(Redemption.state.in_(COMPARABLE_STATES)).order_by(Redemption.id)).all()
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
