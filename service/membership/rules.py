"""InstantCard membership cards: one printed card per unit of every order line whose SKU maps to a template.

The rules, planning and cancellation, and the steps the jobs (service.membership.jobs) run: the
`issue_membership_card` job walks a card through draft → finalize → print job → add → funds → submit, and
commits each step's result before the next provider call, so a retry resumes where it stopped. It decides only
from what InstantCard describes: a card shows no finalized state and a print job does not list its cards, so
after a call whose answer was lost it looks the card up by member number (create), finalizes again and lets the
print job judge (finalize), creates another empty print job (create print job: the lost one holds nothing), or
takes the card off and adds it again (add); a submit is read back by the print job's status.

With `INSTANTCARD_SHIP_TO=store`, finalized cards join one open batch print job that is submitted at the
daily cutoff (US Eastern, DST-aware) or as soon as it holds `INSTANTCARD_BATCH_MAX_CARDS` cards.
Decisions and every column are documented in docs/membership-cards.md.
"""

from __future__ import annotations

import calendar
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import call_provider, insert_ignoring_conflict, lock_for_update
from service.errors import (
    NotFound,
    ProviderError,
    ProviderNotFound,
    ProviderPaymentRequired,
    ProviderRejected,
    ProviderResponseInvalid,
)
from service.formats import iso
from service.jobs.queue import enqueue, wake_parked
from service.jobs.registry import Park, PermanentFailure, RetryLater
from service.logs import redact
from service.membership.card_fields import UnknownVariable, render_field, template_variables
from service.membership.models import MembershipCard, MembershipPrintJob
from service.membership.settings import MembershipSettings
from service.orders.models import Order
from service.providers.instantcard import one_off_address

log = logging.getLogger("service.membership")

JOB_KIND = "issue_membership_card"
BATCH_JOB_KIND = "submit_membership_batch"
BATCH_CHECK_KIND = "check_membership_batches"
FUNDS_CHECK_KIND = "check_instantcard_funds"
EASTERN = ZoneInfo("America/New_York")
STORE_SLOT = "store"
MAX_SUBMIT_PASSES = 5  # funds checks per run when cancellations keep arriving during them
FINISHED = ("submitted", "cancelled")
# On a print job that exists at InstantCard: its submit (which prints and charges) may be in flight or about to be.
ON_PRINT_JOB = ("queued", "waiting_for_funds")
# A cancellation of a card that InstantCard may be printing: only the job that submits its print job turns this
# into `cancelled` (InstantCard did not print it) or `submitted` (it did), after reading InstantCard back.
CANCEL_REQUESTED = "cancel_requested"
# The kind of the order's attention item when InstantCard printed and charged a card of a cancelled order (notes
# written before attention items had kinds start with it in brackets; the migration recognises them by it).
PRINTED_FOR_CANCELLED_ORDER = "membership_card_printed_for_cancelled_order"

def add_months(day: date, months: int) -> date:
    """`day` plus whole months, clamped to the month's last day (Jan 31 + 1 month → Feb 28/29)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def member_number_for(prefix: str, card_row_id: int) -> str:
    """The member number printed on a card: the prefix and the card row's id, 8 digits."""
    return f"{prefix}{card_row_id:08d}"


def next_cutoff_after(moment: datetime, cutoff_hhmm: str) -> datetime:
    """The first daily cutoff (HH:MM US Eastern, DST-aware) strictly after `moment`, in UTC."""
    hour, minute = (int(part) for part in cutoff_hhmm.split(":"))
    local = moment.astimezone(EASTERN)
    candidate = datetime.combine(local.date(), time(hour, minute), tzinfo=EASTERN)
    # Compare instants, not wall clocks: two times in the same zone compare by wall clock in Python, which is
    # wrong across the autumn change (01:30 comes twice).
    if candidate.astimezone(UTC) <= moment.astimezone(UTC):
        candidate = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), tzinfo=EASTERN)
    return candidate.astimezone(UTC)


def split_cost(total_cents: int, parts: int) -> list[int]:
    """Share a print job's cost between its cards: whole cents, differing by at most one, summing to total."""
    if parts <= 0:
        return []
    base, remainder = divmod(total_cents, parts)
    return [base + (1 if i < remainder else 0) for i in range(parts)]


