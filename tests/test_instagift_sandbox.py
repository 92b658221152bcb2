"""The Instagift sandbox follows the provider doc; exercised over real HTTP through the real client."""

from __future__ import annotations

import threading

import pytest
import requests

from sandbox.instagift import (
    AMOUNT_FORM,
    BARE_CODES_ENV,
    DEFAULT_PER_PAGE,
    DEMO_CERTIFICATES,
    MAX_PER_PAGE,
    InstagiftSandboxState,
    demo_certificate_id,
)
from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from service.providers.instagift import InstagiftClient

AUTH = {"X-Merchant-Key": "sandbox-merchant-key", "X-Merchant-Secret": "sandbox-merchant-secret"}
CLIENT_TIMEOUT = 0.3  # seconds; the "timeout" fault holds answers back for longer


@pytest.fixture
def state(sandbox):
    instagift = sandbox.app.extensions["sandbox"]["instagift"]
    instagift.reset()
    yield instagift
    instagift.reset()  # also releases any answer still held back by a "timeout" fault


@pytest.fixture
def base(sandbox, state) -> str:
    return f"{sandbox.url}/instagift/v2"


@pytest.fixture
def ig(base) -> InstagiftClient:
    return InstagiftClient(base, "sandbox-merchant-key", "sandbox-merchant-secret", timeout_seconds=CLIENT_TIMEOUT)


def demo_id(code: str) -> str:
    return demo_certificate_id(code)


# --- auth and lookups -------------------------------------------------------------------------------------


def test_merchant_auth_is_required_with_the_doc_error_body(base):
    for headers in ({}, {**AUTH, "X-Merchant-Secret": "wrong"}, {"X-Merchant-Key": AUTH["X-Merchant-Key"]}):
        answer = requests.get(f"{base}/claim_codes/DEMO-100S-PLIT", headers=headers, timeout=5)
        assert answer.status_code == 401
        assert answer.json() == {"errors": [{"code": "401", "status": "Unauthorized", "title": "Permission denied"}]}


def test_wrong_credentials_raise_auth_error(base):
    client = InstagiftClient(base, "sandbox-merchant-key", "nope", timeout_seconds=CLIENT_TIMEOUT)
    with pytest.raises(ProviderAuthError):
        client.fetch_by_claim_code("DEMO-100S-PLIT")


def test_claim_code_urls_must_hold_the_printed_form_exactly(ig, base):
    for typed in ("DEMO-100S-PLIT", "demo-100s-plit", " demo 100s-plit "):  # the client sends the printed form
        cert = ig.fetch_by_claim_code(typed)
        assert cert.id == demo_id("DEMO-100S-PLIT")
        assert (cert.face_value_cents, cert.splittable, cert.status, cert.currency) == (10000, True, "assigned", "USD")
        assert cert.claim_code_last4 == "PLIT"
    printed = requests.get(f"{base}/claim_codes/DEMO-100S-PLIT", headers=AUTH, timeout=5)
    assert printed.status_code == 200
    assert printed.json()["certificates"][0]["claim_code"] == "DEMO-100S-PLIT"
    for other in ("DEMO100SPLIT", "demo-100s-plit", "DEMO-100SPLIT", "DEMO%20100S%20PLIT"):
        assert requests.get(f"{base}/claim_codes/{other}", headers=AUTH, timeout=5).status_code == 404, other
    with pytest.raises(ProviderNotFound):
        ig.fetch_by_claim_code("demo100split")  # 12 characters: no documented grouping to fall back on


def test_bare_codes_are_taken_only_when_the_setting_says_so(ig, base, state):
    assert not state.accept_bare_codes
    answer = requests.put(f"{base}/_control/settings", json={"accept_bare_codes": True}, timeout=5)
    assert answer.json()["accept_bare_codes"] is True
    assert requests.get(f"{base}/claim_codes/DEMO100SPLIT", headers=AUTH, timeout=5).status_code == 200
    assert requests.get(f"{base}/claim_codes/demo100split", headers=AUTH, timeout=5).status_code == 404  # exact
    assert ig.fetch_by_claim_code("demo100split").id == demo_id("DEMO-100S-PLIT")
    state.reset()
    assert requests.get(f"{base}/claim_codes/DEMO100SPLIT", headers=AUTH, timeout=5).status_code == 404


