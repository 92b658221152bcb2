"""Abuse limits on claim-code lookups: per client, per cart, cart lock after failures, Redis storage."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa

from service.checkout.limits import LookupLimiter
from service.checkout.models import Cart, FailedLookup
from service.db import db, utcnow
from service.jobs import enqueue

REDIS_URL = "redis://127.0.0.1:6379"



def from_ip(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def balance(client, code: str, ip: str = "198.51.100.1"):
    return client.post("/v1/gift-cards/balance", json={"claim_code": code}, **from_ip(ip))


def assert_rate_limited(response) -> int:
    assert response.status_code == 429, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


def test_client_lookups_are_limited_per_minute_with_retry_after(client, instagift):
    """Defaults: 10 lookups a minute per client; found or not, each lookup counts."""
    for n in range(10):
        r = balance(client, "DEMO-100S-PLIT" if n % 2 else "ZZZZ-ZZZZ-ZZZZ")
        assert r.status_code in (200, 404), r.get_json()
    assert assert_rate_limited(balance(client, "DEMO-100S-PLIT")) <= 60
    assert balance(client, "DEMO-100S-PLIT", ip="198.51.100.2").status_code == 200  # another client is fine


def test_cart_lookups_are_limited_whatever_the_client_address(client, instagift):
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    for n in range(10):
        r = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": "DEMO-USED-0001"},
                        **from_ip(f"203.0.113.{n}"))
        assert r.status_code == 409
    r = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": "DEMO-100S-PLIT"}, **from_ip("203.0.113.99"))
    assert_rate_limited(r)
    assert client.get(f"/v1/carts/{token}").get_json()["gift_cards"] == []


@pytest.fixture
def environ_lenient(environ):
    environ["LOOKUP_RATE_LIMIT"] = "1000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "1000/minute"
    environ["CART_FAILURE_LIMIT"] = "5"
    environ["CART_LOCK_MINUTES"] = "15"
    return environ


def test_failed_lookups_lock_the_cart(environ_lenient, request):
    client = request.getfixturevalue("client")
    request.getfixturevalue("instagift")
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    for code in ("ZZZZ-ZZZZ-ZZZ1", "bad!", "ZZZZ-ZZZZ-ZZZ2", "ZZZZ-ZZZZ-ZZZ3"):
        assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}).status_code == 404
    # A refused-but-real card is not a failed lookup.
    assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": "DEMO-USED-0001"}).status_code == 409
    assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": "ZZZZ-ZZZZ-ZZZ4"}).status_code == 404
    locked = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": "DEMO-100S-PLIT"})
    retry_after = assert_rate_limited(locked)
    assert 14 * 60 < retry_after <= 15 * 60 + 1
    other = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{other}/gift-cards", json={"claim_code": "DEMO-100S-PLIT"}).status_code == 200


def test_limits_shared_through_redis_storage(app, client, instagift):
    """Multi-process mode: the counters live in Redis, so every web process sees the same limits."""
    prefix = f"checkout-test-{uuid.uuid4().hex}"
    app.extensions["checkout_limiter"] = LookupLimiter(REDIS_URL, "3/minute;5/hour", key_prefix=prefix)
    other_process = LookupLimiter(REDIS_URL, "3/minute;5/hour", key_prefix=prefix)
    store = redis.Redis.from_url(REDIS_URL)
    try:
        assert balance(client, "DEMO-100S-PLIT").status_code == 200
        assert balance(client, "DEMO-050S-PLIT").status_code == 200
        other_process.hit("client:198.51.100.1")  # a lookup answered by another web process
        assert store.keys(f"{prefix}*"), "the limiter did not use Redis"
        assert_rate_limited(balance(client, "DEMO-100S-PLIT"))
    finally:
        keys = store.keys(f"{prefix}*")
        if keys:
            store.delete(*keys)
        store.close()


@pytest.fixture
def few_carts(environ):
    environ["CART_CREATE_RATE_LIMIT"] = "3/minute"
    return environ


def test_cart_creation_is_rate_limited_per_client_with_a_problem_and_retry_after(few_carts, client, app):
    for _ in range(3):
        assert client.post("/v1/carts", json={"total_cents": 1000}).status_code == 201
    refused = client.post("/v1/carts", json={"total_cents": 1000})
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert refused.get_json()["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Cart)) == 3


# -- the forgiving lockout (defaults: 10 failed look-ups within 15 minutes lock a cart for 10 minutes) ----------


def apply(client, token: str, code: str, language: str = "en"):
    return client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code},
                       headers={"Accept-Language": language})


def fail(client, token: str, times: int) -> None:
    for n in range(times):
        answer = apply(client, token, f"ZZZZ-ZZZZ-ZZ{n:04d}")
        assert answer.status_code == 404 and answer.get_json()["code"] == "gift_card_not_found"


def test_the_right_code_still_works_after_nine_failed_lookups(client, instagift):
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    fail(client, token, 9)
    applied = apply(client, token, "DEMO-100S-PLIT")
    assert applied.status_code == 200, applied.get_json()
    assert applied.get_json()["amount_due_cents"] == 0


def test_the_tenth_failed_lookup_locks_the_cart_for_ten_minutes_and_says_so(app, client, instagift):
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    fail(client, token, 10)
    calls = instagift.calls["fetch_claim_code"]
    for language, words in (("en", ("locked", "10 minutes", "pay another way")),
                            ("es", ("bloqueadas", "10 minutos", "pagar de otra forma"))):
        locked = apply(client, token, "DEMO-100S-PLIT", language)
        body = locked.get_json()
        assert (locked.status_code, body["code"], body["reason"]) == (429, "rate_limited", "cart_locked")
        assert 9 * 60 < body["retry_after"] <= 10 * 60 and locked.headers["Retry-After"] == str(body["retry_after"])
        assert locked.headers["Content-Language"] == language
        assert all(word in body["detail"] for word in words), body["detail"]
    assert client.get(f"/v1/carts/{token}").get_json()["gift_cards"] == []
    assert instagift.calls["fetch_claim_code"] == calls  # a locked cart never reaches Instagift


@pytest.fixture
def many_lookups(environ):
    environ["LOOKUP_RATE_LIMIT"] = "1000/minute"
    return environ


def _move_failures_back(app, minutes: float) -> None:
    with app.app_context():
        for row in db.session.scalars(sa.select(FailedLookup)):
            row.failed_at -= timedelta(minutes=minutes)
        db.session.commit()


def test_only_failures_within_the_last_fifteen_minutes_count(many_lookups, request):
    app, client = request.getfixturevalue("app"), request.getfixturevalue("client")
    request.getfixturevalue("instagift")
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    fail(client, token, 9)
    _move_failures_back(app, 15)  # exactly at the window's edge: out of it
    fail(client, token, 9)
    with app.app_context():
        assert db.session.scalar(sa.select(Cart.failed_lookups)) == 9
        assert db.session.scalar(sa.select(sa.func.count()).select_from(FailedLookup)) == 9  # the old ones deleted
    _move_failures_back(app, 14)  # still within the window
    fail(client, token, 1)
    assert apply(client, token, "DEMO-100S-PLIT").get_json()["reason"] == "cart_locked"


def test_a_lock_ends_after_its_minutes_and_failures_start_again_from_none(many_lookups, request):
    app, client = request.getfixturevalue("app"), request.getfixturevalue("client")
    request.getfixturevalue("instagift")
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    fail(client, token, 10)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(FailedLookup)) == 0
        cart = db.session.scalar(sa.select(Cart))
        assert cart.failed_lookups == 0
        assert timedelta(minutes=9) < cart.locked_until - utcnow() <= timedelta(minutes=10)
        cart.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
    fail(client, token, 9)
    assert apply(client, token, "DEMO-100S-PLIT").status_code == 200


def test_the_periodic_job_forgets_failures_that_left_the_window_of_carts_that_fail_no_more(many_lookups, request):
    app, client = request.getfixturevalue("app"), request.getfixturevalue("client")
    request.getfixturevalue("instagift")
    run_jobs = request.getfixturevalue("run_jobs")
    abandoned = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    fail(client, abandoned, 3)
    _move_failures_back(app, 15)  # out of the window; this cart never fails again, so nothing else deletes them
    recent = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    fail(client, recent, 2)
    with app.app_context():
        enqueue(db.session, "release_expired_holds", dedupe_key="test-purge")
        db.session.commit()
    run_jobs()
    with app.app_context():
        recent_id = db.session.scalar(sa.select(Cart.id).where(Cart.failed_lookups == 2))
        assert db.session.scalars(sa.select(FailedLookup.cart_id)).all() == [recent_id, recent_id]
    fail(client, recent, 8)  # the recent failures still count: the tenth locks
    assert apply(client, recent, "DEMO-100S-PLIT").get_json()["reason"] == "cart_locked"
