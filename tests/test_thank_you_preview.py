"""POST /v1/thank-you-cards/preview: the merchant checks artwork, message and cost on a sample order."""

from __future__ import annotations

import requests

from tests.support import ADMIN, SHOP, order_completed

URL = "/v1/thank-you-cards/preview"


def sample(**overrides):
    return order_completed("sample-1", **overrides)["data"]


def test_the_admin_gets_cardly_preview_urls_cost_and_the_rules_verdict(client):
    response = client.post(URL, json=sample(), headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert "/cardly/v2/preview/" in body["card_url"]
    assert requests.get(body["card_url"], timeout=5).headers["Content-Type"] == "application/pdf"
    assert body["cost_credits"] == "1.0" and body["test_mode"] is True
    assert body["message"] == "Dear Ada,\nThank you for your order #sample-1!\nDemo Shop"
    assert body["would_send"] is True and body["skip_reason"] is None
    assert body["delivery"]["estimated_min_arrival"]


def test_the_preview_says_when_the_rules_would_skip_the_order(client):
    body = client.post(URL, json=sample(customer={"first_name": "Ada", "accepts_mail": False}),
                       headers=ADMIN).get_json()
    assert body["would_send"] is False and body["skip_reason"] == "opted_out" and body["card_url"]


def test_the_shop_token_and_no_token_are_refused(client, sandbox):
    cardly = sandbox.app.extensions["sandbox"]["cardly"]
    for headers in (SHOP, {}, {"Authorization": "Bearer wrong"}):
        response = client.post(URL, json=sample(), headers=headers)
        assert response.status_code == 401 and response.mimetype == "application/problem+json"
    assert not any(r["path"] == "orders/preview" for r in cardly.requests)


def test_a_malformed_sample_is_a_422_problem_before_cardly_is_asked(client, sandbox):
    cardly = sandbox.app.extensions["sandbox"]["cardly"]
    response = client.post(URL, json={"number": "#1"}, headers=ADMIN)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert {"id", "currency", "total_cents"} <= set(errors)
    response = client.post(URL, json=sample(shipping_address=None), headers=ADMIN)
    assert response.status_code == 422 and "shipping_address" in response.get_json()["errors"]
    assert not any(r["path"] == "orders/preview" for r in cardly.requests)


def test_a_sample_cardly_refuses_is_a_422_problem_with_cardly_reason(client):
    address = sample()["shipping_address"] | {"region": None}
    response = client.post(URL, json=sample(shipping_address=address), headers=ADMIN)
    assert response.status_code == 422
    problem = response.get_json()
    assert problem["code"] == "cardly_rejected_sample"
    assert "recipient.region: is required for US addresses" in problem["detail"]
