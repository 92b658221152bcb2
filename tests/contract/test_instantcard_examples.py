"""InstantCard's documented answers, served at the documented path, read by the real InstantCardClient.

InstantCard's document lost every sample response, so every fixture here is `guessed` from what its text says
(and the shapes other public references show); each test says so, and checks that a body missing what the
client needs fails with ProviderResponseInvalid naming it.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
import responses
from responses import matchers

from sandbox.instantcard import ORGANIZATION_ID as SANDBOX_ORGANIZATION_ID
from sandbox.instantcard import SANDBOX_EMAIL, SANDBOX_PASSWORD
from service.errors import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderPaymentRequired,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from service.features import load_settings
from service.providers.instantcard import CachedToken, InstantCardClient, MemoryTokenStore
from tests.contract.examples import doc_example

HOST = "https://core.instantcard.net"  # the production base path the document gives
ORGANIZATION_ID = "20003827"  # the document's test organization
PASSWORD = "pw-not-in-errors-123"
CACHED_TOKEN = "tok-cached"
CARD_ID = "264561"
PRINT_JOB_ID = "7001"


@pytest.fixture
def settings():
    env = {"SERVICE_ENV": "development", "INSTANTCARD_API_URL": f"{HOST}/api/v2",
           "INSTANTCARD_EMAIL": "api@example.com", "INSTANTCARD_PASSWORD": PASSWORD,
           "INSTANTCARD_ORGANIZATION_ID": ORGANIZATION_ID, "INSTANTCARD_SHIPPING_PROVIDER_ID": "3"}
    return load_settings(env).instantcard


@pytest.fixture
def ic(settings):
    """A client holding a token already, so each test's first call is the documented one."""
    tokens = MemoryTokenStore()
    tokens.save(CachedToken(CACHED_TOKEN, None))
    return InstantCardClient(settings, token_store=tokens)


def example(name: str) -> dict:
    """A documented InstantCard example; every one is a guess, and says what it assumes."""
    loaded = doc_example("instantcard", name)
    assert loaded.get("guessed"), f"{name}: InstantCard lost its samples, so the fixture must say what it assumes"
    return loaded


def url(loaded: dict, **path_values: str) -> str:
    path = loaded["request"]["path"].lstrip("/")
    return f"{HOST}/" + path.format(organization_id=ORGANIZATION_ID, **path_values)


def serve(loaded: dict, *, body=None, match=(), **path_values: str) -> None:
    """Answer the example's documented request (path placeholders filled in) with its status and body."""
    responses.add(loaded["request"]["method"], url(loaded, **path_values), status=loaded["status"],
                  json=loaded["body"] if body is None else body, match=list(match))


def without(body, *keys: str):
    """The example body with `keys` removed (a shape the client must refuse clearly)."""
    changed = copy.deepcopy(body)
    for key in keys:
        del changed[key]
    return changed


def assert_invalid_naming(call, what: str) -> None:
    with pytest.raises(ProviderResponseInvalid) as caught:
        call()
    assert what in caught.value.message


# -- Login --------------------------------------------------------------------------------------------------
@responses.activate
def test_authenticate_reads_the_token_and_its_expiry_from_the_documents_own_jwt(ic):
    """Guessed: `{"token": …}`; the token is the document's sample bearer token, a JWT whose `exp` is the expiry."""
    loaded = example("authenticate")
    serve(loaded, match=[matchers.urlencoded_params_matcher({"email": "api@example.com", "password": PASSWORD})])
    token = ic.authenticate()
    assert token.token == loaded["body"]["token"]
    assert token.expires_at == datetime(2018, 7, 12, 2, 11, 49, tzinfo=UTC)


@responses.activate
def test_a_login_answer_without_a_token_is_named_and_not_echoed(ic):
    loaded = example("authenticate")
    serve(loaded, body={"user_id": 13420})
    with pytest.raises(ProviderResponseInvalid) as caught:
        ic.authenticate()
    assert "token" in caught.value.message and "13420" not in repr(caught.value.body)


