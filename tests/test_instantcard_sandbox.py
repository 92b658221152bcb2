"""The InstantCard sandbox follows the doc: expiring tokens, draft → finalize, print job rules, balance strings."""

from __future__ import annotations

import json

import pytest
import requests


@pytest.fixture
def ic(sandbox):
    requests.post(f"{sandbox.url}/_control/reset", timeout=5).raise_for_status()
    return f"{sandbox.url}/instantcard/api/v2"


def token(ic, how="form"):
    creds = {"email": "sandbox@example.com", "password": "sandbox-password"}
    kwargs = {"form": {"data": creds}, "json": {"json": creds}, "query": {"params": creds}}[how]
    response = requests.post(f"{ic}/authenticate", timeout=5, **kwargs)
    assert response.status_code == 200
    return {"Authorization": f"bearer {response.json()['token']}"}


@pytest.mark.parametrize("how", ["form", "json", "query"])
def test_authenticate_accepts_form_json_or_query(ic, how):
    assert requests.get(f"{ic}/profile/me", headers=token(ic, how), timeout=5).status_code == 200


def test_bad_credentials_and_expired_tokens_are_401(ic):
    assert requests.post(f"{ic}/authenticate", data={"email": "x", "password": "y"}, timeout=5).status_code == 401
    auth = token(ic)
    assert requests.get(f"{ic}/organizations/1/balance", timeout=5).status_code == 401
    requests.post(f"{ic}/_control/expire_tokens", timeout=5).raise_for_status()
    assert requests.get(f"{ic}/organizations/1/balance", headers=auth, timeout=5).status_code == 401


def test_only_finalized_cards_join_print_jobs_and_patch_resets_shipping(ic):
    auth = token(ic)
    data = json.dumps([{"name": "Name", "value": "Ada"}, {"name": "Member Number", "value": "M-1"}])
    card = requests.post(f"{ic}/organizations/1/cards", headers=auth, timeout=5,
                         data={"card[card_template_id]": "101", "card[data]": data}).json()
    job_form = {"print_job[card_ids]": f"[{card['id']}]", "print_job[shipping_provider_id]": "1",
                "print_job[address][address_1]": "10 Main St", "print_job[address][city]": "Springfield",
                "print_job[address][country]": "US"}
    refused = requests.post(f"{ic}/organizations/1/print_jobs", headers=auth, data=job_form, timeout=5)
    assert refused.status_code == 422
    requests.patch(f"{ic}/organizations/1/cards/{card['id']}/finalize", headers=auth, timeout=5).raise_for_status()
    job = requests.post(f"{ic}/organizations/1/print_jobs", headers=auth, data=job_form, timeout=5).json()
    assert job.keys() == {"id", "address_id", "address", "status", "created_at"}  # as described: no card ids
    requests.patch(f"{ic}/organizations/1/print_jobs/{job['id']}", headers=auth,
                   params={"print_job[number_of_copies]": "2"}, timeout=5).raise_for_status()
    submit = requests.post(f"{ic}/organizations/1/print_jobs/{job['id']}/print", headers=auth, timeout=5)
    assert submit.status_code == 400 and "shipping provider" in submit.json()["error"]  # the PATCH reset it


def test_a_card_shows_no_state_and_a_second_finalize_is_refused_unless_told(ic, instantcard):
    auth = token(ic)
    data = json.dumps([{"name": "Name", "value": "Ada"}])
    card = requests.post(f"{ic}/organizations/1/cards", headers=auth, timeout=5,
                         data={"card[card_template_id]": "101", "card[data]": data}).json()
    assert card.keys() == {"id", "card_template_id", "organization_id", "data", "images", "last_printed_at",
                           "last_submitted_at"}
    finalize = f"{ic}/organizations/1/cards/{card['id']}/finalize"
    assert requests.patch(finalize, headers=auth, timeout=5).json().keys() == card.keys()
    assert requests.patch(finalize, headers=auth, timeout=5).status_code == 400
    instantcard.repeat_finalize_accepted = True
    assert requests.patch(finalize, headers=auth, timeout=5).status_code == 200


