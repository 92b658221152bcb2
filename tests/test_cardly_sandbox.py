"""The Cardly sandbox follows the documented behaviour the service relies on (over real HTTP)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests

from service.errors import ProviderAuthError, ProviderPaymentRequired, ProviderRejected
from service.providers.cardly import CardlyClient


@pytest.fixture
def cardly(sandbox):
    state = sandbox.app.extensions["sandbox"]["cardly"]
    state.reset()
    return state


@pytest.fixture
def base(sandbox):
    return f"{sandbox.url}/cardly/v2"


def line(**overrides):
    card = {"artwork": "sandbox-thank-you-art", "template": "sandbox-thank-you-template", "quantity": 1,
            "variables": {"firstName": "Ada", "message": "Thanks!"},
            "recipient": {"firstName": "Ada", "lastName": "Lovelace", "address": "10 Main St", "city": "Springfield",
                          "region": "IL", "postcode": "62701", "country": "US"}}
    card.update(overrides)
    return card


def place(base, body, key=None, api_key="test_sandbox_key"):
    headers = {"API-Key": api_key}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(f"{base}/orders/place", json=body, headers=headers, timeout=5)


def test_same_key_same_body_replays_and_a_different_body_is_refused(cardly, base):
    body = {"purchaseOrderNumber": "#1", "lines": [line()]}
    first = place(base, body, "k-1")
    again = place(base, body, "k-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    changed = place(base, {"purchaseOrderNumber": "#2", "lines": [line()]}, "k-1")
    assert changed.status_code == 400 and "Idempotency key reuse" in changed.json()["state"]["messages"][0]
    assert len(cardly.placed_orders()) == 1


def test_missing_parameters_and_bad_credentials_do_not_consume_the_key(cardly, base):
    assert place(base, {"purchaseOrderNumber": "#1"}, "k-2").status_code == 400
    assert place(base, {"lines": [line()]}, "k-2", api_key="nope").status_code == 401
    ok = place(base, {"lines": [line()]}, "k-2")
    assert ok.status_code == 200 and "Idempotent-Replayed" not in ok.headers


def test_a_stored_402_is_replayed_even_after_credit_is_added(cardly, base):
    cardly.set_credit(0.5)
    body = {"lines": [line()]}
    refused = place(base, body, "k-3")
    assert refused.status_code == 402
    assert refused.json()["data"]["cost"] == 1.0 and refused.json()["data"]["balance"] == 0.5
    cardly.set_credit(10)
    assert place(base, body, "k-3").status_code == 402
    assert place(base, body, "k-4").status_code == 200


def test_validation_names_fields_and_is_stored_under_the_key(cardly, base):
    bad = line(recipient={"firstName": "Ada", "address": "10 Main St", "city": "Springfield", "country": "US"},
               shippingMethod="express")
    refused = place(base, {"lines": [bad]}, "k-5")
    assert refused.status_code == 422
    errors = refused.json()["data"]["errors"]
    assert errors["lines.0.recipient.postcode"] == ["is required"]
    assert errors["lines.0.recipient.region"] == ["is required for US addresses"]
    assert "not available for US" in errors["lines.0.shippingMethod"][0]
    assert place(base, {"lines": [bad]}, "k-5").headers["Idempotent-Replayed"] == "true"


def test_test_keys_answer_test_mode_and_spend_no_credit_live_keys_do(cardly, base):
    cardly.set_credit(3)
    test = place(base, {"lines": [line()]}, "k-6")
    assert test.json()["testMode"] is True and test.json()["data"]["balance"] == 3
    live = place(base, {"lines": [line()]}, "k-7", api_key="live_sandbox_key")
    assert "testMode" not in live.json() and live.json()["data"]["balance"] == 2


def test_the_client_against_the_sandbox(cardly, base):
    client = CardlyClient(base, "test_sandbox_key")
    placed = client.place_order({"purchaseOrderNumber": "#9", "lines": [line()]}, "k-8")
    order = client.get_order(placed.order_id)
    assert order.purchase_order_number == "#9" and order.cost_credits == Decimal("1.0")
    assert client.account_balance().credits == Decimal("25.0")
    preview = client.preview_order({k: v for k, v in line().items() if k != "quantity"})
    assert requests.get(preview.card_url, timeout=5).headers["Content-Type"] == "application/pdf"
    assert preview.cost_credits == Decimal("1.0")
    art = client.list_art(limit=10, offset=20)
    assert art.total == 30 and len(art.results) == 10 and art.next_offset is None
    assert client.list_templates().results[0]["slug"] == "sandbox-thank-you-template"
    cardly.set_credit(0)
    with pytest.raises(ProviderPaymentRequired):
        client.place_order({"lines": [line()]}, "k-9")
    with pytest.raises(ProviderRejected, match="lines.0.artwork"):
        client.place_order({"lines": [line(artwork="nope")]}, "k-10")
    cardly.revoke_key("test_sandbox_key")
    with pytest.raises(ProviderAuthError):
        client.account_balance()


def test_page_parameter_and_limits(cardly, base):
    headers = {"API-Key": "test_sandbox_key"}
    page3 = requests.get(f"{base}/art", params={"limit": 10, "page": 3}, headers=headers, timeout=5).json()["data"]
    assert page3["meta"]["offset"] == 20 and page3["meta"]["startRecord"] == 21
    too_many = requests.get(f"{base}/art", params={"limit": 101}, headers=headers, timeout=5)
    assert too_many.status_code == 422


def test_control_over_http(cardly, base):
    assert requests.post(f"{base}/_control/credit", json={"balance": 7.5}, timeout=5).json() == {"balance": 7.5}
    assert requests.post(f"{base}/_control/faults", json={"mode": "error_500", "times": 1}, timeout=5).ok
    assert requests.post(f"{base}/_control/faults", json={"mode": "nonsense"}, timeout=5).status_code == 400
    assert place(base, {"lines": [line()]}, "k-11").status_code == 500
    assert place(base, {"lines": [line()]}, "k-11").status_code == 200  # the 500 stored nothing
    listed = requests.get(f"{base}/_control/orders", timeout=5).json()
    assert len(listed["orders"]) == 1
    assert [r["status"] for r in listed["place_requests"]] == [500, 200]


def test_racing_requests_with_one_key_place_one_order(cardly, base):
    from concurrent.futures import ThreadPoolExecutor

    body = {"purchaseOrderNumber": "#race", "lines": [line()]}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: place(base, body, "k-race"), range(8)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["data"]["order"]["id"] for a in answers}) == 1
    assert len(cardly.placed_orders()) == 1
    assert sum(a.headers.get("Idempotent-Replayed") == "true" for a in answers) == 7


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_body_not_sent_as_json_is_refused_and_keeps_the_idempotency_key(base, content_type):
    """Cardly v2 API: "accepts only JSON-encoded bodies for POST requests ... Content-type: text/json"."""
    headers = {"API-Key": "test_sandbox_key", "Idempotency-Key": "k-ct"}
    if content_type:
        headers["Content-Type"] = content_type
    body = json.dumps({"lines": [line()]})
    refused = requests.post(f"{base}/orders/place", headers=headers, data=body, timeout=5)
    assert refused.status_code == 400 and refused.json()["state"]["status"] == "ERROR"
    preview = requests.post(f"{base}/orders/preview", headers=headers, data=json.dumps(line()), timeout=5)
    assert preview.status_code == 400
    for accepted in ("text/json", "application/json"):  # the text's and the echo sample's
        ok = requests.post(f"{base}/orders/place", data=body, timeout=5,
                           headers={**headers, "Content-Type": accepted})
        assert ok.status_code == 200  # the refused request did not consume the key


@pytest.mark.parametrize(("path", "body", "field"), [
    ("orders/preview", line(), "quantity"),  # Generate Preview documents no quantity
    ("orders/preview", line(shippingmethod="standard"), "shippingmethod"),
    ("orders/place", {"lines": [line(recipient={**line()["recipient"], "zip": "62701"})]}, "lines.0.recipient.zip"),
    ("orders/place", {"lines": [line(sender={"firstName": "Shop", "address": "1 High St", "city": "Springfield",
                                             "postcode": "62701", "country": "US", "region": "IL",
                                             "company": "Shop Inc"})]}, "lines.0.sender.company"),
    ("orders/place", {"lines": [line()], "purchaseOrderNo": "#1"}, "purchaseOrderNo"),
    ("orders/place", {"lines": [line(messages={"pages": [{"page": "3", "text": "Hi"}]})]}, "lines.0.messages.pages"),
    ("orders/place", {"lines": [line(recipient={**line()["recipient"], "postcode": 62701})]},
     "lines.0.recipient.postcode"),
])
def test_fields_cardly_does_not_document_are_refused(base, cardly, path, body, field):
    answer = requests.post(f"{base}/{path}", json=body, timeout=5, headers={"API-Key": "test_sandbox_key"})
    assert answer.status_code == 422 and field in answer.json()["data"]["errors"]
    assert cardly.placed_orders() == []


def test_listing_parameters_cardly_does_not_document_are_refused(base):
    headers = {"API-Key": "test_sandbox_key"}
    assert requests.get(f"{base}/art", params={"ownOnly": 1, "limit": 5, "offset": 0}, headers=headers,
                        timeout=5).status_code == 200
    for path, params in (("templates", {"ownOnly": 1}), ("orders", {"purchaseOrderNumber": "#1"}),
                         ("art", {"per_page": 5})):
        answer = requests.get(f"{base}/{path}", params=params, headers=headers, timeout=5)
        assert answer.status_code == 422 and answer.json()["state"]["status"] == "ERROR"
