"""Instagift's documented examples, served as Instagift's answer (`responses`): what the client makes of each.

Every fixture under examples/instagift/ is used here (see test_every_instagift_example_is_used): a sample
added without a test fails the suite. Where a sample's `"...": "..."` placeholders or a field the docs leave
out make the client cope or guess, the fixture's `guessed` and the test say so.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import responses

from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from service.providers.instagift import Certificate, InstagiftClient, Redemption
from tests.contract.examples import all_examples, doc_example

HOST = "https://api.instagift.test"  # the docs' paths all start with /v2
CLAIM_CODE = "E69W-CDQ2-WTWH6Y"  # the docs' own sample code, as printed


@pytest.fixture
def client():
    return InstagiftClient(f"{HOST}/v2", "OWqqv2rwnWucQC22CVwvMg", "1WngOCryMpl1l7fXH7DIYA", timeout_seconds=2)


@pytest.fixture
def wire():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def serve(wire, name: str, *, path: str | None = None, body=None) -> dict:
    """Answer the example's documented request (or `path`) with its documented status and body."""
    example = doc_example("instagift", name)
    request = example["request"]
    wire.add(request["method"], HOST + (path or request["path"]), status=example["status"],
             json=example["body"] if body is None else body)
    return example


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


# --- certificates --------------------------------------------------------------------------------------------

def test_fetch_a_certificate(client, wire):
    serve(wire, "fetch_certificate")
    certificate = client.fetch_certificate("AzoXEYPYxG3OUaKJi234WQ")
    assert certificate == Certificate(
        id="hD65TJvxnv8oIuyOmD056w", status="assigned", splittable=True, currency="USD", face_value_cents=10000,
        expires_at=None, parent_id=None, claim_code_last4="NTM2", product_title="$100 Tuscan Kitchen eGift Card",
        created_at=when("2014-10-09T16:29:44Z"))


def test_fetch_a_certificate_by_claim_code_sends_the_printed_form(client, wire):
    serve(wire, "fetch_by_claim_code")
    certificate = client.fetch_by_claim_code(" e69w cdq2 wtwh6y ")  # as a shopper might type it
    assert wire.calls[0].request.path_url == "/v2/claim_codes/E69W-CDQ2-WTWH6Y"  # the docs' sample request
    # Guessed: this sample has the deprecated `title` (and `seller`), not product_title; the client reads title.
    assert certificate == Certificate(
        id="sD-2VrA6hxAj8FVnoSc_gw", status="assigned", splittable=True, currency="USD", face_value_cents=10000,
        expires_at=None, parent_id=None, claim_code_last4="WH6Y", product_title="$100 Tuscan Kitchen eGift Card",
        created_at=when("2014-10-08T18:15:21Z"))


def test_list_all_certificates_with_its_placeholder_and_meta(client, wire):
    example = serve(wire, "list_certificates", path="/v2/certificates?per_page=100&page=1")
    # Verbatim, the second record is the docs' {"...": "..."} placeholder: not a certificate, so refused.
    with pytest.raises(ProviderResponseInvalid, match="can_split_value"):
        client.certificate_page(1)
    # Guessed: real pages hold whole records; with the placeholder left out the page reads as the sample shows.
    body = dict(example["body"], certificates=[r for r in example["body"]["certificates"] if r != {"...": "..."}])
    serve(wire, "list_certificates", path="/v2/certificates?per_page=100&page=1", body=body)
    page = client.certificate_page(1)
    [certificate] = page.records
    assert (certificate.id, certificate.parent_id, certificate.claim_code_last4) == ("sD-2VrA6hxAj8FVnoSc_gw", None,
                                                                                    "WH6Y")
    assert certificate.created_at == when("2014-10-08T18:15:21Z")
    # Guessed: the sample's meta says page_count 1 but 13 certificates at 10 a page; the client takes 2.
    assert page.last_page == 2


# --- redemptions ------------------------------------------------------------------------------------------------

def test_redeem_a_certificate(client, wire):
    serve(wire, "redeem_certificate")
    redemption = client.redeem_certificate("eSilaL3ev7w3UXvssQ_xFA", 4000,
                                           location_id="AzoXEYPYxG3OUaKJi234WQ")
    assert json.loads(wire.calls[0].request.body) == {"amount_to_redeem_cents": "4000",
                                                      "redemption_location_id": "AzoXEYPYxG3OUaKJi234WQ"}
    # Guessed: the sample elides the certificate, source and times ("..."): the client leaves them unknown.
    assert redemption == Redemption(id="f_OGwyVpgEBgRf-nh-0faA", amount_cents=4000, certificate_id=None,
                                    created_at=None, source=None, location_id="AzoXEYPYxG3OUaKJi234WQ")


def test_redeem_a_certificate_by_claim_code(client, wire):
    serve(wire, "redeem_by_claim_code")
    redemption = client.redeem_by_claim_code(CLAIM_CODE, 4000)
    assert wire.calls[0].request.path_url == "/v2/claim_codes/E69W-CDQ2-WTWH6Y/redemptions"
    assert json.loads(wire.calls[0].request.body) == {"amount_to_redeem_cents": "4000"}
    assert redemption == Redemption(id="f_OGwyVpgEBgRf-nh-0faA", amount_cents=4000, certificate_id=None,
                                    created_at=None, source=None, location_id=None)


