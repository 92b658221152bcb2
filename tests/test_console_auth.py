"""The console's sign-in, sessions, CSRF, staff tokens and audit trail, through the app's real HTTP handling."""

from __future__ import annotations

import re
import time

import pytest

from service.audit.models import AuditEntry
from service.config import ConfigurationError
from service.db import db
from service.features import load_settings
from service.jobs.models import Job
from service.jobs.queue import enqueue
from service.jobs.registry import PermanentFailure, handler
from tests.support import SHOP, cancel_order
from tests.test_config_and_logging import PRODUCTION

ANNA = "anna-token-0123456789abcdef"
BEN = "ben-token-0123456789abcdefgh"
PAGES = ["/admin/", "/admin/ledger", "/admin/reconciliation", "/admin/failures", "/admin/audit"]


@pytest.fixture
def environ(environ):
    environ["ADMIN_API_TOKENS"] = f"anna:{ANNA}, ben:{BEN}"
    return environ


def csrf_token(client, path="/admin/login") -> str:
    page = client.get(path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client, token=ANNA):
    return client.post("/admin/login", data={"token": token, "csrf_token": csrf_token(client)})


def audit(app) -> list[tuple]:
    with app.app_context():
        return [(e.staff, e.action, e.address, e.detail) for e in
                db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.id))]


# -- settings -----------------------------------------------------------------------------------------------------


def test_staff_tokens_are_read_with_the_shared_token_as_admin(app):
    settings = app.extensions["settings"]
    assert settings.staff_tokens == (("admin", "dev-admin-token"), ("anna", ANNA), ("ben", BEN))


@pytest.mark.parametrize("value, complaint", [
    ("anna:" + ANNA + ",anna:" + BEN, "ADMIN_API_TOKENS names must be unique ('anna' appears twice)"),
    ("anna:short", "the token of 'anna' must be at least 16 characters"),
    ("anna:" + ANNA + ",ben:" + ANNA, "the token of 'ben' is also another person's"),
    (ANNA, "entry 1 is not"),
    ("an na:" + ANNA, "entry 1 is not"),
    ("anna:" + "s" * 24, "the token of 'anna' must differ from SHOP_API_TOKEN"),
    ("anna:" + "a" * 24, "the token of 'anna' must differ from ADMIN_API_TOKEN"),
    ("admin:" + ANNA, "the name 'admin' is ADMIN_API_TOKEN's"),
])
def test_bad_staff_tokens_are_refused_without_showing_the_token(value, complaint):
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**PRODUCTION, "ADMIN_API_TOKENS": value}, "/tmp/i")
    assert complaint in str(caught.value)
    assert ANNA not in str(caught.value) and "s" * 24 not in str(caught.value)


def test_production_needs_a_long_secret_key_and_takes_staff_tokens_instead_of_the_shared_one():
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**PRODUCTION, "SECRET_KEY": ""}, "/tmp/i")
    assert "SECRET_KEY is required in production" in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**PRODUCTION, "SECRET_KEY": "too-short"}, "/tmp/i")
    assert "SECRET_KEY must be at least 32 characters" in str(caught.value)

    staff_only = {**PRODUCTION, "ADMIN_API_TOKENS": f"anna:{ANNA}"}
    del staff_only["ADMIN_API_TOKEN"]
    settings = load_settings(staff_only, "/tmp/i")
    assert settings.admin_api_token == ""  # no development default in production
    assert settings.staff_tokens == (("anna", ANNA),)
    assert settings.admin_session_hours == 9


# -- the API attributes what a staff token does -------------------------------------------------------------------


@handler("test_console_fails")
def _fails(ctx):
    raise PermanentFailure("the template is missing")


def _dead_job(app, run_jobs) -> int:
    with app.app_context():
        enqueue(db.session, "test_console_fails", {})
        db.session.commit()
        job_id = db.session.scalar(db.select(db.func.max(Job.id)))
    run_jobs()
    return job_id


def test_an_api_retry_with_a_staff_token_is_audited_under_that_name(app, client, run_jobs):
    job_id = _dead_job(app, run_jobs)
    assert client.get("/v1/jobs", headers={"Authorization": f"Bearer {ANNA}"}).status_code == 200
    assert client.get("/v1/jobs", headers=SHOP).status_code == 401
    response = client.post(f"/v1/jobs/{job_id}/retry", headers={"Authorization": f"Bearer {BEN}"})
    assert response.status_code == 202
    assert audit(app) == [("ben", "retry", "127.0.0.1", f"job {job_id} (test_console_fails) queued again via the api")]


