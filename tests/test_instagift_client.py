"""Instagift client: exact wire behaviour with `responses`, plus a few checks over real HTTP (sandbox)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses

from service.config import load_settings
from service.errors import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from service.providers.instagift import (
    Certificate,
    InstagiftClient,
    claim_code_for_url,
    looks_like_claim_code,
    normalise_claim_code,
)

BASE = "https://instagift.test/v2"
CODE = "62DD-CV4T-R2NTM2"
BARE = "62DDCV4TR2NTM2"


def certificate_record(**overrides):
    record = {
        "id": "hD65TJvxnv8oIuyOmD056w", "parent_id": None, "href": "/v2/certificates/hD65TJvxnv8oIuyOmD056w",
        "product_type": "GiftCertificate", "claim_code": CODE, "merchant_code": "R2NTM2", "status": "assigned",
        "can_split_value": True, "currency": "USD", "face_value_cents": 10000, "price_cents": 10000,
        "product_title": "$100 Tuscan Kitchen eGift Card",
        "links": {"user": "u", "parent": None, "merchant": "m", "product": "p"},
        "expires_at": None, "created_at": "2014-10-09T16:29:44Z", "updated_at": "2014-10-09T16:29:44Z",
    }
    record.update(overrides)
    return record


def redemption_record(**overrides):
    record = {"id": "f_OGwyVpgEBgRf-nh-0faA", "href": "/v2/redemptions/f_OGwyVpgEBgRf-nh-0faA",
              "amount_cents": 4000, "amount_paid_cents": 4000, "source": "api-v2-merchant",
              "links": {"certificate": "hD65TJvxnv8oIuyOmD056w", "location": "AzoXEYPYxG3OUaKJi234WQ"},
              "created_at": "2014-10-09T18:08:43Z", "updated_at": "2014-10-09T18:08:43Z"}
    record.update(overrides)
    return record


def error_body(code: int, status: str, title: str, details: str | None = None):
    error = {"code": str(code), "status": status, "title": title}
    if details:
        error["details"] = details
    return {"errors": [error]}


@pytest.fixture
def client():
    return InstagiftClient(BASE, "key-123", "secret-456", location_id="LOC1", timeout_seconds=2)


@pytest.fixture
def wire():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


# --- claim codes ---------------------------------------------------------------------------------------


def test_normalise_claim_code():
    assert normalise_claim_code(" 62dd-cv4t r2ntm2 ") == BARE
    assert normalise_claim_code("MNK–QPF27E—EHJ3") == "MNKQPF27EEHJ3"  # dashes of every kind
    assert normalise_claim_code("u4kr.9clt/3knpu4") == "U4KR9CLT3KNPU4"
    assert normalise_claim_code(None) == ""  # type: ignore[arg-type]


def test_looks_like_claim_code():
    assert looks_like_claim_code(BARE)
    assert looks_like_claim_code("ABCD1234")
    assert not looks_like_claim_code("ABC1234")  # 7 characters
    assert not looks_like_claim_code("A" * 21)
    assert not looks_like_claim_code("")
    assert not looks_like_claim_code("ÄBCD12345")


def test_claim_code_for_url_is_the_bare_code():
    assert claim_code_for_url(BARE) == BARE


# --- wire format -----------------------------------------------------------------------------------------


def test_fetch_by_claim_code_sends_merchant_headers_and_the_normalised_code(client, wire):
    wire.get(f"{BASE}/claim_codes/{BARE}", json={"certificates": [certificate_record()]})
    cert = client.fetch_by_claim_code("62dd-cv4t-r2ntm2")
    sent = wire.calls[0].request
    assert sent.headers["X-Merchant-Key"] == "key-123"
    assert sent.headers["X-Merchant-Secret"] == "secret-456"
    assert sent.headers["Accept"] == "application/json"
    assert "X-Service-Claim-Code" not in sent.headers  # the internal hand-over header never leaves
    assert cert == Certificate(id="hD65TJvxnv8oIuyOmD056w", status="assigned", splittable=True, currency="USD",
                               face_value_cents=10000, expires_at=None, parent_id=None, claim_code_last4="NTM2",
                               product_title="$100 Tuscan Kitchen eGift Card")
    assert CODE not in repr(cert) and BARE not in repr(cert)


def test_redeem_sends_an_integer_amount_and_the_location(client, wire):
    wire.post(f"{BASE}/certificates/abc/redemptions", status=201,
              json={"redemptions": [redemption_record(amount_cents="4000")]})
    redemption = client.redeem_certificate("abc", 4000)
    body = json.loads(wire.calls[0].request.body)
    assert body == {"amount_to_redeem_cents": 4000, "redemption_location_id": "LOC1"}
    assert isinstance(body["amount_to_redeem_cents"], int)
    assert redemption.amount_cents == 4000  # the string form is accepted on the way in
    assert redemption.certificate_id == "hD65TJvxnv8oIuyOmD056w"
    assert redemption.location_id == "AzoXEYPYxG3OUaKJi234WQ"
    assert redemption.created_at == datetime(2014, 10, 9, 18, 8, 43, tzinfo=UTC)


def test_redeem_by_claim_code_without_amount_redeems_the_whole_value(client, wire):
    wire.post(f"{BASE}/claim_codes/{BARE}/redemptions", status=201,
              json={"redemptions": [redemption_record(amount_cents=10000)]})
    redemption = client.redeem_by_claim_code(CODE, None, location_id="OTHER")
    assert json.loads(wire.calls[0].request.body) == {"redemption_location_id": "OTHER"}
    assert redemption.amount_cents == 10000


def test_string_amounts_and_parent_links_are_read(client, wire):
    wire.get(f"{BASE}/certificates/child", json={"certificates": [certificate_record(
        id="child", face_value_cents="5200", parent_id=None, links={"parent": "orig"},
        expires_at="2031-12-31T23:59:59Z")]})
    cert = client.fetch_certificate("child")
    assert cert.face_value_cents == 5200
    assert cert.parent_id == "orig"
    assert cert.expires_at == datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_amounts_that_are_not_whole_dollars_never_reach_instagift(client, wire):
    with pytest.raises(ValueError):
        client.redeem_certificate("abc", 5250)
    with pytest.raises(ValueError):
        client.redeem_certificate("abc", 0)
    with pytest.raises(ValueError):
        client.redeem_certificate("abc", True)  # type: ignore[arg-type]
    assert len(wire.calls) == 0


def test_malformed_codes_never_reach_instagift(client, wire):
    for raw in ("", "abc", "OR 1=1; --", "x" * 40):
        with pytest.raises(ProviderNotFound) as caught:
            client.fetch_by_claim_code(raw)
        assert caught.value.reason == "malformed"
    assert len(wire.calls) == 0


# --- malformed answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "named"), [
    ({"certificate": []}, "certificates"),
    ([], "certificates"),
    ({"certificates": "nope"}, "certificates"),
    ({"certificates": []}, "empty"),
    ({"certificates": [certificate_record(id=None)]}, "'id'"),
    ({"certificates": [{k: v for k, v in certificate_record().items() if k != "face_value_cents"}]},
     "face_value_cents"),
    ({"certificates": [certificate_record(can_split_value="yes")]}, "can_split_value"),
    ({"certificates": [certificate_record(face_value_cents="ten")]}, "face_value_cents"),
    ({"certificates": [certificate_record(expires_at="tomorrow")]}, "expires_at"),
])
def test_malformed_certificate_answers_name_what_is_missing(client, wire, body, named):
    wire.get(f"{BASE}/certificates/x", json=body)
    with pytest.raises(ProviderResponseInvalid) as caught:
        client.fetch_certificate("x")
    assert named in str(caught.value)
    assert caught.value.uncertain


def test_a_redemption_answer_that_is_not_json_is_uncertain(client, wire):
    wire.post(f"{BASE}/certificates/x/redemptions", status=201, body="<html>ok</html>")
    with pytest.raises(ProviderResponseInvalid) as caught:
        client.redeem_certificate("x", 1000)
    assert caught.value.uncertain and "redemptions" in str(caught.value)


def test_a_redemption_without_amount_is_invalid(client, wire):
    record = redemption_record()
    del record["amount_cents"]
    wire.post(f"{BASE}/certificates/x/redemptions", status=201, json={"redemptions": [record]})
    with pytest.raises(ProviderResponseInvalid, match="amount_cents"):
        client.redeem_certificate("x", 1000)


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("details", "reason"), [
    ("This item has previously been redeemed", "previously_redeemed"),
    ("That item is not available for redemption", "not_available"),
    ("This item has been refunded to the customer", "refunded"),
    ("You must select a redemption location", "location_required"),
    ("Something new", "rejected"),
])
def test_400_details_become_reasons(client, wire, details, reason):
    wire.post(f"{BASE}/claim_codes/{BARE}/redemptions", status=400,
              json=error_body(400, "Bad Request", "Unable to create redemption", details))
    with pytest.raises(ProviderRejected) as caught:
        client.redeem_by_claim_code(CODE, 1000)
    assert caught.value.reason == reason
    assert details in str(caught.value)
    assert not caught.value.retryable and not caught.value.uncertain


def test_404_is_not_found(client, wire):
    wire.get(f"{BASE}/claim_codes/{BARE}", status=404,
             json=error_body(404, "Not Found", "Resource with that ID not found"))
    with pytest.raises(ProviderNotFound):
        client.fetch_by_claim_code(CODE)


def test_401_is_an_auth_error(client, wire):
    wire.get(f"{BASE}/certificates/x", status=401, json=error_body(401, "Unauthorized", "Permission denied"))
    with pytest.raises(ProviderAuthError) as caught:
        client.fetch_certificate("x")
    assert "secret-456" not in str(caught.value) and "key-123" not in str(caught.value)


def test_429_is_rate_limited_with_retry_after(client, wire):
    wire.get(f"{BASE}/redemptions", status=429, headers={"Retry-After": "7"},
             json=error_body(429, "Too Many Requests", "Slow down"))
    with pytest.raises(ProviderRateLimited) as caught:
        client.list_redemptions()
    assert caught.value.retry_after_seconds == 7 and caught.value.retryable


@pytest.mark.parametrize("failure", [
    {"status": 500, "json": error_body(500, "Internal Server Error", "oops")},
    {"status": 503, "body": "down"},
    {"body": requests.ConnectTimeout("connect timed out")},
    {"body": requests.ReadTimeout("read timed out")},
    {"body": requests.ConnectionError("Connection aborted")},
])
def test_5xx_and_transport_failures_are_uncertain(client, wire, failure):
    wire.post(f"{BASE}/certificates/x/redemptions", **failure)
    with pytest.raises(ProviderUnavailable) as caught:
        client.redeem_certificate("x", 1000)
    assert caught.value.uncertain and caught.value.retryable


def test_claim_codes_never_appear_in_errors_or_logs(client, wire, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"{BASE}/claim_codes/{BARE}/redemptions"
    wire.post(url, body=requests.ConnectionError(f"Max retries exceeded with url: {url}"))
    wire.post(url, body=requests.ReadTimeout(f"Read timed out. (url: {url})"))
    wire.post(url, status=500, json=error_body(500, "Internal Server Error", "oops"))
    wire.get(f"{BASE}/claim_codes/{BARE}", status=404, json=error_body(404, "Not Found", "not found"))
    raised = []
    for call in (lambda: client.redeem_by_claim_code(CODE, 1000),) * 3 + (lambda: client.fetch_by_claim_code(CODE),):
        with pytest.raises(Exception) as caught:  # noqa: B017 - each is a different ProviderError
            call()
        raised.append(caught.value)
    for exc in raised:
        for text in (str(exc), repr(exc), exc.detail or "", str(exc.__cause__), str(exc.__context__)):
            assert BARE not in text and CODE not in text, text
    for record in caplog.records:
        assert BARE not in record.getMessage() and CODE not in record.getMessage()


# --- lists and pagination ---------------------------------------------------------------------------------


def test_iter_redemptions_reads_pages_until_an_empty_one(client, wire):
    wire.get(f"{BASE}/redemptions?page=1", json={"redemptions": [redemption_record(id=f"r{i}") for i in range(3)]})
    wire.get(f"{BASE}/redemptions?page=2", json={"redemptions": [redemption_record(id="r3")]})
    wire.get(f"{BASE}/redemptions?page=3", json={"redemptions": []})
    assert [r.id for r in client.iter_redemptions()] == ["r0", "r1", "r2", "r3"]


def test_iter_redemptions_stops_when_pages_repeat(client, wire):
    page = {"redemptions": [redemption_record(id="same")]}
    wire.get(f"{BASE}/redemptions?page=1", json=page)
    wire.get(f"{BASE}/redemptions?page=2", json=page)
    with pytest.raises(ProviderResponseInvalid, match="repeats"):
        list(client.iter_redemptions())


def test_find_child_certificate_walks_the_certificate_list(client, wire):
    wire.get(f"{BASE}/certificates?page=1", json={"certificates": [certificate_record(id="a")]})
    wire.get(f"{BASE}/certificates?page=2", json={"certificates": [
        certificate_record(id="b", parent_id="orig", face_value_cents=4800, claim_code="NEW1-CODE-000001")]})
    child = client.find_child_certificate("orig")
    assert child is not None and child.id == "b" and child.face_value_cents == 4800
    assert child.claim_code_last4 == "0001"


def test_find_child_certificate_returns_none_after_the_last_page(client, wire):
    wire.get(f"{BASE}/certificates?page=1", json={"certificates": [certificate_record(id="a")]})
    wire.get(f"{BASE}/certificates?page=2", json={"certificates": []})
    assert client.find_child_certificate("orig") is None


# --- certificate rules -------------------------------------------------------------------------------------


def _cert(status="assigned", expires_at=None) -> Certificate:
    return Certificate("id", status, True, "USD", 1000, expires_at, None, "ABCD", None)


def test_unredeemable_reason():
    now = datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert _cert().unredeemable_reason(now) is None
    assert _cert("gifted").unredeemable_reason(now) is None
    for status in ("redeemed", "cancelled", "returned", "pending"):
        assert _cert(status).unredeemable_reason(now) == status
    assert _cert("mystery").unredeemable_reason(now) == "mystery"
    assert _cert(expires_at=now).unredeemable_reason(now) == "expired"
    assert _cert(expires_at=now + timedelta(seconds=1)).unredeemable_reason(now) is None
    assert _cert("redeemed", expires_at=now - timedelta(days=1)).unredeemable_reason(now) == "redeemed"


# --- settings and real HTTP ----------------------------------------------------------------------------------


def test_from_settings_points_at_the_sandbox_in_development(sandbox):
    settings = load_settings({"SERVICE_ENV": "development", "SANDBOX_URL": sandbox.url,
                              "INSTAGIFT_TIMEOUT_SECONDS": "4", "INSTAGIFT_LOCATION_ID": "LOC9"})
    client = InstagiftClient.from_settings(settings.instagift)
    assert client.http.base_url == f"{sandbox.url}/instagift/v2"
    assert client.http.timeout[1] == 4
    assert client.location_id == "LOC9"
    sandbox.app.extensions["sandbox"]["instagift"].reset()
    assert client.fetch_by_claim_code("demo-100s-plit").face_value_cents == 10000


def test_from_settings_uses_live_credentials():
    settings = load_settings({"SERVICE_ENV": "development", "INSTAGIFT_MERCHANT_KEY": "k",
                              "INSTAGIFT_MERCHANT_SECRET": "s", "INSTAGIFT_API_URL": "https://ig.example/v2"})
    client = InstagiftClient.from_settings(settings.instagift)
    assert client.http.base_url == "https://ig.example/v2"
    assert client.http.default_headers == {"X-Merchant-Key": "k", "X-Merchant-Secret": "s"}


def test_the_app_builds_an_instagift_client_for_the_sandbox(app, sandbox):
    client = app.extensions["providers"].instagift
    assert isinstance(client, InstagiftClient)
    assert client.http.base_url == f"{sandbox.url}/instagift/v2"
    assert client.fetch_by_claim_code("DEMO-050S-PLIT").face_value_cents == 5000
