"""Instagift client: exact wire behaviour with `responses`, plus a few checks over real HTTP (sandbox)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from service.errors import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from service.features import load_settings
from service.providers.instagift import (
    Certificate,
    ClaimCode,
    InstagiftClient,
    claim_code_for_url,
    documented_grouping,
    looks_like_claim_code,
    normalise_claim_code,
    parse_claim_code,
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


def test_normalise_claim_code_is_the_canonical_form():
    assert normalise_claim_code(" 62dd-cv4t r2ntm2 ") == BARE
    assert normalise_claim_code("MNK–QPF27E—EHJ3") == "MNKQPF27EEHJ3"  # dashes of every kind
    assert normalise_claim_code(None) == ""  # type: ignore[arg-type]


@pytest.mark.parametrize(("typed", "printed"), [
    (" e69w cdq2 wtwh6y ", "E69W-CDQ2-WTWH6Y"),  # the shopper's groups, one hyphen between each
    ("E69W-CDQ2-WTWH6Y", "E69W-CDQ2-WTWH6Y"),
    ("e69w--cdq2---wtwh6y", "E69W-CDQ2-WTWH6Y"),  # a run of hyphens is one separator
    ("E69W - CDQ2 -WTWH6Y", "E69W-CDQ2-WTWH6Y"),  # and so is any mix of spaces and hyphens
    ("-E69W-CDQ2-WTWH6Y-", "E69W-CDQ2-WTWH6Y"),  # separators at the ends are dropped
    ("MNK–QPF27E—EHJ3", "MNK-QPF27E-EHJ3"),  # Unicode dashes (a copy from a PDF) are hyphens
    ("e69w\u00a0cdq2\twtwh6y", "E69W-CDQ2-WTWH6Y"),  # so are non-breaking spaces and tabs
    ("e69wcdq2wtwh6y", "E69WCDQ2WTWH6Y"),
])
def test_parse_claim_code_keeps_the_shoppers_grouping(typed, printed):
    code = parse_claim_code(typed)
    assert code is not None and code.printed == printed
    assert code.canonical == printed.replace("-", "")


@pytest.mark.parametrize("typed", [
    "u4kr.9clt/3knpu4", "E69W_CDQ2_WTWH6Y", "E69W-CDQ2-WTWH6Y;", "<E69WCDQ2WTWH6Y>", "E69W'CDQ2", "ÄBCD12345",
    "E69W-CDQ2-WTWH6Y\u0000", "abc", "A-B-C-D-E-F-G", "x" * 21, "", "   ", None, 12345678,
])
def test_parse_claim_code_refuses_what_no_claim_code_has(typed):
    assert parse_claim_code(typed) is None


def test_the_forms_sent_for_each_kind_of_typed_code():
    assert parse_claim_code("e69w cdq2 wtwh6y").lookup_forms() == ("E69W-CDQ2-WTWH6Y", "E69WCDQ2WTWH6Y")
    assert parse_claim_code("u4kr9clt3knpu4").lookup_forms() == ("U4KR-9CLT-3KNPU4", "U4KR9CLT3KNPU4")
    assert parse_claim_code("mnkqpf27eehj3").lookup_forms() == ("MNK-QPF27E-EHJ3", "MNKQPF27EEHJ3")
    assert parse_claim_code("ABCDEFGHJKLMNPQ").lookup_forms() == ("ABCDEFGHJKLMNPQ",)  # 15: no documented grouping
    assert parse_claim_code("E69WCDQ2-WTWH6Y").lookup_forms() == ("E69WCDQ2-WTWH6Y", "E69WCDQ2WTWH6Y")
    assert documented_grouping("U4KR9CLT3KNPU4") == "U4KR-9CLT-3KNPU4"
    assert documented_grouping("ABCD1234") is None


def test_a_claim_code_shows_only_its_last_four():
    code = parse_claim_code(CODE)
    assert isinstance(code, ClaimCode) and code.last4 == "NTM2"
    for text in (repr(code), str(code), f"{code!r}"):
        assert BARE not in text and CODE not in text and "NTM2" in text


def test_looks_like_claim_code():
    assert looks_like_claim_code(BARE)
    assert looks_like_claim_code("ABCD1234")
    assert not looks_like_claim_code("ABC1234")  # 7 characters
    assert not looks_like_claim_code("A" * 21)
    assert not looks_like_claim_code("")
    assert not looks_like_claim_code("ÄBCD12345")


def test_claim_code_for_url_keeps_the_hyphens():
    assert claim_code_for_url(CODE) == CODE
    assert claim_code_for_url(BARE) == BARE


# --- wire format -----------------------------------------------------------------------------------------


def test_fetch_by_claim_code_sends_merchant_headers_and_the_printed_code(client, wire):
    wire.get(f"{BASE}/claim_codes/{CODE}", json={"certificates": [certificate_record()]})
    cert = client.fetch_by_claim_code("62dd-cv4t-r2ntm2")
    sent = wire.calls[0].request
    assert sent.headers["X-Merchant-Key"] == "key-123"
    assert sent.headers["X-Merchant-Secret"] == "secret-456"
    assert sent.headers["Accept"] == "application/json"
    assert "X-Service-Claim-Code" not in sent.headers  # the internal hand-over header never leaves
    assert cert == Certificate(id="hD65TJvxnv8oIuyOmD056w", status="assigned", splittable=True, currency="USD",
                               face_value_cents=10000, expires_at=None, parent_id=None, claim_code_last4="NTM2",
                               product_title="$100 Tuscan Kitchen eGift Card",
                               created_at=datetime(2014, 10, 9, 16, 29, 44, tzinfo=UTC))
    assert CODE not in repr(cert) and BARE not in repr(cert)
    assert len(wire.calls) == 1


def test_a_typed_grouping_not_found_is_tried_once_without_hyphens(client, wire):
    wire.get(f"{BASE}/claim_codes/{CODE}", status=404, json=error_body(404, "Not Found", "Resource with that ID not found"))
    wire.get(f"{BASE}/claim_codes/{BARE}", json={"certificates": [certificate_record()]})
    assert client.fetch_by_claim_code("62dd cv4t r2ntm2").id == "hD65TJvxnv8oIuyOmD056w"
    assert [call.request.path_url for call in wire.calls] == ["/v2/claim_codes/" + CODE, "/v2/claim_codes/" + BARE]


def test_a_bare_code_is_sent_grouped_as_printed_first_and_bare_once_after_a_404(client, wire):
    wire.get(f"{BASE}/claim_codes/{CODE}", json={"certificates": [certificate_record()]})
    assert client.fetch_by_claim_code(BARE.lower()).id == "hD65TJvxnv8oIuyOmD056w"
    assert [call.request.path_url for call in wire.calls] == ["/v2/claim_codes/" + CODE]  # the documented form
    wire.replace(responses.GET, f"{BASE}/claim_codes/{CODE}", status=404,
                 json=error_body(404, "Not Found", "Resource with that ID not found"))
    wire.get(f"{BASE}/claim_codes/{BARE}", json={"certificates": [certificate_record()]})
    assert client.fetch_by_claim_code(BARE.lower()).id == "hD65TJvxnv8oIuyOmD056w"
    assert [call.request.path_url for call in wire.calls][1:] == ["/v2/claim_codes/" + CODE, "/v2/claim_codes/" + BARE]


@pytest.mark.parametrize(("typed", "first"), [(CODE, "grouped as typed"), (BARE.lower(), "grouped as Instagift prints it")])
def test_the_second_form_is_logged_as_what_it_is(client, wire, caplog, typed, first):
    """Whether the shopper typed the groups or not, the form tried after a 404 is the bare code; the log says so."""
    wire.get(f"{BASE}/claim_codes/{CODE}", status=404, json=error_body(404, "Not Found", "Resource with that ID not found"))
    wire.get(f"{BASE}/claim_codes/{BARE}", json={"certificates": [certificate_record()]})
    with caplog.at_level(logging.INFO, logger="service.providers.instagift"):
        client.fetch_by_claim_code(typed)
    assert f"not found {first}; trying it without hyphens" in caplog.text
    assert CODE not in caplog.text and BARE not in caplog.text


def test_a_code_unknown_in_both_forms_is_two_calls_then_not_found(client, wire):
    for form in (CODE, BARE):
        wire.get(f"{BASE}/claim_codes/{form}", status=404,
                 json=error_body(404, "Not Found", "Resource with that ID not found"))
    with pytest.raises(ProviderNotFound) as caught:
        client.fetch_by_claim_code(CODE)
    assert caught.value.reason == "not_found" and len(wire.calls) == 2


def test_only_a_404_leads_to_the_other_form(client, wire):
    wire.get(f"{BASE}/claim_codes/{CODE}", status=503, body="down")
    with pytest.raises(ProviderUnavailable):
        client.fetch_by_claim_code(CODE)
    assert len(wire.calls) == 1


def test_redeem_by_claim_code_sends_the_form_instagift_knows(client, wire):
    wire.post(f"{BASE}/claim_codes/{CODE}/redemptions", status=404,
              json=error_body(404, "Not Found", "Resource with that ID not found"))
    wire.post(f"{BASE}/claim_codes/{BARE}/redemptions", status=201, json={"redemptions": [redemption_record()]})
    assert client.redeem_by_claim_code(CODE, 4000).amount_cents == 4000
    # Redeem a Certificate by Claim Code documents the amount only: the configured location is not sent.
    assert [json.loads(call.request.body) for call in wire.calls] == [{"amount_to_redeem_cents": "4000"}] * 2


def test_redeem_sends_the_amount_as_the_samples_write_it_and_the_location(client, wire):
    wire.post(f"{BASE}/certificates/abc/redemptions", status=201,
              json={"redemptions": [redemption_record(amount_cents="4000")]})
    redemption = client.redeem_certificate("abc", 4000)
    body = json.loads(wire.calls[0].request.body)
    assert body == {"amount_to_redeem_cents": "4000", "redemption_location_id": "LOC1"}  # '"4000"', a string
    assert redemption.amount_cents == 4000  # the string form is accepted on the way in
    assert redemption.certificate_id == "hD65TJvxnv8oIuyOmD056w"
    assert redemption.location_id == "AzoXEYPYxG3OUaKJi234WQ"
    assert redemption.created_at == datetime(2014, 10, 9, 18, 8, 43, tzinfo=UTC)


def test_redeem_by_claim_code_without_amount_redeems_the_whole_value(client, wire):
    wire.post(f"{BASE}/claim_codes/{CODE}/redemptions", status=201,
              json={"redemptions": [redemption_record(amount_cents=10000)]})
    redemption = client.redeem_by_claim_code(CODE, None)
    assert json.loads(wire.calls[0].request.body) == {}
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
    for raw in ("", "abc", "OR 1=1; --", "x" * 40, "62DD.CV4T.R2NTM2", "62DD-CV4T-R2NTM2%2F"):
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
    assert caught.value.outcome_unknown


def test_a_redemption_answer_that_is_not_json_is_uncertain(client, wire):
    wire.post(f"{BASE}/certificates/x/redemptions", status=201, body="<html>ok</html>")
    with pytest.raises(ProviderResponseInvalid) as caught:
        client.redeem_certificate("x", 1000)
    assert caught.value.outcome_unknown and "redemptions" in str(caught.value)


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
    wire.post(f"{BASE}/claim_codes/{CODE}/redemptions", status=400,
              json=error_body(400, "Bad Request", "Unable to create redemption", details))
    with pytest.raises(ProviderRejected) as caught:
        client.redeem_by_claim_code(CODE, 1000)
    assert caught.value.reason == reason
    assert details in str(caught.value)
    assert not caught.value.retryable and not caught.value.outcome_unknown


def test_404_is_not_found(client, wire):
    wire.get(f"{BASE}/claim_codes/{CODE}", status=404,
             json=error_body(404, "Not Found", "Resource with that ID not found"))
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
    assert caught.value.outcome_unknown and caught.value.retryable


def test_claim_codes_never_appear_in_errors_or_logs(client, wire, caplog):
    caplog.set_level(logging.DEBUG)
    url = f"{BASE}/claim_codes/{CODE}/redemptions"
    wire.post(url, body=requests.ConnectionError(f"Max retries exceeded with url: {url}"))
    wire.post(url, body=requests.ReadTimeout(f"Read timed out. (url: {url})"))
    wire.post(url, status=500, json=error_body(500, "Internal Server Error", "oops"))
    for form in (CODE, BARE):  # both forms: the fallback's messages and log lines must not hold it either
        wire.get(f"{BASE}/claim_codes/{form}", status=404, json=error_body(404, "Not Found", "not found"))
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
    wire.get(f"{BASE}/redemptions?per_page=100&page=1",
             json={"redemptions": [redemption_record(id=f"r{i}") for i in range(3)]})
    wire.get(f"{BASE}/redemptions?per_page=100&page=2", json={"redemptions": [redemption_record(id="r3")]})
    wire.get(f"{BASE}/redemptions?per_page=100&page=3", json={"redemptions": []})
    assert [r.id for r in client.iter_redemptions()] == ["r0", "r1", "r2", "r3"]


def test_iter_redemptions_stops_when_pages_repeat(client, wire):
    page = {"redemptions": [redemption_record(id="same")]}
    wire.get(f"{BASE}/redemptions?per_page=100&page=1", json=page)
    wire.get(f"{BASE}/redemptions?per_page=100&page=2", json=page)
    with pytest.raises(ProviderResponseInvalid, match="repeats"):
        list(client.iter_redemptions())


ATTEMPT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def stamp(minutes: float) -> str:
    return (ATTEMPT + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeList:
    """A paged Instagift list served with `responses`: order, page-size cap and `meta` style are chosen per test."""

    def __init__(self, wire, key: str, records: list[dict], *, newest_first: bool = False, max_per_page: int = 40,
                 meta: str = "full"):
        self.key, self.records, self.max_per_page, self.meta = key, records, max_per_page, meta
        self.newest_first = newest_first
        self.requests: list[dict[str, str]] = []
        wire.add_callback(responses.GET, f"{BASE}/{key}", callback=self.answer)

    def answer(self, request):
        query = {k: v[-1] for k, v in parse_qs(urlsplit(request.url).query).items()}
        self.requests.append(query)
        page, per_page = int(query.get("page", 1)), min(int(query.get("per_page", 10)), self.max_per_page)
        listed = [r for r in self.records if query.get("status") != "available" or r.get("status") == "assigned"]
        if self.newest_first:
            listed = listed[::-1]
        pages = max(1, -(-len(listed) // per_page))
        body: dict = {self.key: listed[(page - 1) * per_page: page * per_page]}
        last = f"?per_page={per_page}&page={pages}"
        if self.meta == "full":
            body["meta"] = {"href": f"?per_page={per_page}&page={page}", "page": page, "per_page": per_page,
                            "page_count": pages, "total_count": len(listed),
                            "links": {"first": f"?per_page={per_page}&page=1", "previous": None, "next": None,
                                      "last": last}}
        elif self.meta == "links_only":
            body["meta"] = {"links": {"last": last}}
        elif self.meta == "docs_sample_page_count":  # page_count 1 whatever the total, as in the docs' sample
            body["meta"] = {"page": page, "per_page": per_page, "page_count": 1, "total_count": len(listed)}
        return 200, {}, json.dumps(body)

    @property
    def pages_read(self) -> list[int]:
        return [int(q["page"]) for q in self.requests]


def history(n: int, *, newest_minutes_ago: float = 60.0) -> list[dict]:
    """n certificates a minute apart, oldest first, the newest `newest_minutes_ago` minutes before ATTEMPT."""
    return [certificate_record(id=f"c{i}", status="assigned", claim_code=f"AAAA-BBBB-{i:06d}",
                               created_at=stamp(-newest_minutes_ago - (n - 1 - i))) for i in range(n)]


def child_of(parent: str, minutes: float = 0.5) -> dict:
    return certificate_record(id="child", parent_id=parent, face_value_cents=6000, status="assigned",
                              claim_code="CHLD-CODE-000001", created_at=stamp(minutes))


@pytest.mark.parametrize("newest_first", [False, True])
@pytest.mark.parametrize("meta", ["full", "links_only", "docs_sample_page_count"])
def test_the_child_is_found_from_the_newest_end_in_two_calls(client, wire, newest_first, meta):
    records = history(500) + [child_of("orig")]
    listed = FakeList(wire, "certificates", records, newest_first=newest_first, meta=meta)
    child = client.find_child_certificate("orig", since=ATTEMPT)
    assert child is not None and child.id == "child" and child.face_value_cents == 6000
    assert listed.pages_read == ([1] if newest_first else [1, 13])  # 501 at 40 a page (asked 100): 13 pages
    assert all(q["per_page"] == "100" and q["status"] == "available" for q in listed.requests)


def test_a_child_on_the_page_before_the_last_is_a_third_call(client, wire):
    later = [certificate_record(id=f"n{i}", created_at=stamp(1 + i)) for i in range(40)]  # 40 newer ones
    listed = FakeList(wire, "certificates", history(400) + [child_of("orig")] + later)
    assert client.find_child_certificate("orig", since=ATTEMPT).id == "child"
    assert listed.pages_read == [1, 12, 11]


@pytest.mark.parametrize("newest_first", [False, True])
def test_the_search_stops_at_records_older_than_the_attempt(client, wire, newest_first):
    listed = FakeList(wire, "certificates", history(500, newest_minutes_ago=11), newest_first=newest_first)
    assert client.find_child_certificate("orig", since=ATTEMPT) is None
    assert len(listed.requests) <= 2  # page 1, and the newest page: older than the attempt less 10 minutes


def test_records_within_the_clock_skew_allowance_are_still_read(client, wire):
    # Instagift's clock 9 minutes behind ours: the child looks older than the attempt, yet it is ours.
    records = history(200, newest_minutes_ago=9.5) + [child_of("orig", minutes=-9)]
    FakeList(wire, "certificates", records)
    assert client.find_child_certificate("orig", since=ATTEMPT).id == "child"


def test_without_a_time_bound_every_page_is_read_down_to_the_first(client, wire):
    records = [child_of("orig", minutes=-600)] + history(200)
    listed = FakeList(wire, "certificates", records)
    assert client.find_child_certificate("orig").id == "child"
    assert listed.pages_read == [1, 6, 5, 4, 3, 2]


def test_the_walk_gives_up_after_max_pages(client, wire):
    records = history(2000, newest_minutes_ago=-3000)  # all "newer" than the attempt: nothing stops the walk
    listed = FakeList(wire, "certificates", records)
    assert client.find_child_certificate("orig", since=ATTEMPT, max_pages=5) is None
    assert len(listed.requests) == 5


def redemption_history(n: int) -> list[dict]:
    return [redemption_record(id=f"r{i}", amount_cents=2500, links={"certificate": f"c{i}"},
                              created_at=stamp(-60 - (n - 1 - i))) for i in range(n)]


def ours(amount: int = 4000, minutes: float = 0.2) -> dict:
    return redemption_record(id="ours", amount_cents=amount, links={"certificate": "cert"}, created_at=stamp(minutes))


@pytest.mark.parametrize("newest_first", [False, True])
def test_an_uncertain_redemption_is_found_from_the_newest_end(client, wire, newest_first):
    listed = FakeList(wire, "redemptions", redemption_history(1200) + [ours()], newest_first=newest_first)
    found = client.find_redemption("cert", 4000, since=ATTEMPT)
    assert found is not None and found.id == "ours"
    assert listed.pages_read == ([1] if newest_first else [1, 31])
    assert client.find_redemption("cert", 5000, since=ATTEMPT) is None  # another amount is not ours


def test_a_redemption_list_without_meta_is_walked_forward_within_a_bound(client, wire):
    # The docs' sample of this list shows no meta: oldest first, the end is only found by reading to it.
    listed = FakeList(wire, "redemptions", redemption_history(150) + [ours()], meta="none")
    assert client.find_redemption("cert", 4000, since=ATTEMPT).id == "ours"
    assert listed.pages_read == [1, 2, 3, 4]  # 151 at 40 a page; the short 4th page is the last


def test_a_redemption_list_without_meta_newest_first_stops_at_the_attempt(client, wire):
    listed = FakeList(wire, "redemptions", redemption_history(1200) + [ours()], newest_first=True, meta="none")
    assert client.find_redemption("cert", 4000, since=ATTEMPT).id == "ours"
    assert listed.pages_read == [1]
    assert client.find_redemption("cert", 9900, since=ATTEMPT) is None
    assert listed.pages_read == [1, 1]  # page 1 already reaches records older than the attempt


def test_a_list_that_ignores_page_does_not_loop(client, wire):
    page = {"redemptions": [redemption_record(id="same", created_at=stamp(-100))]}
    for _ in range(2):
        wire.get(f"{BASE}/redemptions", json=page)
    assert client.find_redemption("cert", 4000, since=ATTEMPT) is None
    assert len(wire.calls) == 2


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
