"""Every request the three provider clients send, captured on the wire (`responses`), against the documented form.

One case per call the clients make: method, path (with the documented placeholders filled in), query parameters,
headers and body encoding. Where the docs print a sample request (Instagift's cURL calls, Cardly's sample bodies) or
a parameter table (InstantCard, whose sample calls were lost) the fixture `*_request.json` holds it and the captured
request must equal it; docs/providers.md lists each call with the section it follows.
"""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses

from service.features import load_settings
from service.providers.cardly import CardlyClient, CardRecipient, CardRequest, order_body, preview_body
from service.providers.instagift import InstagiftClient
from service.providers.instantcard import CachedToken, InstantCardClient, MemoryTokenStore
from tests.contract.examples import doc_example

FORM = "application/x-www-form-urlencoded"


class Sent:
    """One captured request: method, path, query (in order), headers, body (parsed by its content type)."""

    def __init__(self, call) -> None:
        request = call.request
        parts = urlsplit(request.url)
        self.method, self.path, self.query = request.method, parts.path, parse_qsl(parts.query)
        self.headers = request.headers
        self.content_type = request.headers.get("Content-Type")
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        self.raw_body = body
        if not body:
            self.body: Any = None
        elif self.content_type == FORM:
            self.body = parse_qsl(body, keep_blank_values=True)
        else:
            self.body = json.loads(body)


def capture(wire: responses.RequestsMock, answers: dict[str, Any]):
    """Answer every request to any host; `answers` maps "METHOD path-regex" (METHOD `*`: any) to a JSON body, the
    first match winning."""
    def reply(request):
        path = urlsplit(request.url).path
        for key, body in answers.items():
            method, pattern = key.split(" ", 1)
            if method in (request.method, "*") and re.search(pattern, path):
                return 200, {"Content-Type": "application/json"}, json.dumps(body)
        return 599, {}, "{}"
    for method in ("GET", "POST", "PATCH", "DELETE"):
        wire.add_callback(method, re.compile(r"https://.*"), callback=reply)


@pytest.fixture
def wire():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def sample(provider: str, name: str) -> dict[str, Any]:
    return doc_example(provider, name)


# -- Instagift ------------------------------------------------------------------------------------------------
IG_HOST = "https://api.instagift.com"
IG_KEY, IG_SECRET = "OWqqv2rwnWucQC22CVwvMg", "1WngOCryMpl1l7fXH7DIYA"  # the Authentication sample's


@pytest.fixture
def instagift(wire):
    capture(wire, {"GET /claim_codes/": sample("instagift", "fetch_by_claim_code")["body"],
                   "POST /redemptions$": sample("instagift", "redeem_certificate")["body"],
                   "GET /certificates/[^/]+$": sample("instagift", "fetch_certificate")["body"],
                   "GET /certificates$": {"certificates": [], "meta": {"total_count": 0}},
                   "GET /redemptions$": {"redemptions": []}})
    return InstagiftClient(f"{IG_HOST}/v2", IG_KEY, IG_SECRET, location_id="AzoXEYPYxG3OUaKJi234WQ")


def assert_instagift_headers(sent: Sent) -> None:
    """Authentication: X-Merchant-Key and X-Merchant-Secret on every call; JSON bodies only on POST."""
    assert (sent.headers["X-Merchant-Key"], sent.headers["X-Merchant-Secret"]) == (IG_KEY, IG_SECRET)
    assert sent.content_type == ("application/json" if sent.method == "POST" else None)


@pytest.mark.parametrize("name", ["redeem_certificate_request", "redeem_by_claim_code_request"])
def test_instagift_redemptions_are_sent_exactly_as_the_sample_cURL_calls(instagift, wire, name):
    documented = sample("instagift", name)
    if name == "redeem_certificate_request":
        instagift.redeem_certificate("eSilaL3ev7w3UXvssQ_xFA", 4000)
    else:
        instagift.redeem_by_claim_code("E69W-CDQ2-WTWH6Y", 4000)
    [sent] = [Sent(c) for c in wire.calls]
    assert (sent.method, sent.path) == (documented["request"]["method"], documented["request"]["path"])
    assert sent.content_type == documented["request"]["headers"]["Content-Type"]
    assert sent.raw_body == json.dumps(documented["body"])  # the amount as "4000": a string, as printed
    assert_instagift_headers(sent)


@pytest.mark.parametrize(("call", "example"), [
    (lambda ig: ig.fetch_by_claim_code("E69W-CDQ2-WTWH6Y"), "fetch_by_claim_code"),
    (lambda ig: ig.fetch_certificate("AzoXEYPYxG3OUaKJi234WQ"), "fetch_certificate"),
])
def test_instagift_reads_use_the_documented_path_and_no_body(instagift, wire, call, example):
    call(instagift)
    [sent] = [Sent(c) for c in wire.calls]
    assert (sent.method, sent.path, sent.query, sent.body) == ("GET", sample("instagift", example)["request"]["path"],
                                                              [], None)
    assert_instagift_headers(sent)


