"""Cardly's own documented examples, served at the documented path, read by the real CardlyClient.

Cardly's documentation prints sample responses for its orders but no error body at all: every error fixture is
`guessed` (the Return Structure envelope with the documented reason), and its test says so.
"""

from __future__ import annotations

import copy
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
    IDEMPOTENCY_CONFLICT_CODE,
    CardlyClient,
    CardRecipient,
    CardRequest,
    order_body,
    payment_required_amounts,
    preview_body,
)
from tests.contract.examples import doc_example

HOST = "https://api.card.ly"  # the host in Cardly's Echo Request sample
KEY = "test_QRJabcdefgh73X"
REQUEST_ID = "req_doc_sample"
CARD = CardRequest(purchase_order_number="#1001", artwork="happy-birthday", message="Thank you!",
                   recipient=CardRecipient("John", "Doe", "10 Somewhere Place", "", "Fairyland", "QLD", "4110", "AU"))


@pytest.fixture
def cardly():
    return CardlyClient(f"{HOST}/v2", KEY, timeout_seconds=2)


def serve(example: dict, *, body=None, **path_values: str) -> None:
    """Answer the example's documented request (method and path, `{id}` filled in) with its status and body."""
    request = example["request"]
    responses.add(request["method"], HOST + request["path"].format(**path_values), status=example["status"],
                  json=example["body"] if body is None else body, headers={"Request-Id": REQUEST_ID})


def guessed(example: dict) -> str:
    """The example's stated assumptions; a test that relies on a guess fails if the fixture stops saying so."""
    assert example.get("guessed"), "this test relies on a guess the fixture does not state"
    return example["guessed"]


def place(cardly: CardlyClient):
    return cardly.place_order(order_body(CARD), "order-1001-g1")


# -- Place Order --------------------------------------------------------------------------------------------
@responses.activate
def test_place_order_sample_response_is_read_with_its_pricing_balance_and_delivery(cardly):
    example = doc_example("cardly", "place_order")
    serve(example)
    placed = place(cardly)
    assert placed.order_id == "c988c0c0-f6a3-4e90-bbd5-759497a82607" and placed.status == "paid"
    # The Place Order sample names the order's credits `pricing` where the Order Object says `costs`.
    assert placed.cost_credits == Decimal("2.8") and placed.balance_credits == Decimal("99.73")
    assert (placed.delivery.requested, placed.delivery.dispatch, placed.delivery.estimated_min_arrival,
            placed.delivery.estimated_max_arrival) == ("2019-12-25", "2019-12-12", "2019-12-17", "2019-12-20")
    assert placed.test_mode is True and placed.warnings == () and placed.request_id == REQUEST_ID


@responses.activate
def test_the_return_structure_sample_is_read_and_its_missing_order_named(cardly):
    """Guessed: the generic envelope sample served as a Place Order answer. Its `data` has no order, so the
    client reads the envelope (no complaint about `state`) and names what it lacks."""
    example = doc_example("cardly", "return_structure")
    guessed(example)
    serve(example)
    with pytest.raises(ProviderResponseInvalid) as caught:
        place(cardly)
    assert "data.order.id" in caught.value.message and "state.status" not in caught.value.message
    assert caught.value.outcome_unknown is True


@responses.activate
def test_a_warn_state_on_200_is_a_placed_order_with_its_warnings(cardly):
    """Guessed: no sample shows WARN; the Place Order sample with state WARN and one plain-text message."""
    example = doc_example("cardly", "place_order_200_warn")
    guessed(example)
    serve(example)
    placed = place(cardly)
    assert placed.order_id == "c988c0c0-f6a3-4e90-bbd5-759497a82607"
    assert placed.warnings == tuple(example["body"]["state"]["messages"])


@responses.activate
def test_an_error_state_on_200_is_a_refusal(cardly):
    """Guessed: no sample shows ERROR on a 200; state.status decides, not the HTTP status."""
    example = doc_example("cardly", "place_order_200_error")
    guessed(example)
    serve(example)
    with pytest.raises(ProviderRejected) as caught:
        place(cardly)
    assert not isinstance(caught.value, ProviderPaymentRequired)
    assert caught.value.http_status == 200 and caught.value.reason == "The order could not be placed."


