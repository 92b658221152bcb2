"""An order cancelled while InstantCard is being asked to print its membership card: the truth wins.

The cancellation is a real signed `order.cancelled` webhook sent while the worker's call to InstantCard is
really in flight: the worker runs in a thread, the sandbox holds the call (after acting on it, or not) until
the test releases it, and the client's read timeout is short, so an answer released after it is lost.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
import sqlalchemy as sa

from service.db import db, utcnow
from service.jobs.models import Job
from service.jobs.queue import enqueue
from service.membership.models import MembershipCard, MembershipPrintJob
from service.membership.rules import BATCH_CHECK_KIND, JOB_KIND, PRINTED_FOR_CANCELLED_ORDER
from service.orders.models import Order
from tests.support import (
    ADMIN,
    cancel_order,
    cancel_while_held,
    order_attention,
    order_completed,
    signed_webhook,
)

GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000}
STORE = {"name": "Front Desk", "company": "Demo Shop", "address1": "1 Market Sq", "city": "Boston",
         "region": "MA", "postcode": "02109", "country": "US"}
READ_TIMEOUT_SECONDS = 1.5  # the client's (test) read timeout; accepting a webhook takes milliseconds
CARD_COST_CENTS = 250 + 100  # one card and shipping provider 1, in the sandbox


def post_order(client, order_id="1001", quantity=1):
    raw, headers = signed_webhook(order_completed(order_id, line_items=[{**GOLD, "quantity": quantity}]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202


def later(hours=2):
    moment = utcnow() + timedelta(hours=hours)
    return lambda: moment


@pytest.fixture
def environ(environ):
    """No thank-you cards: the order's notes here are the membership card's alone."""
    environ["CARDLY_ENABLED"] = "false"
    return environ


@pytest.fixture
def short_timeout(app):
    app.extensions["providers"].instantcard.http.timeout = (3.05, READ_TIMEOUT_SECONDS)


def cards(app) -> dict[str, MembershipCard]:
    """The cards by their order's shop id (one card per order in these tests)."""
    with app.app_context():
        rows = dict(db.session.execute(sa.select(Order.shop_order_id, MembershipCard)
                                       .join(Order, Order.id == MembershipCard.order_id)).all())
        db.session.expunge_all()
        return rows


def the_card(app) -> MembershipCard:
    [card] = cards(app).values()
    return card


def print_jobs(app) -> list[MembershipPrintJob]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(MembershipPrintJob).order_by(MembershipPrintJob.id)))
        db.session.expunge_all()
        return rows


def attention(app, order_id="1001") -> str | None:
    return order_attention(app, order_id)


def membership_totals(client, first=None, last=None) -> dict:
    first = first or utcnow().date()
    report = client.get(f"/v1/reconciliation?from={first}&to={last or first + timedelta(days=1)}", headers=ADMIN)
    return report.get_json()["overall"]["membership_cards"]


def printed_note(card: MembershipCard) -> str:
    return f"[{PRINTED_FOR_CANCELLED_ORDER}] Membership card {card.member_number} was printed and charged"


def never_printed(instantcard, card: MembershipCard) -> bool:
    """InstantCard still has the card (finalized), on no submitted print job, never submitted."""
    remote = instantcard.cards[int(card.instantcard_card_id)]
    on_submitted = [j for j in instantcard.print_jobs.values()
                    if j["status"] == 1 and int(card.instantcard_card_id) in j["card_ids"]]
    return remote["status"] == "finalized" and remote.get("last_submitted_at") is None and not on_submitted


# -- shipped to the member: one print job per card, submitted by the card's job ------------------------------
def test_a_card_printed_while_its_order_is_cancelled_and_the_answer_lost_is_recorded_as_submitted(
        app, client, run_jobs, instantcard, short_timeout):
    post_order(client)
    held = instantcard.hold("submit_print_job")  # InstantCard prints and charges; its answer comes too late
    cancel_while_held(client, run_jobs, held)

    assert the_card(app).status == "cancel_requested"  # not cancelled on our word alone
    run_jobs(clock=later())  # the retry reads the print job back from InstantCard

    card = the_card(app)
    assert card.status == "submitted" and card.submitted_at is not None
    [job] = print_jobs(app)
    assert job.status == "submitted" and job.cost_cents == CARD_COST_CENTS
    assert instantcard.counts()["submitted_print_jobs"] == 1
    assert instantcard.counts()["balance_cents"] == 100_00 - CARD_COST_CENTS  # charged once
    assert attention(app).startswith(printed_note(card))
    totals = membership_totals(client)
    assert (totals["submitted"], totals["print_jobs_submitted"], totals["job_cost_cents"]) == (1, 1, CARD_COST_CENTS)