# -- order intake --------------------------------------------------------------------------------------------
def plan_for_completed_order(session: Session, order: Order, settings: Settings) -> None:
    """One pending card row (member number assigned) and one job per unit of each mapped order line."""
    ic = settings.membership
    data = order.payload or {}
    placed = order.placed_at or order.completed_at or datetime.now(UTC)
    expires_on = add_months(placed.astimezone(EASTERN).date(), ic.membership_term_months)
    for line_index, line in enumerate(data.get("line_items") or []):
        product = ic.products.get(line.get("sku") or "")
        if not isinstance(product, dict):
            continue
        for unit_index in range(int(line.get("quantity") or 1)):
            card = MembershipCard(order_id=order.id, line_index=line_index, unit_index=unit_index,
                                  sku=line["sku"], template_id=int(product["template_id"]), status="pending",
                                  expires_on=expires_on, card_data={})
            session.add(card)
            session.flush()
            card.member_number = member_number_for(ic.member_number_prefix, card.id)
            variables = template_variables(data, line, member_number=card.member_number, expires_on=expires_on,
                                           shop_name=settings.shop_name)
            try:
                card.card_data = {name: render_field(text, variables) for name, text in product["fields"].items()}
            except UnknownVariable as exc:  # the start-up check prevents this; kept for a clear record
                card.status, card.last_error = "failed", f"unknown template variable {{{exc}}}"
                continue
            enqueue(session, JOB_KIND, {"card_id": card.id}, dedupe_key=f"membership:{card.id}", order_id=order.id,
                    max_attempts=settings.job_max_attempts)


def on_order_cancelled(session: Session, order: Order, settings: Settings) -> None:
    """Cancel the order's cards that InstantCard cannot be printing; only request it for the others.

    A card on a print job (or whose dead job left a submit in doubt) may be printed by a submit in flight: it
    becomes `cancel_requested`, and the job that submits the print job reads InstantCard back and records the
    truth. A card already submitted was printed and charged: the order's note says so.
    """
    cards = list(session.scalars(lock_for_update(session, sa.select(MembershipCard).where(
        MembershipCard.order_id == order.id).order_by(MembershipCard.id)).execution_options(populate_existing=True)))
    for card in cards:
        if card.status == "submitted":
            order.add_attention(PRINTED_FOR_CANCELLED_ORDER, printed_for_cancelled_order(
                card.member_number, "it had been submitted before the order was cancelled"))
        elif card.status in ON_PRINT_JOB or (card.status == "failed" and _submit_in_doubt(session, card)):
            card.status = CANCEL_REQUESTED
            card.last_error = "order cancelled; waiting to learn from InstantCard whether the card was printed"
        elif card.status in ("pending", "drafted", "finalized", "failed"):
            card.status, card.last_error = "cancelled", "order cancelled"
        else:
            continue
        card.updated_at = order.cancelled_at


def _submit_in_doubt(session: Session, card: MembershipCard) -> bool:
    """A failed card whose print job's submit was sent: without a definite answer (its job died after it), or
    answered (the card may be on the printed job although it failed)."""
    if card.print_job_id is None:
        return False
    status, unknown_since = session.execute(sa.select(
        MembershipPrintJob.status, MembershipPrintJob.submit_outcome_unknown_since).where(
        MembershipPrintJob.id == card.print_job_id)).one()
    return status == "submitted" or unknown_since is not None


def printed_for_cancelled_order(member_number: str | None, when: str) -> str:
    """The attention item's message when InstantCard printed and charged a card of the cancelled order."""
    return (f"Membership card {member_number} was printed and charged by "
            f"InstantCard although the order was cancelled ({when}).")


# -- the card job ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CardSnapshot:
    """A card row's values read in a finished transaction (no lock is held during provider calls)."""

    id: int
    status: str
    member_number: str
    template_id: int
    card_data: dict[str, str]
    instantcard_card_id: str | None
    create_outcome_unknown_since: datetime | None
    finalize_outcome_unknown_since: datetime | None
    add_outcome_unknown_since: datetime | None
    print_job_id: int | None
    drafted_at: datetime | None
    finalized_at: datetime | None
    queued_at: datetime | None
    shipping_address: dict[str, Any] | None
    order_cancelled: bool


def _snapshot(session: Session, card_id: int) -> CardSnapshot:
    card = session.get(MembershipCard, card_id, populate_existing=True)
    if card is None:
        session.commit()
        raise PermanentFailure(f"membership card {card_id} does not exist")
    order = session.get(Order, card.order_id, populate_existing=True)
    snap = CardSnapshot(
        id=card.id, status=card.status, member_number=card.member_number or "", template_id=card.template_id,
        card_data=dict(card.card_data or {}), instantcard_card_id=card.instantcard_card_id,
        create_outcome_unknown_since=card.create_outcome_unknown_since,
        finalize_outcome_unknown_since=card.finalize_outcome_unknown_since,
        add_outcome_unknown_since=card.add_outcome_unknown_since,
        print_job_id=card.print_job_id, drafted_at=card.drafted_at, finalized_at=card.finalized_at,
        queued_at=card.queued_at, shipping_address=(order.payload or {}).get("shipping_address"),
        order_cancelled=order.cancelled_at is not None)
    session.commit()  # end the transaction: SQLite must not hold its write lock across an HTTP call
    return snap