@responses.activate
def test_402_not_enough_credit_carries_the_cost_and_the_balance(cardly):
    """Guessed: Cardly promises "detail on the required credit cost and your current balance" without naming the
    fields; data.cost and data.balance are assumed (the fixture says which other names the client reads)."""
    example = doc_example("cardly", "place_order_402_not_enough_credit")
    assert "data.cost" in guessed(example)
    serve(example)
    with pytest.raises(ProviderPaymentRequired) as caught:
        place(cardly)
    assert payment_required_amounts(caught.value) == (Decimal("2.8"), Decimal("0.5"))
    assert "Insufficient credit" in caught.value.reason and caught.value.request_id == REQUEST_ID


@responses.activate
def test_400_missing_data_is_a_refusal_with_cardly_reason(cardly):
    """Guessed: the 400 body is the envelope with state ERROR and a plain message."""
    example = doc_example("cardly", "place_order_400_missing_data")
    guessed(example)
    serve(example)
    with pytest.raises(ProviderRejected) as caught:
        place(cardly)
    assert not isinstance(caught.value, ProviderPaymentRequired)
    assert caught.value.code != IDEMPOTENCY_CONFLICT_CODE and caught.value.http_status == 400
    assert caught.value.reason == "lines: at least one order line is required"


@responses.activate
def test_422_validation_messages_all_reach_the_reason(cardly):
    """Guessed: one plain-text message per failing field in state.messages."""
    example = doc_example("cardly", "place_order_422_validation_failed")
    guessed(example)
    serve(example)
    with pytest.raises(ProviderRejected) as caught:
        place(cardly)
    assert not isinstance(caught.value, ProviderPaymentRequired) and caught.value.http_status == 422
    assert caught.value.reason == ("The recipient's postcode is required.; "
                                   "The requested arrival date must be in the future.")


@responses.activate
def test_an_idempotency_key_reused_with_another_body_is_recognised(cardly):
    """Guessed: status 400 and the documented sentence as the message; the client spots the word "idempotency"."""
    example = doc_example("cardly", "place_order_400_idempotency_key_reused")
    assert "idempotency" in guessed(example)
    serve(example)
    with pytest.raises(ProviderRejected) as caught:
        place(cardly)
    assert caught.value.code == IDEMPOTENCY_CONFLICT_CODE


@responses.activate
@pytest.mark.parametrize("name", ["place_order_401_no_valid_api_key", "place_order_403_forbidden"])
def test_refused_keys_are_a_configuration_error_without_the_key(cardly, name):
    """Guessed: the envelope with state ERROR and the documented reason."""
    example = doc_example("cardly", name)
    guessed(example)
    serve(example)
    with pytest.raises(ProviderAuthError) as caught:
        place(cardly)
    assert caught.value.http_status == example["status"] and "CARDLY_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value) and KEY not in repr(caught.value.body)


@responses.activate
def test_429_is_retryable_without_a_documented_retry_after(cardly):
    """Guessed: the envelope; Cardly documents no Retry-After, so none is served."""
    example = doc_example("cardly", "place_order_429_too_many_requests")
    guessed(example)
    serve(example)
    with pytest.raises(ProviderRateLimited) as caught:
        place(cardly)
    assert caught.value.retryable is True and caught.value.retry_after_seconds is None


@responses.activate
def test_500_leaves_the_placement_in_doubt(cardly):
    """Guessed: the envelope; a 500 on Place Order may or may not have placed the card."""
    example = doc_example("cardly", "place_order_500_internal_server_error")
    guessed(example)
    serve(example)
    with pytest.raises(ProviderUnavailable) as caught:
        place(cardly)
    assert caught.value.retryable is True and caught.value.outcome_unknown is True


# -- Generate Preview ---------------------------------------------------------------------------------------
@responses.activate
def test_preview_sample_response_is_read_with_its_delivery_list(cardly):
    example = doc_example("cardly", "preview_order")
    serve(example)
    preview = cardly.preview_order(preview_body(CARD))
    assert preview.card_url == "http://api.card.ly/v2/preview/4e898074-6a2e-e3fb-9778-518596c36c2a/card/pdf"
    assert preview.envelope_url is None and preview.format == "pdf" and preview.expires == "2019-12-10 23:11:38"
    assert preview.cost_credits == Decimal("0.5") and preview.balance_credits == Decimal("123")
    assert preview.delivery.dispatch == "2019-12-12" and preview.delivery.estimated_max_arrival == "2019-12-20"
    assert preview.test_mode is False  # the sample has no testMode: a live answer