def test_a_submit_answered_after_the_cancellation_is_recorded_as_submitted_with_a_note(
        app, client, run_jobs, instantcard, short_timeout):
    post_order(client)
    held = instantcard.hold("submit_print_job")
    cancel_while_held(client, run_jobs, held, answer_lost=False)  # the answer arrives after the cancellation

    card = the_card(app)
    assert card.status == "submitted" and "cancelled" in card.last_error
    assert print_jobs(app)[0].status == "submitted"
    assert attention(app).startswith(printed_note(card))
    assert instantcard.counts()["balance_cents"] == 100_00 - CARD_COST_CENTS


def test_a_submit_that_never_reached_instantcard_is_read_back_and_the_card_cancelled(
        app, client, run_jobs, instantcard, short_timeout):
    post_order(client)
    held = instantcard.hold("submit_print_job", act=False)  # lost on the way: InstantCard never acted
    cancel_while_held(client, run_jobs, held)
    assert the_card(app).status == "cancel_requested"

    run_jobs(clock=later())

    card = the_card(app)
    assert card.status == "cancelled" and "did not print" in card.last_error
    [job] = print_jobs(app)
    assert job.status == "closed" and job.submitted_at is None  # not left open
    assert instantcard.counts()["submitted_print_jobs"] == 0
    assert instantcard.counts()["balance_cents"] == 100_00
    assert instantcard.calls["submit_print_job"] == 1  # the read-back did not submit again
    assert never_printed(instantcard, card)
    assert attention(app) is None
    totals = membership_totals(client)
    assert (totals["submitted"], totals["print_jobs_submitted"], totals["job_cost_cents"]) == (0, 0, 0)


def test_a_cancellation_just_before_the_submit_prints_nothing(app, client, run_jobs, instantcard, short_timeout):
    post_order(client)
    held = instantcard.hold("charge_details")  # the funds check, the call right before the submit
    cancel_while_held(client, run_jobs, held, answer_lost=False)

    card = the_card(app)
    assert card.status == "cancelled"
    assert print_jobs(app)[0].status == "closed"
    assert "submit_print_job" not in instantcard.calls
    assert instantcard.counts()["balance_cents"] == 100_00
    assert never_printed(instantcard, card)
    assert attention(app) is None


def test_a_cancellation_after_the_card_was_submitted_keeps_it_and_tells_the_merchant(app, client, run_jobs,
                                                                                      instantcard):
    post_order(client)
    run_jobs()
    cancel_order(client)

    card = the_card(app)
    assert card.status == "submitted"
    assert attention(app).startswith(printed_note(card))
    assert membership_totals(client)["job_cost_cents"] == CARD_COST_CENTS


def set_max_attempts(app, attempts):
    app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], job_max_attempts=attempts)


def retry_dead_card_job(app, client):
    with app.app_context():
        job_id = db.session.scalar(sa.select(Job.id).where(Job.kind == JOB_KIND, Job.state == "dead"))
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN).status_code == 202


def test_a_dead_job_whose_submit_was_in_doubt_is_read_back_when_the_order_is_cancelled(app, client, run_jobs,
                                                                                         instantcard, short_timeout):
    set_max_attempts(app, 1)
    instantcard.timeout_delay_seconds = READ_TIMEOUT_SECONDS + 0.5
    post_order(client)
    instantcard.inject_fault("submit_print_job", "timeout")  # printed, the answer too late, no attempt left
    run_jobs()
    assert the_card(app).status == "failed"

    cancel_order(client)
    assert the_card(app).status == "cancel_requested"  # its submit may have printed it
    retry_dead_card_job(app, client)
    run_jobs()

    card = the_card(app)
    assert card.status == "submitted"
    assert print_jobs(app)[0].status == "submitted"
    assert attention(app).startswith(printed_note(card))
    assert instantcard.counts()["submitted_print_jobs"] == 1


def test_a_requested_cancellation_survives_a_failed_read_back(app, client, run_jobs, instantcard, short_timeout):
    set_max_attempts(app, 2)
    post_order(client)
    held = instantcard.hold("submit_print_job")
    cancel_while_held(client, run_jobs, held)
    instantcard.inject_fault("fetch_print_job", "error_500")  # the read-back fails on the last attempt
    run_jobs(clock=later())
    card = the_card(app)
    assert card.status == "cancel_requested" and "500" in card.last_error  # not `failed`: a retry must not print

    retry_dead_card_job(app, client)
    run_jobs(clock=later())
    assert the_card(app).status == "submitted"
    assert instantcard.counts()["submitted_print_jobs"] == 1
    assert instantcard.calls["submit_print_job"] == 1


