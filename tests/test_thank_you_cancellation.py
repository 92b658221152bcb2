"""An order cancelled while Cardly is placing its thank-you card: Cardly's word, not ours, settles the card.

The cancellation is a real signed `order.cancelled` webhook sent while the worker's `orders/place` call is really
in flight: the worker runs in a thread, the sandbox holds the call (after placing the order, or without) until the
test releases it, and the Cardly client's read timeout is short, so an answer released after it is lost.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from service.db import db, utcnow
from service.jobs.models import Job
from service.thank_you.models import ThankYouCard
from service.thank_you.rules import JOB_KIND, PLACED_FOR_CANCELLED_ORDER
from tests.support import (
    ADMIN,
    cancel_order,
    cancel_while_held,
    order_attention,
    order_completed,
    signed_webhook,
)

READ_TIMEOUT_SECONDS = 1.5  # the client's (test) read timeout; accepting a webhook takes milliseconds
CARD_CREDITS = Decimal("1.00")  # a standard card in the sandbox


@pytest.fixture
def short_timeout(app):
    app.extensions["providers"].cardly.http.timeout = (3.05, READ_TIMEOUT_SECONDS)


def post_order(client, order_id="1001"):
    raw, headers = signed_webhook(order_completed(order_id))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202


def later(hours=2):
    moment = utcnow() + timedelta(hours=hours)
    return lambda: moment


def the_card(app) -> ThankYouCard:
    with app.app_context():
        card = db.session.scalars(sa.select(ThankYouCard)).one()
        db.session.expunge(card)
        return card


def job_states(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Job.state).where(Job.kind == JOB_KIND).order_by(Job.id)))


def attention(app, order_id="1001") -> str | None:
    return order_attention(app, order_id)


def thank_you_totals(client) -> dict:
    return client.get("/v1/reconciliation", headers=ADMIN).get_json()["overall"]["thank_you_cards"]


def placed_note() -> str:
    return f"[{PLACED_FOR_CANCELLED_ORDER}] The thank-you card was placed with Cardly"


def assert_placed_for_the_cancelled_order(app, client, cardly):
    [order] = cardly.placed_orders()
    card = the_card(app)
    assert card.status == "placed" and card.cardly_order_id == order["id"]
    assert card.cost_credits == CARD_CREDITS and card.outcome_unknown is False
    assert "cancelled" in card.note
    assert attention(app).startswith(placed_note())
    totals = thank_you_totals(client)  # the sandbox key is a test key: Cardly counts the card in test mode
    assert (totals["test_mode_placed"], Decimal(totals["test_mode_credits"])) == (1, CARD_CREDITS)


def test_a_card_placed_while_its_order_is_cancelled_and_the_answer_lost_is_read_back_as_placed(
        app, client, run_jobs, cardly, short_timeout):
    post_order(client)
    run_jobs(kinds=("plan_order_effects",))
    held = cardly.hold("orders/place")  # Cardly places the card and spends its credit; the answer comes too late
    cancel_while_held(client, run_jobs, held)

    card = the_card(app)
    assert card.status == "pending" and card.outcome_unknown is True  # not skipped on our word alone
    assert job_states(app) == ["queued"]  # the job is not done: it has to ask Cardly
    run_jobs(clock=later())  # the retry reads Cardly's order list, and places nothing

    assert_placed_for_the_cancelled_order(app, client, cardly)
    assert [r["status"] for r in cardly.place_requests()] == [200]
    assert job_states(app) == ["succeeded"]


def test_a_placement_that_never_reached_cardly_is_read_back_and_the_card_skipped(
        app, client, run_jobs, cardly, short_timeout):
    post_order(client)
    run_jobs(kinds=("plan_order_effects",))
    held = cardly.hold("orders/place", act=False)  # lost on the way: Cardly never placed it
    cancel_while_held(client, run_jobs, held)
    assert the_card(app).status == "pending"

    run_jobs(clock=later())

    card = the_card(app)
    assert (card.status, card.skip_reason, card.outcome_unknown) == ("skipped", "order_cancelled", False)
    assert "shows no card" in card.skip_detail
    assert cardly.placed_orders() == [] and [r["status"] for r in cardly.place_requests()] == [504]
    assert attention(app) is None
    assert thank_you_totals(client)["test_mode_placed"] == 0


def test_a_placement_answered_after_the_cancellation_is_recorded_as_placed_with_a_note(
        app, client, run_jobs, cardly, short_timeout):
    post_order(client)
    run_jobs(kinds=("plan_order_effects",))
    held = cardly.hold("orders/place")
    cancel_while_held(client, run_jobs, held, answer_lost=False)  # Cardly's answer arrives after the cancellation

    assert_placed_for_the_cancelled_order(app, client, cardly)
    assert job_states(app) == ["succeeded"]


def test_a_cancellation_just_before_the_placement_places_nothing(app, client, run_jobs, cardly, short_timeout):
    cardly.set_credit(0)
    post_order(client)
    run_jobs()  # Cardly answers 402: the card waits for credit
    assert the_card(app).status == "waiting_for_credit"
    cardly.set_credit(10)
    held = cardly.hold("account/balance")  # the balance check, the call right before the placement
    cancel_while_held(client, run_jobs, held, answer_lost=False, clock=later())

    card = the_card(app)
    assert (card.status, card.skip_reason, card.outcome_unknown) == ("skipped", "order_cancelled", False)
    assert [r["status"] for r in cardly.place_requests()] == [402]  # no second placement
    assert cardly.placed_orders() == []
    assert attention(app) is None


@pytest.mark.parametrize("act", [True, False])
def test_a_dead_job_whose_placement_was_in_doubt_is_settled_when_the_order_is_cancelled(
        app, client, run_jobs, cardly, short_timeout, act):
    app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], job_max_attempts=1)
    post_order(client)
    run_jobs(kinds=("plan_order_effects",))
    cardly.inject_fault("timeout", delay_seconds=READ_TIMEOUT_SECONDS + 1) if act else \
        cardly.inject_fault("error_500")
    run_jobs()  # no attempt left: the job dies with the outcome unknown
    card = the_card(app)
    assert (card.status, card.failure_kind, card.outcome_unknown) == ("failed", "provider_unavailable", True)

    cancel_order(client)
    assert the_card(app).status == "failed"  # still in doubt: not skipped on our word
    run_jobs()  # the cancellation queued a job that reads Cardly's order list

    if act:
        assert_placed_for_the_cancelled_order(app, client, cardly)
    else:
        card = the_card(app)
        assert (card.status, card.skip_reason, card.outcome_unknown) == ("skipped", "order_cancelled", False)
        assert cardly.placed_orders() == []
    assert len(cardly.place_requests()) == 1
