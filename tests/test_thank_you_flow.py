"""Thank-you cards end to end: signed order webhook → job → the Cardly sandbox over real HTTP."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa

from service.db import db, utcnow
from service.jobs.models import Job
from service.jobs.queue import enqueue
from service.orders.models import Order
from service.thank_you.models import ThankYouCard
from tests.support import ADMIN, order_completed, signed_webhook


@pytest.fixture
def fast_retries(environ):
    """Retries are due at once (no backoff) so one drain shows the whole story."""
    environ["JOB_BACKOFF_BASE_SECONDS"] = "0"
    return environ


@pytest.fixture
def env(request, environ):
    """Extra environment for the app under test (parametrized indirectly, before `app` is built)."""
    environ.update(request.param)
    return environ



def deliver(client, body, msg_id=None):
    raw, headers = signed_webhook(body, msg_id=msg_id)
    response = client.post("/v1/webhooks/orders", data=raw, headers=headers)
    assert response.status_code in (200, 202), response.get_json()
    return response


def card_of(app, shop_order_id="1001") -> ThankYouCard | None:
    with app.app_context():
        card = db.session.scalar(sa.select(ThankYouCard).join(Order).where(Order.shop_order_id == shop_order_id))
        if card is not None:
            db.session.expunge(card)
        return card


def jobs_of_kind(app, kind="send_thank_you_card") -> list[Job]:
    with app.app_context():
        jobs = db.session.scalars(sa.select(Job).where(Job.kind == kind).order_by(Job.id)).all()
        for job in jobs:
            db.session.expunge(job)
        return jobs


def test_completed_order_places_one_card_to_the_shipping_address_with_the_order_key(client, app, cardly, run_jobs):
    deliver(client, order_completed("1001"))
    run_jobs(kinds=("plan_order_effects",))  # the card is planned by the order's planning job
    assert card_of(app).status == "pending"

    run_jobs()

    requests_made = cardly.place_requests()
    assert [(r["idempotency_key"], r["status"]) for r in requests_made] == [("order-1001-g1", 200)]
    [placed] = cardly.placed_orders()
    assert placed["idempotencyKey"] == "order-1001-g1"
    assert placed["purchaseOrderNumber"] == "#1001"
    line = placed["request"]["lines"][0]
    assert line["recipient"] == {"firstName": "Ada", "lastName": "Lovelace", "address": "10 Main St",
                                 "address2": "", "city": "Springfield", "region": "IL", "postcode": "62701",
                                 "country": "US"}
    assert line["artwork"] == "sandbox-thank-you-art"
    assert line["variables"]["firstName"] == "Ada"
    assert line["variables"]["message"] == "Dear Ada,\nThank you for your order #1001!\nDemo Shop"
    card = card_of(app)
    assert card.status == "placed"
    assert card.cardly_order_id == placed["id"]
    assert card.cost_credits == Decimal("1.0")
    assert card.test_mode is True
    assert card.estimated_min_arrival is not None and card.estimated_max_arrival >= card.estimated_min_arrival
    assert card.generation == 1 and card.idempotency_key == "order-1001-g1"
    assert [j.state for j in jobs_of_kind(app)] == ["succeeded"]


def test_the_same_order_delivered_twice_gets_one_card(client, app, cardly, run_jobs):
    body = order_completed("1002")
    deliver(client, body, msg_id="msg_first")
    deliver(client, body, msg_id="msg_first")   # a redelivery
    deliver(client, body, msg_id="msg_second")  # the same event under a new webhook id
    run_jobs()
    run_jobs()

    assert len(cardly.placed_orders()) == 1
    assert len(cardly.place_requests()) == 1
    assert len(jobs_of_kind(app)) == 1


@pytest.mark.parametrize("env", [{"CARDLY_TIMEOUT_SECONDS": "1"}], indirect=True)
@pytest.mark.parametrize("fault", ["place_then_500", "timeout"])
def test_a_retry_after_an_uncertain_answer_reuses_the_key_and_cardly_replays_it(
        fault, env, fast_retries, client, app, cardly, run_jobs):
    cardly.inject_fault(fault, times=1, delay_seconds=1.5)
    deliver(client, order_completed("1003"))

    run_jobs()

    place = cardly.place_requests()
    assert [r["idempotency_key"] for r in place] == ["order-1003-g1", "order-1003-g1"]
    assert place[-1]["replayed"] is True and place[-1]["status"] == 200
    assert len(cardly.placed_orders()) == 1  # Cardly processed the first call; the retry got its stored answer
    card = card_of(app, "1003")
    assert card.status == "placed" and card.calls == 2 and card.generation == 1
    assert card.cardly_order_id == cardly.placed_orders()[0]["id"]
    assert card.outcome_unknown is False


def test_rate_limited_placement_waits_for_retry_after_then_places(client, app, cardly, run_jobs):
    cardly.inject_fault("rate_limit", times=1)
    deliver(client, order_completed("1004"))

    run_jobs()
    [job] = jobs_of_kind(app)
    assert job.state == "queued" and "rate limited" in job.last_error
    assert card_of(app, "1004").status == "pending"

    run_jobs(clock=lambda: utcnow() + timedelta(seconds=5))
    assert card_of(app, "1004").status == "placed"
    assert [r["status"] for r in cardly.place_requests()] == [429, 200]
    assert len(cardly.placed_orders()) == 1


@pytest.fixture
def rule(request, environ):
    environ.update(request.param[0])
    return request.param


@pytest.mark.parametrize("rule", [
    ({"CARDLY_ENABLED": "false"}, {}, "disabled"),
    ({"CARDLY_MIN_ORDER_CENTS": "10000"}, {"total_cents": 9999}, "below_minimum"),
    ({"CARDLY_COUNTRIES": "CA,GB"}, {}, "country_not_allowed"),
    ({}, {"customer": {"first_name": "Ada", "email": "ada@example.com", "accepts_mail": False}}, "opted_out"),
    ({}, {"shipping_address": None}, "no_shipping_address"),
], indirect=True, ids=["disabled", "min_value", "country", "opted_out", "no_address"])
def test_each_rule_skips_the_card_and_records_why(rule, client, app, cardly, run_jobs):
    _env, overrides, reason = rule
    deliver(client, order_completed("2001", **overrides))
    run_jobs()

    card = card_of(app, "2001")
    assert card.status == "skipped"
    assert card.skip_reason == reason and card.skip_detail
    assert jobs_of_kind(app) == []
    assert cardly.place_requests() == []


@pytest.mark.parametrize("env", [{"CARDLY_MIN_ORDER_CENTS": "5250", "CARDLY_COUNTRIES": "us,ca"}], indirect=True)
def test_an_order_at_the_minimum_and_in_an_allowed_country_gets_a_card(env, client, app, cardly, run_jobs):
    deliver(client, order_completed("2002", total_cents=5250))
    run_jobs()
    assert card_of(app, "2002").status == "placed"


def test_no_credit_parks_then_a_balance_check_resumes_under_the_next_generation(client, app, cardly, run_jobs,
                                                                               sandbox):
    cardly.set_credit(0)
    deliver(client, order_completed("3001"))
    run_jobs()

    card = card_of(app, "3001")
    assert card.status == "waiting_for_credit" and card.failure_kind == "credit"
    assert card.cost_credits == Decimal("1.0") and card.balance_credits == Decimal("0")
    [job] = jobs_of_kind(app)
    assert job.state == "parked" and "credit" in job.parked_reason

    # Its own slow recheck while the account is still empty asks for the balance and spends no new key.
    run_jobs(clock=lambda: utcnow() + timedelta(hours=1))
    assert card_of(app, "3001").generation == 1
    assert [r["status"] for r in cardly.place_requests()] == [402]

    # The periodic balance check does nothing while the balance is short …
    with app.app_context():
        enqueue(db.session, "check_cardly_credit", dedupe_key="periodic:check_cardly_credit:1")
        db.session.commit()
    run_jobs()
    assert jobs_of_kind(app)[0].state == "parked"

    # … and wakes the card as soon as it covers one.
    cardly.set_credit(5)
    with app.app_context():
        enqueue(db.session, "check_cardly_credit", dedupe_key="periodic:check_cardly_credit:2")
        db.session.commit()
    run_jobs()

    card = card_of(app, "3001")
    assert card.status == "placed" and card.generation == 2 and card.idempotency_key == "order-3001-g2"
    assert [(r["idempotency_key"], r["status"]) for r in cardly.place_requests()] == [
        ("order-3001-g1", 402), ("order-3001-g2", 200)]
    assert len(cardly.placed_orders()) == 1
    # Why the generation had to move on: Cardly replays the stored 402 for the old key, credit or not.
    replay = requests.post(f"{sandbox.url}/cardly/v2/orders/place", json=card.request_body, timeout=5,
                           headers={"API-Key": "test_sandbox_key", "Idempotency-Key": "order-3001-g1"})
    assert replay.status_code == 402 and replay.headers["Idempotent-Replayed"] == "true"


def test_a_bad_address_fails_with_a_readable_reason(client, app, cardly, run_jobs):
    address = order_completed()["data"]["shipping_address"] | {"postcode": None}
    deliver(client, order_completed("4001", shipping_address=address))
    run_jobs()

    card = card_of(app, "4001")
    assert card.status == "failed" and card.failure_kind == "validation"
    assert "lines.0.recipient.postcode: is required" in card.last_error
    assert card.cardly_request_id and card.cardly_request_id.startswith("req_")
    [job] = jobs_of_kind(app)
    assert job.state == "dead" and "lines.0.recipient.postcode: is required" in job.last_error


@pytest.mark.parametrize("env", [{"CARDLY_ARTWORK": "no-such-art"}], indirect=True)
def test_after_the_merchant_fixes_a_refusal_a_retry_uses_the_next_generation(env, client, app, cardly, run_jobs):
    deliver(client, order_completed("4002"))
    run_jobs()
    card = card_of(app, "4002")
    assert card.status == "failed" and "lines.0.artwork" in card.last_error

    settings = app.extensions["settings"]  # the merchant corrects CARDLY_ARTWORK and restarts
    app.extensions["settings"] = dataclasses.replace(
        settings, cardly=dataclasses.replace(settings.cardly, artwork="sandbox-thank-you-art"))
    [job] = jobs_of_kind(app)
    assert client.post(f"/v1/jobs/{job.id}/retry", headers=ADMIN).status_code == 202
    run_jobs()

    card = card_of(app, "4002")
    assert card.status == "placed" and card.generation == 2
    assert [(r["idempotency_key"], r["status"]) for r in cardly.place_requests()] == [
        ("order-4002-g1", 422), ("order-4002-g2", 200)]


@pytest.fixture
def refused_key(environ, sandbox):
    environ.update(CARDLY_API_KEY="test_revoked_0000", CARDLY_API_URL=f"{sandbox.url}/cardly/v2",
                   CARDLY_ARTWORK="sandbox-thank-you-art")


def test_a_refused_api_key_fails_flagged_as_configuration(refused_key, client, app, cardly, run_jobs):
    cardly.revoke_key("test_revoked_0000")  # well-formed, but Cardly refuses it (401)
    deliver(client, order_completed("5001"))
    run_jobs()

    card = card_of(app, "5001")
    assert card.status == "failed" and card.failure_kind == "configuration"
    assert "test_revoked_0000" not in card.last_error
    assert jobs_of_kind(app)[0].state == "dead"
    assert [r["status"] for r in cardly.place_requests()] == [401]
    assert cardly.placed_orders() == []


def test_an_order_cancelled_before_its_card_is_placed_gets_none(client, app, cardly, run_jobs):
    deliver(client, order_completed("6001"))
    deliver(client, {"type": "order.cancelled", "timestamp": "2026-11-21T10:05:00Z", "data": {"id": "6001"}})
    run_jobs()

    card = card_of(app, "6001")
    assert card.status == "skipped" and card.skip_reason == "order_cancelled"
    assert cardly.place_requests() == []


def test_a_cancellation_after_the_card_was_placed_is_noted_not_hidden(client, app, cardly, run_jobs):
    deliver(client, order_completed("6002"))
    run_jobs()
    deliver(client, {"type": "order.cancelled", "timestamp": "2026-11-21T10:05:00Z", "data": {"id": "6002"}})

    card = card_of(app, "6002")
    assert card.status == "placed" and "cancelled after its card was placed" in card.note


@pytest.mark.parametrize("env", [{"JOB_MAX_ATTEMPTS": "2"}], indirect=True)
def test_when_retries_run_out_the_card_fails_uncertain_and_a_manual_retry_keeps_the_key(
        env, fast_retries, client, app, cardly, run_jobs):
    cardly.inject_fault("error_500", times=2)
    deliver(client, order_completed("7001"))
    run_jobs()

    card = card_of(app, "7001")
    assert card.status == "failed" and card.failure_kind == "provider_unavailable"
    assert card.outcome_unknown is True and "answered 500" in card.last_error
    [job] = jobs_of_kind(app)
    assert job.state == "dead"

    assert client.post(f"/v1/jobs/{job.id}/retry", headers=ADMIN).status_code == 202
    run_jobs()
    card = card_of(app, "7001")
    assert card.status == "placed" and card.generation == 1  # the outcome was never definitive: same key
    assert [r["idempotency_key"] for r in cardly.place_requests()] == ["order-7001-g1"] * 3


class _CancelledWhileCardlyWorks:
    """Cardly as seen by the job while the shop cancels the order (through the service's real HTTP, so in
    another session) during the orders/place call."""

    def __init__(self, real, service_url, shop_order_id):
        self.real, self.service_url, self.shop_order_id = real, service_url, shop_order_id

    def place_order(self, payload, key):
        raw, headers = signed_webhook({"type": "order.cancelled", "timestamp": "2026-11-21T10:05:00Z",
                                       "data": {"id": self.shop_order_id}})
        response = requests.post(f"{self.service_url}/v1/webhooks/orders", data=raw, headers=headers, timeout=10)
        assert response.status_code == 202, response.text
        return self.real.place_order(payload, key)


def test_a_cancellation_racing_the_placement_keeps_cardly_answer_and_notes_it(client, app, live_server, cardly,
                                                                              run_jobs):
    deliver(client, order_completed("6003"))
    providers = app.extensions["providers"]
    providers.cardly = _CancelledWhileCardlyWorks(providers.cardly, live_server.url, "6003")
    run_jobs()

    card = card_of(app, "6003")
    assert card.status == "placed" and card.cardly_order_id == cardly.placed_orders()[0]["id"]
    assert "cancelled while the card was being placed" in card.note


@pytest.mark.parametrize("fault, placed", [("place_then_500", True), ("error_500", False)])
def test_a_cancellation_after_a_lost_answer_is_settled_from_cardlys_order_list(client, app, cardly, run_jobs, fault,
                                                                               placed):
    cardly.inject_fault(fault, times=1)
    deliver(client, order_completed("6003"))
    run_jobs()  # the placement's answer is lost (a 500): retried later under the same key
    deliver(client, {"type": "order.cancelled", "timestamp": "2026-11-21T10:05:00Z", "data": {"id": "6003"}})

    run_jobs(clock=lambda: utcnow() + timedelta(hours=1))

    card = card_of(app, "6003")
    assert card.outcome_unknown is False
    assert len(cardly.placed_orders()) == (1 if placed else 0)
    if placed:  # it cost credits: it must show as placed, and in reconciliation
        assert card.status == "placed" and card.cost_credits and "cancelled after its card was placed" in card.note
        assert card.test_mode is True  # the sandbox key is a test_ key: Cardly's list says testMode
        report = client.get("/v1/reconciliation", headers=ADMIN).get_json()
        spent = report["overall"]["thank_you_cards"]
        assert (spent["placed"], spent["test_mode_placed"]) == (0, 1)
    else:
        assert card.status == "skipped" and "shows no card" in card.skip_detail