def test_a_read_back_that_does_not_say_whether_it_printed_neither_cancels_nor_submits(
        app, client, run_jobs, instantcard, sandbox, short_timeout):
    post_order(client)
    held = instantcard.hold("submit_print_job")
    cancel_while_held(client, run_jobs, held)
    [job] = print_jobs(app)
    with responses.RequestsMock() as wire:  # InstantCard's print job answer without a status or submitted_at
        wire.add_passthru(sandbox.url)
        wire.get(f"{sandbox.url}/instantcard/api/v2/organizations/1/print_jobs/{job.instantcard_print_job_id}",
                 json={"id": int(job.instantcard_print_job_id)})
        run_jobs(clock=later())

    card = the_card(app)
    assert card.status == "cancel_requested" and "does not say whether it was submitted" in card.last_error
    assert instantcard.calls["submit_print_job"] == 1
    with app.app_context():
        assert db.session.scalar(sa.select(Job.state).where(Job.kind == JOB_KIND)) == "dead"  # for a person


@pytest.mark.parametrize("step, answer_lost", [("create_print_job", False), ("create_print_job", True),
                                               ("add_cards", False), ("add_cards", True)])
def test_a_card_cancelled_while_it_is_put_on_its_print_job_is_never_printed_later(
        app, client, run_jobs, instantcard, short_timeout, step, answer_lost):
    post_order(client)
    held = instantcard.hold(step)  # InstantCard acts (the print job is made, the card added); meanwhile: cancelled
    cancel_while_held(client, run_jobs, held, answer_lost=answer_lost)
    run_jobs(clock=later())
    post_order(client, "1002")
    run_jobs()

    printed = cards(app)
    assert (printed["1001"].status, printed["1002"].status) == ("cancelled", "submitted")
    # Kept at InstantCard as a finalized card on a print job nobody submits; the next order's job is its own.
    assert never_printed(instantcard, printed["1001"])
    assert instantcard.counts()["submitted_print_jobs"] == 1
    assert instantcard.counts()["balance_cents"] == 100_00 - CARD_COST_CENTS


# -- shipped to the store: a daily batch, submitted by the batch's job --------------------------------------
MORNING = datetime(2027, 7, 14, 14, 0, tzinfo=UTC)  # 10:00 in New York
AFTER_CUTOFF = datetime(2027, 7, 14, 19, 31, tzinfo=UTC)  # 15:31 in New York
BATCH_OF_TWO_CENTS = 2 * 250 + 100


