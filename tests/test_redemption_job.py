"""The redemption job's recovery rules, driven through the real worker against the sandbox Instagift."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import money
from service.checkout.models import Cart, GiftCardHold
from service.db import db, utcnow
from service.jobs.models import Job
from service.jobs.queue import retry_by_person
from service.jobs.registry import RetryLater
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption
from service.redemption.rules import redeem
from tests.support import ADMIN, SHOP, cancel_order, order_attention, order_completed, signed_webhook


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "10000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "10000/minute"
    return environ



def ordered_cart(client, instagift, order_id: str, *, balance: int = 10000, total: int = 3000,
                 splittable: bool = True, accept_forfeit: bool = False) -> str:
    cert_id, code = instagift.add_certificate(balance, splittable=splittable)
    token = client.post("/v1/carts", json={"total_cents": total}).get_json()["cart_token"]
    r = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code, "accept_forfeit": accept_forfeit})
    assert r.status_code == 200, r.get_json()
    covered = r.get_json()["covered_cents"]
    raw, headers = signed_webhook(order_completed(order_id, cart_token=token, gift_card_cents=covered,
                                                  total_cents=total))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    return cert_id


def the_redemption(app) -> GiftCardRedemption:
    with app.app_context():
        row = db.session.scalar(sa.select(GiftCardRedemption))
        db.session.expunge_all()
        return row


def the_job(app) -> Job:
    with app.app_context():
        job = db.session.scalar(sa.select(Job).where(Job.kind == "redeem_gift_card"))
        db.session.expunge_all()
        return job


def later():
    return utcnow() + timedelta(minutes=30)


def test_planning_writes_pending_rows_and_one_job_per_hold(app, client, instagift):
    ordered_cart(client, instagift, "4001")
    row, job = the_redemption(app), the_job(app)
    assert (row.state, row.intended_cents, row.redeemed_cents, row.outcome_unknown) == ("pending", 3000, 0, False)
    assert job.dedupe_key == f"redeem:{row.hold_id}" and job.payload["redemption_id"] == row.id
    with app.app_context():
        assert db.session.get(GiftCardHold, row.hold_id).status == "redeeming"
        # The cart is closed once its order is placed.
        assert db.session.scalar(sa.select(Cart.expires_at)) <= utcnow()


def test_worker_died_after_recording_intent_reads_back_then_redeems_once(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "4002")
    with app.app_context():  # intent recorded, then the process died before the call left
        row = db.session.scalar(sa.select(GiftCardRedemption))
        row.outcome_unknown, row.requested_cents, row.balance_before_cents, row.attempts = True, 3000, 10000, 1
        db.session.commit()
    run_jobs()
    row = the_redemption(app)
    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [3000]
    assert (row.state, row.redeemed_cents, row.attempts, row.outcome_unknown) == ("succeeded", 3000, 2, False)


def test_rerunning_a_finished_job_never_redeems_again(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "4003")
    run_jobs()
    with app.app_context():
        job = db.session.scalar(sa.select(Job).where(Job.kind == "redeem_gift_card"))
        job.state = "dead"  # as if a person asks for a retry of it
        db.session.commit()
        retry_by_person(db.session, job.id)
    run_jobs()
    assert len(instagift.redemptions_for(cert_id)) == 1
    assert the_redemption(app).state == "succeeded"


def test_cancelled_certificate_fails_visibly(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "4004")
    with instagift.lock:
        instagift.certificates[cert_id].status = "cancelled"
    run_jobs()
    row, job = the_redemption(app), the_job(app)
    assert (row.state, row.redeemed_cents, row.shortfall_cents) == ("failed", 0, 3000)
    assert job.state == "dead" and "cancelled" in job.last_error
    assert "cancelled" in order_attention(app)
    assert instagift.redemptions_for(cert_id) == []


def test_location_required_parks_for_a_person_without_redeeming(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "4005")
    instagift.require_location = True
    run_jobs()
    row, job = the_redemption(app), the_job(app)
    assert job.state == "parked" and "configuration" in job.parked_reason
    assert (row.state, row.outcome_unknown) == ("pending", False)
    assert instagift.redemptions_for(cert_id) == []


def test_provider_rate_limit_is_retried_without_doubt(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "4006")
    instagift.inject_fault("redeem_certificate", "rate_limit")
    run_jobs()
    assert the_redemption(app).outcome_unknown is False
    run_jobs(clock=later)
    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [3000]
    assert the_redemption(app).state == "succeeded"


def test_non_splittable_whole_value_and_forfeit_recorded_apart(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "4007", balance=2500, total=2050, splittable=False, accept_forfeit=True)
    run_jobs()
    row = the_redemption(app)
    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [2500]
    assert (row.taken_cents, row.redeemed_cents, row.forfeit_cents, row.shortfall_cents) == (2050, 2500, 400, 0)


@pytest.mark.parametrize("splittable, balance, total, rounding", [
    (False, 2500, 2050, "down"), (False, 2500, 2050, "up"), (True, 10000, 5250, "up"), (True, 10000, 5250, "down"),
])
def test_the_ledger_accounts_for_every_redeemed_cent(app, client, instagift, run_jobs, splittable, balance, total,
                                                     rounding):
    """What the merchant reads: redeemed = taken + rounding + forfeit, each cent counted once."""
    app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], gift_card_rounding=rounding)
    ordered_cart(client, instagift, "4010", balance=balance, total=total, splittable=splittable,
                 accept_forfeit=not splittable)
    run_jobs()
    [row] = client.get("/v1/redemptions", headers=ADMIN).get_json()["items"]
    assert row["state"] == "succeeded" and row["redeemed_cents"] > 0
    assert row["redeemed_cents"] == row["taken_cents"] + row["rounding_cents"] + row["forfeit_cents"], row


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(balances=st.lists(st.tuples(st.integers(0, 30000), st.booleans()), min_size=1, max_size=4),
       total=st.integers(0, 60000), rounding=st.sampled_from(["down", "up"]), spent_ratio=st.floats(0, 1))
def test_planned_amounts_never_exceed_what_was_held(balances, total, rounding, spent_ratio):
    """Planning from held cards: each intended amount is whole dollars, ≤ what the hold will redeem."""
    cards = [money.CardInput(i, b, s) for i, (b, s) in enumerate(balances)]
    allocation = money.allocate(total, cards, rounding)
    covered = allocation.covered_cents
    gift_card_cents = int(covered * spent_ratio)
    taken = money.split_order_gift_card_cents(gift_card_cents, [(a.key, a.covers_cents) for a in allocation.allocations])
    assert sum(taken.values()) == gift_card_cents
    for part in allocation.allocations:
        amount = money.redemption_amount(taken[part.key], part.redeem_cents, part.balance_cents, rounding,
                                         splittable=part.splittable)
        assert amount.intended_cents % 100 == 0 and amount.intended_cents <= part.redeem_cents
        assert amount.amount_cents <= money.redeemable_cents(part.balance_cents)
        if taken[part.key] > 0 and rounding == "down" and part.splittable:
            assert amount.intended_cents <= taken[part.key]


def test_cancellation_landing_while_the_job_reads_the_certificate_stops_it(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "4008")
    real = app.extensions["providers"].instagift

    class CancelledMeanwhile:
        """The sandbox client, except that the shop cancels the order while the certificate is being read."""

        def __getattr__(self, name):
            return getattr(real, name)

        def fetch_certificate(self, certificate_id):
            certificate = real.fetch_certificate(certificate_id)
            raw, headers = signed_webhook({"type": "order.cancelled", "timestamp": "2026-11-21T10:05:00Z",
                                           "data": {"id": "4008"}})
            assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
            return certificate

    app.extensions["providers"].instagift = CancelledMeanwhile()
    run_jobs()
    assert instagift.redemptions_for(cert_id) == []
    row = the_redemption(app)
    assert (row.state, row.attempts) == ("cancelled", 0)
    with app.app_context():
        assert db.session.get(GiftCardHold, row.hold_id).status == "released"
    assert order_attention(app) is None


def _attention(app, shop_order_id: str) -> str:
    return order_attention(app, shop_order_id) or ""


def _complete(client, order_id: str, token: str, cents: int) -> None:
    raw, headers = signed_webhook(order_completed(order_id, cart_token=token, gift_card_cents=cents,
                                                  total_cents=cents))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202


def _second_cart_takes_over(app, code: str, total: int):
    """Another shopper's cart applies the same code once the first cart's hold has run out."""
    from service.checkout import rules as checkout

    at = utcnow() + timedelta(minutes=app.extensions["settings"].hold_minutes, seconds=1)
    with app.app_context():
        settings = app.extensions["settings"]
        token, _ = checkout.create_cart(db.session, settings, total, "USD", at)
        checkout.apply_gift_card(db.session, settings, app.extensions["providers"].instagift,
                                 app.extensions["checkout_limiter"], checkout.ApplyRequest(token, code, False, "10.9.9.9"),
                                 at)
    return token, at


def test_a_completed_order_takes_its_expired_card_back_from_an_open_cart(app, client, instagift, run_jobs):
    cert_id, code = instagift.add_certificate(10000)
    first = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{first}/gift-cards", json={"claim_code": code}).status_code == 200
    second, _ = _second_cart_takes_over(app, code, 6000)

    _complete(client, "5001", first, 5000)  # the first shopper paid with the card: that order keeps it

    assert client.get(f"/v1/carts/{second}").get_json()["gift_cards"] == []  # before the second shopper pays
    verified = client.post(f"/v1/carts/{second}/verify", headers=SHOP)
    assert verified.status_code == 409, verified.get_json()
    [change] = verified.get_json()["changes"]
    assert (change["reason"], change["applied_cents_before"], change["applied_cents"]) == ("taken_by_another_order",
                                                                                            6000, 0)
    assert verified.get_json()["cart"]["amount_due_cents"] == 6000
    assert client.post(f"/v1/carts/{second}/verify", headers=SHOP).status_code == 200  # told once
    run_jobs()
    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [5000]
    _complete(client, "5002", first, 5000)  # a reused cart token redeems nothing more, and is not an error
    run_jobs()
    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [5000]


def test_a_card_another_completed_order_is_redeeming_fails_visibly_instead_of_twice(app, client, instagift,
                                                                                    run_jobs):
    cert_id, code = instagift.add_certificate(10000)
    first = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{first}/gift-cards", json={"claim_code": code}).status_code == 200
    second, _ = _second_cart_takes_over(app, code, 6000)
    _complete(client, "5003", second, 6000)  # the second shopper's order completed first

    _complete(client, "5004", first, 5000)
    run_jobs()

    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [6000]
    assert "$50.00 must be collected another way" in _attention(app, "5004")
    with app.app_context():
        states = dict(db.session.execute(sa.select(Order.shop_order_id, GiftCardRedemption.state)
                                         .join(Order, Order.id == GiftCardRedemption.order_id)).all())
    assert states == {"5003": "succeeded", "5004": "failed"}


def test_instagift_taking_more_than_asked_is_flagged(app, client, instagift, run_jobs, monkeypatch):
    real_redeem = instagift.redeem

    def greedy(cert, amount, **kwargs):  # a provider fault: the whole balance instead of the amount asked
        return real_redeem(cert, cert.face_value_cents, **kwargs)

    monkeypatch.setattr(instagift, "redeem", greedy)
    ordered_cart(client, instagift, "5005", balance=10000, total=3000)
    run_jobs()
    row = the_redemption(app)
    assert row.redeemed_cents == 10000 and "$70.00 more than the $30.00 asked" in row.error
    assert "$70.00 more than the $30.00 asked" in _attention(app, "5005")


def test_cancelling_after_a_doubt_was_cleared_cancels_without_claiming_a_redemption(app, client, instagift,
                                                                                    run_jobs):
    cert_id = ordered_cart(client, instagift, "5006")
    instagift.inject_fault("redeem_certificate", "error_500")  # did nothing, but we can't know that yet
    run_jobs()
    instagift.inject_fault("redeem_certificate", "rate_limit")  # read back: unchanged; the new call is refused
    run_jobs(clock=later)
    assert (the_redemption(app).state, the_redemption(app).outcome_unknown) == ("uncertain", False)

    cancel_order(client, "5006")

    assert the_redemption(app).state == "cancelled"
    assert "redeemed" not in _attention(app, "5006")
    run_jobs(clock=lambda: later() + timedelta(hours=1))
    assert instagift.redemptions_for(cert_id) == []


def test_a_redemption_confirmed_after_the_cancellation_is_added_to_the_merchants_note(app, client, instagift,
                                                                                      run_jobs):
    ordered_cart(client, instagift, "5007", balance=10000, total=5000)
    instagift.inject_fault("redeem_certificate", "apply_then_500")
    run_jobs()
    cancel_order(client, "5007")
    assert "unknown outcome" in _attention(app, "5007")

    run_jobs(clock=later)  # read back: the call had gone through

    assert the_redemption(app).state == "succeeded"
    note = _attention(app, "5007")
    assert "unknown outcome" in note and "$50.00 was redeemed after the order was cancelled" in note


def test_a_person_retrying_a_dead_redemption_really_redeems(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "5008", balance=10000, total=3000)
    instagift.inject_fault("redeem_certificate", "reject_400")
    run_jobs()
    job = the_job(app)
    assert (job.state, the_redemption(app).state) == ("dead", "failed")

    assert client.post(f"/v1/jobs/{job.id}/retry", headers=ADMIN).status_code == 202
    run_jobs()

    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [3000]
    assert (the_job(app).state, the_redemption(app).state) == ("succeeded", "succeeded")


def test_a_person_cannot_retry_a_redemption_whose_card_another_checkout_now_holds(app, client, instagift, run_jobs):
    cert_id, code = instagift.add_certificate(10000)
    token = client.post("/v1/carts", json={"total_cents": 3000}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}).status_code == 200
    instagift.inject_fault("redeem_certificate", "reject_400")
    _complete(client, "5009", token, 3000)
    run_jobs()
    job = the_job(app)
    assert (job.state, the_redemption(app).state) == ("dead", "failed")
    other = client.post("/v1/carts", json={"total_cents": 2000}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{other}/gift-cards", json={"claim_code": code}).status_code == 200

    refused = client.post(f"/v1/jobs/{job.id}/retry", headers=ADMIN)

    assert refused.status_code == 409 and refused.get_json()["code"] == "job_not_retryable"
    assert (the_job(app).state, the_redemption(app).state) == ("dead", "failed")
    run_jobs(clock=later)
    assert instagift.redemptions_for(cert_id) == []


def test_a_call_in_doubt_that_never_reached_instagift_is_cancelled_with_the_order(app, client, instagift, run_jobs):
    cert_id = ordered_cart(client, instagift, "5010")
    instagift.inject_fault("redeem_certificate", "error_500")  # answered 500 without redeeming: doubt
    run_jobs()
    assert the_redemption(app).outcome_unknown is True
    cancel_order(client, "5010")
    assert "unknown outcome" in _attention(app, "5010")

    run_jobs(clock=later)  # read back: unchanged, so the call never happened; the order is cancelled

    assert the_redemption(app).state == "cancelled" and instagift.redemptions_for(cert_id) == []
    assert "the call in doubt had not reached Instagift; nothing was redeemed" in _attention(app, "5010")


class _AnotherRunMeanwhile:
    """The real Instagift client, except that while Instagift is being read another run of the same job (whose lease
    had run out) records a fresh attempt of its own on the ledger row."""

    def __init__(self, client, app, redemption_id: int):
        self._client, self._app, self._redemption_id = client, app, redemption_id

    def __getattr__(self, name):
        return getattr(self._client, name)

    def fetch_certificate(self, certificate_id: str):
        engine = self._app.extensions["sqlalchemy"].engine
        with engine.begin() as conn:
            conn.execute(sa.update(GiftCardRedemption).where(GiftCardRedemption.id == self._redemption_id)
                         .values(requested_cents=2000, balance_before_cents=9000, attempts=2))
        return self._client.fetch_certificate(certificate_id)


def test_a_row_another_run_changed_while_instagift_was_read_is_read_again_not_acted_on(app, client, instagift):
    cert_id = ordered_cart(client, instagift, "4090")
    with app.app_context():  # an earlier call's outcome is unknown
        row = db.session.scalar(sa.select(GiftCardRedemption))
        row.outcome_unknown, row.requested_cents, row.balance_before_cents, row.attempts = True, 3000, 10000, 1
        row_id = row.id
        db.session.commit()
    meanwhile = _AnotherRunMeanwhile(app.extensions["providers"].instagift, app, row_id)
    with app.app_context():
        with pytest.raises(RetryLater, match="changed while Instagift was being read"):
            redeem(db.session, app.extensions["settings"], meanwhile, row_id, utcnow)
        db.session.rollback()
    row = the_redemption(app)
    # Nothing was decided on the stale reading: the other run's attempt stands, in doubt, and nothing was redeemed.
    assert (row.state, row.outcome_unknown, row.requested_cents, row.attempts) == ("pending", True, 2000, 2)
    assert instagift.calls["redeem_certificate"] == 0
    assert instagift.certificates[cert_id].face_value_cents == 10000
