"""The provider operations the preflight check added to the clients, against the providers' documented examples.

Each test serves a fixture from tests/contract/examples (the docs' own sample, or a guessed body where the docs have
none, as its `guessed` says) with `responses` and checks what the client makes of it.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from responses import matchers

from service.errors import ProviderAuthError, ProviderNotFound
from service.features import load_settings
from service.providers.cardly import Artwork, CardlyClient
from service.providers.instagift import InstagiftClient
from service.providers.instantcard import (
    CardTemplate,
    InstantCardClient,
    MemoryTokenStore,
    Organization,
    ShippingProvider,
)
from tests.contract.examples import doc_example

INSTAGIFT = "https://instagift.test/v2"
CARDLY = "https://cardly.test/v2"
INSTANTCARD = "https://ic.test/api/v2"
ORG = f"{INSTANTCARD}/organizations/20003827"
ARTWORK_ID = "2862abe8-a299-30f2-6324-bd891e687f0d"


def serve(method: str, url: str, example: dict) -> None:
    responses.add(method, url, json=example["body"], status=example["status"])


def query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


# -- Instagift: List all Certificates -------------------------------------------------------------------------
@pytest.fixture
def instagift():
    return InstagiftClient(INSTAGIFT, "merchant-key-1234", "merchant-secret-5678")


@responses.activate
def test_instagift_count_certificates_reads_the_documented_listing(instagift):
    serve("GET", f"{INSTAGIFT}/certificates", doc_example("instagift", "list_certificates"))
    assert instagift.count_certificates() == 13  # meta.total_count
    call = responses.calls[0]
    assert query(call) == {"per_page": ["1"], "page": ["1"]}
    assert call.request.headers["X-Merchant-Key"] == "merchant-key-1234"
    assert call.request.headers["X-Merchant-Secret"] == "merchant-secret-5678"


@responses.activate
def test_instagift_count_certificates_without_meta_is_none_not_an_error(instagift):
    body = dict(doc_example("instagift", "list_certificates")["body"])
    del body["meta"]
    responses.get(f"{INSTAGIFT}/certificates", json=body)
    assert instagift.count_certificates() is None


@responses.activate
def test_instagift_refused_credentials_are_an_auth_error_without_the_secret(instagift):
    serve("GET", f"{INSTAGIFT}/certificates", doc_example("instagift", "unauthorized"))
    with pytest.raises(ProviderAuthError) as caught:
        instagift.count_certificates()
    assert caught.value.http_status == 401
    assert "Permission denied" in str(caught.value)
    assert "merchant-secret-5678" not in str(caught.value) and "merchant-key-1234" not in str(caught.value)


# -- Cardly: Get Artwork, Artwork Listing, Template Listing ----------------------------------------------------
@pytest.fixture
def cardly():
    return CardlyClient(CARDLY, "test_QRJabcdefgh73X")


@responses.activate
def test_cardly_find_artwork_by_id_reads_get_artwork(cardly):
    serve("GET", f"{CARDLY}/art/{ARTWORK_ID}", doc_example("cardly", "get_artwork"))
    assert cardly.find_artwork(ARTWORK_ID) == Artwork(id=ARTWORK_ID, slug="api-artwork-upload",
                                                      name="API Artwork Upload")
    assert responses.calls[0].request.headers["API-Key"] == "test_QRJabcdefgh73X"


@responses.activate
def test_cardly_unknown_artwork_id_is_none(cardly):
    # Cardly documents 404 for "the requested resource does not exist" but prints no 404 body: the envelope the
    # other errors use is assumed.
    responses.get(f"{CARDLY}/art/{ARTWORK_ID}", status=404,
                  json={"state": {"status": "ERROR", "messages": ["Not found"]}, "data": None})
    assert cardly.find_artwork(ARTWORK_ID) is None


@responses.activate
def test_cardly_find_artwork_by_slug_reads_the_own_artwork_listing(cardly):
    serve("GET", f"{CARDLY}/art", doc_example("cardly", "artwork_listing"))
    assert cardly.find_artwork("api-artwork-upload").id == ARTWORK_ID
    assert query(responses.calls[0]) == {"ownOnly": ["1"], "limit": ["100"], "offset": ["0"]}
    # The sample's `...` placeholder record has no id and matches nothing; the listing ends at totalRecords.
    assert cardly.find_artwork("no-such-slug") is None
    assert len(responses.calls) == 2


@responses.activate
def test_cardly_find_template_reads_the_template_listing(cardly):
    serve("GET", f"{CARDLY}/templates", doc_example("cardly", "template_listing"))
    by_slug = cardly.find_template("happy-birthday")
    assert by_slug.id == "18ecf6e6-d2e2-49cb-bae0-fa980241db73"
    assert by_slug.name == "Happy Birthday"
    assert by_slug.variables == ("firstName",)  # the sample's "..." placeholder is not a variable
    assert cardly.find_template("18ecf6e6-d2e2-49cb-bae0-fa980241db73") == by_slug
    assert cardly.find_template("birthday") is None


@responses.activate
def test_cardly_listing_search_goes_past_the_first_page(cardly):
    first = {"state": {"status": "OK", "messages": []},
             "data": {"meta": {"limit": 100, "offset": 0, "totalRecords": 101},
                      "results": [{"id": f"t{n}", "slug": f"s{n}"} for n in range(100)]}}
    second = {"state": {"status": "OK", "messages": []},
              "data": {"meta": {"limit": 100, "offset": 100, "totalRecords": 101},
                       "results": [{"id": "t100", "slug": "wanted", "name": "Wanted"}]}}
    responses.get(f"{CARDLY}/templates", json=first, match=[matchers.query_param_matcher(
        {"limit": "100", "offset": "0"})])
    responses.get(f"{CARDLY}/templates", json=second, match=[matchers.query_param_matcher(
        {"limit": "100", "offset": "100"})])
    assert cardly.find_template("wanted").id == "t100"


# -- InstantCard: organization, card templates, template fields, shipping providers ---------------------------
# InstantCard's document lost every sample response: these fixtures are guesses (see each one's `guessed`).
@pytest.fixture
def instantcard():
    env = {"SERVICE_ENV": "development", "INSTANTCARD_API_URL": INSTANTCARD, "INSTANTCARD_EMAIL": "api@example.com",
           "INSTANTCARD_PASSWORD": "pw-123456", "INSTANTCARD_ORGANIZATION_ID": "20003827",
           "INSTANTCARD_SHIPPING_PROVIDER_ID": "1"}
    client = InstantCardClient(load_settings(env).instantcard, token_store=MemoryTokenStore())
    responses.post(f"{INSTANTCARD}/authenticate", json={"token": "t0ken"})
    return client


@responses.activate
def test_instantcard_fetch_organization(instantcard):
    serve("GET", ORG, doc_example("instantcard", "fetch_organization"))
    assert instantcard.fetch_organization() == Organization(id="20003827", name="InstantCard API")
    assert responses.calls[-1].request.headers["Authorization"] == "bearer t0ken"


@responses.activate
def test_instantcard_fetch_organization_wrapped_or_unknown(instantcard):
    responses.get(ORG, json={"organization": {"name": "Wrapped"}})
    assert instantcard.fetch_organization() == Organization(id=None, name="Wrapped")
    responses.replace(responses.GET, ORG, status=404, json={"error": "Organization not found"})
    with pytest.raises(ProviderNotFound):
        instantcard.fetch_organization()


@responses.activate
def test_instantcard_card_templates(instantcard):
    serve("GET", f"{ORG}/card_templates", doc_example("instantcard", "card_templates"))
    assert instantcard.card_templates() == [CardTemplate(id="101", name="Gold membership"),
                                            CardTemplate(id="102", name="Silver membership")]


@responses.activate
def test_instantcard_card_template_fields(instantcard):
    serve("GET", f"{ORG}/card_templates/101/fields", doc_example("instantcard", "card_template_fields"))
    assert instantcard.card_template_fields(101) == ["Name", "Member Number", "Expires", "Photo"]


@responses.activate
def test_instantcard_card_template_fields_in_other_shapes(instantcard):
    responses.get(f"{ORG}/card_templates/101/fields", json={"card_template_fields": ["Name", {"label": "Expires"}]})
    assert instantcard.card_template_fields(101) == ["Name", "Expires"]
    responses.get(f"{ORG}/card_templates/999/fields", status=404, json={"error": "Card template not found"})
    with pytest.raises(ProviderNotFound):
        instantcard.card_template_fields(999)


@responses.activate
def test_instantcard_shipping_providers(instantcard):
    serve("GET", f"{ORG}/shipping_providers", doc_example("instantcard", "shipping_providers"))
    assert instantcard.shipping_providers() == [ShippingProvider(id="1", name="USPS First Class"),
                                                ShippingProvider(id="2", name="UPS Ground")]