# -- sign-in, sessions, CSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES + ["/admin/ledger.csv"])
def test_a_page_without_a_session_sends_the_visitor_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/login?next=")


def test_signing_in_gives_a_strict_session_cookie_and_every_page(app, client):
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("console_session=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # development over http
    assert ANNA not in cookie
    for path in PAGES:
        page = client.get(path)
        assert page.status_code == 200, path
        assert page.headers["Content-Security-Policy"] == (
            "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; form-action 'self'; "
            "base-uri 'none'")
        assert page.headers["Cache-Control"] == "no-store"
        assert "Signed in as <strong>anna</strong>" in page.text
    assert audit(app) == [("anna", "sign_in", "127.0.0.1", None)]


def test_sign_in_goes_back_to_the_page_asked_for_but_never_off_the_console(client):
    token = csrf_token(client)
    back = client.post("/admin/login", data={"token": ANNA, "csrf_token": token, "next": "/admin/failures"})
    assert back.headers["Location"] == "/admin/failures"
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    token = csrf_token(client)
    away = client.post("/admin/login", data={"token": ANNA, "csrf_token": token, "next": "//evil.example/admin/"})
    assert away.headers["Location"] == "/admin/"


@pytest.mark.parametrize("target", ["/admin/../v1/redemptions", "/admin/%2e%2e/demo", "/admin/./../metrics",
                                    "/admin/orders/%2E%2E/%2e%2e/readyz"])
def test_sign_in_never_follows_a_next_that_climbs_out_of_the_console(client, target):
    # A browser resolves the dot segments of a Location: "/admin/../x" is "/x", a page that is not the console's.
    token = csrf_token(client)
    away = client.post("/admin/login", data={"token": ANNA, "csrf_token": token, "next": target})
    assert away.headers["Location"] == "/admin/"


def test_production_session_cookies_are_secure(environ, sandbox):
    from service import create_app

    app = create_app(environ, env="production")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Strict"


def test_a_wrong_token_is_refused_and_audited_without_the_token(app, client):
    response = client.post("/admin/login", data={"token": "guess-0123456789-guess", "csrf_token": csrf_token(client)})
    assert response.status_code == 401
    assert "That token is not valid" in response.text
    assert "guess-0123456789-guess" not in response.text
    assert audit(app) == [(None, "sign_in_failed", "127.0.0.1", "the token given belongs to no one")]
    assert client.get("/admin/").status_code == 302


def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(app, client, run_jobs):
    assert client.post("/admin/login", data={"token": ANNA}).status_code == 400
    sign_in(client)
    job_id = _dead_job(app, run_jobs)
    refused = client.post(f"/admin/jobs/{job_id}/retry")
    assert refused.status_code == 400
    assert "did not come from this console" in refused.text
    forged = client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": "forged"})
    assert forged.status_code == 400
    with app.app_context():
        assert db.session.get(Job, job_id).state == "dead"
    done = client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": csrf_token(client, "/admin/failures")})
    assert done.status_code == 302
    assert "is queued again" in client.get("/admin/failures").text
    with app.app_context():
        assert db.session.get(Job, job_id).state == "queued"
    assert audit(app)[-1][:2] == ("anna", "retry")


def test_the_json_api_and_webhooks_need_no_csrf_token(app, client, run_jobs):
    job_id = _dead_job(app, run_jobs)
    assert client.post(f"/v1/jobs/{job_id}/retry", headers={"Authorization": f"Bearer {ANNA}"}).status_code == 202


def _session_cookie(app, **values) -> str:
    return app.session_interface.get_signing_serializer(app).dumps(values)


def test_an_expired_session_goes_back_to_sign_in(app, client):
    from service.console.auth import token_fingerprint

    with app.test_request_context():
        key = token_fingerprint(ANNA)
    nine_hours_ago = int(time.time()) - 9 * 3600 - 1
    client.set_cookie("console_session", _session_cookie(app, staff="anna", since=nine_hours_ago, key=key),
                      path="/admin")
    response = client.get("/admin/ledger")
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/login?next=/admin/ledger&expired=1"
    assert "Your session has ended" in client.get(response.headers["Location"]).text

    # The same session a minute younger is still good: the limit is what refused it.
    client.set_cookie("console_session", _session_cookie(app, staff="anna", since=nine_hours_ago + 60, key=key),
                      path="/admin")
    assert client.get("/admin/ledger").status_code == 200


def test_a_session_ends_when_its_token_is_revoked(app, client, environ):
    from service import create_app

    sign_in(client)
    assert client.get("/admin/").status_code == 200
    revoked = create_app({**environ, "ADMIN_API_TOKENS": f"ben:{BEN}"})
    other = revoked.test_client()
    other.set_cookie("console_session", client.get_cookie("console_session", path="/admin").value, path="/admin")
    assert other.get("/admin/").status_code == 302


def test_signing_out_ends_the_session_and_is_audited(app, client):
    sign_in(client)
    response = client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 302
    assert [a[:2] for a in audit(app)] == [("anna", "sign_in"), ("anna", "sign_out")]


def test_the_audit_trail_records_a_staff_members_own_address_not_the_rate_limits_key(app):
    """An IPv6 client is rate-limited by its /64, but "from where" in the audit trail is the address itself."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "2001:db8:1:2:3:4:5:6"
    sign_in(client)
    assert [a[1:3] for a in audit(app)] == [("sign_in", "2001:db8:1:2:3:4:5:6")]


def test_sign_in_attempts_are_rate_limited(environ, sandbox):
    from service import create_app

    app = create_app({**environ, "ADMIN_LOGIN_RATE_LIMIT": "3/minute"})
    client = app.test_client()
    for _ in range(3):
        assert client.post("/admin/login", data={"token": "x", "csrf_token": csrf_token(client)}).status_code == 401
    limited = client.post("/admin/login", data={"token": ANNA, "csrf_token": csrf_token(client)})
    assert limited.status_code == 429
    assert "Too many sign-in attempts" in limited.text


def test_the_audit_page_lists_entries_newest_first(app, client):
    sign_in(client)
    client.post("/admin/logout", data={"csrf_token": csrf_token(client, "/admin/")})
    sign_in(client, BEN)
    page = client.get("/admin/audit").text
    rows = re.findall(r"<td>(\w+)</td><td>(sign in|sign out)</td>", page)
    assert rows == [("ben", "sign in"), ("anna", "sign out"), ("anna", "sign in")]


def test_console_pages_stay_out_of_the_openapi_document(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert not [path for path in paths if path.startswith("/admin")]


def test_an_api_resolve_with_a_staff_token_is_audited_with_its_note(app, client, instagift, run_jobs):
    from tests.support import order_paid_with_gift_card
    from tests.test_attention_items import refund_item

    order_paid_with_gift_card(client, instagift, "7104")
    run_jobs()
    cancel_order(client, "7104")
    item = refund_item(client, "7104")
    answer = client.post(f"/v1/orders/7104/attention/{item['id']}/resolve", json={"note": "Refunded by bank"},
                         headers={"Authorization": f"Bearer {ANNA}"})
    assert answer.status_code == 200 and answer.get_json()["resolved_by"] == "anna"
    assert audit(app) == [("anna", "resolve", "127.0.0.1",
                           f"attention item {item['id']} (cancelled_after_redeemed) resolved via the api: Refunded by bank")]
    sign_in(client)
    order_page = client.get("/admin/orders/7104").text
    assert "Refunded by bank" in order_page and "resolved via the api" in order_page


# -- pages' own answers to bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("path, says", [
    ("/admin/orders?state=lost", "The search is invalid"),
    ("/admin/orders?attention=maybe", "The search is invalid"),
    ("/admin/ledger?from=2026-13-01", "The filters are invalid"),
    ("/admin/ledger?state=nope", "The filters are invalid"),
    ("/admin/ledger.csv?to=yesterday", "The filters are invalid"),
    ("/admin/reconciliation?date=12/01/2026", "Give the day as YYYY-MM-DD"),
])
def test_bad_filters_get_a_page_saying_so(client, path, says):
    sign_in(client)
    response = client.get(path)
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert says in response.text


def test_an_unknown_order_is_a_404_page(client):
    sign_in(client)
    response = client.get("/admin/orders/no-such-order")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "There is no order &#39;no-such-order&#39;." in response.text


def test_the_ledger_totals_every_matching_row_and_its_csv_is_the_apis(app, client, instagift, run_jobs):
    from tests.support import order_paid_with_gift_card

    for order_id in ("7201", "7202"):
        order_paid_with_gift_card(client, instagift, order_id, total=3000)
    run_jobs()
    sign_in(client)
    page = client.get("/admin/ledger").text
    assert "Total (2 rows, every page)" in page
    assert page.count("$60.00") == 2  # applied and redeemed, over both rows
    csv_page = client.get("/admin/ledger.csv")
    csv_text = csv_page.get_data(as_text=True)  # a streamed answer: read before the next request
    assert csv_page.mimetype == "text/csv" and csv_text.count("\r\n") == 3  # header and two rows
    first, last = re.search(r"redemptions_(\S+)_(\S+)\.csv", csv_page.headers["Content-Disposition"]).groups()
    api = client.get(f"/v1/redemptions?from={first}&to={last}",
                     headers={"Authorization": f"Bearer {ANNA}", "Accept": "text/csv"})
    assert csv_text == api.get_data(as_text=True)


def test_reconciliation_shows_mismatches_first_and_highlighted(app, client, sandbox):
    from datetime import UTC, datetime

    from tests.test_reconciliation_instagift import _certificate
    from tests.test_reconciliation_support import order, redemption

    instagift = app.extensions["providers"].instagift
    now = datetime.now(UTC)
    with app.app_context():
        agreeing = instagift.redeem_certificate(_certificate(sandbox, 50), 2000)
        mismatch = instagift.redeem_certificate(_certificate(sandbox, 50), 2000)
        redemption(order("agree", completed_at=now), created_at=now, state="succeeded", applied=2000, taken=2000,
                   intended=2000, redeemed=2000, provider_redemption_id=agreeing.id,
                   certificate_id=agreeing.certificate_id)
        redemption(order("differ", completed_at=now), created_at=now, state="succeeded", applied=2500, taken=2500,
                   intended=2500, redeemed=2500, provider_redemption_id=mismatch.id,
                   certificate_id=mismatch.certificate_id)
        db.session.commit()
    sign_in(client)
    page = client.get(f"/admin/reconciliation?date={now.date().isoformat()}").text
    rows = re.findall(r'<tr( class="mismatch")?><th scope="row">([^<]+)</th><td>([^<]*)</td>', page)
    assert rows == [(' class="mismatch"', "Amount mismatch", "differ"), ("", "Matched", "agree")]
    assert "differs by -$5.00" in page


def test_a_whole_claim_code_searched_for_goes_on_by_its_last_4_and_never_stays_in_the_address(client):
    """Staff paste the code a customer reads out: the address, the history and the page keep only its last 4."""
    sign_in(client)
    answer = client.get("/admin/orders?q=demo-100s-plit&state=completed")
    assert answer.status_code == 303
    assert "DEMO" not in answer.headers["Location"].upper() and "q=PLIT" in answer.headers["Location"]
    assert "state=completed" in answer.headers["Location"]
    page = client.get(answer.headers["Location"])
    assert page.status_code == 200 and "100S" not in page.text.upper()
    by_id = client.get("/admin/orders?q=SO-1234")  # an order id is searched as it is, not taken for a code
    assert by_id.status_code == 200 and 'name="q" value="SO-1234"' in by_id.text


def test_a_long_list_pages_by_50_keeping_its_filters(app, client):
    from service.audit.rules import record

    with app.app_context():
        for n in range(51):
            record(db.session, "sign_in_failed", staff=None, address=f"10.0.0.{n}")
        db.session.commit()
    sign_in(client)  # the 52nd entry
    first = client.get("/admin/audit").text
    assert "Page 1 of 2" in first and 'href="/admin/audit?page=2" rel="next"' in first and 'rel="prev"' not in first
    assert first.count("<tr><td>") == 50
    second = client.get("/admin/audit?page=2").text
    assert "Page 2 of 2" in second and 'href="/admin/audit?page=1" rel="prev"' in second and 'rel="next"' not in second
    assert second.count("<tr><td>") == 2 and "10.0.0.0<" in second  # the oldest two, the first entry last
    assert 'href="/admin/audit?page=2&amp;q=kept" rel="next"' in client.get("/admin/audit?page=1&q=kept").text
    assert "Page 1 of" not in client.get("/admin/orders?state=completed").text  # one page: no pager


def test_the_providers_check_runs_on_request_and_the_overview_keeps_showing_it(client):
    sign_in(client)
    assert "Not run since this server started." in client.get("/admin/").text
    ran = client.post("/admin/providers/check", data={"csrf_token": csrf_token(client, "/admin/")})
    assert ran.status_code == 302 and ran.headers["Location"] == "/admin/#providers"
    overview = client.get("/admin/").text
    assert "every check passed" in overview
    assert overview.count('<td>ok</td>') >= 3 and "FAILED" not in overview
    assert "every check passed" in client.get("/admin/").text  # shown again without running it again