@responses.activate
def test_wrong_credentials_are_a_configuration_error_without_the_password(ic):
    """Guessed: the 401 body `{"error": …}`."""
    loaded = example("authenticate_401_wrong_credentials")
    serve(loaded)
    with pytest.raises(ProviderAuthError) as caught:
        ic.authenticate()
    assert caught.value.http_status == 401 and PASSWORD not in str(caught.value)


# -- Cards --------------------------------------------------------------------------------------------------
DATA = {"Name": "Ada Lovelace", "Member Number": "M-000123", "Expires": "2027-11-30"}


@responses.activate
def test_create_card_reads_the_card_object(ic):
    """Guessed: a bare card object with data items as {name, value}; no draft/finalized status is described."""
    loaded = example("create_card")
    serve(loaded)
    card = ic.create_card(3721, DATA)
    assert (card.id, card.template_id, card.data, card.last_submitted_at) == (CARD_ID, 3721, DATA, None)
    assert responses.calls[0].request.headers["Authorization"] == f"bearer {CACHED_TOKEN}"


@responses.activate
def test_a_created_card_without_an_id_is_named(ic):
    loaded = example("create_card")
    serve(loaded, body=without(loaded["body"], "id"))
    assert_invalid_naming(lambda: ic.create_card(3721, DATA), "card id")


@responses.activate
def test_preview_reads_front_and_back(ic):
    """Guessed: `{"front": …, "back": …}` with the document's "*" for each Base64 string."""
    loaded = example("preview_card")
    serve(loaded, id=CARD_ID)
    preview = ic.preview_card(CARD_ID)
    assert (preview.front, preview.back) == ("*", "*")
    serve(loaded, body={"front": "*front", "back": "*back"}, id=CARD_ID)  # the two "*" told apart
    preview = ic.preview_card(CARD_ID)
    assert (preview.front, preview.back) == ("*front", "*back")


@responses.activate
def test_a_preview_without_the_back_is_named(ic):
    loaded = example("preview_card")
    serve(loaded, body=without(loaded["body"], "back"), id=CARD_ID)
    assert_invalid_naming(lambda: ic.preview_card(CARD_ID), "front and back images")


@responses.activate
@pytest.mark.parametrize("body", [None, {"images": ["*"]}, {}])
def test_finalize_takes_any_2xx_answer_as_done(ic, body):
    """Guessed: the finalized card object. The document says only that the answer may carry the card's images,
    and a card shows no finalized state anyway, so the client does not read the answer: a 2xx is the answer."""
    loaded = example("finalize_card")
    serve(loaded, body=body, id=CARD_ID)
    assert ic.finalize_card(CARD_ID) is None
    assert responses.calls[0].request.method == "PATCH"


@responses.activate
def test_fetch_card_reads_the_card_object_and_names_a_missing_id(ic):
    """Guessed: the card object, images as "image"."""
    loaded = example("fetch_card")
    serve(loaded, id=CARD_ID)
    assert ic.fetch_card(CARD_ID).data == DATA
    serve(loaded, body=without(loaded["body"], "id"), id=CARD_ID)
    assert_invalid_naming(lambda: ic.fetch_card(CARD_ID), "card id")


@responses.activate
def test_search_reads_the_array_and_find_by_field_keeps_the_exact_match(ic):
    """Guessed: a bare JSON array of card objects ("It returns a JSON array of objects")."""
    loaded = example("search_cards")
    for _ in range(2):
        serve(loaded, match=[matchers.query_param_matcher({"term": "M-000123", "page_size": "50", "page": "1"})])
        serve(loaded, body=[], match=[matchers.query_param_matcher({"term": "M-000123", "page_size": "50",
                                                                     "page": "2"})])
    found = ic.find_card_by_field("Member Number", "M-000123")  # the search also returns M-0001234
    assert found is not None and found.id == CARD_ID
    assert [c.id for c in ic.search_cards("M-000123")] == [CARD_ID, "264562"]
    assert len(responses.calls) == 4  # each search: its page, then an empty page that ends it