def _record(session: Session, card_id: int, expect: str, now: datetime, **values: Any) -> bool:
    """Move the card from `expect` to new values; if it changed meanwhile (cancelled) keep only the ids."""
    values["updated_at"] = now
    moved = session.execute(sa.update(MembershipCard).where(MembershipCard.id == card_id,
                                                            MembershipCard.status == expect).values(**values))
    if moved.rowcount != 1:
        ids = {k: v for k, v in values.items() if k in ("instantcard_card_id", "print_job_id", "updated_at")}
        session.execute(sa.update(MembershipCard).where(MembershipCard.id == card_id).values(**ids))
    session.commit()
    return moved.rowcount == 1


def advance_card(session: Session, settings: Settings, client, card_id: int, now) -> None:
    """Run the card's remaining steps; each step commits its result before the next provider call."""
    ic = settings.membership
    for step in range(10):  # a card has at most five steps; the bound only guards against a loop bug
        snap = _snapshot(session, card_id)
        if snap.status in FINISHED:
            if step == 0 and snap.status == "submitted" and snap.print_job_id is not None:
                # A run that starts with the card printed: the last one may have died before reading the costs.
                _read_missed_charge_details(session, client, snap.print_job_id, now)
            return
        if snap.status == "failed":
            _resume_failed(session, snap, now())
            continue
        if snap.order_cancelled and snap.status in ("pending", "drafted", "finalized"):
            _record(session, card_id, snap.status, now(), status="cancelled", last_error="order cancelled")
            return
        if snap.status == "pending":
            _create_draft(session, client, snap, now)
        elif snap.status == "drafted":
            _finalize(session, client, snap, now)
        elif snap.status == "finalized" and ic.ship_to == "store":
            if not _join_batch(session, settings, client, snap, now):
                return
        elif snap.status == "finalized":
            _member_print_job(session, client, snap, now)
        elif ic.ship_to == "store" or (snap.print_job_id and _print_job_mode(session, snap.print_job_id) == "store"):
            return  # queued in a batch: the batch job submits it
        else:
            submit_print_job(session, client, snap.print_job_id, now, ic.funds_recheck_seconds)
    raise RuntimeError(f"membership card {card_id} did not settle")


def _print_job_mode(session: Session, print_job_id: int) -> str:
    mode = session.scalar(sa.select(MembershipPrintJob.mode).where(MembershipPrintJob.id == print_job_id))
    session.commit()
    return mode


def _resume_failed(session: Session, snap: CardSnapshot, now: datetime) -> None:
    """A person retried a failed card's job: pick up after the last step that is known to have happened."""
    resume = ("queued" if snap.queued_at else "finalized" if snap.finalized_at
              else "drafted" if snap.drafted_at else "pending")
    _record(session, snap.id, "failed", now, status=resume, last_error=None)


def _create_draft(session: Session, client, snap: CardSnapshot, now) -> None:
    if snap.create_outcome_unknown_since is not None:
        # An earlier create may have worked without us hearing back: look before creating again.
        existing = call_provider(session, client.find_card_by_field, _member_field(snap), snap.member_number)
        if existing is not None:
            # A card our create made is a draft: nothing finalizes it before its create is on record.
            _record(session, snap.id, "pending", now(), status="drafted", instantcard_card_id=existing.id,
                    drafted_at=now(), create_outcome_unknown_since=None)
            return
    _record(session, snap.id, "pending", now(), create_outcome_unknown_since=now())
    card = call_provider(session, client.create_card, snap.template_id, snap.card_data)
    _record(session, snap.id, "pending", now(), status="drafted", instantcard_card_id=card.id, drafted_at=now(),
            create_outcome_unknown_since=None)


def _member_field(snap: CardSnapshot) -> str:
    return next((name for name, value in snap.card_data.items() if value == snap.member_number), "Member Number")