def test_instagift_lists_use_only_the_documented_query_parameters(instagift, wire):
    documented = sample("instagift", "list_certificates_request")
    documented_query = dict(parse_qsl(urlsplit(documented["request"]["path"]).query))
    allowed = set(documented_query) | {"per_page"}  # per_page: the sample answer's own meta links carry it
    instagift.certificate_page(2, status="available")
    instagift.count_certificates()
    instagift.redemption_page(1)
    certificates, count, redemptions = (Sent(c) for c in wire.calls)
    assert (certificates.path, certificates.query) == ("/v2/certificates",
                                                       [("per_page", "100"), ("page", "2"), ("status", "available")])
    assert {k for k, _ in certificates.query} <= allowed and documented_query["status"] == "available"
    assert (count.path, count.query) == ("/v2/certificates", [("per_page", "1"), ("page", "1")])
    assert (redemptions.path, redemptions.query) == ("/v2/redemptions", [("per_page", "100"), ("page", "1")])
    for sent in (certificates, count, redemptions):
        assert sent.body is None
        assert_instagift_headers(sent)


# -- Cardly -------------------------------------------------------------------------------------------------------
CARDLY_HOST = "https://api.card.ly"  # the Echo Request sample's host
CARDLY_KEY = "test_QRJabcdefgh73X"
ORDER_ID = "c988c0c0-f6a3-4e90-bbd5-759497a82607"
ART_ID = "2862abe8-a299-30f2-6324-bd891e687f0d"


@pytest.fixture
def cardly(wire):
    capture(wire, {"POST /orders/place$": sample("cardly", "place_order")["body"],
                   "POST /orders/preview$": sample("cardly", "preview_order")["body"],
                   "GET /orders/[^/]+$": sample("cardly", "get_order")["body"],
                   "GET /orders$": sample("cardly", "order_listing")["body"],
                   "GET /account/balance$": sample("cardly", "account_balance")["body"],
                   "GET /art/[^/]+$": sample("cardly", "get_artwork")["body"],
                   "GET /art$": sample("cardly", "artwork_listing")["body"],
                   "GET /templates$": sample("cardly", "template_listing")["body"]})
    return CardlyClient(f"{CARDLY_HOST}/v2", CARDLY_KEY, timeout_seconds=2)


def the_sample_card(documented: dict[str, Any], purchase_order_number: str) -> CardRequest:
    """The card the Place Order / Generate Preview sample describes, in the service's words."""
    line = documented["body"]["lines"][0] if "lines" in documented["body"] else documented["body"]
    r = line["recipient"]
    return CardRequest(purchase_order_number=purchase_order_number, artwork=line["artwork"], message="",
                       template=line["template"],
                       template_variables={"first_name": line["variables"]["firstName"],
                                           "message": line["variables"]["message"]},
                       recipient=CardRecipient(r["firstName"], r["lastName"], r["address"], r["address2"], r["city"],
                                               r["region"], r["postcode"], r["country"]),
                       sender=line["sender"], shipping_method=line["shippingMethod"],
                       requested_arrival=date.fromisoformat(line["requestedArrival"]))


def without(body: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in names}


def test_cardly_place_order_is_the_sample_request(cardly, wire):
    """Cardly API v2, Orders › Place Order. The service fills a template, so (as documented) no `messages`, and it
    never asks for an extra envelope (`shipToMe`): the sample without those two is exactly what is sent."""
    documented = sample("cardly", "place_order_request")
    card = the_sample_card(documented, documented["body"]["purchaseOrderNumber"])
    cardly.place_order(order_body(card), "order-12345a-g1")
    [sent] = [Sent(c) for c in wire.calls]
    expected = {**documented["body"], "lines": [without(documented["body"]["lines"][0], "messages", "shipToMe")]}
    assert (sent.method, sent.path, sent.body) == ("POST", documented["request"]["path"], expected)
    assert sent.content_type == documented["request"]["headers"]["Content-Type"]
    assert (sent.headers["API-Key"], sent.headers["Idempotency-Key"]) == (CARDLY_KEY, "order-12345a-g1")