@responses.activate
def test_search_reads_on_when_instantcard_answers_fewer_cards_than_asked(ic):
    """Guessed: the document gives `page_size` and `page` but no last page and no maximum; a page smaller than asked
    is not the end, an empty page (or one with no new card) is."""
    loaded = example("search_cards")
    first, second = loaded["body"]
    for page, body in (("1", [first]), ("2", [second]), ("3", [])):
        serve(loaded, body=body, match=[matchers.query_param_matcher({"term": "M-0001", "page_size": "50",
                                                                       "page": page})])
    assert [c.id for c in ic.search_cards("M-0001")] == [CARD_ID, "264562"]
    serve(loaded, body=[first], match=[matchers.query_param_matcher({"term": "M-0009", "page_size": "50",
                                                                      "page": "1"})])
    serve(loaded, body=[first], match=[matchers.query_param_matcher({"term": "M-0009", "page_size": "50",
                                                                      "page": "2"})])
    assert [c.id for c in ic.search_cards("M-0009")] == [CARD_ID]  # a provider ignoring `page` ends too


@responses.activate
def test_search_results_without_ids_or_without_a_list_are_named(ic):
    loaded = example("search_cards")
    serve(loaded, body=[without(loaded["body"][0], "id")])
    assert_invalid_naming(lambda: ic.search_cards("M-000123"), "card id")
    serve(loaded, body={"total": 2})
    assert_invalid_naming(lambda: ic.search_cards("M-000123"), "list of cards")


@responses.activate
def test_400_on_create_card_is_a_refusal_with_instantcards_reason(ic):
    """Guessed: `{"error": …}`."""
    loaded = example("create_card_400_bad_request")
    serve(loaded)
    with pytest.raises(ProviderRejected) as caught:
        ic.create_card(3721, DATA)
    assert not isinstance(caught.value, ProviderPaymentRequired)
    assert caught.value.reason == "card[data] must be a JSON array"


@responses.activate
def test_500_on_create_card_leaves_it_in_doubt(ic):
    """Guessed: `{"error": …}` with the documented reason."""
    loaded = example("create_card_500")
    serve(loaded)
    with pytest.raises(ProviderUnavailable) as caught:
        ic.create_card(3721, DATA)
    assert caught.value.retryable is True and caught.value.outcome_unknown is True


@responses.activate
def test_a_refused_token_is_renewed_once_and_the_call_repeated(ic):
    """Guessed: an expired token is answered 401 (`{"error": …}`); the login answer is the authenticate example."""
    refused, login, card = example("fetch_card_401_unauthorized"), example("authenticate"), example("fetch_card")
    serve(refused, id=CARD_ID)
    serve(login)
    serve(card, id=CARD_ID)
    assert ic.fetch_card(CARD_ID).id == CARD_ID
    first, _, second = responses.calls
    assert first.request.headers["Authorization"] == f"bearer {CACHED_TOKEN}"
    assert second.request.headers["Authorization"] == f"bearer {login['body']['token']}"


@responses.activate
def test_a_token_refused_again_after_login_is_a_configuration_error(ic):
    refused, login = example("fetch_card_401_unauthorized"), example("authenticate")
    serve(refused, id=CARD_ID)
    serve(login)
    serve(refused, id=CARD_ID)
    with pytest.raises(ProviderAuthError):
        ic.fetch_card(CARD_ID)
    assert len(responses.calls) == 3


@responses.activate
def test_404_on_fetch_card_is_not_found(ic):
    """Guessed: `{"error": …}`."""
    serve(example("fetch_card_404_not_found"), id=CARD_ID)
    with pytest.raises(ProviderNotFound):
        ic.fetch_card(CARD_ID)