def _finalize(session: Session, client, snap: CardSnapshot, now) -> None:
    """Finalize the draft.

    InstantCard's card shows no finalized state and its document does not say what a repeated finalize answers.
    After a finalize whose answer was lost the call is repeated: a 2xx settles it. A refusal of the repeat may
    only mean the first one worked, so the card goes on as finalized with `finalize_outcome_unknown_since` kept:
    InstantCard takes only finalized cards onto a print job, so adding it there is the read-back (see _add_card).
    """
    repeat = snap.finalize_outcome_unknown_since is not None
    if not _record(session, snap.id, "drafted", now(), finalize_outcome_unknown_since=now()):
        return  # cancelled meanwhile
    try:
        call_provider(session, client.finalize_card, snap.instantcard_card_id)
    except ProviderRejected as exc:
        if not repeat:  # the first finalize refused: a definite answer
            _record(session, snap.id, "drafted", now(), finalize_outcome_unknown_since=None)
            raise
        log.warning("membership card %s: a repeated finalize was refused (%s); InstantCard's print job will tell",
                    snap.id, exc)
        _record(session, snap.id, "drafted", now(), status="finalized", finalized_at=now(),
                last_error=f"finalize repeated after a lost answer was refused ({exc.reason or exc}); taken as "
                           "finalized until InstantCard takes the card onto a print job")
        return
    _record(session, snap.id, "drafted", now(), status="finalized", finalized_at=now(),
            finalize_outcome_unknown_since=None)


def _member_print_job(session: Session, client, snap: CardSnapshot, now) -> None:
    """The card's own print job (the order's shipping address, one copy): created empty, then the card is added."""
    address = one_off_address(snap.shipping_address)
    if address is None:
        raise PermanentFailure("the order has no shipping address to send the membership card to")
    row_id = snap.print_job_id
    if row_id is None:
        row = MembershipPrintJob(mode="member", status="open", address=address, creator_card_id=snap.id,
                                 card_count=1, created_at=now(), updated_at=now())
        session.add(row)
        session.flush()
        if not _record(session, snap.id, "finalized", now(), print_job_id=row.id):
            return  # cancelled meanwhile
        row_id = row.id
    instantcard_id = session.scalar(sa.select(MembershipPrintJob.instantcard_print_job_id).where(
        MembershipPrintJob.id == row_id))
    session.commit()
    if instantcard_id is None:
        instantcard_id = _create_print_job(session, client, row_id, address, now)
    _add_card(session, client, snap, instantcard_id, now)


def _create_print_job(session: Session, client, row_id: int, address: dict[str, Any] | None, now) -> str:
    """Create the print job at InstantCard with no card on it; returns its id.

    InstantCard's print job does not list its cards, so one whose create answer was lost cannot be found again
    by its card. Created empty, such a print job holds nothing and is never submitted: the next try simply
    creates another, and cards join the one on record (`_add_card`).
    """
    previous = session.scalar(sa.select(MembershipPrintJob.create_outcome_unknown_since).where(
        MembershipPrintJob.id == row_id))
    values: dict[str, Any] = {"create_outcome_unknown_since": now(), "updated_at": now()}
    if previous is not None:
        log.warning("membership print job %s: an earlier create got no answer; InstantCard may keep an empty "
                    "print job from it, which is never submitted", row_id)
        values["last_error"] = (f"a create at {iso(previous)} got no answer: InstantCard may keep an empty print "
                                "job from it (never submitted)")
    session.execute(sa.update(MembershipPrintJob).where(MembershipPrintJob.id == row_id).values(**values))
    # call_provider commits first: the intent is on record before InstantCard hears of it.
    created = call_provider(session, client.create_print_job, address=address, copies=1)
    session.execute(sa.update(MembershipPrintJob).where(MembershipPrintJob.id == row_id)
                    .values(instantcard_print_job_id=str(created.id), create_outcome_unknown_since=None,
                            updated_at=now()))
    session.commit()
    return str(created.id)


def _add_card(session: Session, client, snap: CardSnapshot, instantcard_print_job_id: str, now) -> None:
    """Put the finalized card on its print job, once (→ `queued`).

    InstantCard's print job does not list its cards, and its document does not say whether adding a card twice
    prints it twice: after an add whose answer was lost the card is first taken off (404: it was not on it), then
    added again. Taking the card is InstantCard's word that it is finalized.
    """
    card_id = snap.instantcard_card_id
    if snap.add_outcome_unknown_since is not None:
        with contextlib.suppress(ProviderNotFound):
            call_provider(session, client.remove_card, instantcard_print_job_id, card_id)
    if not _record(session, snap.id, "finalized", now(), add_outcome_unknown_since=now()):
        return  # cancelled meanwhile
    try:
        call_provider(session, client.add_cards, instantcard_print_job_id, [card_id])
    except ProviderRejected as exc:
        _record(session, snap.id, "finalized", now(), add_outcome_unknown_since=None)
        if snap.finalize_outcome_unknown_since is None:
            raise
        raise PermanentFailure(
            f"InstantCard refused to put card {card_id} on print job {instantcard_print_job_id} ({exc.reason or exc}). "
            "Its finalize was repeated after a lost answer and refused, so it may still be a draft: check the card "
            "at InstantCard, finalize it there if it is one, then retry this job.") from exc
    _record(session, snap.id, "finalized", now(), status="queued", queued_at=now(), add_outcome_unknown_since=None,
            finalize_outcome_unknown_since=None, last_error=None)