class TestStoreBatch:
    @pytest.fixture
    def environ(self, environ):
        environ.update(INSTANTCARD_SHIP_TO="store", INSTANTCARD_STORE_ADDRESS=json.dumps(STORE))
        return environ

    @pytest.fixture
    def batch_of_two(self, app, client, run_jobs):
        post_order(client, "2001")
        post_order(client, "2002")
        run_jobs(clock=lambda: MORNING)
        assert [c.status for c in cards(app).values()] == ["queued", "queued"]
        with app.app_context():
            enqueue(db.session, BATCH_CHECK_KIND, dedupe_key="cutoff")
            db.session.commit()

    @staticmethod
    def day_totals(client):
        return membership_totals(client, MORNING.date(), MORNING.date())

    @staticmethod
    def the_batch(instantcard):
        [remote] = instantcard.print_jobs.values()
        return remote

    def test_a_batch_printed_while_an_order_is_cancelled_and_the_answer_lost_is_recorded_whole(
            self, app, client, run_jobs, instantcard, short_timeout, batch_of_two):
        held = instantcard.hold("submit_print_job")
        cancel_while_held(client, run_jobs, held, "2002", clock=lambda: AFTER_CUTOFF)
        assert cards(app)["2002"].status == "cancel_requested"

        run_jobs(clock=lambda: AFTER_CUTOFF + timedelta(hours=1))  # the batch job's retry reads it back

        after = cards(app)
        assert (after["2001"].status, after["2002"].status) == ("submitted", "submitted")
        assert attention(app, "2002").startswith(printed_note(after["2002"])) and attention(app, "2001") is None
        [batch] = print_jobs(app)
        assert batch.status == "submitted" and batch.cost_cents == BATCH_OF_TWO_CENTS
        assert sum(c.job_cost_cents for c in after.values()) == BATCH_OF_TWO_CENTS
        assert len(self.the_batch(instantcard)["card_ids"]) == 2
        assert instantcard.counts()["balance_cents"] == 100_00 - BATCH_OF_TWO_CENTS
        totals = self.day_totals(client)
        assert (totals["print_jobs_submitted"], totals["job_cost_cents"]) == (1, BATCH_OF_TWO_CENTS)

    def test_a_batch_submit_that_never_reached_instantcard_is_resubmitted_without_the_cancelled_card(
            self, app, client, run_jobs, instantcard, short_timeout, batch_of_two):
        held = instantcard.hold("submit_print_job", act=False)
        cancel_while_held(client, run_jobs, held, "2002", clock=lambda: AFTER_CUTOFF)

        run_jobs(clock=lambda: AFTER_CUTOFF + timedelta(hours=1))

        after = cards(app)
        assert (after["2001"].status, after["2002"].status) == ("submitted", "cancelled")
        assert after["2002"].print_job_id is None and never_printed(instantcard, after["2002"])
        remote = self.the_batch(instantcard)
        assert remote["status"] == 1 and remote["card_ids"] == [int(after["2001"].instantcard_card_id)]
        [batch] = print_jobs(app)
        assert (batch.status, batch.card_count, batch.cost_cents) == ("submitted", 1, CARD_COST_CENTS)
        assert after["2001"].job_cost_cents == CARD_COST_CENTS
        assert attention(app, "2002") is None
        assert self.day_totals(client)["job_cost_cents"] == CARD_COST_CENTS

    def test_a_cancellation_while_the_batch_funds_are_checked_takes_the_card_out_first(
            self, app, client, run_jobs, instantcard, short_timeout, batch_of_two):
        held = instantcard.hold("charge_details")
        cancel_while_held(client, run_jobs, held, "2002", answer_lost=False, clock=lambda: AFTER_CUTOFF)

        after = cards(app)
        assert (after["2001"].status, after["2002"].status) == ("submitted", "cancelled")
        assert never_printed(instantcard, after["2002"])
        assert len(self.the_batch(instantcard)["card_ids"]) == 1
        [batch] = print_jobs(app)
        assert batch.cost_cents == CARD_COST_CENTS  # the funds were checked again without the card
        assert instantcard.counts()["balance_cents"] == 100_00 - CARD_COST_CENTS

    def test_a_card_cancelled_while_its_add_answer_is_lost_is_taken_off_the_batch(
            self, app, client, run_jobs, instantcard, short_timeout):
        post_order(client, "2001")
        run_jobs(clock=lambda: MORNING)
        post_order(client, "2002")
        held = instantcard.hold("add_cards")  # InstantCard puts the card on the batch; the answer is lost
        cancel_while_held(client, run_jobs, held, "2002", clock=lambda: MORNING)
        with app.app_context():
            enqueue(db.session, BATCH_CHECK_KIND, dedupe_key="cutoff")
            db.session.commit()
        run_jobs(clock=lambda: AFTER_CUTOFF)

        after = cards(app)
        assert (after["2001"].status, after["2002"].status) == ("submitted", "cancelled")
        assert never_printed(instantcard, after["2002"])
        assert self.the_batch(instantcard)["card_ids"] == [int(after["2001"].instantcard_card_id)]
        assert instantcard.counts()["balance_cents"] == 100_00 - CARD_COST_CENTS

    def test_a_cancellation_after_the_batch_was_submitted_keeps_the_card_and_tells_the_merchant(
            self, app, client, run_jobs, instantcard, batch_of_two):
        run_jobs(clock=lambda: AFTER_CUTOFF)
        cancel_order(client, "2002")
        after = cards(app)
        assert after["2002"].status == "submitted"
        assert attention(app, "2002").startswith(printed_note(after["2002"]))

    def test_a_card_cancelled_before_the_cutoff_is_in_no_later_batch(self, app, client, run_jobs, instantcard,
                                                                      batch_of_two):
        cancel_order(client, "2002")
        assert cards(app)["2002"].status == "cancel_requested"  # it is on InstantCard's open batch
        run_jobs(clock=lambda: AFTER_CUTOFF)
        post_order(client, "2003")  # the next day's batch
        run_jobs(clock=lambda: AFTER_CUTOFF + timedelta(hours=1))
        with app.app_context():
            enqueue(db.session, BATCH_CHECK_KIND, dedupe_key="next-cutoff")
            db.session.commit()
        run_jobs(clock=lambda: AFTER_CUTOFF + timedelta(days=1))

        after = cards(app)
        assert [after[o].status for o in ("2001", "2002", "2003")] == ["submitted", "cancelled", "submitted"]
        assert instantcard.counts()["submitted_print_jobs"] == 2
        assert never_printed(instantcard, after["2002"])
        assert instantcard.counts()["balance_cents"] == 100_00 - 2 * CARD_COST_CENTS
