"""InstantCard client: exact wire format (form-data, bearer header), token handling and defensive parsing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from sandbox.instantcard import format_money  # what the fake emits, read by the client
from service.errors import (
    ProviderAuthError,
    ProviderPaymentRequired,
    ProviderRejected,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from service.features import load_settings
from service.providers.instantcard import (
    CachedToken,
    InstantCardClient,
    MemoryTokenStore,
    jwt_expiry,
    parse_balance,
    parse_card,
    parse_charge_details,
    parse_money_cents,
    parse_print_job,
    parse_token,
)
from service.providers.tokens import DatabaseTokenStore

BASE = "https://ic.test/api/v2"
ORG = f"{BASE}/organizations/20003827"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def jwt(exp: datetime) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"user_id": 1, "exp": int(exp.timestamp())}).encode())
    return "eyJ0eXAiOiJKV1QifQ." + claims.decode().rstrip("=") + ".c2lnbmF0dXJl"


@pytest.fixture
def settings():
    env = {"SERVICE_ENV": "development", "INSTANTCARD_API_URL": BASE, "INSTANTCARD_EMAIL": "api@example.com",
           "INSTANTCARD_PASSWORD": "pw-123456", "INSTANTCARD_ORGANIZATION_ID": "20003827",
           "INSTANTCARD_SHIPPING_PROVIDER_ID": "3"}
    return load_settings(env).instantcard


@pytest.fixture
def clock():
    now = {"value": NOW}
    return now


@pytest.fixture
def ic(settings, clock):
    return InstantCardClient(settings, token_store=MemoryTokenStore(), clock=lambda: clock["value"])


def form(call) -> list[tuple[str, str]]:
    return parse_qsl(call.request.body, keep_blank_values=True)


def login(token=None):
    responses.post(f"{BASE}/authenticate", json={"token": token or jwt(NOW + timedelta(hours=2))})


@responses.activate
def test_authenticate_posts_the_credentials_as_form_data_and_sends_bearer(ic):
    login("tok-aaaa")
    responses.get(f"{ORG}/balance", json={"balance": "$5.50"})
    assert ic.organization_balance_cents() == 550
    auth, call = responses.calls
    assert dict(form(auth)) == {"email": "api@example.com", "password": "pw-123456"}
    assert call.request.headers["Authorization"] == "bearer tok-aaaa"


@responses.activate
def test_create_card_sends_template_and_data_as_a_json_string(ic):
    login()
    responses.post(f"{ORG}/cards", json={"id": 264561, "card_template_id": 101, "data": [], "last_submitted_at": None})
    card = ic.create_card(101, {"Name": "Ada Lovelace", "Member Number": "M-00000001"})
    assert card.id == "264561" and card.template_id == 101 and card.last_submitted_at is None
    sent = dict(form(responses.calls[1]))
    assert responses.calls[1].request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent["card[card_template_id]"] == "101"
    assert json.loads(sent["card[data]"]) == [{"name": "Name", "value": "Ada Lovelace"},
                                              {"name": "Member Number", "value": "M-00000001"}]


@responses.activate
def test_print_job_carries_card_ids_address_shipping_provider_and_copies(ic):
    login()
    responses.post(f"{ORG}/print_jobs", json={"id": 9, "status": 0})
    job = ic.create_print_job(["1", "2"], address={"full_name": "Ada Lovelace", "address_1": "10 Main St",
                                                   "city": "Springfield", "state": "IL", "zip_code": "62701",
                                                   "country": "US"})
    assert job.id == "9" and job.submitted is False
    assert form(responses.calls[1]) == [
        ("print_job[card_ids]", "[1,2]"),
        ("print_job[shipping_provider_id]", "3"), ("print_job[number_of_copies]", "1"),
        ("print_job[address][contact][full_name]", "Ada Lovelace"), ("print_job[address][address_1]", "10 Main St"),
        ("print_job[address][city]", "Springfield"), ("print_job[address][state]", "IL"),
        ("print_job[address][zip_code]", "62701"), ("print_job[address][country]", "US")]


@responses.activate
def test_patching_a_print_job_always_resends_the_shipping_provider(ic):
    login()
    responses.patch(f"{ORG}/print_jobs/9", json={"id": 9, "status": 0, "shipping_provider_id": 3})
    ic.update_print_job("9", copies=2)
    sent = responses.calls[1].request
    assert parse_qsl(urlsplit(sent.url).query) == [("print_job[shipping_provider_id]", "3"),
                                                   ("print_job[number_of_copies]", "2")]
    assert not sent.body  # Update a Print Job's parameters are URL parameters


@responses.activate
def test_add_cards_and_remove_card_paths(ic):
    login()
    responses.post(f"{ORG}/print_jobs/9/add_cards", json={"id": 9, "card_ids": ["5"]})
    responses.delete(f"{ORG}/print_jobs/9/remove_cards/5", json={"id": 9, "card_ids": []})
    ic.add_cards("9", ["5"])
    ic.remove_card("9", "5")
    assert form(responses.calls[1]) == [("print_job[card_ids]", "[5]")]


@responses.activate
def test_the_token_is_reused_until_it_nears_its_expiry(ic, clock):
    responses.post(f"{BASE}/authenticate", json={"token": jwt(NOW + timedelta(minutes=30))})
    responses.get(f"{ORG}/balance", json={"balance": "$1.00"})
    ic.organization_balance_cents()
    ic.organization_balance_cents()
    assert sum(1 for c in responses.calls if c.request.url.endswith("/authenticate")) == 1
    clock["value"] = NOW + timedelta(minutes=29, seconds=30)  # inside the refresh margin
    ic.organization_balance_cents()
    assert sum(1 for c in responses.calls if c.request.url.endswith("/authenticate")) == 2


@responses.activate
def test_a_401_authenticates_again_once_and_repeats_the_call_once(ic):
    responses.post(f"{BASE}/authenticate", json={"token": "old-token"})
    responses.post(f"{BASE}/authenticate", json={"token": "new-token"})
    responses.get(f"{ORG}/balance", status=401, json={"error": "Unauthorized"})
    responses.get(f"{ORG}/balance", json={"balance": "($2.25)"})
    assert ic.organization_balance_cents() == -225
    headers = [c.request.headers.get("Authorization") for c in responses.calls]
    assert headers == [None, "bearer old-token", None, "bearer new-token"]
    assert ic.tokens.load().token == "new-token"


@responses.activate
def test_a_second_401_is_an_auth_error_not_a_loop(ic):
    responses.post(f"{BASE}/authenticate", json={"token": "t1"})
    responses.get(f"{ORG}/balance", status=401)
    with pytest.raises(ProviderAuthError):
        ic.organization_balance_cents()
    assert len(responses.calls) == 4  # login, call, login, call


@responses.activate
def test_wrong_credentials_are_an_auth_error(ic):
    responses.post(f"{BASE}/authenticate", status=401, json={"error": "Invalid email or password"})
    with pytest.raises(ProviderAuthError) as caught:
        ic.card_templates()
    assert "pw-123456" not in str(caught.value)


@responses.activate
def test_refusals_are_typed_with_instantcards_reason(ic):
    login()
    responses.post(f"{ORG}/print_jobs/9/print", status=400, json={"error": "Insufficient funds: costs $3.50"})
    responses.post(f"{ORG}/print_jobs", status=422, json={"error": "Card 5 is not finalized"})
    responses.post(f"{ORG}/cards", status=503)
    with pytest.raises(ProviderPaymentRequired):
        ic.submit_print_job("9")
    with pytest.raises(ProviderRejected) as caught:
        ic.create_print_job(["5"])
    assert caught.value.reason == "Card 5 is not finalized"
    with pytest.raises(ProviderUnavailable) as unavailable:
        ic.create_card(101, {})
    assert unavailable.value.outcome_unknown


@responses.activate
def test_search_filters_to_the_exact_member_number(ic):
    login()
    responses.get(f"{ORG}/cards/search", json=[
        {"id": 1, "data": [{"name": "Member Number", "value": "M-000000010"}]},
        {"id": 2, "data": [{"name": "Member Number", "value": "M-00000001"}]}])
    assert ic.find_card_by_field("Member Number", "M-00000001").id == "2"
    assert dict(parse_qsl(responses.calls[1].request.url.split("?", 1)[1]))["term"] == "M-00000001"


@responses.activate
def test_a_search_that_keeps_bringing_new_cards_stops_at_its_page_limit(ic):
    """A search whose every page brings new cards (never empty) is read `max_pages` pages, then named invalid,
    rather than paged for ever."""
    login()

    def a_new_card_per_page(request):
        page = dict(parse_qsl(urlsplit(request.url).query))["page"]
        return 200, {}, json.dumps([{"id": int(page), "data": [{"name": "Member Number", "value": f"M-{page}"}]}])

    responses.add_callback(responses.GET, f"{ORG}/cards/search", callback=a_new_card_per_page)
    with pytest.raises(ProviderResponseInvalid, match="did not end within 3 pages"):
        ic.search_cards("M-", max_pages=3)
    assert [dict(parse_qsl(urlsplit(call.request.url).query))["page"] for call in responses.calls[1:]] == [
        "1", "2", "3"]


@responses.activate
def test_balance_checks_and_charge_details(ic):
    login()
    responses.get(f"{ORG}/print_jobs/9/check_balance", body="false", content_type="application/json")
    responses.get(f"{ORG}/print_jobs/9/charge_details", json={
        "has_balance": True, "items": [{"card_id": "5"}], "job_total_cost": "$3.50", "shipping_cost": "$1.00"})
    assert ic.check_balance("9") is False
    details = ic.charge_details("9")
    assert (details.has_balance, details.job_total_cost_cents, details.shipping_cost_cents) == (True, 350, 100)


def test_token_expiry_is_read_from_the_jwt_or_the_answer():
    assert jwt_expiry(jwt(NOW)) == NOW
    assert jwt_expiry("not-a-jwt") is None
    assert parse_token({"token": "opaque", "expires_in": 600}, now=NOW).expires_at == NOW + timedelta(minutes=10)
    assert parse_token({"data": {"auth_token": "x", "expires_at": "2026-11-21T13:00:00Z"}}, now=NOW).expires_at \
        == NOW + timedelta(hours=1)
    assert parse_token({"token": "opaque"}, now=NOW).expires_at is None


def test_unreadable_answers_name_what_was_missing():
    with pytest.raises(ProviderResponseInvalid, match="no token"):
        parse_token({"user": {}}, now=NOW)
    with pytest.raises(ProviderResponseInvalid, match="no card id"):
        parse_card({"card": {"data": []}})
    with pytest.raises(ProviderResponseInvalid, match="no print job id"):
        parse_print_job([])
    with pytest.raises(ProviderResponseInvalid, match="has_balance or job_total_cost"):
        parse_charge_details({"items": []})
    with pytest.raises(ProviderResponseInvalid, match="no balance"):
        parse_balance({"name": "Org"})


def test_wrapped_and_bare_shapes_are_both_read():
    card = parse_card({"card": {"id": 7, "last_submitted_at": "2026-11-21T12:00:00Z"}})
    assert card.id == "7" and card.last_submitted_at == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_card({"data": {"id": "8", "data": '[{"name": "A", "value": 1}]'}}).data == {"A": "1"}
    assert parse_print_job({"print_job": {"id": 3, "status": "submitted"}}).submitted is True
    assert parse_print_job({"id": 3, "status": 0}).submitted is False


def test_a_print_job_says_it_was_submitted_by_its_status_alone():
    """`status` is the print job's only described field that says it; an undescribed `submitted_at` is not read."""
    assert parse_print_job({"id": 3}).submitted is None
    assert parse_print_job({"id": 3, "submitted_at": "2026-11-21T12:00:00Z"}).submitted is None