def submit_print_job(session: Session, client, print_job_row_id: int, now, funds_recheck_seconds: int) -> None:
    """Check the funds and submit one print job; park as waiting_for_funds when the balance is short.

    Cancellations of its cards are honoured only while InstantCard is known not to have printed it: after a
    submit without a definite answer the print job is read back first (its `status`), and a printed job is
    recorded as printed (its cancelled cards included). This job is the only one that submits the print job, so
    between that read and its own submit nothing else can print it.
    """
    row = session.get(MembershipPrintJob, print_job_row_id, populate_existing=True)
    instantcard_id, status, mode = row.instantcard_print_job_id, row.status, row.mode
    submit_unknown_since = row.submit_outcome_unknown_since
    if status == "submitted":
        _record_submitted(session, print_job_row_id, now)
        _read_missed_charge_details(session, client, print_job_row_id, now)
        return
    if submit_unknown_since is not None:
        current = call_provider(session, client.fetch_print_job, instantcard_id)
        if current.submitted is None:  # then neither a cancellation nor a second submit is safe
            raise ProviderResponseInvalid("instantcard", "the print job read back does not say whether it was "
                                                         "submitted (no status); a person must check it at "
                                                         "InstantCard")
        if current.submitted:
            _record_submitted(session, print_job_row_id, now)
            _record_charge_details(session, client, print_job_row_id, instantcard_id, now)
            return
    # Each pass honours the cancellations that arrived before it; one arriving during the funds check sends it
    # round again (in store mode the batch's cost changes when a card is taken out).
    for _ in range(MAX_SUBMIT_PASSES):
        if not _honour_cancellations(session, client, print_job_row_id, instantcard_id, mode, now):
            return
        # InstantCard API v2, Checkout Process step 6 and Check Balance to Submit a Print Job: "Before submitting
        # a print job, you must check the account balance". Charge details are only for a submitted job.
        if not client.check_balance(instantcard_id):
            _wait_for_funds(session, print_job_row_id, now, funds_recheck_seconds)
        if _intend_to_submit(session, print_job_row_id, now()):
            break
    else:
        raise RetryLater("cancellations kept arriving while the print job was being submitted")
    try:
        client.submit_print_job(instantcard_id)  # the answer is not described, and not needed: a 2xx is enough
    except ProviderPaymentRequired:
        _wait_for_funds(session, print_job_row_id, now, funds_recheck_seconds)
    _record_submitted(session, print_job_row_id, now)
    _record_charge_details(session, client, print_job_row_id, instantcard_id, now)


def _record_charge_details(session: Session, client, row_id: int, instantcard_id: str, now) -> None:
    """What InstantCard charged for the submitted print job (Print Job Charge Details: "for an already submitted
    print job"). The cards are printed whatever this says, so a failed read leaves the costs empty with a note for
    the merchant instead of failing the job."""
    try:
        charge = call_provider(session, client.charge_details, instantcard_id)
    except ProviderError as exc:
        log.warning("membership print job %s: submitted, but its charge details could not be read: %s", row_id, exc)
        session.execute(sa.update(MembershipPrintJob).where(MembershipPrintJob.id == row_id).values(
            last_error=f"submitted; InstantCard's charge details could not be read ({redact(str(exc))[:300]})",
            updated_at=now()))
        session.commit()
        return
    _record_costs(session, row_id, charge.job_total_cost_cents, charge.shipping_cost_cents, now())


def _read_missed_charge_details(session: Session, client, row_id: int, now) -> None:
    """Read the charge details of a print job recorded as submitted whose costs are still unknown: a run after the
    worker died between recording the submit and reading them (the card's and the batch's jobs end here)."""
    job = session.get(MembershipPrintJob, row_id, populate_existing=True)
    missed = job.status == "submitted" and job.cost_cents is None
    instantcard_id = job.instantcard_print_job_id
    session.commit()
    if missed:
        _record_charge_details(session, client, row_id, instantcard_id, now)