# -- Print jobs ---------------------------------------------------------------------------------------------
@responses.activate
def test_create_print_job_reads_id_status_and_created_at(ic):
    """Guessed: the print job object, status 0 = created; it lists no card ids. The service creates its print jobs
    without cards (the document: card ids are "not required when initially creating a print job")."""
    loaded = example("create_print_job")
    serve(loaded)
    job = ic.create_print_job(address={"full_name": "Ada Lovelace", "address_1": "10 Main St"})
    assert (job.id, job.submitted) == (PRINT_JOB_ID, False)
    assert job.created_at == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert "card_ids" not in responses.calls[0].request.body


@responses.activate
def test_a_created_print_job_without_an_id_is_named(ic):
    loaded = example("create_print_job")
    serve(loaded, body=without(loaded["body"], "id"))
    assert_invalid_naming(lambda: ic.create_print_job([CARD_ID]), "print job id")


@responses.activate
def test_add_cards_reads_the_print_job_or_accepts_an_acknowledgement(ic):
    """Guessed: the print job; the document does not say, and the service does not need the answer, so an
    acknowledgement that is not a print job is accepted (None) rather than failing a call that worked."""
    loaded = example("add_cards")
    serve(loaded, id=PRINT_JOB_ID)
    assert ic.add_cards(PRINT_JOB_ID, [CARD_ID]).id == PRINT_JOB_ID
    serve(loaded, body={"success": True}, id=PRINT_JOB_ID)
    assert ic.add_cards(PRINT_JOB_ID, [CARD_ID]) is None


@responses.activate
def test_fetch_print_job_reads_a_submitted_job_and_names_a_missing_id(ic):
    """Guessed: the print job object, status 1 = submitted."""
    loaded = example("fetch_print_job")
    serve(loaded, id=PRINT_JOB_ID)
    assert ic.fetch_print_job(PRINT_JOB_ID).submitted is True
    serve(loaded, body=without(loaded["body"], "id"), id=PRINT_JOB_ID)
    assert_invalid_naming(lambda: ic.fetch_print_job(PRINT_JOB_ID), "print job id")


@responses.activate
def test_list_print_jobs_reads_the_array(ic):
    """Guessed: a bare array of print jobs; like the single one, each lists no card ids."""
    serve(example("list_print_jobs"),
          match=[matchers.query_param_matcher({"page": "1", "page_size": "100", "status": "0"})])
    [job] = ic.list_print_jobs(submitted=False)
    assert (job.id, job.submitted) == (PRINT_JOB_ID, False)


@responses.activate
@pytest.mark.parametrize(("name", "covered"), [("check_balance_true", True), ("check_balance_false", False)])
def test_check_balance_reads_true_and_false(ic, name, covered):
    """Guessed: the JSON literals true/false (the text quotes them)."""
    serve(example(name), id=PRINT_JOB_ID)
    assert ic.check_balance(PRINT_JOB_ID) is covered


@responses.activate
def test_check_balance_without_a_true_or_false_is_named(ic):
    serve(example("check_balance_true"), body={}, id=PRINT_JOB_ID)
    assert_invalid_naming(lambda: ic.check_balance(PRINT_JOB_ID), "true/false answer for check_balance")


@responses.activate
def test_charge_details_reads_the_balance_flag_and_the_amounts_in_cents(ic):
    """Guessed: has_balance a boolean, the amounts as "$3.50" like the documented balance notation."""
    loaded = example("charge_details")
    serve(loaded, id=PRINT_JOB_ID)
    charge = ic.charge_details(PRINT_JOB_ID)
    assert (charge.has_balance, charge.job_total_cost_cents, charge.shipping_cost_cents) == (True, 350, 100)
    assert charge.items == loaded["body"]["items"]


@responses.activate
def test_charge_details_without_the_balance_flag_or_a_total_is_named(ic):
    loaded = example("charge_details")
    serve(loaded, body=without(loaded["body"], "has_balance", "job_total_cost"), id=PRINT_JOB_ID)
    assert_invalid_naming(lambda: ic.charge_details(PRINT_JOB_ID), "has_balance or job_total_cost")