def test_the_bare_code_setting_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(BARE_CODES_ENV, "true")
    assert InstagiftSandboxState().accept_bare_codes
    monkeypatch.setenv(BARE_CODES_ENV, "false")
    assert not InstagiftSandboxState().accept_bare_codes


def test_claim_code_requests_are_recorded_as_sent(ig, state):
    with pytest.raises(ProviderNotFound):
        ig.fetch_by_claim_code("u4kr 9clt 3knpu4")
    assert state.claim_code_requests == ["U4KR-9CLT-3KNPU4", "U4KR9CLT3KNPU4"]
    assert state.calls["fetch_claim_code"] == 2


def test_unknown_code_is_404_in_the_doc_format(ig, base):
    with pytest.raises(ProviderNotFound):
        ig.fetch_by_claim_code("NOPE-NOPE-NOPE")
    answer = requests.get(f"{base}/claim_codes/NOPE-NOPE-NOPE", headers=AUTH, timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"errors": [{"code": "404", "status": "Not Found",
                                         "title": "Resource with that ID not found"}]}
    with pytest.raises(ProviderNotFound):
        ig.fetch_certificate("no-such-id")
    with pytest.raises(ProviderNotFound):
        ig.redeem_certificate("no-such-id", 1000)


def test_demo_certificates_are_seeded_and_reset_reseeds(ig, state):
    assert len(DEMO_CERTIFICATES) >= 10
    for demo in DEMO_CERTIFICATES:
        assert len(demo["claim_code"]) >= 13
        cert = ig.fetch_by_claim_code(demo["claim_code"])
        assert cert.face_value_cents == demo["face_value_cents"]
        assert cert.splittable is demo["splittable"]
    ig.redeem_by_claim_code("DEMO-050S-PLIT", 1000)
    state.reset()
    assert ig.fetch_by_claim_code("DEMO-050S-PLIT").face_value_cents == 5000
    assert state.redemptions_for(demo_id("DEMO-050S-PLIT")) == []


def test_statuses_and_expiry_of_demo_certificates(ig):
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    reasons = {code: ig.fetch_by_claim_code(code).unredeemable_reason(now) for code in (
        "DEMO-USED-0001", "DEMO-EXPD-0001", "DEMO-CANC-0001", "DEMO-PEND-0001", "DEMO-RETN-0001",
        "DEMO-GIFT-0001", "DEMO-EXPS-2031")}
    assert reasons == {"DEMO-USED-0001": "redeemed", "DEMO-EXPD-0001": "expired", "DEMO-CANC-0001": "cancelled",
                       "DEMO-PEND-0001": "pending", "DEMO-RETN-0001": "returned", "DEMO-GIFT-0001": None,
                       "DEMO-EXPS-2031": None}
    assert ig.fetch_by_claim_code("DEMO-CAD0-0050").currency == "CAD"
    assert ig.fetch_by_claim_code("DEMO-7550-CENT").face_value_cents == 7550


# --- redemption rules -------------------------------------------------------------------------------------


def test_partial_redemption_rounds_down_and_splits(ig, state):
    original = ig.fetch_by_claim_code("DEMO-EXPS-2031")  # $40, splittable, expires 2031
    redemption = ig.redeem_by_claim_code("DEMO-EXPS-2031", 2300)
    assert redemption.amount_cents == 2300 and redemption.source == "api-v2-merchant"
    assert redemption.certificate_id == original.id
    after = ig.fetch_certificate(original.id)
    assert (after.status, after.face_value_cents) == ("redeemed", 2300)
    child = ig.find_child_certificate(original.id)
    assert child is not None and child.id != original.id
    assert (child.status, child.face_value_cents, child.parent_id) == ("assigned", 1700, original.id)
    assert child.expires_at == original.expires_at and child.splittable
    child_code = state.certificate(child.id)["claim_code"]
    assert child_code != "DEMO-EXPS-2031"
    assert ig.fetch_by_claim_code(child_code).id == child.id  # the new claim code works
    assert len(state.redemptions_for(original.id)) == 1