def test_a_card_added_twice_is_on_the_print_job_twice_and_removed_once(ic, instantcard):
    auth = token(ic)
    data = json.dumps([{"name": "Name", "value": "Ada"}])
    card = requests.post(f"{ic}/organizations/1/cards", headers=auth, timeout=5,
                         data={"card[card_template_id]": "101", "card[data]": data}).json()
    requests.patch(f"{ic}/organizations/1/cards/{card['id']}/finalize", headers=auth, timeout=5).raise_for_status()
    job = requests.post(f"{ic}/organizations/1/print_jobs", headers=auth, timeout=5,
                        data={"print_job[shipping_provider_id]": "1"}).json()
    add = f"{ic}/organizations/1/print_jobs/{job['id']}/add_cards"
    for _ in range(2):
        requests.post(add, headers=auth, data={"print_job[card_ids]": f"[{card['id']}]"}, timeout=5).raise_for_status()
    assert instantcard.print_jobs[job["id"]]["card_ids"] == [card["id"], card["id"]]
    remove = f"{ic}/organizations/1/print_jobs/{job['id']}/remove_cards/{card['id']}"
    assert requests.delete(remove, headers=auth, timeout=5).status_code == 200
    assert instantcard.print_jobs[job["id"]]["card_ids"] == [card["id"]]
    requests.delete(remove, headers=auth, timeout=5).raise_for_status()
    assert requests.delete(remove, headers=auth, timeout=5).status_code == 404  # not on it


def test_unknown_template_fields_are_refused(ic):
    response = requests.post(f"{ic}/organizations/1/cards", headers=token(ic), timeout=5,
                             data={"card[card_template_id]": "101",
                                   "card[data]": json.dumps([{"name": "Nickname", "value": "x"}])})
    assert response.status_code == 400


def test_balance_is_a_dollar_string_with_parentheses_when_negative(ic):
    auth = token(ic)
    requests.post(f"{ic}/_control/set_balance", json={"cents": -550}, timeout=5).raise_for_status()
    assert requests.get(f"{ic}/organizations/1/balance", headers=auth, timeout=5).json() == {"balance": "($5.50)"}
    requests.post(f"{ic}/_control/add_funds", json={"cents": 1100}, timeout=5).raise_for_status()
    assert requests.get(f"{ic}/organizations/1/balance", headers=auth, timeout=5).json() == {"balance": "$5.50"}


def test_setup_listings(ic):
    auth = token(ic)
    providers = requests.get(f"{ic}/organizations/1/shipping_providers", headers=auth, timeout=5).json()
    assert providers[0]["id"] == 1
    fields = requests.get(f"{ic}/organizations/1/card_templates/101/fields", headers=auth, timeout=5).json()
    assert [f["name"] for f in fields] == ["Name", "Member Number", "Expires", "Email", "Order"]