@responses.activate
def test_submit_reads_the_submitted_job_or_accepts_an_acknowledgement(ic):
    """Guessed: the submitted print job; an acknowledgement that is not a print job is accepted too (the
    service fetches the job when it needs to know)."""
    loaded = example("submit_print_job")
    serve(loaded, id=PRINT_JOB_ID)
    assert ic.submit_print_job(PRINT_JOB_ID).submitted is True
    serve(loaded, body={"message": "Print job submitted"}, id=PRINT_JOB_ID)
    assert ic.submit_print_job(PRINT_JOB_ID) is None


@responses.activate
def test_a_submit_refused_for_funds_is_payment_required(ic):
    """Guessed: a 400 whose text speaks of funds; the client recognises the refusal by those words."""
    serve(example("submit_print_job_400_insufficient_funds"), id=PRINT_JOB_ID)
    with pytest.raises(ProviderPaymentRequired) as caught:
        ic.submit_print_job(PRINT_JOB_ID)
    assert caught.value.http_status == 400


# -- Organization balance -----------------------------------------------------------------------------------
@responses.activate
@pytest.mark.parametrize(("name", "cents"), [("organization_balance_positive", 550),
                                             ("organization_balance_negative", -550)])
def test_the_documented_balance_strings_are_read_as_cents(ic, name, cents):
    """Guessed: the string alone is the body ("$5.50", "($5.50)" in overdraft)."""
    serve(example(name), id=ORGANIZATION_ID)
    assert ic.organization_balance_cents() == cents


@responses.activate
@pytest.mark.parametrize(("body", "named"), [({}, "balance"), ("five dollars", "cannot read the amount")])
def test_a_balance_answer_without_a_readable_amount_is_named(ic, body, named):
    serve(example("organization_balance_positive"), body=body, id=ORGANIZATION_ID)
    assert_invalid_naming(ic.organization_balance_cents, named)


# -- the sandbox against the described shapes ------------------------------------------------------------------
def test_the_sandbox_cards_and_print_jobs_carry_exactly_the_described_fields(sandbox):
    """The sandbox's card and print job objects have the fields the examples assume InstantCard sends, no more:
    a fake kinder than the provider (a card's state, a print job's card ids) would hide what the service must
    not rely on."""
    sandbox.app.extensions["sandbox"]["instantcard"].reset()
    env = {"SERVICE_ENV": "development", "INSTANTCARD_API_URL": f"{sandbox.url}/instantcard/api/v2",
           "INSTANTCARD_EMAIL": SANDBOX_EMAIL, "INSTANTCARD_PASSWORD": SANDBOX_PASSWORD,
           "INSTANTCARD_ORGANIZATION_ID": SANDBOX_ORGANIZATION_ID, "INSTANTCARD_SHIPPING_PROVIDER_ID": "1"}
    ic = InstantCardClient(load_settings(env).instantcard)
    card = ic.create_card(101, {"Name": "Ada Lovelace", "Member Number": "M-000123"})
    assert card.raw.keys() == example("create_card")["body"].keys()
    ic.finalize_card(card.id)
    assert ic.fetch_card(card.id).raw.keys() == example("fetch_card")["body"].keys()
    [found] = ic.search_cards("M-000123")
    assert found.raw.keys() == example("search_cards")["body"][0].keys() and found.raw["images"] == ["image"]
    job = ic.create_print_job([card.id], address={"full_name": "Ada Lovelace", "address_1": "10 Main St",
                                                  "city": "Springfield", "state": "IL", "zip_code": "62701",
                                                  "country": "US"})
    assert job.raw.keys() == example("create_print_job")["body"].keys() and job.raw["status"] == 0
    assert ic.fetch_print_job(job.id).raw.keys() == example("fetch_print_job")["body"].keys()
    [listed] = ic.list_print_jobs(submitted=False)
    assert listed.raw.keys() == example("list_print_jobs")["body"][0].keys()
    assert ic.check_balance(job.id) is True
    with pytest.raises(ProviderRejected):  # charge details are for submitted print jobs (the documented order)
        ic.charge_details(job.id)
    assert ic.submit_print_job(job.id).submitted is True
    assert ic.charge_details(job.id).job_total_cost_cents == 350