@pytest.mark.parametrize("text, cents", [
    ("$5.50", 550), ("($5.50)", -550), ("-$5.50", -550), ("$0.00", 0), ("$1,234.05", 123405),
    ("5.5", 550), (" $7 ", 700), (12.25, 1225), (3, 300), ("($0.01)", -1), ("USD 2.00", 200),
])
def test_balance_strings_parse_to_integer_cents(text, cents):
    assert parse_money_cents(text) == cents


@pytest.mark.parametrize("text", ["", "five dollars", "$", "$5.50.1", "($5.50", None, True, "NaN"])
def test_unreadable_amounts_are_refused(text):
    with pytest.raises(ProviderResponseInvalid):
        parse_money_cents(text)


@given(st.integers(min_value=-10**12, max_value=10**12))
def test_money_round_trips_through_instantcards_notation(cents):
    assert parse_money_cents(format_money(cents)) == cents
    assert parse_balance({"balance": format_money(cents)}) == cents


def test_the_database_token_store_is_shared_and_discards_only_the_refused_token(app):
    with app.app_context():
        first, second = DatabaseTokenStore("api@example.com"), DatabaseTokenStore("api@example.com")
        other_account = DatabaseTokenStore("other@example.com")
        assert first.load() is None
        first.save(CachedToken("t-1", NOW))
        assert second.load() == CachedToken("t-1", NOW)
        second.save(CachedToken("t-2", None))
        first.discard("t-1")  # a stale refusal must not throw away the fresh token
        assert first.load() == CachedToken("t-2", None)
        assert other_account.load() is None
        first.discard("t-2")
        assert second.load() is None


@given(st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=20))
def test_card_ids_the_client_writes_are_read_back_by_the_strict_sandbox(ids):
    """Whatever ids, the one `print_job[card_ids]` field the client writes is the documented form the sandbox takes."""
    from werkzeug.datastructures import MultiDict

    from sandbox.instantcard import _card_ids
    from service.providers.instantcard import CARD_IDS_KEY, encode_card_ids

    encoded = encode_card_ids(str(i) for i in ids)
    assert encoded == "[" + ",".join(map(str, ids)) + "]"
    assert _card_ids(MultiDict({CARD_IDS_KEY: encoded})) == ([str(i) for i in ids], None)


@pytest.mark.parametrize("ids", [[], ["12a"], ["-1"], [" "]])
def test_card_ids_that_are_not_id_numbers_are_never_sent(ids):
    from service.providers.instantcard import encode_card_ids

    with pytest.raises(ValueError):
        encode_card_ids(ids)
