"""Carts and holds: problem answers, one open cart per certificate (also under concurrency), hold expiry,
and claim codes never leaking into responses, logs or the database."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from service.checkout import rules as checkout
from service.checkout.models import Cart, GiftCardHold
from service.db import db, utcnow
from service.errors import Conflict
from service.jobs import enqueue
from service.redemption.models import GiftCardRedemption
from tests.support import order_completed, signed_webhook


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "10000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "10000/minute"
    return environ



def new_cart(client, total_cents: int = 5000) -> str:
    r = client.post("/v1/carts", json={"total_cents": total_cents})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["cart_token"]


def apply(client, token: str, code, **extra):
    return client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code, **extra})


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_json()
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["code"] == code, body
    return body


def test_unknown_and_malformed_codes_get_one_answer_and_change_nothing(client, instagift):
    token = new_cart(client)
    before = client.get(f"/v1/carts/{token}").get_json()
    unknown = problem(apply(client, token, "ZZZZ-ZZZZ-ZZZZ"), 404, "gift_card_not_found")
    malformed = problem(apply(client, token, "no!"), 404, "gift_card_not_found")
    strip = ("instance", "request_id")
    assert {k: v for k, v in unknown.items() if k not in strip} == {k: v for k, v in malformed.items() if k not in strip}
    balance = client.post("/v1/gift-cards/balance", json={"claim_code": "ZZZZ-ZZZZ-ZZZZ"})
    problem(balance, 404, "gift_card_not_found")
    assert client.get(f"/v1/carts/{token}").get_json() == before


@pytest.mark.parametrize(("code", "reason"), [("DEMO-USED-0001", "redeemed"), ("DEMO-EXPD-0001", "expired"),
                                              ("DEMO-CANC-0001", "cancelled"), ("DEMO-PEND-0001", "pending")])
def test_unredeemable_certificates_get_their_reason(client, instagift, code, reason):
    token = new_cart(client)
    body = problem(apply(client, token, code), 409, "gift_card_not_redeemable")
    assert body["reason"] == reason and body["detail"]
    assert client.get(f"/v1/carts/{token}").get_json()["gift_cards"] == []
    balance = client.post("/v1/gift-cards/balance", json={"claim_code": code}).get_json()
    assert (balance["status"], balance["redeemable_cents"]) == (reason, 0)


def test_friendly_problems_for_currency_zero_balance_duplicates_and_nothing_due(client, instagift):
    token = new_cart(client, 5000)
    problem(apply(client, token, "DEMO-CAD0-0050"), 409, "gift_card_currency_not_supported")
    problem(apply(client, token, "DEMO-0050-CENT"), 409, "gift_card_empty")
    assert apply(client, token, "DEMO-050S-PLIT").status_code == 200
    problem(apply(client, token, " demo 050s plit "), 409, "gift_card_already_applied")
    body = problem(apply(client, token, "DEMO-100S-PLIT"), 409, "nothing_due")
    assert body["amount_due_cents"] == 0
    cents_only = new_cart(client, 5050)
    apply(client, cents_only, "DEMO-100S-PLT2")
    body = problem(apply(client, cents_only, "DEMO-100S-PLT3"), 409, "nothing_due")
    assert body["amount_due_cents"] == 50 and "$0.50" in body["detail"]
    problem(client.post("/v1/carts", json={"total_cents": 100, "currency": "EUR"}), 422, "currency_not_supported")
    problem(client.post("/v1/carts", json={"total_cents": -1}), 422, "validation_failed")
    problem(apply(client, token, ""), 422, "validation_failed")
    problem(client.post(f"/v1/carts/{token}/gift-cards", data="{", content_type="application/json"),
            400, "malformed_json")
    problem(client.get("/v1/carts/not-a-real-token"), 404, "cart_not_found")
    problem(apply(client, "not-a-real-token", "DEMO-100S-PLIT"), 404, "cart_not_found")


def test_certificate_held_by_one_open_cart_only_until_removed(client, instagift):
    first, second = new_cart(client), new_cart(client)
    view = apply(client, first, "DEMO-100S-PLIT").get_json()
    problem(apply(client, second, "DEMO-100S-PLIT"), 409, "gift_card_in_use")
    r = client.delete(f"/v1/carts/{first}/gift-cards/{view['gift_cards'][0]['id']}")
    assert r.status_code == 200 and r.get_json()["gift_cards"] == []
    assert r.get_json()["amount_due_cents"] == 5000
    assert apply(client, second, "DEMO-100S-PLIT").status_code == 200
    problem(client.delete(f"/v1/carts/{first}/gift-cards/{view['gift_cards'][0]['id']}"), 404, "gift_card_not_in_cart")


def test_hold_expiry_frees_the_certificate(app, client, instagift, run_jobs):
    first = new_cart(client)
    assert apply(client, first, "DEMO-100S-PLIT").status_code == 200
    later = utcnow() + timedelta(minutes=app.extensions["settings"].hold_minutes, seconds=1)
    limiter = app.extensions["checkout_limiter"]
    client_ig = app.extensions["providers"].instagift
    with app.app_context():
        settings = app.extensions["settings"]
        token, _ = checkout.create_cart(db.session, settings, 5000, "USD", later)
        request = checkout.ApplyRequest(token, "DEMO-100S-PLIT", False, "10.0.0.9")
        with pytest.raises(Conflict) as refused:  # not yet: two seconds before the hold ends
            checkout.apply_gift_card(db.session, settings, client_ig, limiter, request, later - timedelta(seconds=2))
        assert refused.value.code == "gift_card_in_use"
        # At `later` the first hold has run out: the new cart takes the certificate over atomically.
        view = checkout.apply_gift_card(db.session, settings, client_ig, limiter, request, later)
        assert [card["applied_cents"] for card in view["gift_cards"]] == [5000]
        statuses = dict(db.session.execute(sa.select(GiftCardHold.cart_id, GiftCardHold.status)).all())
        assert sorted(statuses.values()) == ["active", "expired"]


def test_a_hold_being_redeemed_is_never_taken_over_even_after_its_time(app, client, instagift):
    first = new_cart(client)
    assert apply(client, first, "DEMO-100S-PLIT").status_code == 200
    later = utcnow() + timedelta(minutes=app.extensions["settings"].hold_minutes, seconds=1)
    with app.app_context():
        # The order completed and the redemption job is working on it: the hold is `redeeming`, its time long gone.
        db.session.execute(sa.update(GiftCardHold).values(status="redeeming"))
        db.session.commit()
        settings = app.extensions["settings"]
        token, _ = checkout.create_cart(db.session, settings, 5000, "USD", later)
        request = checkout.ApplyRequest(token, "DEMO-100S-PLIT", False, "10.0.0.9")
        with pytest.raises(Conflict) as refused:
            checkout.apply_gift_card(db.session, settings, app.extensions["providers"].instagift,
                                     app.extensions["checkout_limiter"], request, later)
        assert refused.value.code == "gift_card_in_use"
        db.session.rollback()
        assert db.session.scalars(sa.select(GiftCardHold.status)).all() == ["redeeming"]


def test_periodic_job_releases_expired_holds(app, client, instagift, run_jobs):
    first = new_cart(client)
    apply(client, first, "DEMO-100S-PLIT")
    with app.app_context():
        enqueue(db.session, "release_expired_holds", dedupe_key="test-release")
        db.session.commit()
    run_jobs()  # nothing has expired yet
    with app.app_context():
        assert db.session.scalar(sa.select(GiftCardHold.status)) == "active"
        enqueue(db.session, "release_expired_holds", dedupe_key="test-release-2")
        db.session.commit()
    run_jobs(clock=lambda: utcnow() + timedelta(minutes=31))
    with app.app_context():
        assert db.session.scalar(sa.select(GiftCardHold.status)) == "expired"
    second = new_cart(client)
    assert apply(client, second, "DEMO-100S-PLIT").status_code == 200


def test_two_carts_applying_the_same_code_at_once_never_both_succeed(live_server, instagift):
    """Real HTTP, threads released together, many rounds: the database lets exactly one cart hold it."""
    http = requests.Session()
    rounds = 25
    for round_number in range(rounds):
        _, code = instagift.add_certificate(10000)
        tokens = [http.post(f"{live_server.url}/v1/carts", json={"total_cents": 4000}, timeout=10).json()["cart_token"]
                  for _ in range(2)]
        barrier = threading.Barrier(2)
        results: list[tuple[int, str]] = []

        def go(token: str, code: str = code, barrier: threading.Barrier = barrier,
               results: list = results) -> None:
            session = requests.Session()
            barrier.wait()
            r = session.post(f"{live_server.url}/v1/carts/{token}/gift-cards", json={"claim_code": code}, timeout=30)
            results.append((r.status_code, r.json().get("code", "")))

        threads = [threading.Thread(target=go, args=(t,)) for t in tokens]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [(200, ""), (409, "gift_card_in_use")], (round_number, results)


def test_claim_codes_never_reach_responses_logs_or_the_database(app, client, instagift, run_jobs, caplog):
    caplog.set_level(logging.INFO)  # the service's log level (urllib3's DEBUG lines carry request URLs)
    cert_id, code = instagift.add_certificate(10000)
    bare = code.replace("-", "")
    token = new_cart(client, 3000)
    texts = [client.post("/v1/gift-cards/balance", json={"claim_code": code}).get_data(as_text=True),
             apply(client, token, code.lower()).get_data(as_text=True),
             apply(client, token, code).get_data(as_text=True),  # already applied
             apply(client, new_cart(client), code).get_data(as_text=True),  # in use
             client.get(f"/v1/carts/{token}").get_data(as_text=True)]
    raw, headers = signed_webhook(order_completed("3001", cart_token=token, gift_card_cents=3000, total_cents=3000))
    client.post("/v1/webhooks/orders", data=raw, headers=headers)
    run_jobs()
    # The sandbox's own access log (werkzeug) is "Instagift's" log, not ours: leave it out.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name != "werkzeug")
    assert "gift card" in ours and "/v1/carts/" in ours
    for secret in (code, bare, code.lower()):
        assert all(secret not in text for text in texts), (secret, texts)
    for secret in (code, bare, code.lower(), token):
        assert secret not in ours
    with app.app_context():
        assert db.session.scalar(sa.select(GiftCardRedemption.state)) == "succeeded"
        for model in (Cart, GiftCardHold, GiftCardRedemption):
            for row in db.session.scalars(sa.select(model)):
                values = " ".join(str(getattr(row, c.key)) for c in model.__table__.columns)
                assert bare not in values.upper() and token not in values


def test_a_completed_order_closes_its_cart(client, instagift, run_jobs):
    token = new_cart(client, 3000)
    apply(client, token, "DEMO-100S-PLIT")
    raw, headers = signed_webhook(order_completed("3002", cart_token=token, gift_card_cents=3000, total_cents=3000))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    problem(client.get(f"/v1/carts/{token}"), 404, "cart_not_found")
    problem(apply(client, token, "DEMO-050S-PLIT"), 404, "cart_not_found")