def _honour_cancellations(session: Session, client, row_id: int, instantcard_id: str | None, mode: str,
                          now) -> int:
    """Cancel the print job's cards whose cancellation was requested (InstantCard has not printed the job); in a
    batch, take cancelled and failed cards off InstantCard's print job too. Returns how many cards are left to
    print; with none the print job is closed unsubmitted."""
    cards = list(session.scalars(sa.select(MembershipCard).where(MembershipCard.print_job_id == row_id)
                                 .execution_options(populate_existing=True)))
    # Any cancelled or failed card may be on a batch's print job, even one whose add or create answer never came
    # back; InstantCard's print job does not list its cards, so each is taken off (404: it was not on it).
    leaving = [(c.id, c.instantcard_card_id, c.status) for c in cards
               if c.status == CANCEL_REQUESTED or (mode == "store" and c.status in ("cancelled", "failed"))]
    live = sum(1 for c in cards if c.status in ON_PRINT_JOB)
    session.commit()
    if mode == "store" and leaving:
        for card_row_id, card_id, status in leaving:
            if card_id is not None and instantcard_id is not None:
                with contextlib.suppress(ProviderNotFound):  # not on it, or taken off by an earlier attempt
                    client.remove_card(instantcard_id, card_id)
            # Off the print job: what stays linked to a submitted print job is what was printed.
            if status == "failed":
                _take_failed_card_off(session, card_row_id, now())
            else:
                _cancel_requested(session, [card_row_id], now(), print_job_id=None)
    elif leaving:
        _cancel_requested(session, [card_row_id for card_row_id, _, _ in leaving], now())
    values: dict[str, Any] = {"card_count": live} if mode == "store" else {}
    if not live:
        values.update(status="closed", open_slot=None, last_error="every card on it was cancelled")
    session.execute(sa.update(MembershipPrintJob).where(MembershipPrintJob.id == row_id)
                    .values(updated_at=now(), **values))
    session.commit()
    return live


def _take_failed_card_off(session: Session, card_row_id: int, now: datetime) -> None:
    """A failed card is not printed with the batch: unlinked from it, a person's retry joins the next batch."""
    card = session.get(MembershipCard, card_row_id, populate_existing=True)
    if card is not None and card.status == "failed":
        card.print_job_id, card.add_outcome_unknown_since, card.updated_at = None, None, now
        card.last_error = f"{card.last_error or 'failed'} (taken off the batch before it was submitted)"
    session.commit()


def _cancel_requested(session: Session, card_ids: list[int], now: datetime, **values: Any) -> None:
    """Requested (or already recorded) cancellations become final: InstantCard did not print these cards."""
    session.execute(sa.update(MembershipCard).where(
        MembershipCard.id.in_(card_ids), MembershipCard.status.in_((CANCEL_REQUESTED, "cancelled"))).values(
        status="cancelled", last_error="order cancelled; InstantCard did not print the card", updated_at=now,
        **values))
    session.commit()


def _intend_to_submit(session: Session, row_id: int, now: datetime) -> bool:
    """Last look before the call that prints and charges: record the intent unless a cancellation is waiting."""
    waiting = session.scalar(sa.select(sa.func.count()).select_from(MembershipCard).where(
        MembershipCard.print_job_id == row_id, MembershipCard.status == CANCEL_REQUESTED))
    if not waiting:
        session.execute(sa.update(MembershipPrintJob).where(MembershipPrintJob.id == row_id)
                        .values(submit_outcome_unknown_since=now, updated_at=now))
    session.commit()
    return not waiting


def _record_costs(session: Session, row_id: int, total: int | None, shipping: int | None, now: datetime) -> None:
    session.execute(sa.update(MembershipPrintJob).where(MembershipPrintJob.id == row_id)
                    .values(cost_cents=total, shipping_cost_cents=shipping, updated_at=now))
    if total is not None:
        card_ids = list(session.scalars(sa.select(MembershipCard.id).where(
            MembershipCard.print_job_id == row_id, MembershipCard.status != "cancelled").order_by(MembershipCard.id)))
        for card_id, share in zip(card_ids, split_cost(total, len(card_ids)), strict=True):
            session.execute(sa.update(MembershipCard).where(MembershipCard.id == card_id).values(job_cost_cents=share))
    session.commit()


def _wait_for_funds(session: Session, row_id: int, now, recheck_seconds: int) -> None:
    # What the print job will cost is not known before it is submitted (charge details are for submitted jobs).
    reason = "InstantCard balance does not cover the print job (Check Balance answered false)"
    session.execute(sa.update(MembershipCard).where(MembershipCard.print_job_id == row_id,
                                                    MembershipCard.status == "queued")
                    .values(status="waiting_for_funds", last_error=reason, updated_at=now()))
    session.execute(sa.update(MembershipPrintJob).where(MembershipPrintJob.id == row_id)
                    .values(last_error=reason, updated_at=now()))
    session.commit()
    raise Park(reason, recheck_seconds)