def test_amounts_are_rounded_down_to_whole_dollars(base, state):
    cert_id = demo_id("DEMO-100S-PLIT")
    answer = requests.post(f"{base}/certificates/{cert_id}/redemptions", headers=AUTH,
                           json={"amount_to_redeem_cents": "2381"}, timeout=5)
    assert answer.status_code == 201
    redemption = answer.json()["redemptions"][0]
    assert redemption["amount_cents"] == 2300 and redemption["amount_paid_cents"] == 2300
    assert redemption["links"]["certificate"] == cert_id
    assert set(redemption) >= {"id", "href", "amount_cents", "amount_paid_cents", "source", "links", "created_at"}
    (child,) = state.children_of(cert_id)
    assert child["face_value_cents"] == 7700


def test_no_amount_redeems_the_whole_face_value(ig, state):
    redemption = ig.redeem_by_claim_code("DEMO-7550-CENT", None)
    assert redemption.amount_cents == 7550
    assert state.children_of(demo_id("DEMO-7550-CENT")) == []


def test_odd_cents_stay_on_the_child(ig, state):
    ig.redeem_by_claim_code("DEMO-7550-CENT", 7500)
    (child,) = state.children_of(demo_id("DEMO-7550-CENT"))
    assert child["face_value_cents"] == 50


def test_non_splittable_is_redeemed_whole_whatever_is_asked(ig, state):
    redemption = ig.redeem_by_claim_code("DEMO-080N-OSPL", 1000)
    assert redemption.amount_cents == 8000
    assert state.children_of(demo_id("DEMO-080N-OSPL")) == []
    assert ig.fetch_certificate(demo_id("DEMO-080N-OSPL")).status == "redeemed"


def test_more_than_the_face_value_is_refused(ig):
    with pytest.raises(ProviderRejected) as caught:
        ig.redeem_by_claim_code("DEMO-050S-PLIT", 5100)
    assert caught.value.reason == "rejected" and "more than the certificate" in str(caught.value)
    assert ig.fetch_by_claim_code("DEMO-050S-PLIT").status == "assigned"


def test_less_than_a_dollar_is_refused(base):
    answer = requests.post(f"{base}/claim_codes/DEMO-050S-PLIT/redemptions", headers=AUTH,
                           json={"amount_to_redeem_cents": "99"}, timeout=5)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["title"] == "Unable to create redemption"


def test_redeeming_twice_is_previously_redeemed(ig):
    ig.redeem_by_claim_code("DEMO-025N-OSPL", 2500)
    with pytest.raises(ProviderRejected) as caught:
        ig.redeem_by_claim_code("DEMO-025N-OSPL", 2500)
    assert caught.value.reason == "previously_redeemed"
    with pytest.raises(ProviderRejected) as caught:
        ig.redeem_certificate(demo_id("DEMO-USED-0001"), 1000)
    assert caught.value.reason == "previously_redeemed"


@pytest.mark.parametrize("code", ["DEMO-CANC-0001", "DEMO-PEND-0001", "DEMO-RETN-0001", "DEMO-EXPD-0001"])
def test_unavailable_certificates_are_refused(ig, code, state):
    with pytest.raises(ProviderRejected) as caught:
        ig.redeem_by_claim_code(code, 1000)
    assert caught.value.reason == "not_available"
    assert state.redemptions_for(demo_id(code)) == []


def test_gifted_certificates_can_be_redeemed(ig):
    assert ig.redeem_by_claim_code("DEMO-GIFT-0001", 6000).amount_cents == 6000


def test_location_can_be_required(ig, base):
    assert requests.put(f"{base}/_control/settings", json={"require_location": True}, timeout=5).ok
    with pytest.raises(ProviderRejected) as caught:
        ig.redeem_by_claim_code("DEMO-050S-PLIT", 1000)
    assert caught.value.reason == "location_required"
    # Redeem a Certificate takes the location (by claim code documents the amount only).
    certificate = ig.fetch_by_claim_code("DEMO-050S-PLIT")
    assert ig.redeem_certificate(certificate.id, 1000, location_id="LOC1").location_id == "LOC1"