# -- Get Order and the Order Listing ------------------------------------------------------------------------
@responses.activate
def test_get_order_sample_response_is_read(cardly):
    example = doc_example("cardly", "get_order")
    order_id = example["body"]["data"]["id"]
    serve(example, id=order_id)
    order = cardly.get_order(order_id)
    assert order.order_id == "cdb75194-c03b-1bab-e390-47853b1dba08" and order.status == "Paid"
    assert order.cost_credits == Decimal("1.0") and order.purchase_order_number is None
    assert order.delivery.requested is None and order.delivery.dispatch == "2019-12-17"
    assert order.delivery.estimated_max_arrival == "2019-12-30" and order.test_mode is False


@responses.activate
def test_the_order_object_sample_as_get_orders_data_is_read(cardly):
    example = doc_example("cardly", "order_object")
    order_id = example["body"]["id"]
    serve(example, id=order_id, body={"state": {"status": "OK", "messages": []}, "data": example["body"]})
    order = cardly.get_order(order_id)
    assert order.order_id == order_id and order.status == "paid" and order.cost_credits == Decimal("0.53")
    assert order.delivery.requested == "2019-12-25" and order.delivery.estimated_min_arrival == "2019-12-17"


@responses.activate
def test_get_order_404_is_not_found(cardly):
    """Guessed: the envelope with the documented reason."""
    example = doc_example("cardly", "get_order_404_not_found")
    guessed(example)
    serve(example, id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(ProviderNotFound):
        cardly.get_order("00000000-0000-0000-0000-000000000000")


@responses.activate
def test_order_listing_sample_is_paged_once_and_has_no_such_purchase_order(cardly):
    example = doc_example("cardly", "order_listing")
    responses.add(example["request"]["method"], HOST + example["request"]["path"], json=example["body"],
                  match=[matchers.query_param_matcher({"limit": "100", "offset": "0"})])
    # The sample's one order has no purchase order number, and meta.totalRecords (5) ends the listing on page 1.
    assert cardly.find_order_by_purchase_order("#1001") is None
    assert len(responses.calls) == 1


@responses.activate
def test_order_listing_sample_finds_an_order_by_its_customer_purchase_order_no(cardly):
    example = doc_example("cardly", "order_listing")
    body = copy.deepcopy(example["body"])
    body["data"]["results"][0]["customer"]["purchaseOrderNo"] = "#1001"  # where the listing keeps the number
    responses.add(example["request"]["method"], HOST + example["request"]["path"], json=body)
    order = cardly.find_order_by_purchase_order("#1001")
    assert order is not None and order.order_id == "cdb75194-c03b-1bab-e390-47853b1dba08"
    assert order.purchase_order_number == "#1001" and order.cost_credits == Decimal("1.0")


# -- the sandbox against the samples -------------------------------------------------------------------------
def test_the_sandbox_answers_orders_with_the_documented_samples_fields(sandbox):
    """Place Order, Get Order and the Order Listing from the sandbox carry exactly the fields of the docs' samples
    (so the sandbox cannot let the client lean on a field Cardly does not send, e.g. a top-level purchase order
    number, or an order's credits under `costs` in a Place Order answer, which the sample calls `pricing`)."""
    sandbox.app.extensions["sandbox"]["cardly"].reset()
    base, headers = f"{sandbox.url}/cardly/v2", {"API-Key": "test_contract_examples"}
    card = CardRequest(purchase_order_number="#1001", artwork="sandbox-thank-you-art", message="Thank you!",
                       recipient=CardRecipient("Ada", "Lovelace", "10 Main St", "", "Springfield", "IL", "62701",
                                               "US"))
    placed = requests.post(f"{base}/orders/place", json=order_body(card), headers=headers, timeout=5).json()
    sample = doc_example("cardly", "place_order")["body"]
    assert placed.keys() == sample.keys() and placed["data"].keys() == sample["data"].keys()
    assert placed["data"]["order"].keys() == sample["data"]["order"].keys()
    assert placed["data"]["order"]["items"][0].keys() == sample["data"]["order"]["items"][0].keys()

    order_id = placed["data"]["order"]["id"]
    fetched = requests.get(f"{base}/orders/{order_id}", headers=headers, timeout=5).json()["data"]
    assert fetched.keys() == doc_example("cardly", "get_order")["body"]["data"].keys()
    assert fetched["customer"]["purchaseOrderNo"] == "#1001"

    listed = requests.get(f"{base}/orders", headers=headers, timeout=5).json()["data"]
    sample_listing = doc_example("cardly", "order_listing")["body"]["data"]
    assert listed["meta"].keys() >= sample_listing["meta"].keys()
    assert listed["results"][0].keys() == sample_listing["results"][0].keys()