def _record_submitted(session: Session, row_id: int, now) -> None:
    """InstantCard printed the print job: every card on it is `submitted`, whatever a cancellation said.

    The cards still linked to it in a live, cancel-requested or cancelled state were on it (a batch's cancelled and
    failed cards are unlinked when taken off). A cancelled order's printed card gets a note for the merchant.
    """
    job = session.get(MembershipPrintJob, row_id, populate_existing=True)
    job.status, job.open_slot, job.last_error, job.updated_at = "submitted", None, None, now()
    job.submit_outcome_unknown_since = None
    job.submitted_at = job.submitted_at or now()
    # Locked in id order, as the cancellation locks an order's cards: the two never wait on each other in a circle.
    cards = list(session.scalars(lock_for_update(session, sa.select(MembershipCard).where(
        MembershipCard.print_job_id == row_id, MembershipCard.status != "submitted").order_by(MembershipCard.id))
        .execution_options(populate_existing=True)))
    for card in cards:
        if card.status not in (*ON_PRINT_JOB, CANCEL_REQUESTED, "cancelled"):
            continue  # e.g. failed before InstantCard had it on the print job
        cancelled_order = card.status in (CANCEL_REQUESTED, "cancelled")
        card.status, card.submitted_at, card.updated_at = "submitted", now(), now()
        card.last_error = ("printed: the order was cancelled while its print job was being submitted"
                           if cancelled_order else None)
        if cancelled_order:
            session.get(Order, card.order_id).add_attention(PRINTED_FOR_CANCELLED_ORDER, printed_for_cancelled_order(
                card.member_number, "the cancellation came while its print job was being submitted"))
    session.flush()
    job.card_count = session.scalar(sa.select(sa.func.count()).select_from(MembershipCard).where(
        MembershipCard.print_job_id == row_id, MembershipCard.status == "submitted"))
    session.commit()


# -- batches (ship to the store) ---------------------------------------------------------------------------
def _join_batch(session: Session, settings: Settings, client, snap: CardSnapshot, now) -> bool:
    """Put a finalized card into the open batch; False when it must wait for the batch to exist."""
    ic = settings.membership
    if snap.print_job_id is None:
        _reserve_batch_place(session, ic, snap, now)
        return True
    batch = session.get(MembershipPrintJob, snap.print_job_id, populate_existing=True)
    instantcard_id, creator, address = batch.instantcard_print_job_id, batch.creator_card_id, batch.address
    session.commit()
    if instantcard_id is None:
        if creator != snap.id:
            if _take_over_batch_creation(session, snap, now):
                return True  # look again: this card creates the batch now, or it exists
            # Waiting costs no attempt (a Park): a slow first card must not use up this card's failure budget.
            raise Park("waiting for the batch print job to be created by its first card", 5)
        _create_print_job(session, client, snap.print_job_id, address, now)
        return True  # look again: the card joins the batch now on record
    _add_card(session, client, snap, instantcard_id, now)
    return True


def _take_over_batch_creation(session: Session, snap: CardSnapshot, now) -> bool:
    """When the card that was to create the batch was cancelled or failed, this card takes the job over (a
    create of the first card whose answer was lost left at most an empty print job). True when there is something
    new to do."""
    batch = session.scalars(lock_for_update(session, sa.select(MembershipPrintJob).where(
        MembershipPrintJob.id == snap.print_job_id)).execution_options(populate_existing=True)).one()
    creator = session.get(MembershipCard, batch.creator_card_id, populate_existing=True) \
        if batch.creator_card_id else None
    if batch.instantcard_print_job_id is not None:
        session.commit()
        return True
    if creator is not None and creator.status not in ("cancelled", "failed"):
        session.commit()
        return False
    batch.creator_card_id, batch.updated_at = snap.id, now()
    session.commit()
    log.info("membership card %s creates batch %s in place of card %s", snap.id, snap.print_job_id,
             creator.id if creator else None)
    return True


def _reserve_batch_place(session: Session, ic: MembershipSettings, snap: CardSnapshot, now) -> None:
    """Count the card into the one open batch (creating the batch row if none is open), atomically."""
    moment = now()
    insert_ignoring_conflict(session, MembershipPrintJob, dict(
        mode="store", status="open", open_slot=STORE_SLOT, address=one_off_address(ic.store_address),
        due_at=next_cutoff_after(moment, ic.batch_cutoff), card_count=0, created_at=moment, updated_at=moment),
        ["open_slot"])
    fresh = {"populate_existing": True}
    batch = session.scalars(lock_for_update(session, sa.select(MembershipPrintJob).where(
        MembershipPrintJob.open_slot == STORE_SLOT)).execution_options(**fresh)).one()
    card = session.scalars(lock_for_update(session, sa.select(MembershipCard).where(
        MembershipCard.id == snap.id)).execution_options(**fresh)).one()
    if card.status != "finalized" or card.print_job_id is not None:
        session.commit()
        return
    card.print_job_id = batch.id
    batch.card_count += 1
    if batch.instantcard_print_job_id is None and batch.creator_card_id is None:
        batch.creator_card_id = card.id
    if batch.card_count >= ic.batch_max_cards:
        batch.open_slot, batch.status = None, "closed"
        enqueue(session, BATCH_JOB_KIND, {"print_job_id": batch.id}, dedupe_key=f"membership-batch:{batch.id}")
    batch.updated_at = moment
    session.commit()


