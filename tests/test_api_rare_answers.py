"""Answers the fuzzing run cannot reach (rate limits, provider failures, a card spent in store, oversized bodies,
a dead job) are checked against /openapi.json too: status documented, content type documented, body valid."""

from __future__ import annotations

import pytest
import schemathesis
import sqlalchemy as sa

from service.db import db
from service.jobs.models import Job
from tests.support import ADMIN, SHOP, order_completed, signed_webhook


@pytest.fixture
def environ(environ):
    return {**environ, "LOOKUP_RATE_LIMIT": "2/minute"}


@pytest.fixture
def contract(client):
    """Checks one answer against the operation of the served document it answers for."""
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").get_json())

    def check(path: str, method: str, response, status: int, code: str | None = None) -> dict:
        assert response.status_code == status, response.get_data(as_text=True)
        operation = schema[path][method]
        documented = operation.definition.raw["responses"]
        assert str(status) in documented, f"{method} {path}: {status} is not documented"
        assert response.mimetype in documented[str(status)]["content"]
        operation.validate_response(response)
        body = response.get_json() if response.is_json else {}
        if code is not None:
            assert body["code"] == code
        return body

    return check


def new_cart(client, total_cents: int = 8000) -> str:
    return client.post("/v1/carts", json={"total_cents": total_cents}).get_json()["cart_token"]


def test_rate_limited_lookups(client, contract):
    for _ in range(2):
        client.post("/v1/gift-cards/balance", json={"claim_code": "DEMO-100S-PLIT"})
    response = client.post("/v1/gift-cards/balance", json={"claim_code": "DEMO-100S-PLIT"})
    contract("/v1/gift-cards/balance", "POST", response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1


def test_instagift_unavailable(client, instagift, contract):
    instagift.inject_fault("fetch_claim_code", "error_500", times=3)
    response = client.post(f"/v1/carts/{new_cart(client)}/gift-cards", json={"claim_code": "DEMO-100S-PLIT"})
    contract("/v1/carts/{cart_token}/gift-cards", "POST", response, 503, "provider_unavailable")


def test_gift_cards_changed_and_forfeit_not_accepted(client, instagift, contract):
    cert_id, code = instagift.add_certificate(10000)
    token = new_cart(client)
    assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}).status_code == 200
    instagift.spend_elsewhere(cert_id, 7000, split=False)
    body = contract("/v1/carts/{cart_token}/verify", "POST", client.post(f"/v1/carts/{token}/verify", headers=SHOP),
                    409, "gift_cards_changed")
    assert body["changes"][0]["reason"] == "balance_changed"
    response = client.post(f"/v1/carts/{new_cart(client, 5000)}/gift-cards", json={"claim_code": "DEMO-080N-OSPL"})
    assert contract("/v1/carts/{cart_token}/gift-cards", "POST", response, 409,
                    "forfeit_not_accepted")["forfeit_cents"] == 3000


def test_oversized_and_unsigned_bodies(client, contract):
    response = client.post("/v1/carts", data=b"{" + b" " * 70_000 + b"}", content_type="application/json")
    contract("/v1/carts", "POST", response, 413, "payload_too_large")
    response = client.post("/v1/webhooks/orders", json=order_completed("r1"))
    contract("/v1/webhooks/orders", "POST", response, 401, "webhook_signature_missing")


def test_a_duplicate_delivery_and_a_retried_job(app, client, contract):
    raw, headers = signed_webhook(order_completed("r2"))
    contract("/v1/webhooks/orders", "POST", client.post("/v1/webhooks/orders", data=raw, headers=headers), 202)
    contract("/v1/webhooks/orders", "POST", client.post("/v1/webhooks/orders", data=raw, headers=headers), 200)
    with app.app_context():
        job = db.session.scalars(sa.select(Job)).first()
        job.state = "dead"
        db.session.commit()
        job_id = job.id
    response = client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN)
    assert contract("/v1/jobs/{job_id}/retry", "POST", response, 202, None)["state"] == "queued"
    response = client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN)
    assert contract("/v1/jobs/{job_id}/retry", "POST", response, 409, "job_not_retryable")["state"] == "queued"


def test_csv_answers_are_documented_as_csv(client, contract):
    for path, first_column in (("/v1/redemptions", "id"), ("/v1/reconciliation", "date")):
        response = client.get(path, headers={**ADMIN, "Accept": "text/csv"})
        assert response.get_data(as_text=True).startswith(first_column + ",")
        contract(path, "GET", response, 200)


@pytest.mark.parametrize(("path", "url"), [("/healthz", "/healthz?x=%00"),
                                           ("/widget/v1/manifest.json", "/widget/v1/manifest.json?v=%00"),
                                           ("/v1/providers/check", "/v1/providers/check?x=%00")])
def test_a_nul_in_any_query_is_a_documented_400(client, contract, path, url):
    contract(path, "GET", client.get(url, headers=ADMIN), 400, "bad_request")