def test_cardly_preview_is_the_sample_request(cardly, wire):
    """Cardly API v2, Orders › Generate Preview: one card at the top level, `purchaseOrderNumber`, no `quantity`."""
    documented = sample("cardly", "preview_order_request")
    card = the_sample_card(documented, documented["body"]["purchaseOrderNumber"])
    cardly.preview_order(preview_body(card))
    [sent] = [Sent(c) for c in wire.calls]
    assert (sent.method, sent.path) == ("POST", documented["request"]["path"])
    assert sent.body == without(documented["body"], "messages", "shipToMe")
    assert sent.content_type == documented["request"]["headers"]["Content-Type"]
    assert "Idempotency-Key" not in sent.headers and sent.headers["API-Key"] == CARDLY_KEY


def test_a_card_without_a_template_sends_the_documented_messages_form():
    """Without a template the message is the main panel text of page 3 (`messages.pages[].page` an integer)."""
    card = CardRequest(purchase_order_number="#1001", artwork="happy-birthday", message="Thank you!",
                       recipient=CardRecipient("John", "Doe", "10 Somewhere Place", "", "Fairyland", "QLD", "4110",
                                               "AU"))
    assert order_body(card)["lines"][0]["messages"] == {"pages": [{"page": 3, "text": "Thank you!"}]}
    assert "template" not in order_body(card)["lines"][0] and "quantity" not in preview_body(card)


@pytest.mark.parametrize(("call", "path", "query"), [
    (lambda c: c.get_order(ORDER_ID), f"/v2/orders/{ORDER_ID}", []),
    (lambda c: c.find_order_by_purchase_order("#1001"), "/v2/orders", [("limit", "100"), ("offset", "0")]),
    (lambda c: c.account_balance(), "/v2/account/balance", []),
    (lambda c: c.find_artwork(ART_ID), f"/v2/art/{ART_ID}", []),
    (lambda c: c.find_artwork("api-artwork-upload"), "/v2/art", [("ownOnly", "1"), ("limit", "100"), ("offset", "0")]),
    (lambda c: c.list_templates(), "/v2/templates", [("limit", "25"), ("offset", "0")]),
])
def test_cardly_reads_are_gets_without_a_body_or_a_content_type(cardly, wire, call, path, query):
    """"(No body required)": API-Key only; the listings take Pagination's limit/offset (and ownOnly, truthy)."""
    call(cardly)
    [sent] = [Sent(c) for c in wire.calls]
    assert (sent.method, sent.path, sent.query, sent.body, sent.content_type) == ("GET", path, query, None, None)
    assert sent.headers["API-Key"] == CARDLY_KEY and "Idempotency-Key" not in sent.headers


# -- InstantCard --------------------------------------------------------------------------------------------------
IC_HOST = "https://core.instantcard.net"
IC_ORG = "20003827"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.e30.sig"
JOB = {"id": 7001, "status": 0}
CARD = {"id": 264561, "data": []}


@pytest.fixture
def instantcard(wire):
    capture(wire, {"POST /authenticate$": {"token": TOKEN}, "GET /preview$": {"front": "*", "back": "*"},
                   "GET /check_balance$": True, "GET /charge_details$": sample("instantcard", "charge_details")["body"],
                   "GET /balance$": "$5.50", "GET /cards/search$": [],
                   "GET /print_jobs$": [JOB], "* /cards(/\\d+)?(/finalize)?$": CARD,
                   "* /print_jobs(/\\d+)?(/add_cards|/print|/remove_cards/\\d+)?$": JOB,
                   "GET /shipping_providers$": [{"id": 3, "name": "USPS"}],
                   "GET /card_templates$": [{"id": 3721, "name": "Gold"}],
                   "GET /fields$": [{"name": "Name"}], f"GET /organizations/{IC_ORG}$": {"id": int(IC_ORG)}})
    env = {"SERVICE_ENV": "development", "INSTANTCARD_API_URL": f"{IC_HOST}/api/v2",
           "INSTANTCARD_EMAIL": "api@example.com", "INSTANTCARD_PASSWORD": "pw-secret-123",
           "INSTANTCARD_ORGANIZATION_ID": IC_ORG, "INSTANTCARD_SHIPPING_PROVIDER_ID": "3"}
    tokens = MemoryTokenStore()
    tokens.save(CachedToken(TOKEN, None))
    return InstantCardClient(load_settings(env).instantcard, token_store=tokens)


def ic_path(template: str, **values: str) -> str:
    return "/" + template.lstrip("/").split("?")[0].format(organization_id=IC_ORG, **values)


def the_request(name: str) -> dict[str, Any]:
    documented = sample("instantcard", name)
    assert documented.get("guessed"), "InstantCard lost its sample calls: the fixture says what it assumes"
    return documented


ADDRESS = {"full_name": "Ada Lovelace", "organization_name": "Analytical Engines", "address_1": "10 Main St",
           "address_2": "Suite 2", "city": "Springfield", "state": "IL", "zip_code": "62701", "country": "US"}


