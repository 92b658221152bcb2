"""The Cardly client's exact wire behaviour, against canned answers shaped like Cardly's documentation."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from service.errors import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderPaymentRequired,
    ProviderRateLimited,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from service.providers.cardly import (
    JSON_CONTENT_TYPE,
    CardlyClient,
    CardRecipient,
    CardRequest,
    order_body,
    payment_required_amounts,
    preview_body,
)

BASE = "https://cardly.test/v2"
KEY = "test_QRJabcdefgh73X"
BODY = {"purchaseOrderNumber": "#1001", "lines": [{"artwork": "thanks", "recipient": {"firstName": "Ada"}}]}


def envelope(data, status="OK", messages=(), test_mode=True):
    body = {"state": {"status": status, "messages": list(messages)}, "data": data}
    if test_mode:
        body["testMode"] = True
    return body


PLACED = envelope({"balance": 99.73, "giftCredit": {"balance": 0, "currency": "USD"}, "order": {
    "id": "c988c0c0-f6a3-4e90-bbd5-759497a82607", "status": "paid", "pricing": {"credits": 2.8},
    "items": [{"id": "i1", "type": "card", "costs": {"credits": 0.5},
               "delivery": {"requested": "2019-12-25", "dispatch": "2019-12-12",
                            "estimatedMinArrival": "2019-12-17", "estimatedMaxArrival": "2019-12-20"}}]}})


@pytest.fixture
def client():
    return CardlyClient(BASE, KEY, timeout_seconds=2)


@responses.activate
def test_place_order_sends_key_content_type_and_idempotency_key_and_reads_the_order(client):
    responses.post(f"{BASE}/orders/place", json=PLACED, headers={"Request-Id": "req_123"}, match=[
        matchers.header_matcher({"API-Key": KEY, "Content-Type": JSON_CONTENT_TYPE,
                                 "Idempotency-Key": "order-1001-g1"}),
        matchers.json_params_matcher(BODY),
    ])
    placed = client.place_order(BODY, "order-1001-g1")
    assert placed.order_id == "c988c0c0-f6a3-4e90-bbd5-759497a82607"
    assert placed.cost_credits == Decimal("2.8") and placed.balance_credits == Decimal("99.73")
    assert placed.delivery.dispatch == "2019-12-12" and placed.delivery.estimated_max_arrival == "2019-12-20"
    assert placed.test_mode is True and placed.request_id == "req_123" and placed.warnings == ()
    assert JSON_CONTENT_TYPE == "application/json"


@responses.activate
def test_a_live_answer_without_test_mode_is_reported_live(client):
    responses.post(f"{BASE}/orders/place", json={**PLACED, "testMode": False})
    assert client.place_order(BODY, "k1").test_mode is False


@responses.activate
def test_state_error_with_http_200_is_a_refusal_with_cardly_messages(client):
    responses.post(f"{BASE}/orders/place", headers={"Request-Id": "req_err"},
                   json=envelope(None, status="ERROR", messages=["Artwork is not available to your organisation."]))
    with pytest.raises(ProviderRejected) as caught:
        client.place_order(BODY, "k1")
    assert caught.value.reason == "Artwork is not available to your organisation."
    assert caught.value.request_id == "req_err" and caught.value.http_status == 200


@responses.activate
def test_state_warn_is_a_success_whose_messages_are_kept(client):
    responses.post(f"{BASE}/orders/place", json={**PLACED, "state": {
        "status": "WARN", "messages": ["Requested arrival cannot be guaranteed for this region."]}})
    placed = client.place_order(BODY, "k1")
    assert placed.warnings == ("Requested arrival cannot be guaranteed for this region.",)


@responses.activate
def test_422_field_messages_become_field_colon_reason_text_and_keep_the_request_id(client):
    responses.post(f"{BASE}/orders/place", status=422, headers={"Request-Id": "req_422"}, json=envelope(
        {"errors": {"lines.0.recipient.postcode": ["is required"], "lines.0.artwork": ["does not exist"]}},
        status="ERROR", messages=["Validation failed."]))
    with pytest.raises(ProviderRejected) as caught:
        client.place_order(BODY, "k1")
    assert caught.value.reason == "lines.0.recipient.postcode: is required; lines.0.artwork: does not exist"
    assert caught.value.request_id == "req_422" and caught.value.http_status == 422
    assert not caught.value.retryable


@responses.activate
def test_422_messages_given_as_objects_with_fields_are_read_too(client):
    responses.post(f"{BASE}/orders/preview", status=422, json=envelope(None, status="ERROR", messages=[
        {"field": "recipient.country", "message": "must be a 2-character ISO code"}]))
    with pytest.raises(ProviderRejected) as caught:
        client.preview_order(BODY["lines"][0])
    assert caught.value.reason == "recipient.country: must be a 2-character ISO code"


@responses.activate
def test_402_carries_cost_and_balance(client):
    responses.post(f"{BASE}/orders/place", status=402, headers={"Request-Id": "req_402"}, json=envelope(
        {"cost": 1.25, "balance": 0.5}, status="ERROR", messages=["Insufficient credit."]))
    with pytest.raises(ProviderPaymentRequired) as caught:
        client.place_order(BODY, "k1")
    assert payment_required_amounts(caught.value) == (Decimal("1.25"), Decimal("0.5"))
    assert caught.value.request_id == "req_402" and not caught.value.retryable


@pytest.mark.parametrize("status", [401, 403])
@responses.activate
def test_refused_credentials_are_an_auth_error_without_the_key(client, status):
    responses.post(f"{BASE}/orders/place", status=status, headers={"Request-Id": "req_auth"},
                   json=envelope(None, status="ERROR", messages=["No valid API key was supplied."]))
    with pytest.raises(ProviderAuthError) as caught:
        client.place_order(BODY, "k1")
    assert KEY not in str(caught.value) and caught.value.request_id == "req_auth"


@responses.activate
def test_idempotency_key_reuse_with_another_body_is_recognised(client):
    responses.post(f"{BASE}/orders/place", status=400, json=envelope(None, status="ERROR", messages=[
        "Idempotency key reuse: this key was used with a different request."]))
    with pytest.raises(ProviderRejected) as caught:
        client.place_order(BODY, "k1")
    assert caught.value.code == "cardly_idempotency_conflict"


@pytest.mark.parametrize("status", [500, 502, 503])
@responses.activate
def test_5xx_is_retryable_and_uncertain(client, status):
    responses.post(f"{BASE}/orders/place", status=status, json={}, headers={"Request-Id": "req_5xx"})
    with pytest.raises(ProviderUnavailable) as caught:
        client.place_order(BODY, "k1")
    assert caught.value.retryable and caught.value.outcome_unknown and caught.value.request_id == "req_5xx"


@responses.activate
def test_429_honours_retry_after(client):
    responses.post(f"{BASE}/orders/place", status=429, json={}, headers={"Retry-After": "7"})
    with pytest.raises(ProviderRateLimited) as caught:
        client.place_order(BODY, "k1")
    assert caught.value.retry_after_seconds == 7 and caught.value.retryable


@responses.activate
def test_a_timeout_is_retryable_and_uncertain(client):
    responses.post(f"{BASE}/orders/place", body=requests.ReadTimeout("slow"))
    with pytest.raises(ProviderUnavailable) as caught:
        client.place_order(BODY, "k1")
    assert caught.value.outcome_unknown


@responses.activate
def test_a_2xx_without_a_readable_envelope_is_invalid_and_uncertain(client):
    responses.post(f"{BASE}/orders/place", body="<html>oops</html>", status=200)
    with pytest.raises(ProviderResponseInvalid) as caught:
        client.place_order(BODY, "k1")
    assert caught.value.outcome_unknown


@responses.activate
def test_a_placed_answer_without_an_order_id_is_invalid(client):
    responses.post(f"{BASE}/orders/place", json=envelope({"balance": 3}))
    with pytest.raises(ProviderResponseInvalid, match="data.order.id"):
        client.place_order(BODY, "k1")


@pytest.mark.parametrize("key", ["", "x" * 65, "has space", "naïve"])
def test_idempotency_keys_must_fit_cardly(client, key):
    with pytest.raises(ValueError):
        client.place_order(BODY, key)


@responses.activate
def test_a_64_character_key_is_accepted(client):
    responses.post(f"{BASE}/orders/place", json=PLACED)
    client.place_order(BODY, "k" * 64)
    assert responses.calls[0].request.headers["Idempotency-Key"] == "k" * 64


@responses.activate
def test_preview_reads_urls_cost_and_delivery_and_sends_no_idempotency_key(client):
    responses.post(f"{BASE}/orders/preview", json=envelope({
        "balance": 123, "order": {"creditCost": 0.5, "delivery": [{"dispatch": "2019-12-12",
                                                                   "estimatedMinArrival": "2019-12-17"}]},
        "preview": {"expires": "2019-12-10 23:11:38", "format": "pdf",
                    "urls": {"card": "https://cardly.test/v2/preview/p1/card/pdf", "envelope": None}}}))
    preview = client.preview_order(BODY["lines"][0])
    assert preview.card_url == "https://cardly.test/v2/preview/p1/card/pdf" and preview.envelope_url is None
    assert preview.cost_credits == Decimal("0.5") and preview.delivery.dispatch == "2019-12-12"
    assert "Idempotency-Key" not in responses.calls[0].request.headers
    assert json.loads(responses.calls[0].request.body) == BODY["lines"][0]


@responses.activate
def test_get_order_and_not_found(client):
    responses.get(f"{BASE}/orders/o1", json=envelope({"id": "o1", "status": "Paid", "costs": {"credits": 1.0},
                                                      "items": [{"delivery": {"dispatch": "2019-12-17"}}]}))
    responses.get(f"{BASE}/orders/missing", status=404, json=envelope(None, status="ERROR", messages=["Not found"]))
    order = client.get_order("o1")
    assert order.status == "Paid" and order.cost_credits == Decimal("1.0") and order.delivery.dispatch == "2019-12-17"
    with pytest.raises(ProviderNotFound):
        client.get_order("missing")


@responses.activate
def test_account_balance(client):
    responses.get(f"{BASE}/account/balance", json=envelope({"balance": 123, "giftCredit": {"balance": 145.43}}))
    balance = client.account_balance()
    assert balance.credits == Decimal("123") and balance.test_mode


@responses.activate
def test_account_balance_without_a_number_is_invalid(client):
    responses.get(f"{BASE}/account/balance", json=envelope({"balance": "lots"}))
    with pytest.raises(ProviderResponseInvalid, match="data.balance"):
        client.account_balance()


@responses.activate
def test_listings_page_with_limit_and_offset(client):
    responses.get(f"{BASE}/art", match=[matchers.query_param_matcher({"limit": "10", "offset": "20"})],
                  json=envelope({"meta": {"startRecord": 21, "lastRecord": 30, "limit": 10, "offset": 20,
                                          "totalRecords": 134}, "results": [{"id": f"a{n}"} for n in range(10)]}))
    responses.get(f"{BASE}/templates", match=[matchers.query_param_matcher({"limit": "25", "offset": "0"})],
                  json=envelope({"meta": {"limit": 25, "offset": 0, "totalRecords": 2},
                                 "results": [{"id": "t1"}, {"id": "t2"}]}))
    art = client.list_art(limit=10, offset=20)
    assert len(art.results) == 10 and art.total == 134 and art.next_offset == 30
    templates = client.list_templates()
    assert [t["id"] for t in templates.results] == ["t1", "t2"] and templates.next_offset is None
    with pytest.raises(ValueError):
        client.list_art(limit=101)


def test_a_card_request_is_put_in_cardlys_words():
    recipient = CardRecipient(first_name="Ada", last_name="Lovelace", address1="10 Main St", address2="",
                              city="Springfield", region="IL", postcode="62701", country="US", company="Analytical")
    plain = CardRequest(purchase_order_number="#1001", artwork="art-1", recipient=recipient, message="Thanks!",
                        shipping_method="tracked", requested_arrival=date(2026, 12, 10))
    assert order_body(plain) == {"purchaseOrderNumber": "#1001", "lines": [{
        "artwork": "art-1", "quantity": 1,
        "recipient": {"firstName": "Ada", "lastName": "Lovelace", "address": "10 Main St", "address2": "",
                      "city": "Springfield", "region": "IL", "postcode": "62701", "country": "US",
                      "company": "Analytical"},
        "messages": {"pages": [{"page": 3, "text": "Thanks!"}]},
        "shippingMethod": "tracked", "requestedArrival": "2026-12-10"}]}
    templated = CardRequest(purchase_order_number="#1001", artwork="art-1", recipient=recipient, message="Hi",
                            template="tpl-9", template_variables={"first_name": "Ada", "message": "Hi",
                                                                  "order_number": "#1001", "shop_name": "Demo"})
    body = preview_body(templated)
    assert body["template"] == "tpl-9" and "messages" not in body and body["purchaseOrderNumber"] == "#1001"
    assert body["variables"] == {"firstName": "Ada", "message": "Hi", "orderNumber": "#1001", "shopName": "Demo"}


def _orders_page(offset, results, total):
    return envelope({"meta": {"limit": 100, "offset": offset, "totalRecords": total}, "results": results})


@responses.activate
def test_an_order_is_found_by_purchase_order_number_across_pages(client):
    other = [{"id": f"o{n}", "status": "Paid", "customer": {"purchaseOrderNo": f"#{n}"}} for n in range(100)]
    ours = {"id": "o-ours", "status": "Paid", "costs": {"credits": 1.25}, "customer": {"purchaseOrderNo": "#1001"}}
    responses.get(f"{BASE}/orders", match=[matchers.query_param_matcher({"limit": "100", "offset": "0"})],
                  json=_orders_page(0, other, 101))
    responses.get(f"{BASE}/orders", match=[matchers.query_param_matcher({"limit": "100", "offset": "100"})],
                  json=_orders_page(100, [ours], 101))
    found = client.find_order_by_purchase_order("#1001")
    assert (found.order_id, found.cost_credits, found.test_mode) == ("o-ours", Decimal("1.25"), True)
    assert client.find_order_by_purchase_order("#nowhere") is None


@pytest.mark.parametrize("last_record", [2, None])
def test_a_page_smaller_than_asked_goes_on_where_it_ended(client, last_record):
    """Cardly answering fewer records than the `limit` asked (its own cap) skips none: the next page starts at the
    page's `meta.lastRecord`, or after the records it holds when it has none."""
    other = [{"id": f"o{n}", "status": "Paid", "customer": {"purchaseOrderNo": f"#{n}"}} for n in range(2)]
    ours = {"id": "o-ours", "status": "Paid", "costs": {"credits": 1.25}, "customer": {"purchaseOrderNo": "#1001"}}
    first = _orders_page(0, other, 3)
    if last_record is not None:
        first["data"]["meta"]["lastRecord"] = last_record
    with responses.RequestsMock() as wire:
        wire.get(f"{BASE}/orders", match=[matchers.query_param_matcher({"limit": "100", "offset": "0"})], json=first)
        wire.get(f"{BASE}/orders", match=[matchers.query_param_matcher({"limit": "100", "offset": "2"})],
                 json=_orders_page(2, [ours], 3))
        assert client.find_order_by_purchase_order("#1001").order_id == "o-ours"


@responses.activate
def test_each_listing_is_counted_under_its_own_operation(client):
    """The listings share one pager; the metrics still tell them apart (docs/metrics.md's operations)."""
    from service import metrics

    def calls(operation):
        return metrics.REGISTRY.get_sample_value(metrics.PREFIX + "provider_calls_total", {
            "provider": "cardly", "operation": operation, "outcome": "ok"}) or 0

    for path in ("orders", "art", "templates"):
        responses.get(f"{BASE}/{path}", json=envelope({"meta": {"totalRecords": 0}, "results": []}))
    before = {op: calls(op) for op in ("list_orders", "list_art", "list_templates")}
    client.find_order_by_purchase_order("#1001")
    client.list_art()
    client.list_art()
    client.find_template("tpl-slug")
    after = {op: calls(op) - before[op] for op in before}
    assert after == {"list_orders": 1, "list_art": 2, "list_templates": 1}