def test_fetch_a_redemption_is_the_object_a_redeem_answers_with(client, wire):
    # The service never fetches a redemption by id; the docs' redeem answers are "See Fetch a Redemption".
    example = doc_example("instagift", "fetch_redemption")
    wire.post(f"{HOST}/v2/certificates/-3qdxkN_aoAwoX4byOLmrQ/redemptions", status=201, json=example["body"])
    redemption = client.redeem_certificate("-3qdxkN_aoAwoX4byOLmrQ", 10000)
    assert redemption == Redemption(id="f_OGwyVpgEBgRf-nh-0faA", amount_cents=10000,
                                    certificate_id="-3qdxkN_aoAwoX4byOLmrQ", created_at=when("2014-10-09T18:08:43Z"),
                                    source="api-v2-user", location_id="DBVMHAdRRRjdfUFGJZzRPw",
                                    amount_paid_cents=10000)


def test_list_all_redemptions_with_its_placeholders(client, wire):
    example = serve(wire, "list_redemptions", path="/v2/redemptions?per_page=100&page=1")
    # Verbatim, the records are id and href only: no amount_cents, so they cannot be read as redemptions.
    with pytest.raises(ProviderResponseInvalid, match="amount_cents"):
        client.redemption_page(1)
    # Guessed: records shaped like Fetch a Redemption; the sample shows no meta, so the client reads forward.
    full = doc_example("instagift", "fetch_redemption")["body"]["redemptions"][0]
    body = dict(example["body"], redemptions=[full])
    serve(wire, "list_redemptions", path="/v2/redemptions?per_page=100&page=1", body=body)
    page = client.redemption_page(1)
    assert page.last_page is None and [r.id for r in page.records] == ["f_OGwyVpgEBgRf-nh-0faA"]
    serve(wire, "list_redemptions", path="/v2/redemptions?per_page=100&page=1", body=body)
    found = client.find_redemption("-3qdxkN_aoAwoX4byOLmrQ", 10000)
    assert found is not None and found.id == "f_OGwyVpgEBgRf-nh-0faA"
    assert len(wire.calls) == 3  # one page (a page that cannot say its order: its match is taken)


# --- errors ---------------------------------------------------------------------------------------------------------

REDEEM_ERRORS = {
    "redeem_by_claim_code_error_previously_redeemed": (ProviderRejected, "previously_redeemed"),
    "redeem_by_claim_code_error_unauthorized": (ProviderAuthError, None),
    "error_table_not_available": (ProviderRejected, "not_available"),
    "error_table_previously_redeemed": (ProviderRejected, "previously_redeemed"),
    "error_table_refunded": (ProviderRejected, "refunded"),
    "error_table_location_required": (ProviderRejected, "location_required"),
    "error_table_unauthorized": (ProviderAuthError, None),
}


@pytest.mark.parametrize("name", sorted(REDEEM_ERRORS))
def test_redeem_by_claim_code_errors(client, wire, name):
    example = serve(wire, name)
    error_type, reason = REDEEM_ERRORS[name]
    with pytest.raises(ProviderError) as caught:
        client.redeem_by_claim_code(CLAIM_CODE, 4000)
    assert type(caught.value) is error_type and caught.value.reason == reason
    assert caught.value.http_status == example["status"] and not caught.value.outcome_unknown
    assert example["body"]["errors"][0]["title"] in str(caught.value)
    assert len(wire.calls) == 1  # not a 404: the other form of the code is not tried


@pytest.mark.parametrize("name", ["redeem_by_claim_code_error_not_found", "error_table_not_found"])
def test_not_found_tries_the_bare_form_once_then_is_not_found(client, wire, name):
    serve(wire, name)
    serve(wire, name, path="/v2/claim_codes/E69WCDQ2WTWH6Y/redemptions")
    with pytest.raises(ProviderError) as caught:
        client.redeem_by_claim_code(CLAIM_CODE, 4000)
    assert type(caught.value) is ProviderNotFound and caught.value.reason == "not_found"
    assert [c.request.path_url for c in wire.calls] == ["/v2/claim_codes/E69W-CDQ2-WTWH6Y/redemptions",
                                                       "/v2/claim_codes/E69WCDQ2WTWH6Y/redemptions"]
    assert "E69W" not in str(caught.value)


GENERAL_ERRORS = {
    "error_not_acceptable": (ProviderRejected, "rejected", False),
    "error_too_many_requests": (ProviderRateLimited, None, True),
    "error_internal_server_error": (ProviderUnavailable, None, True),
}


@pytest.mark.parametrize("name", sorted(GENERAL_ERRORS))
def test_general_error_codes(client, wire, name):
    serve(wire, name)
    error_type, reason, retryable = GENERAL_ERRORS[name]
    with pytest.raises(ProviderError) as caught:
        client.fetch_by_claim_code(CLAIM_CODE)
    assert type(caught.value) is error_type and caught.value.reason == reason
    assert caught.value.retryable is retryable
    assert len(wire.calls) == 1


# --- every example has its test ---------------------------------------------------------------------------------

def test_every_instagift_example_says_where_it_comes_from():
    for name in all_examples("instagift"):
        example = doc_example("instagift", name)
        assert example["source"].startswith("Instagift API v2, "), name
        assert example["request"]["path"].startswith("/v2/"), name
        if name.endswith("_request"):  # a documented request: its body is what the client sends
            assert example["sent"], name
            continue
        assert example["status"] == int(example["body"].get("errors", [{"code": example["status"]}])[0]["code"])