def test_concurrent_redemptions_of_one_certificate_succeed_once(base):
    cert_id = demo_id("DEMO-200S-PLIT")
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def redeem():
        client = InstagiftClient(base, "sandbox-merchant-key", "sandbox-merchant-secret", timeout_seconds=5)
        barrier.wait()
        try:
            client.redeem_certificate(cert_id, 5000)
            outcomes.append("ok")
        except ProviderRejected as exc:
            outcomes.append(exc.reason or "")

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ok"] + ["previously_redeemed"] * 7


# --- lists ----------------------------------------------------------------------------------------------


def test_redemptions_are_paginated_oldest_first(ig, state):
    ids = []
    for i in range(MAX_PER_PAGE + 5):
        cert_id, _ = state.add_certificate(1000 + i * 100, splittable=True)
        ids.append(ig.redeem_certificate(cert_id, 1000).id)
    assert [r.id for r in ig.list_redemptions(1)] == ids[:MAX_PER_PAGE]  # the client asks for more than the cap
    assert [r.id for r in ig.list_redemptions(2)] == ids[MAX_PER_PAGE:]
    assert ig.list_redemptions(3) == []
    assert [r.id for r in ig.iter_redemptions()] == ids


def test_certificate_list_is_paginated(ig, state, base):
    for _ in range(MAX_PER_PAGE):
        state.add_certificate(1000)
    total = len(state.certificates)
    assert total > MAX_PER_PAGE
    seen = []
    page = 1
    while batch := ig.list_certificates(page):
        assert len(batch) <= MAX_PER_PAGE
        seen.extend(batch)
        page += 1
    assert len(seen) == total
    meta = requests.get(f"{base}/certificates?page=1", headers=AUTH, timeout=5).json()["meta"]
    assert meta["per_page"] == DEFAULT_PER_PAGE and meta["total_count"] == total
    for bad in ("page=zero", "page=0", "per_page=0", "per_page=-5", "per_page=ten"):
        assert requests.get(f"{base}/certificates?{bad}", headers=AUTH, timeout=5).status_code == 400, bad