def test_injected_faults_over_http(ic):
    auth = token(ic)
    requests.post(f"{ic}/_control/inject_fault", json={"step": "balance", "mode": "error_500", "times": 2},
                  timeout=5).raise_for_status()
    codes = [requests.get(f"{ic}/organizations/1/balance", headers=auth, timeout=5).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert requests.post(f"{ic}/_control/inject_fault", json={"step": "x", "mode": "bogus"},
                         timeout=5).status_code == 400


@pytest.mark.parametrize("act", [True, False])
def test_a_held_call_acts_or_not_and_answers_only_when_released(ic, sandbox, act):
    import threading

    state = sandbox.app.extensions["sandbox"]["instantcard"]
    auth = token(ic)
    data = json.dumps([{"name": "Name", "value": "Ada"}, {"name": "Member Number", "value": "M-1"}])
    held = state.hold("create_card", act=act)
    answers = []
    call = threading.Thread(target=lambda: answers.append(requests.post(
        f"{ic}/organizations/1/cards", headers=auth, timeout=10,
        data={"card[card_template_id]": "101", "card[data]": data})))
    call.start()
    assert held.reached.wait(10)
    assert len(state.cards) == (1 if act else 0) and answers == []  # acted (or not), no answer yet
    held.release.set()
    call.join(10)
    assert [a.status_code for a in answers] == [201 if act else 504]
    assert len(state.cards) == (1 if act else 0)


def finalized_card(ic, auth) -> int:
    data = json.dumps([{"name": "Name", "value": "Ada"}])
    card = requests.post(f"{ic}/organizations/1/cards", headers=auth, timeout=5,
                         data={"card[card_template_id]": "101", "card[data]": data}).json()
    requests.patch(f"{ic}/organizations/1/cards/{card['id']}/finalize", headers=auth, timeout=5).raise_for_status()
    return card["id"]


@pytest.mark.parametrize("form", [
    "print_job[card_ids][]={id}",  # the form the client used to send
    "print_job[card_ids]={id}",  # a bare id: the document wants "[264561]" even for one card
    "print_job[card_ids]=[{id}]&print_job[card_ids]=[{id}]",  # the field twice
    'print_job[card_ids]=["{id}"]',  # quoted ids
    "print_job[card_ids]=[{id}, {id}]",  # spaced
    "print_job[card_ids][0]={id}",  # indexed keys
])
def test_card_ids_in_any_form_but_the_documented_one_are_refused(ic, instantcard, form):
    """InstantCard API v2, Print Jobs › Create a Print Job: one `print_job[card_ids]` field, "[264561]"."""
    auth = token(ic)
    card_id = finalized_card(ic, auth)
    job = requests.post(f"{ic}/organizations/1/print_jobs", headers=auth, timeout=5,
                        data={"print_job[shipping_provider_id]": "1"}).json()
    body = form.replace("{id}", str(card_id))
    headers = {**auth, "Content-Type": "application/x-www-form-urlencoded"}
    for url in (f"{ic}/organizations/1/print_jobs", f"{ic}/organizations/1/print_jobs/{job['id']}/add_cards"):
        refused = requests.post(url, headers=headers, data=body, timeout=5)
        assert refused.status_code == 400 and "print_job[card_ids]" in refused.json()["error"]
    assert instantcard.print_jobs[job["id"]]["card_ids"] == [] and len(instantcard.print_jobs) == 1
    added = requests.post(f"{ic}/organizations/1/print_jobs/{job['id']}/add_cards", headers=auth, timeout=5,
                          data={"print_job[card_ids]": f"[{card_id},{card_id}]"})
    assert added.status_code == 200 and instantcard.print_jobs[job["id"]]["card_ids"] == [card_id, card_id]


def test_undocumented_print_job_parameters_and_a_patch_body_are_refused(ic, instantcard):
    auth = token(ic)
    url = f"{ic}/organizations/1/print_jobs"
    for form in ({"print_job[shipping_provider]": "1"}, {"print_job[number_of_copies]": "two"},
                 {"shipping_provider_id": "1"}):
        assert requests.post(url, headers=auth, data=form, timeout=5).status_code == 400
    assert instantcard.print_jobs == {}
    job = requests.post(url, headers=auth, data={"print_job[shipping_provider_id]": "1"}, timeout=5).json()
    in_body = requests.patch(f"{url}/{job['id']}", headers=auth, data={"print_job[number_of_copies]": "2"}, timeout=5)
    assert in_body.status_code == 400 and "URL" in in_body.json()["error"]
    assert instantcard.print_jobs[job["id"]]["number_of_copies"] == 1
    assert instantcard.print_jobs[job["id"]]["shipping_provider_id"] == 1


def test_charge_details_are_for_submitted_print_jobs_only(ic, instantcard):
    """InstantCard API v2, Print Jobs › Print Job Charge Details: "for an already submitted print job"; before the
    submit, Check Balance is the call."""
    auth = token(ic)
    card_id = finalized_card(ic, auth)
    job = requests.post(f"{ic}/organizations/1/print_jobs", headers=auth, timeout=5, data={
        "print_job[card_ids]": f"[{card_id}]", "print_job[shipping_provider_id]": "1",
        "print_job[address][address_1]": "10 Main St"}).json()
    base = f"{ic}/organizations/1/print_jobs/{job['id']}"
    early = requests.get(f"{base}/charge_details", headers=auth, timeout=5)
    assert early.status_code == 400 and "submitted" in early.json()["error"]
    assert requests.get(f"{base}/check_balance", headers=auth, timeout=5).json() is True
    requests.post(f"{base}/print", headers=auth, timeout=5).raise_for_status()
    charged = requests.get(f"{base}/charge_details", headers=auth, timeout=5).json()
    assert charged["job_total_cost"] == "$3.50" and charged["shipping_cost"] == "$1.00"


def test_search_pages_are_capped_and_the_client_reads_them_all(ic, sandbox):
    """The sandbox answers at most 25 cards a page whatever page_size asks (the document gives no maximum); the
    client's search still finds the card on the second page."""
    from service.features import load_settings
    from service.providers.instantcard import InstantCardClient

    auth = token(ic)
    for n in range(30):
        data = json.dumps([{"name": "Name", "value": f"Ada {n}"}, {"name": "Member Number", "value": f"M-{n:03d}"}])
        requests.post(f"{ic}/organizations/1/cards", headers=auth, timeout=5,
                      data={"card[card_template_id]": "101", "card[data]": data}).raise_for_status()
    page = requests.get(f"{ic}/organizations/1/cards/search", headers=auth, timeout=5,
                        params={"term": "Ada", "page_size": 50, "page": 1}).json()
    assert len(page) == 25
    env = {"SERVICE_ENV": "development", "INSTANTCARD_API_URL": ic, "INSTANTCARD_EMAIL": "sandbox@example.com",
           "INSTANTCARD_PASSWORD": "sandbox-password", "INSTANTCARD_ORGANIZATION_ID": "1"}
    client = InstantCardClient(load_settings(env).instantcard)
    assert len(client.search_cards("Ada")) == 30
    assert client.find_card_by_field("Name", "Ada 29").data["Member Number"] == "M-029"
