"""Shipping to the store: finalized cards collect in one print job submitted at the daily US Eastern cutoff."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from service.db import db
from service.jobs.queue import enqueue
from service.membership.models import MembershipCard, MembershipPrintJob
from service.membership.rules import BATCH_CHECK_KIND, next_cutoff_after
from service.orders.models import Order
from tests.support import DiesOnceAt, cancel_order, order_completed, signed_webhook

STORE = {"name": "Front Desk", "company": "Demo Shop", "address1": "1 Market Sq", "city": "Boston",
         "region": "MA", "postcode": "02109", "country": "US"}
GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000}



@pytest.fixture
def environ(environ):
    environ.update(INSTANTCARD_SHIP_TO="store", INSTANTCARD_STORE_ADDRESS=json.dumps(STORE),
                   INSTANTCARD_BATCH_CUTOFF="15:30", INSTANTCARD_BATCH_MAX_CARDS="50")
    return environ



def at(text: str):
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return lambda: moment


def post_order(client, order_id, quantity=1):
    raw, headers = signed_webhook(order_completed(order_id, line_items=[{**GOLD, "quantity": quantity}]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202


def check_cutoff(app, run_jobs, clock, key):
    with app.app_context():
        enqueue(db.session, BATCH_CHECK_KIND, dedupe_key=key)
        db.session.commit()
    run_jobs(clock=clock)


def statuses(app):
    with app.app_context():
        return list(db.session.scalars(sa.select(MembershipCard.status).order_by(MembershipCard.id)))


def batches(app):
    with app.app_context():
        rows = list(db.session.scalars(sa.select(MembershipPrintJob).order_by(MembershipPrintJob.id)))
        db.session.expunge_all()
        return rows


def test_the_cutoff_is_daylight_saving_aware():
    # 15:30 in New York is 19:30 UTC in July (EDT) and 20:30 UTC in December (EST).
    assert next_cutoff_after(datetime(2027, 7, 14, 12, 0, tzinfo=UTC), "15:30") == datetime(2027, 7, 14, 19, 30, tzinfo=UTC)
    assert next_cutoff_after(datetime(2027, 12, 14, 12, 0, tzinfo=UTC), "15:30") == datetime(2027, 12, 14, 20, 30, tzinfo=UTC)
    # After today's cutoff the batch is for tomorrow's.
    assert next_cutoff_after(datetime(2027, 7, 14, 19, 31, tzinfo=UTC), "15:30") == datetime(2027, 7, 15, 19, 30, tzinfo=UTC)
    # Across the November change: 15:30 EDT on Saturday, 15:30 EST on Sunday.
    assert next_cutoff_after(datetime(2027, 11, 6, 20, 0, tzinfo=UTC), "15:30") == datetime(2027, 11, 7, 20, 30, tzinfo=UTC)


@pytest.mark.parametrize("day, before_utc, after_utc", [
    ("2027-07-14", "19:29", "19:31"),   # EDT: cutoff 19:30 UTC
    ("2027-12-14", "20:29", "20:31"),   # EST: cutoff 20:30 UTC
])
def test_a_days_cards_share_one_print_job_submitted_at_the_cutoff(app, client, run_jobs, instantcard,
                                                                   day, before_utc, after_utc):
    morning = at(f"{day}T10:00:00-05:00")
    post_order(client, "2001")
    post_order(client, "2002", quantity=2)
    run_jobs(clock=morning)

    assert statuses(app) == ["queued"] * 3
    with app.app_context():  # the first card's create and the others' adds were answered: nothing in doubt
        assert set(db.session.execute(sa.select(MembershipCard.create_outcome_unknown_since,
                                                MembershipCard.add_outcome_unknown_since)).all()) == {(None, None)}
        assert db.session.scalar(sa.select(MembershipPrintJob.create_outcome_unknown_since)) is None
        db.session.rollback()
    assert instantcard.counts()["print_jobs"] == 1
    remote = next(iter(instantcard.print_jobs.values()))
    assert len(remote["card_ids"]) == 3 and remote["status"] == 0
    assert remote["address"]["address_1"] == "1 Market Sq" and remote["address"]["full_name"] == "Front Desk"
    assert remote["shipping_provider_id"] == 1

    check_cutoff(app, run_jobs, at(f"{day}T{before_utc}:00+00:00"), "check-before")
    assert statuses(app) == ["queued"] * 3
    assert instantcard.counts()["submitted_print_jobs"] == 0

    check_cutoff(app, run_jobs, at(f"{day}T{after_utc}:00+00:00"), "check-after")
    assert statuses(app) == ["submitted"] * 3
    assert instantcard.counts()["print_jobs"] == 1
    assert instantcard.counts()["submitted_print_jobs"] == 1
    (batch,) = batches(app)
    assert batch.status == "submitted" and batch.card_count == 3
    assert batch.submit_outcome_unknown_since is None
    assert batch.cost_cents == 3 * 250 + 100
    with app.app_context():
        shares = list(db.session.scalars(sa.select(MembershipCard.job_cost_cents)))
    assert sum(shares) == batch.cost_cents


def test_cards_after_the_cutoff_start_a_new_batch(app, client, run_jobs, instantcard):
    post_order(client, "2001")
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    check_cutoff(app, run_jobs, at("2027-07-14T15:31:00-04:00"), "cutoff-1")
    post_order(client, "2002")
    run_jobs(clock=at("2027-07-14T16:00:00-04:00"))
    assert statuses(app) == ["submitted", "queued"]
    first, second = batches(app)
    assert first.status == "submitted" and second.status == "open"
    assert second.due_at == datetime(2027, 7, 15, 19, 30, tzinfo=UTC)
    assert instantcard.counts()["print_jobs"] == 2


def test_a_full_batch_is_submitted_at_once(app, client, run_jobs, instantcard, environ):
    app.extensions["settings"] = _with_max_cards(app.extensions["settings"], 2)
    post_order(client, "2001", quantity=3)
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    assert statuses(app) == ["submitted", "submitted", "queued"]
    first, second = batches(app)
    assert (first.status, first.card_count) == ("submitted", 2)
    assert (second.status, second.card_count) == ("open", 1)
    assert instantcard.counts()["submitted_print_jobs"] == 1


def test_a_cancelled_card_is_taken_out_of_the_batch_before_submitting(app, client, run_jobs, instantcard):
    post_order(client, "2001")
    post_order(client, "2002")
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    raw, headers = signed_webhook({"type": "order.cancelled", "timestamp": "2027-07-14T15:00:00Z",
                                   "data": {"id": "2002"}})
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    check_cutoff(app, run_jobs, at("2027-07-14T15:31:00-04:00"), "cutoff")
    assert statuses(app) == ["submitted", "cancelled"]
    remote = next(iter(instantcard.print_jobs.values()))
    assert remote["status"] == 1 and len(remote["card_ids"]) == 1


def _with_max_cards(settings, n):
    import dataclasses
    return dataclasses.replace(settings, membership=dataclasses.replace(settings.membership, batch_max_cards=n))


def test_cards_wait_for_the_batchs_first_card_to_create_it(app, client, run_jobs, instantcard):
    morning = datetime(2027, 7, 14, 14, 0, tzinfo=UTC)
    post_order(client, "2001")
    post_order(client, "2002")
    instantcard.inject_fault("create_print_job", "error_500")
    run_jobs(clock=lambda: morning)
    # The first card's create failed; the second card is counted into the same batch and waits for it.
    assert statuses(app) == ["finalized", "finalized"]
    (batch,) = batches(app)
    assert batch.card_count == 2 and batch.instantcard_print_job_id is None
    later = datetime(2027, 7, 14, 16, 0, tzinfo=UTC)
    run_jobs(clock=lambda: later)
    assert statuses(app) == ["queued", "queued"]
    assert instantcard.counts()["print_jobs"] == 1
    assert len(next(iter(instantcard.print_jobs.values()))["card_ids"]) == 2


def test_a_batch_short_of_funds_waits_then_submits_when_funds_arrive(app, client, run_jobs, instantcard):
    from service.membership.rules import FUNDS_CHECK_KIND

    instantcard.set_balance(0)
    post_order(client, "2001")
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    after_cutoff = at("2027-07-14T15:31:00-04:00")
    check_cutoff(app, run_jobs, after_cutoff, "cutoff")
    assert statuses(app) == ["waiting_for_funds"]
    assert instantcard.counts()["submitted_print_jobs"] == 0
    instantcard.add_funds(20_00)
    with app.app_context():
        enqueue(db.session, FUNDS_CHECK_KIND, dedupe_key="funds")
        db.session.commit()
    run_jobs(clock=after_cutoff)
    assert statuses(app) == ["submitted"]
    assert instantcard.counts()["submitted_print_jobs"] == 1


def test_a_batch_run_again_after_its_submit_reads_the_charge_details_it_missed(app, client, run_jobs, instantcard):
    post_order(client, "2001")
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    providers = app.extensions["providers"]
    providers.instantcard = DiesOnceAt(providers.instantcard, "charge_details")  # between the submit and its costs
    check_cutoff(app, run_jobs, at("2027-07-14T15:31:00-04:00"), "cutoff")
    (batch,) = batches(app)
    assert batch.status == "submitted" and batch.cost_cents is None and statuses(app) == ["submitted"]
    run_jobs(clock=at("2027-07-15T10:00:00-04:00"))  # the batch's job, run again
    (batch,) = batches(app)
    assert (batch.cost_cents, batch.shipping_cost_cents) == (250 + 100, 100)
    assert instantcard.counts()["submitted_print_jobs"] == 1 and instantcard.calls["submit_print_job"] == 1


class _CancelsOnce:
    """The InstantCard client, except that the shop cancels `order_id` just before the first `method` call."""

    def __init__(self, real, client, method, order_id):
        self._real, self._client, self._method, self._order_id, self._done = real, client, method, order_id, False

    def __getattr__(self, name):
        attribute = getattr(self._real, name)
        if name != self._method or self._done:
            return attribute

        def call(*args, **kwargs):
            self._done = True
            cancel_order(self._client, self._order_id)
            return attribute(*args, **kwargs)

        return call


@pytest.mark.parametrize("method, cancelled", [("add_cards", "2002"), ("create_print_job", "2001")])
def test_a_card_cancelled_while_it_joins_the_batch_is_not_printed(app, client, run_jobs, instantcard, method,
                                                                  cancelled):
    post_order(client, "2001")
    post_order(client, "2002")
    providers = app.extensions["providers"]
    providers.instantcard = _CancelsOnce(providers.instantcard, client, method, cancelled)
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    providers.instantcard = providers.instantcard._real
    check_cutoff(app, run_jobs, at("2027-07-14T15:31:00-04:00"), "cutoff")

    live = "2002" if cancelled == "2001" else "2001"
    with app.app_context():
        rows = dict(db.session.execute(sa.select(Order.shop_order_id, MembershipCard.status)
                                       .join(Order, Order.id == MembershipCard.order_id)).all())
        cost = db.session.scalar(sa.select(MembershipCard.job_cost_cents).join(Order, Order.id == MembershipCard.order_id)
                                 .where(Order.shop_order_id == live))
    assert rows == {live: "submitted", cancelled: "cancelled"}
    [remote] = instantcard.print_jobs.values()
    assert remote["status"] == 1 and len(remote["card_ids"]) == 1
    assert cost == batches(app)[0].cost_cents  # the one printed card carries the whole cost


@pytest.mark.parametrize("fault", ["error_500", "apply_then_500"])
def test_a_batch_whose_first_card_was_cancelled_is_created_by_the_next(app, client, run_jobs, instantcard, fault):
    post_order(client, "2001")
    post_order(client, "2002")
    # The first card's create fails once (apply_then_500: InstantCard made the print job, the answer was lost)…
    instantcard.inject_fault("create_print_job", fault)
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    cancel_order(client, "2001")  # …and then its order is cancelled

    run_jobs(clock=at("2027-07-14T12:00:00-04:00"))
    check_cutoff(app, run_jobs, at("2027-07-14T15:31:00-04:00"), "cutoff")

    assert statuses(app) == ["cancelled", "submitted"]
    [remote] = submitted_jobs(instantcard)
    assert len(remote["card_ids"]) == 1
    # apply_then_500: the first create's print job stays at InstantCard, empty and never submitted.
    assert instantcard.counts()["print_jobs"] == (2 if fault == "apply_then_500" else 1)
    assert all(j["card_ids"] == [] for j in instantcard.print_jobs.values() if j["status"] != 1)


def test_waiting_for_the_batch_costs_no_attempt(app, client, run_jobs, instantcard):
    from service.jobs.models import Job
    from service.membership.rules import JOB_KIND

    post_order(client, "2001")
    post_order(client, "2002")
    instantcard.inject_fault("create_print_job", "error_500", times=20)  # a long outage for the first card
    for hour in range(10, 16):  # six tries of the first card (of its 8): the second card waits all along
        run_jobs(clock=at(f"2027-07-14T{hour}:00:00-04:00"))
    with app.app_context():
        second = db.session.scalars(sa.select(Job).where(Job.kind == JOB_KIND).order_by(Job.id)).all()[1]
        assert (second.state, second.failures) == ("parked", 0)


@settings(max_examples=500)
@given(moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2029, 1, 1), timezones=st.just(UTC)),
       hour=st.integers(0, 23), minute=st.sampled_from([0, 1, 29, 30, 59]))
def test_the_next_cutoff_is_always_ahead_and_within_a_day(moment, hour, minute):
    """Property, clock changes included: the next cutoff is after the moment, and at most a day (+ 1 h) later."""
    cutoff = next_cutoff_after(moment, f"{hour:02d}:{minute:02d}")
    assert moment < cutoff <= moment + timedelta(hours=25)


def test_the_autumn_clock_change_does_not_put_the_cutoff_in_the_past():
    moment = datetime(2026, 11, 1, 6, 15, tzinfo=UTC)  # 01:15 EST, after the second 01:00 began
    assert next_cutoff_after(moment, "01:30") > moment


def submitted_jobs(instantcard) -> list[dict]:
    return [j for j in instantcard.print_jobs.values() if j["status"] == 1]


@pytest.mark.parametrize("mode", ["apply_then_500", "error_500"])
def test_a_card_whose_add_answer_was_lost_is_on_the_batch_once(app, client, run_jobs, instantcard, mode):
    post_order(client, "2001")
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    instantcard.inject_fault("add_cards", mode)  # apply_then_500: InstantCard added it, the answer was lost
    post_order(client, "2002")
    run_jobs(clock=at("2027-07-14T10:05:00-04:00"))
    assert statuses(app) == ["queued", "finalized"]
    run_jobs(clock=at("2027-07-14T11:00:00-04:00"))  # the retry takes it off (404 if it was not on) and adds it
    assert statuses(app) == ["queued", "queued"]

    check_cutoff(app, run_jobs, at("2027-07-14T15:31:00-04:00"), "cutoff")

    assert statuses(app) == ["submitted", "submitted"]
    [remote] = submitted_jobs(instantcard)
    assert sorted(remote["card_ids"]) == sorted(set(remote["card_ids"])) and len(remote["card_ids"]) == 2
    assert instantcard.counts()["balance_cents"] == 100_00 - (2 * 250 + 100)


def test_a_card_whose_add_was_lost_on_its_last_attempt_is_taken_off_the_batch_and_joins_the_next(
        app, client, run_jobs, instantcard):
    import dataclasses

    from service.jobs.models import Job
    from service.membership.rules import JOB_KIND
    from tests.support import ADMIN

    app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], job_max_attempts=1)
    post_order(client, "2001")
    run_jobs(clock=at("2027-07-14T10:00:00-04:00"))
    instantcard.inject_fault("add_cards", "apply_then_500")  # InstantCard adds the card; the answer is lost
    post_order(client, "2002")
    run_jobs(clock=at("2027-07-14T10:05:00-04:00"))
    assert statuses(app) == ["queued", "failed"]  # no attempt left to find out

    check_cutoff(app, run_jobs, at("2027-07-14T15:31:00-04:00"), "cutoff")

    # InstantCard's batch does not list its cards: the failed card is taken off it, so what it prints is known.
    assert statuses(app) == ["submitted", "failed"]
    [remote] = submitted_jobs(instantcard)
    assert len(remote["card_ids"]) == 1
    (batch,) = batches(app)
    assert (batch.card_count, batch.cost_cents) == (1, 250 + 100)
    with app.app_context():
        failed = db.session.scalars(sa.select(MembershipCard).where(MembershipCard.status == "failed")).one()
        assert failed.print_job_id is None and "taken off the batch" in failed.last_error
        job_id = db.session.scalars(sa.select(Job.id).where(Job.kind == JOB_KIND, Job.state == "dead")).one()
        db.session.rollback()

    # A person's retry puts it on the next batch, printed at the next cutoff.
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN).status_code == 202
    run_jobs(clock=at("2027-07-14T16:00:00-04:00"))
    check_cutoff(app, run_jobs, at("2027-07-15T15:31:00-04:00"), "next-cutoff")
    assert statuses(app) == ["submitted", "submitted"]
    assert [len(j["card_ids"]) for j in submitted_jobs(instantcard)] == [1, 1]
    assert instantcard.counts()["balance_cents"] == 100_00 - 2 * (250 + 100)