def test_list_meta_is_shaped_like_the_docs_sample(base, state):
    for _ in range(15):
        state.add_certificate(1000)
    total = len(state.certificates)
    pages = -(-total // 7)
    first = requests.get(f"{base}/certificates?per_page=7", headers=AUTH, timeout=5).json()["meta"]
    assert first == {"href": "?per_page=7&page=1", "page": 1, "per_page": 7, "page_count": pages,
                     "total_count": total, "links": {"first": "?per_page=7&page=1", "previous": None,
                                                     "next": "?per_page=7&page=2", "last": f"?per_page=7&page={pages}"}}
    last = requests.get(f"{base}/certificates?per_page=7&page={pages}", headers=AUTH, timeout=5).json()
    assert last["meta"]["links"]["previous"] == f"?per_page=7&page={pages - 1}" and last["meta"]["links"]["next"] is None
    assert len(last["certificates"]) == total - 7 * (pages - 1)
    capped = requests.get(f"{base}/certificates?per_page=1000", headers=AUTH, timeout=5).json()
    assert capped["meta"]["per_page"] == MAX_PER_PAGE and len(capped["certificates"]) == min(total, MAX_PER_PAGE)
    redemptions = requests.get(f"{base}/redemptions?per_page=3", headers=AUTH, timeout=5).json()
    assert redemptions["meta"]["per_page"] == 3 and redemptions["meta"]["total_count"] == 0


def test_the_certificate_list_filters_by_status(ig, state):
    original = demo_id("DEMO-050S-PLIT")
    ig.redeem_certificate(original, 1000)
    available = [c.id for c in ig.list_certificates(status="available")]
    assert original not in available and demo_id("DEMO-100S-PLIT") in available
    assert demo_id("DEMO-GIFT-0001") in available  # gifted can still be redeemed
    for code in ("DEMO-USED-0001", "DEMO-EXPD-0001", "DEMO-CANC-0001", "DEMO-PEND-0001", "DEMO-RETN-0001"):
        assert demo_id(code) not in available, code
    assert {c.id for c in ig.list_certificates(status="redeemed")} == {original, demo_id("DEMO-USED-0001")}
    assert len(ig.list_certificates()) == len(state.certificates)


def test_lists_can_run_newest_first_and_calls_are_counted(ig, state, base):
    state.seed_history(60, 30)
    oldest_first = [c.id for c in ig.list_certificates()]
    assert requests.put(f"{base}/_control/settings", json={"list_order": "newest_first"}, timeout=5).ok
    newest_first = [c.id for c in ig.list_certificates()]
    assert newest_first == sorted(state.certificates, key=lambda i: state.certificates[i].created_at,
                                  reverse=True)[:MAX_PER_PAGE]
    assert newest_first != oldest_first
    times = [r.created_at for r in ig.list_redemptions()]
    assert times == sorted(times, reverse=True)
    assert requests.put(f"{base}/_control/settings", json={"list_order": "sideways"}, timeout=5).status_code == 400
    calls = requests.get(f"{base}/_control/calls", timeout=5).json()
    assert calls["calls"] == {"list_certificates": 2, "list_redemptions": 1} and calls["list_calls"] == 3
    assert state.list_calls() == 3


def test_the_redemption_list_can_leave_out_meta(base, state):
    assert requests.put(f"{base}/_control/settings", json={"redemptions_meta": False}, timeout=5).ok
    assert "meta" not in requests.get(f"{base}/redemptions", headers=AUTH, timeout=5).json()


def test_seeded_history_is_older_than_everything_else(state, base):
    state.seed_history(10_000, 5_000)
    certificates = list(state.certificates.values())
    seeded = certificates[len(DEMO_CERTIFICATES):]
    assert len(seeded) == 10_000 and len(state.redemptions) == 5_000
    assert sum(c.status == "redeemed" for c in seeded) == 5_000
    assert {r.certificate_id for r in state.redemptions} == {c.id for c in seeded[:5_000]}
    assert max(c.created_at for c in seeded) < min(c.created_at for c in certificates[:len(DEMO_CERTIFICATES)])
    answer = requests.post(f"{base}/_control/history", json={"certificates": 10, "redemptions": 20}, timeout=5)
    assert answer.status_code == 400
    answer = requests.post(f"{base}/_control/history", json={"certificates": 10, "redemptions": 5}, timeout=5)
    assert answer.status_code == 201 and answer.json()["redemptions"] == 5_005


def test_fetch_a_redemption_by_id(ig, base):
    redemption = ig.redeem_by_claim_code("DEMO-050S-PLIT", 1000)
    answer = requests.get(f"{base}/redemptions/{redemption.id}", headers=AUTH, timeout=5)
    assert answer.status_code == 200 and answer.json()["redemptions"][0]["amount_cents"] == 1000
    assert requests.get(f"{base}/redemptions/nope", headers=AUTH, timeout=5).status_code == 404


# --- spending in store -------------------------------------------------------------------------------------


def test_spend_elsewhere_is_an_in_store_redemption_that_splits(ig, state):
    cert_id = demo_id("DEMO-100S-PLIT")
    state.spend_elsewhere(cert_id, 7000)
    (redemption,) = state.redemptions_for(cert_id)
    assert redemption["source"] == "in-store" and redemption["amount_cents"] == 7000
    assert ig.fetch_certificate(cert_id).status == "redeemed"
    assert ig.find_child_certificate(cert_id).face_value_cents == 3000
    assert [r.source for r in ig.iter_redemptions()] == ["in-store"]


def test_spend_elsewhere_in_place_lowers_the_balance(ig, state):
    cert_id = demo_id("DEMO-100S-PLT2")
    state.spend_elsewhere(cert_id, 7000, split=False)
    cert = ig.fetch_certificate(cert_id)
    assert (cert.status, cert.face_value_cents) == ("assigned", 3000)
    with pytest.raises(ProviderRejected):
        ig.redeem_certificate(cert_id, 5200)
    assert ig.redeem_certificate(cert_id, 3000).amount_cents == 3000


# --- faults ------------------------------------------------------------------------------------------------


def test_error_500_fails_without_acting(ig, state):
    cert_id = demo_id("DEMO-100S-PLIT")
    state.inject_fault("redeem_certificate", "error_500")
    with pytest.raises(ProviderUnavailable):
        ig.redeem_certificate(cert_id, 5200)
    assert state.redemptions_for(cert_id) == []
    assert ig.redeem_certificate(cert_id, 5200).amount_cents == 5200  # the fault was used up


@pytest.mark.parametrize("mode", ["apply_then_500", "apply_then_drop", "timeout"])
def test_uncertain_outcomes_apply_the_redemption(ig, state, mode):
    cert_id = demo_id("DEMO-100S-PLIT")
    state.inject_fault("redeem", mode, delay_seconds=5)
    with pytest.raises(ProviderUnavailable) as caught:
        ig.redeem_certificate(cert_id, 5200)
    assert caught.value.outcome_unknown
    (redemption,) = state.redemptions_for(cert_id)
    assert redemption["amount_cents"] == 5200
    after = ig.fetch_certificate(cert_id)  # reading back is how a caller learns what happened
    assert (after.status, after.face_value_cents) == ("redeemed", 5200)
    with pytest.raises(ProviderRejected) as again:
        ig.redeem_certificate(cert_id, 5200)
    assert again.value.reason == "previously_redeemed"


def test_rate_limit_fault_answers_429_with_retry_after(ig, state):
    state.inject_fault("fetch_claim_code", "rate_limit", times=2, retry_after_seconds=3)
    for _ in range(2):
        with pytest.raises(ProviderRateLimited) as caught:
            ig.fetch_by_claim_code("DEMO-100S-PLIT")
        assert caught.value.retry_after_seconds == 3
    assert ig.fetch_by_claim_code("DEMO-100S-PLIT").face_value_cents == 10000


def test_reject_400_fault_carries_the_docs_details(ig, state):
    state.inject_fault("redeem", "reject_400", details="This item has been refunded to the customer")
    with pytest.raises(ProviderRejected) as caught:
        ig.redeem_by_claim_code("DEMO-100S-PLIT", 1000)
    assert caught.value.reason == "refunded"


def test_faults_only_hit_their_endpoint_kind(ig, state):
    state.inject_fault("fetch_certificate", "error_500")
    assert ig.fetch_by_claim_code("DEMO-100S-PLIT").status == "assigned"
    with pytest.raises(ProviderUnavailable):
        ig.fetch_certificate(demo_id("DEMO-100S-PLIT"))


def test_bad_fault_requests_are_refused(state):
    with pytest.raises(ValueError):
        state.inject_fault("redeem", "explode")
    with pytest.raises(ValueError):
        state.inject_fault("nowhere", "error_500")


# --- control over HTTP --------------------------------------------------------------------------------------


def test_control_endpoints_drive_the_sandbox_over_http(ig, base):
    created = requests.post(f"{base}/_control/certificates", timeout=5, json={
        "face_value_cents": 12000, "splittable": True, "claim_code": "CTRL-TEST-000001"})
    assert created.status_code == 201
    cert_id = created.json()["id"]
    assert created.json()["claim_code"] == "CTRL-TEST-000001"
    assert ig.fetch_by_claim_code("ctrl-test-000001").face_value_cents == 12000

    fault = requests.post(f"{base}/_control/faults", timeout=5,
                          json={"endpoint_kind": "redeem", "mode": "apply_then_500", "times": 1})
    assert fault.status_code == 201
    with pytest.raises(ProviderError):
        ig.redeem_certificate(cert_id, 2000)

    spent = requests.post(f"{base}/_control/certificates/{cert_id}/spend", json={"amount_cents": 1000}, timeout=5)
    assert spent.status_code == 400  # already redeemed by the faulted call
    listed = requests.get(f"{base}/_control/certificates/{cert_id}/redemptions", timeout=5).json()["redemptions"]
    assert [r["amount_cents"] for r in listed] == [2000]
    detail = requests.get(f"{base}/_control/certificates/{cert_id}", timeout=5).json()
    assert detail["certificate"]["status"] == "redeemed" and detail["children"][0]["face_value_cents"] == 10000

    child_id = detail["children"][0]["id"]
    spent = requests.post(f"{base}/_control/certificates/{child_id}/spend",
                          json={"amount_cents": 1000, "split": False}, timeout=5)
    assert spent.status_code == 201 and spent.json()["certificate"]["face_value_cents"] == 9000

    requests.post(f"{base}/_control/faults", json={"endpoint_kind": "any", "mode": "error_500", "times": 5},
                  timeout=5)
    assert requests.delete(f"{base}/_control/faults", timeout=5).ok
    assert ig.fetch_certificate(child_id).face_value_cents == 9000

    bad = requests.post(f"{base}/_control/faults", json={"endpoint_kind": "redeem", "mode": "nope"}, timeout=5)
    assert bad.status_code == 400
    assert requests.post(f"{base}/_control/reset", timeout=5).ok
    with pytest.raises(ProviderNotFound):
        ig.fetch_certificate(cert_id)


def test_only_the_control_routes_skip_merchant_auth(base):
    assert requests.get(f"{base}/claim_codes/_control", timeout=5).status_code == 401
    assert requests.get(f"{base}/certificates/_control", timeout=5).status_code == 401
    assert requests.get(f"{base}/_control/certificates/{demo_id('DEMO-100S-PLIT')}", timeout=5).status_code == 200


@pytest.mark.parametrize(("kwargs", "status", "said"), [
    ({"data": {"amount_to_redeem_cents": "1000"}}, 406, "isn’t JSON"),  # form-encoded: "accepts ... JSON only"
    ({"json": {"amount_to_redeem_cents": 1000}}, 400, AMOUNT_FORM),  # the samples write the amount "4000"
    ({"json": {"amount_to_redeem_cents": "10.00"}}, 400, AMOUNT_FORM),
    ({"json": {"amount_to_redeem_cents": "1000", "redemption_location_id": "LOC1"}}, 400,
     "redemption_location_id is not a parameter"),  # by claim code documents the amount only
    ({"json": {"amount": "1000"}}, 400, "amount is not a parameter"),
])
def test_a_redemption_in_an_undocumented_form_is_refused_and_redeems_nothing(base, state, kwargs, status, said):
    answer = requests.post(f"{base}/claim_codes/DEMO-050S-PLIT/redemptions", headers=AUTH, timeout=5, **kwargs)
    assert answer.status_code == status
    [error] = answer.json()["errors"]
    assert error["code"] == str(status) and said in (error.get("details") or error["title"])
    assert state.redemptions_for(demo_id("DEMO-050S-PLIT")) == []


def test_the_documented_redemption_forms_are_accepted(base, state):
    cert_id = demo_id("DEMO-100S-PLIT")
    sample = {"amount_to_redeem_cents": "4000", "redemption_location_id": "AzoXEYPYxG3OUaKJi234WQ"}
    answer = requests.post(f"{base}/certificates/{cert_id}/redemptions", headers=AUTH, json=sample, timeout=5)
    assert answer.status_code == 201 and answer.json()["redemptions"][0]["amount_cents"] == 4000
    by_code = requests.post(f"{base}/claim_codes/DEMO-050S-PLIT/redemptions", headers=AUTH,
                            json={"amount_to_redeem_cents": "4000"}, timeout=5)
    assert by_code.status_code == 201


@pytest.mark.parametrize(("path", "query"), [("certificates", {"limit": "10"}), ("redemptions", {"status": "all"}),
                                             ("redemptions", {"offset": "10"})])
def test_list_parameters_the_docs_do_not_give_are_refused(base, path, query):
    answer = requests.get(f"{base}/{path}", headers=AUTH, params={"page": "1", **query}, timeout=5)
    assert answer.status_code == 400 and "is not a parameter of this list" in answer.json()["errors"][0]["details"]