def submit_batch(session: Session, settings: Settings, client, print_job_row_id: int, now) -> None:
    """Close the batch, wait for the cards still joining it, then submit it (taking cancelled cards out)."""
    batch = session.get(MembershipPrintJob, print_job_row_id, populate_existing=True)
    if batch is None or batch.status == "submitted":
        session.commit()
        if batch is not None:
            _read_missed_charge_details(session, client, print_job_row_id, now)
        return
    batch.open_slot, batch.status, batch.updated_at = None, "closed" if batch.status == "open" else batch.status, now()
    waiting = session.scalar(sa.select(sa.func.count()).select_from(MembershipCard).where(
        MembershipCard.print_job_id == batch.id, MembershipCard.status.in_(("pending", "drafted", "finalized"))))
    session.commit()
    if waiting:
        # Waiting costs no attempt (a Park): an outage while cards join must not kill the batch.
        raise Park(f"{waiting} card(s) are still being added to the batch", 15)
    submit_print_job(session, client, print_job_row_id, now, settings.membership.funds_recheck_seconds)


def due_batches(session: Session, settings: Settings, now: datetime) -> list[int]:
    """Open batches whose cutoff has come or that are full."""
    rows = session.scalars(sa.select(MembershipPrintJob).where(
        MembershipPrintJob.mode == "store", MembershipPrintJob.status.in_(("open", "closed")),
        MembershipPrintJob.card_count > 0).execution_options(populate_existing=True))
    return [r.id for r in rows if (r.due_at is not None and r.due_at <= now)
            or r.card_count >= settings.membership.batch_max_cards or r.status == "closed"]


# -- funds -----------------------------------------------------------------------------------------------------
def wake_when_funded(session: Session, client, now: datetime) -> int:
    """Wake parked membership jobs once the organization balance is positive; returns how many jobs were woken.

    A waiting print job's cost is not known (InstantCard gives charge details only for submitted jobs), so a
    positive balance wakes them and each asks Check Balance again; one that is still short parks again."""
    waiting = session.scalar(sa.select(sa.func.count()).select_from(MembershipCard).where(
        MembershipCard.status == "waiting_for_funds"))
    if not waiting:
        session.commit()
        return 0
    balance = call_provider(session, client.organization_balance_cents)
    if balance <= 0:
        log.info("instantcard balance %s cents covers no print job yet", balance)
        return 0
    woken = wake_parked(session, JOB_KIND, now) + wake_parked(session, BATCH_JOB_KIND, now)
    session.commit()
    return woken


# -- reading cards (admin) ------------------------------------------------------------------------------
def card_preview(session: Session, client, card_id: int) -> dict[str, Any]:
    """A card's front and back images from InstantCard, for the admin preview."""
    card = session.get(MembershipCard, card_id, populate_existing=True)
    if card is None:
        session.rollback()
        raise NotFound(f"There is no membership card {card_id}.", code="membership_card_not_found")
    view = card_view(card)
    if card.instantcard_card_id is None:
        raise NotFound(f"Membership card {card_id} has not been created at InstantCard yet.",
                       code="membership_card_not_drafted", status=409)
    preview = call_provider(session, client.preview_card, card.instantcard_card_id)
    return {**view, "front": _image(preview.front), "back": _image(preview.back)}


def _image(value: str) -> str:
    return value if value.startswith(("http://", "https://", "data:")) else f"data:image/png;base64,{value}"


def card_view(card: MembershipCard) -> dict[str, Any]:
    """A membership card as the merchant sees it: InstantCard's card id, its print job and what it cost."""
    job = card.print_job
    return {
        "id": card.id, "line_index": card.line_index, "unit_index": card.unit_index, "sku": card.sku,
        "member_number": card.member_number, "template_id": card.template_id, "status": card.status,
        "expires_on": iso(card.expires_on), "instantcard_card_id": card.instantcard_card_id,
        "print_job": None if job is None else {
            "id": job.id, "instantcard_print_job_id": job.instantcard_print_job_id, "status": job.status,
            "mode": job.mode, "cost_cents": job.cost_cents, "shipping_cost_cents": job.shipping_cost_cents,
            "submitted_at": iso(job.submitted_at)},
        "job_cost_cents": card.job_cost_cents, "last_error": redact(card.last_error) if card.last_error else None,
        "created_at": iso(card.created_at), "submitted_at": iso(card.submitted_at),
    }
