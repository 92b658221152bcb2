"""Signed order webhooks: Standard Webhooks verification, exactly-once intake, problem responses."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter

import pytest
import requests
import sqlalchemy as sa

from service.db import db
from service.jobs.models import Job
from service.orders.models import Order, OrderEvent
from tests.support import ADMIN, order_completed, signed_webhook

OLD_SECRET = "whsec_b2xkLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="
NEW_SECRET = "whsec_bmV3LXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM="


def counts(app) -> dict[str, int]:
    with app.app_context():
        def n(model):
            return db.session.scalar(sa.select(sa.func.count()).select_from(model))
        return {"orders": n(Order), "events": n(OrderEvent), "jobs": n(Job)}


def post(client, raw, headers):
    return client.post("/v1/webhooks/orders", data=raw, headers=headers)


def assert_problem(response, status: int, code: str):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["code"] == code and body["title"]
    return body


def test_valid_order_completed_is_stored_with_its_jobs_and_answered_202(client, app):
    raw, headers = signed_webhook(order_completed("1001"))
    response = post(client, raw, headers)
    assert response.status_code == 202
    assert response.get_json() == {"status": "accepted", "order_id": "1001", "event_type": "order.completed"}
    with app.app_context():
        order = db.session.scalar(sa.select(Order).where(Order.shop_order_id == "1001"))
        assert order.total_cents == 5250 and order.number == "#1001" and order.completed_at is not None
        assert order.payload["customer"]["email"] == "ada@example.com"
    assert counts(app)["events"] == 1


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_signature_headers_are_401_and_store_nothing(client, app, missing):
    raw, headers = signed_webhook(order_completed())
    del headers[missing]
    assert_problem(post(client, raw, headers), 401, "webhook_signature_missing")
    assert counts(app) == {"orders": 0, "events": 0, "jobs": 0}


def test_wrong_secret_is_401(client, app):
    raw, headers = signed_webhook(order_completed(), secret=OLD_SECRET)
    assert_problem(post(client, raw, headers), 401, "webhook_signature_invalid")
    assert counts(app)["orders"] == 0


@pytest.fixture
def rotating(environ):
    environ["WEBHOOK_SECRETS"] = f"{NEW_SECRET},{OLD_SECRET}"
    return environ


def test_rotated_secrets_old_and_new_are_both_accepted(rotating, client, app):
    raw, headers = signed_webhook(order_completed("1"), secret=OLD_SECRET)
    assert post(client, raw, headers).status_code == 202
    raw, headers = signed_webhook(order_completed("2"), secret=NEW_SECRET)
    assert post(client, raw, headers).status_code == 202
    raw, headers = signed_webhook(order_completed("3"))  # the development default is no longer configured
    assert_problem(post(client, raw, headers), 401, "webhook_signature_invalid")
    assert counts(app)["orders"] == 2


@pytest.mark.parametrize("offset", [-301, -3600, 301, 86400])
def test_stale_and_future_timestamps_are_401(client, app, offset):
    raw, headers = signed_webhook(order_completed(), timestamp=time.time() + offset)
    assert_problem(post(client, raw, headers), 401, "webhook_signature_invalid")
    assert counts(app)["orders"] == 0


def test_timestamps_inside_the_tolerance_are_accepted(client):
    raw, headers = signed_webhook(order_completed("early"), timestamp=time.time() - 290)
    assert post(client, raw, headers).status_code == 202


def test_tampered_body_is_401(client, app):
    raw, headers = signed_webhook(order_completed())
    tampered = raw.replace(b'"total_cents": 5250', b'"total_cents": 1')
    assert tampered != raw
    assert_problem(post(client, tampered, headers), 401, "webhook_signature_invalid")
    assert counts(app)["orders"] == 0


@pytest.mark.parametrize("signature", ["garbage", "v1,not-base64!!", "v2,abc", "", "v1"])
def test_malformed_signatures_are_401_not_500(client, signature):
    raw, headers = signed_webhook(order_completed())
    headers["webhook-signature"] = signature
    response = post(client, raw, headers)
    assert response.status_code == 401


def test_signed_but_invalid_body_is_422_with_field_errors_and_stores_nothing(client, app):
    event = order_completed()
    del event["data"]["total_cents"]
    event["data"]["currency"] = "EUR"
    raw, headers = signed_webhook(event)
    body = assert_problem(post(client, raw, headers), 422, "validation_failed")
    assert set(body["errors"]["data"]) == {"total_cents", "currency"}
    assert counts(app) == {"orders": 0, "events": 0, "jobs": 0}


@pytest.mark.parametrize("raw", [b"not json", b"[1,2]", b'{"type": "order.refunded", "data": {"id": "1"}}'])
def test_signed_nonsense_is_422(client, app, raw):
    raw, headers = signed_webhook(raw)
    assert_problem(post(client, raw, headers), 422, "validation_failed")
    assert counts(app)["events"] == 0


def test_redelivery_with_same_webhook_id_is_200_and_changes_nothing(client, app):
    raw, headers = signed_webhook(order_completed())
    assert post(client, raw, headers).status_code == 202
    before = counts(app)
    again = post(client, raw, headers)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert counts(app) == before


def test_same_order_and_event_under_a_new_webhook_id_is_a_duplicate(client, app):
    raw, headers = signed_webhook(order_completed("77"))
    assert post(client, raw, headers).status_code == 202
    before = counts(app)
    raw, headers = signed_webhook(order_completed("77"))
    assert headers["webhook-id"] != json.loads(raw)["data"]["id"]
    assert post(client, raw, headers).status_code == 200
    assert counts(app) == before


def test_a_reused_webhook_id_with_another_body_is_409_and_stores_nothing(client, app):
    raw, headers = signed_webhook(order_completed("81"))
    assert post(client, raw, headers).status_code == 202
    before = counts(app)
    other, other_headers = signed_webhook(order_completed("82"), msg_id=headers["webhook-id"])
    logger = logging.getLogger("service.orders")
    records: list[logging.LogRecord] = []
    listener = logging.Handler(logging.WARNING)
    listener.emit = records.append
    logger.addHandler(listener)
    try:
        body = assert_problem(post(client, other, other_headers), 409, "webhook_id_reused")
    finally:
        logger.removeHandler(listener)
    assert "webhook-id was already used for a different body" in body["detail"]
    assert counts(app) == before
    with app.app_context():
        assert db.session.scalar(sa.select(Order).where(Order.shop_order_id == "82")) is None
    assert any("already used for a different body" in r.getMessage() for r in records), (
        logger.disabled, logger.getEffectiveLevel(), logging.root.manager.disable)
    # The true redelivery still is a quiet duplicate.
    again = post(client, raw, headers)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert counts(app) == before


def test_a_reused_webhook_id_for_the_same_order_with_changed_fields_is_409_and_changes_nothing(client, app):
    raw, headers = signed_webhook(order_completed("83"))
    assert post(client, raw, headers).status_code == 202
    changed, changed_headers = signed_webhook(order_completed("83", total_cents=9999), msg_id=headers["webhook-id"])
    assert_problem(post(client, changed, changed_headers), 409, "webhook_id_reused")
    with app.app_context():
        assert db.session.scalar(sa.select(Order.total_cents).where(Order.shop_order_id == "83")) == 5250


def test_an_event_recorded_before_bodies_were_hashed_takes_any_body_under_its_id_as_a_redelivery(client, app):
    """Events recorded before a9c4e6b1d3f8 have no body hash, so a delivery under their webhook id cannot be told
    apart from a true redelivery: a 200 duplicate that changes nothing, never a 409 (issue 14 › 9 across the
    migration)."""
    raw, headers = signed_webhook(order_completed("85"))
    assert post(client, raw, headers).status_code == 202
    with app.app_context():  # as migration a9c4e6b1d3f8 leaves the events it found: no body hash
        db.session.execute(sa.update(OrderEvent).values(body_sha256=None))
        db.session.commit()
    before = counts(app)
    changed, changed_headers = signed_webhook(order_completed("85", total_cents=9999), msg_id=headers["webhook-id"])
    again = post(client, changed, changed_headers)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate", again.get_json()
    assert counts(app) == before
    with app.app_context():
        assert db.session.scalar(sa.select(Order.total_cents).where(Order.shop_order_id == "85")) == 5250


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_webhooks_must_be_sent_as_json(client, app, content_type):
    raw, headers = signed_webhook(order_completed("84"))
    if content_type is None:
        del headers["Content-Type"]
    else:
        headers["Content-Type"] = content_type
    assert_problem(post(client, raw, headers), 415, "unsupported_media_type")
    assert counts(app)["orders"] == 0


def test_order_cancelled_is_accepted_and_recorded(client, app):
    raw, headers = signed_webhook(order_completed("9"))
    assert post(client, raw, headers).status_code == 202
    raw, headers = signed_webhook({"type": "order.cancelled", "timestamp": "2026-11-21T11:00:00Z",
                                   "data": {"id": "9"}})
    assert post(client, raw, headers).status_code == 202
    with app.app_context():
        order = db.session.scalar(sa.select(Order).where(Order.shop_order_id == "9"))
        assert order.cancelled_at is not None
        assert [e.event_type for e in order.events] == ["order.completed", "order.cancelled"]


def test_concurrent_duplicates_over_real_http_make_one_order_and_one_set_of_jobs(live_server, app):
    # The reference: one delivery of an identical order makes this many jobs.
    raw, headers = signed_webhook(order_completed("ref"))
    assert requests.post(f"{live_server.url}/v1/webhooks/orders", data=raw, headers=headers, timeout=10).status_code == 202
    reference = counts(app)

    deliveries = []
    for n in range(12):
        # Half are redeliveries of one webhook id, half are the same order under new ids.
        deliveries.append(signed_webhook(order_completed("race"), msg_id="msg_same" if n % 2 else None))
    statuses: list[int] = []
    barrier = threading.Barrier(len(deliveries))

    def send(raw_body, hdrs):
        barrier.wait()
        statuses.append(requests.post(f"{live_server.url}/v1/webhooks/orders", data=raw_body, headers=hdrs,
                                      timeout=30).status_code)

    threads = [threading.Thread(target=send, args=d) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(statuses) == {202: 1, 200: len(deliveries) - 1}
    after = counts(app)
    assert after["orders"] - reference["orders"] == 1
    assert after["events"] - reference["events"] == 1
    assert after["jobs"] - reference["jobs"] == reference["jobs"]
    with app.app_context():
        keys = list(db.session.scalars(sa.select(Job.dedupe_key).where(Job.dedupe_key.is_not(None))))
    assert len(keys) == len(set(keys))


def test_oversized_body_is_413_problem(client):
    response = client.post("/v1/webhooks/orders", data=b"x" * (70 * 1024),
                           headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "payload_too_large")


def test_flask_errors_are_problem_details_with_request_ids(client):
    assert_problem(client.get("/no/such/page"), 404, "not_found")
    response = client.get("/v1/webhooks/orders")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    echoed = client.get("/healthz", headers={"X-Request-Id": "shop-req-42"})
    assert echoed.headers["X-Request-Id"] == "shop-req-42"
    generated = client.get("/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert len(generated.headers["X-Request-Id"]) == 32


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ok"}
    ready = client.get("/readyz", headers=ADMIN).get_json()
    assert ready["database"] == "ok"
    assert ready["providers"] == {"instagift": "sandbox", "cardly": "sandbox", "instantcard": "sandbox"}
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert "post" in spec["paths"]["/v1/webhooks/orders"]
    assert "OrderEvent" in spec["components"]["schemas"]