@pytest.mark.parametrize(("name", "call", "path_values"), [
    ("create_print_job_request", lambda ic: ic.create_print_job(["264561"], address=ADDRESS), {}),
    ("add_cards_request", lambda ic: ic.add_cards("7001", ["264561"]), {"id": "7001"}),
    ("create_card_request", lambda ic: ic.create_card(3721, {"Name": "Ada Lovelace", "Member Number": "M-000123"}),
     {}),
])
def test_instantcard_form_bodies_are_the_documented_parameters(instantcard, wire, name, call, path_values):
    documented = the_request(name)
    call(instantcard)
    [sent] = [Sent(c) for c in wire.calls]
    assert (sent.method, sent.path) == (documented["request"]["method"],
                                        ic_path(documented["request"]["path"], **path_values))
    assert sent.content_type == FORM and sent.query == []
    assert dict(sent.body) == documented["body"] and len(sent.body) == len(documented["body"])  # each key once
    assert sent.headers["Authorization"] == f"bearer {TOKEN}"


def test_several_card_ids_are_one_bracketed_field(instantcard, wire):
    """Create a Print Job's NOTE: an array of card id numbers, "[264561]" for one; several the same way."""
    instantcard.add_cards("7001", ["264561", "264562"])
    assert Sent(wire.calls[0]).body == [("print_job[card_ids]", "[264561,264562]")]
    with pytest.raises(ValueError):
        instantcard.add_cards("7001", [])


def test_instantcard_update_print_job_sends_url_parameters(instantcard, wire):
    documented = the_request("update_print_job_request")
    instantcard.update_print_job("7001", copies=2)
    [sent] = [Sent(c) for c in wire.calls]
    assert (sent.method, sent.path) == ("PATCH", ic_path(documented["request"]["path"], id="7001"))
    assert sent.query == parse_qsl(urlsplit(documented["request"]["path"]).query)
    assert sent.body is None and sent.headers["Authorization"] == f"bearer {TOKEN}"


def test_instantcard_login_is_a_form_with_email_and_password(instantcard, wire):
    documented = the_request("authenticate_request")
    instantcard.authenticate()
    [sent] = [Sent(c) for c in wire.calls]
    assert (sent.method, sent.path, sent.query) == ("POST", documented["request"]["path"], [])
    assert sent.content_type == FORM
    assert dict(sent.body) == {**documented["body"], "password": "pw-secret-123"}
    assert "Authorization" not in sent.headers


@pytest.mark.parametrize(("call", "method", "path", "query"), [
    (lambda ic: ic.preview_card("264561"), "GET", "cards/264561/preview", []),
    (lambda ic: ic.finalize_card("264561"), "PATCH", "cards/264561/finalize", []),
    (lambda ic: ic.fetch_card("264561"), "GET", "cards/264561", []),
    (lambda ic: ic.delete_card("264561"), "DELETE", "cards/264561", []),
    (lambda ic: ic.search_cards("M-000123"), "GET", "cards/search", [("term", "M-000123"), ("page_size", "50"),
                                                                      ("page", "1")]),
    (lambda ic: ic.remove_card("7001", "264561"), "DELETE", "print_jobs/7001/remove_cards/264561", []),
    (lambda ic: ic.fetch_print_job("7001"), "GET", "print_jobs/7001", []),
    (lambda ic: ic.list_print_jobs(submitted=True), "GET", "print_jobs", [("page", "1"), ("page_size", "100"),
                                                                          ("status", "1")]),
    (lambda ic: ic.check_balance("7001"), "GET", "print_jobs/7001/check_balance", []),
    (lambda ic: ic.submit_print_job("7001"), "POST", "print_jobs/7001/print", []),
    (lambda ic: ic.charge_details("7001"), "GET", "print_jobs/7001/charge_details", []),
    (lambda ic: ic.fetch_organization(), "GET", "", []),
    (lambda ic: ic.organization_balance_cents(), "GET", "balance", []),
    (lambda ic: ic.shipping_providers(), "GET", "shipping_providers", []),
    (lambda ic: ic.card_templates(), "GET", "card_templates", []),
    (lambda ic: ic.card_template_fields(3721), "GET", "card_templates/3721/fields", []),
])
def test_instantcard_calls_without_a_body_use_the_documented_path(instantcard, wire, call, method, path, query):
    """Each endpoint's "Endpoint:" line (organization and ids in the path); only the bearer token as a header."""
    call(instantcard)
    sent = Sent(wire.calls[0])
    expected = f"/api/v2/organizations/{IC_ORG}" + (f"/{path}" if path else "")
    assert (sent.method, sent.path, sent.query, sent.body) == (method, expected, query, None)
    assert sent.content_type is None and sent.headers["Authorization"] == f"bearer {TOKEN}"
