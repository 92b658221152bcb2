"""The preflight check (`flask --app service providers check`, `GET /v1/providers/check`) against the sandbox
providers over real HTTP, configured the way a merchant configures live credentials."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import responses

from service.features import load_settings
from service.providers.preflight import check_providers
from tests.support import ADMIN, SHOP

IG_KEY = "sandbox-merchant-key"
IG_SECRET = "sandbox-merchant-secret"
CARDLY_KEY = "test_preflightKey7fK2pQ9x"
IC_PASSWORD = "sandbox-password"
SECRETS = [IG_KEY, IG_SECRET, CARDLY_KEY, IC_PASSWORD, "dev-admin-token"]
GOOD_CHECKS = [
    ("instagift", "credentials"),
    ("cardly", "api key"), ("cardly", "mode"), ("cardly", "credit"), ("cardly", "artwork"), ("cardly", "template"),
    ("instantcard", "authentication"), ("instantcard", "organization"), ("instantcard", "template MEMBER-GOLD"),
    ("instantcard", "shipping provider"), ("instantcard", "funds"),
]


@pytest.fixture(autouse=True)
def merchant_settings(environ, sandbox):
    """Explicit credentials and URLs (not the development defaults): what a merchant sets before going live."""
    environ.update(
        INSTAGIFT_API_URL=f"{sandbox.url}/instagift/v2", INSTAGIFT_MERCHANT_KEY=IG_KEY,
        INSTAGIFT_MERCHANT_SECRET=IG_SECRET,
        CARDLY_API_URL=f"{sandbox.url}/cardly/v2", CARDLY_API_KEY=CARDLY_KEY, CARDLY_ARTWORK="sandbox-thank-you-art",
        CARDLY_TEMPLATE="sandbox-thank-you-template",
        INSTANTCARD_API_URL=f"{sandbox.url}/instantcard/api/v2", INSTANTCARD_EMAIL="sandbox@example.com",
        INSTANTCARD_PASSWORD=IC_PASSWORD, INSTANTCARD_ORGANIZATION_ID="1", INSTANTCARD_SHIPPING_PROVIDER_ID="1",
    )


def run_cli(request, *args: str):
    app = request.getfixturevalue("app")  # also resets the sandbox: tests that change its state ask for `app` first
    return app.test_cli_runner().invoke(args=["providers", "check", *args])


def run_json(request) -> tuple[int, dict]:
    result = run_cli(request, "--json")
    assert_no_secrets(result.output, request)
    return result.exit_code, json.loads(result.stdout)


def get_route(request) -> dict:
    response = request.getfixturevalue("client").get("/v1/providers/check", headers=ADMIN)
    assert response.status_code == 200
    assert_no_secrets(response.get_data(as_text=True), request)
    return response.get_json()


def issued_tokens(request) -> list[str]:
    return list(request.getfixturevalue("instantcard").tokens)


def assert_no_secrets(text: str, request, *more: str) -> None:
    for secret in [*SECRETS, *issued_tokens(request), *more]:
        assert secret not in text, f"a secret ({secret[:3]}…) was shown"


def by_name(report: dict) -> dict[tuple[str, str], dict]:
    return {(c["provider"], c["check"]): c for c in report["checks"]}


def failed(report: dict) -> list[tuple[str, str]]:
    return [(c["provider"], c["check"]) for c in report["checks"] if not c["ok"]]


# -- a good setup ---------------------------------------------------------------------------------------------
def test_a_good_setup_passes_every_check_and_exits_0(request):
    result = run_cli(request)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(GOOD_CHECKS)  # one line per check
    for line, (provider, check) in zip(lines, GOOD_CHECKS, strict=True):
        assert line.split()[0] == provider
        assert check in line and " ok " in line and "FAILED" not in line
    assert "11 of 11 checks passed" in result.stderr
    assert_no_secrets(result.output, request)
    assert issued_tokens(request), "the InstantCard login really happened"


def test_a_good_setup_as_json_and_over_http_say_the_same(request):
    code, report = run_json(request)
    assert code == 0
    assert report["ok"] is True
    assert [(c["provider"], c["check"]) for c in report["checks"]] == GOOD_CHECKS
    assert all(c["ok"] is True for c in report["checks"])
    checks = by_name(report)
    assert checks["cardly", "mode"]["detail"].startswith("test mode")
    assert checks["cardly", "credit"]["detail"] == "25.0 credits"
    assert "Sandbox Thank You Art" in checks["cardly", "artwork"]["detail"]
    assert "Gold membership" in checks["instantcard", "template MEMBER-GOLD"]["detail"]
    assert checks["instantcard", "shipping provider"]["detail"] == "shipping provider 1 'USPS First Class'"
    assert checks["instantcard", "funds"]["detail"] == "balance $100.00"
    assert get_route(request) == report


# -- what a merchant gets wrong -------------------------------------------------------------------------------
def test_a_wrong_instagift_secret_fails_its_check(request, environ):
    environ["INSTAGIFT_MERCHANT_SECRET"] = "wrong-secret-Zq81"
    result = run_cli(request)
    assert result.exit_code == 1
    assert_no_secrets(result.output, request, "wrong-secret-Zq81")
    failing = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert len(failing) == 1
    assert failing[0].split()[:2] == ["instagift", "credentials"]
    assert "INSTAGIFT_MERCHANT_SECRET were refused (HTTP 401)" in failing[0]
    report = get_route(request)
    assert report["ok"] is False and failed(report) == [("instagift", "credentials")]
    assert "wrong-secret-Zq81" not in json.dumps(report)


def test_an_unknown_cardly_artwork_fails_its_check(request, environ):
    environ["CARDLY_ARTWORK"] = "no-such-artwork"
    code, report = run_json(request)
    assert code == 1
    assert report["ok"] is False
    assert failed(report) == [("cardly", "artwork")]
    assert by_name(report)["cardly", "artwork"]["detail"] == (
        "CARDLY_ARTWORK 'no-such-artwork' is not an artwork of this Cardly account")
    assert get_route(request) == report


def test_an_unknown_artwork_id_and_an_unknown_template_are_both_reported(request, environ, cardly):
    environ["CARDLY_ARTWORK"] = "00000000-0000-4000-8000-000000000000"  # an id: read with Get Artwork
    environ["CARDLY_TEMPLATE"] = "no-such-template"
    code, report = run_json(request)
    assert code == 1
    assert failed(report) == [("cardly", "artwork"), ("cardly", "template")]
    assert "'no-such-template' is not a template" in by_name(report)["cardly", "template"]["detail"]


def test_an_artwork_given_by_id_is_found(request, environ, cardly):
    art = cardly.art[3]
    environ["CARDLY_ARTWORK"] = art["id"]
    code, report = run_json(request)
    assert code == 0
    assert by_name(report)["cardly", "artwork"]["detail"] == f"'{art['id']}' is {art['id']} '{art['name']}'"


def test_a_template_field_the_template_lacks_is_named(request, environ):
    environ["INSTANTCARD_PRODUCTS"] = json.dumps({"MEMBER-SILVER": {"template_id": 102, "fields": {
        "Name": "{customer.name}", "Member Number": "{member_number}", "Email": "{customer.email}"}}})
    code, report = run_json(request)
    assert code == 1
    assert failed(report) == [("instantcard", "template MEMBER-SILVER")]
    assert by_name(report)["instantcard", "template MEMBER-SILVER"]["detail"] == (
        "template 102 'Silver membership' has no field 'Email' (its fields: Name, Member Number, Expires)")
    assert get_route(request) == report


def test_a_template_that_does_not_exist_is_reported_with_the_ones_that_do(request, environ):
    environ["INSTANTCARD_PRODUCTS"] = json.dumps({
        "MEMBER-GOLD": {"template_id": 101, "fields": {"Member Number": "{member_number}"}},
        "MEMBER-TIN": {"template_id": 999, "fields": {"Member Number": "{member_number}"}}})
    code, report = run_json(request)
    assert code == 1
    assert failed(report) == [("instantcard", "template MEMBER-TIN")]
    assert by_name(report)["instantcard", "template MEMBER-TIN"]["detail"] == (
        "template 999 does not exist (the organization has 101 'Gold membership', 102 'Silver membership')")


def test_an_unknown_shipping_provider_fails_its_check(request, environ):
    environ["INSTANTCARD_SHIPPING_PROVIDER_ID"] = "9"
    result = run_cli(request)
    assert result.exit_code == 1
    failing = [line for line in result.stdout.splitlines() if "FAILED" in line]
    assert len(failing) == 1 and failing[0].split()[:3] == ["instantcard", "shipping", "provider"]
    assert ("INSTANTCARD_SHIPPING_PROVIDER_ID 9 is not one of the organization's shipping providers "
            "(1 'USPS First Class', 2 'UPS Ground')") in failing[0]
    assert_no_secrets(result.output, request)


def test_a_wrong_instantcard_password_skips_what_needs_a_login(request, environ):
    environ["INSTANTCARD_PASSWORD"] = "not-the-password-Q3"
    code, report = run_json(request)
    assert code == 1
    checks = by_name(report)
    assert "INSTANTCARD_PASSWORD were refused (HTTP 401)" in checks["instantcard", "authentication"]["detail"]
    for name in ("organization", "template MEMBER-GOLD", "shipping provider", "funds"):
        assert checks["instantcard", name] == {"provider": "instantcard", "check": name, "ok": False,
                                               "detail": "skipped: authentication failed"}
    assert "not-the-password-Q3" not in json.dumps(report)


def test_a_wrong_organization_skips_the_organizations_checks(request, environ):
    environ["INSTANTCARD_ORGANIZATION_ID"] = "20003827"
    code, report = run_json(request)
    assert code == 1
    assert failed(report)[0] == ("instantcard", "organization")
    assert "organization 20003827 (INSTANTCARD_ORGANIZATION_ID) was not found" in \
        by_name(report)["instantcard", "organization"]["detail"]
    assert by_name(report)["instantcard", "funds"]["detail"] == "skipped: the organization did not answer"


def test_a_refused_cardly_key_skips_the_rest_of_cardly(request, app, cardly):
    cardly.revoke_key(CARDLY_KEY)
    code, report = run_json(request)
    assert code == 1
    assert failed(report) == [("cardly", c) for c in ("api key", "mode", "credit", "artwork", "template")]
    checks = by_name(report)
    assert checks["cardly", "api key"]["detail"].startswith("CARDLY_API_KEY was refused (HTTP 401)")
    assert checks["cardly", "artwork"]["detail"] == "skipped: authentication failed"


def test_no_credit_and_no_funds_fail(request, app, cardly, instantcard):
    cardly.set_credit(0)
    instantcard.set_balance(-550)
    code, report = run_json(request)
    assert code == 1
    assert failed(report) == [("cardly", "credit"), ("instantcard", "funds")]
    assert by_name(report)["instantcard", "funds"]["detail"].startswith("balance -$5.50: print jobs wait")


def test_a_live_key_is_reported_as_live(request, environ):
    environ["CARDLY_API_KEY"] = "live_preflightKey8h"
    code, report = run_json(request)
    assert code == 0
    assert by_name(report)["cardly", "mode"]["detail"].startswith("live mode")
    assert "live_preflightKey8h" not in json.dumps(report)


# -- providers that are down ----------------------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_provider_is_a_failed_check_not_a_500(request, environ):
    port = closed_port()
    environ["CARDLY_API_URL"] = f"http://127.0.0.1:{port}/v2"
    report = get_route(request)
    assert report["ok"] is False
    checks = by_name(report)
    assert checks["cardly", "api key"]["detail"] == (
        f"no answer from http://127.0.0.1:{port}/v2: GET account/balance failed to connect or was cut off")
    for name in ("mode", "credit", "artwork", "template"):
        assert checks["cardly", name]["detail"] == "skipped: cardly did not answer"
    assert failed(report) == [("cardly", c) for c in ("api key", "mode", "credit", "artwork", "template")]
    assert run_cli(request).exit_code == 1


def test_the_sandbox_down_in_development_is_named_with_its_setting(request, environ):
    port = closed_port()
    for name in ("INSTAGIFT_API_URL", "INSTAGIFT_MERCHANT_KEY", "INSTAGIFT_MERCHANT_SECRET"):
        del environ[name]  # development without Instagift credentials: the sandbox
    environ["SANDBOX_URL"] = f"http://127.0.0.1:{port}"
    checks = by_name(get_route(request))
    assert checks["instagift", "credentials"]["detail"] == (
        f"no answer from http://127.0.0.1:{port}/instagift/v2 (the sandbox, SANDBOX_URL): "
        "GET certificates failed to connect or was cut off")


def test_a_provider_that_times_out_is_a_failed_check(request, environ):
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        environ["INSTAGIFT_API_URL"] = f"http://127.0.0.1:{silent.getsockname()[1]}/v2"
        environ["INSTAGIFT_TIMEOUT_SECONDS"] = "1"
        report = get_route(request)
    assert failed(report) == [("instagift", "credentials")]
    assert by_name(report)["instagift", "credentials"]["detail"].endswith("GET certificates timed out")


def test_a_cardly_error_on_the_balance_does_not_hide_the_artwork_and_template(request, app, cardly):
    cardly.inject_fault("error_500", endpoint="account/balance")
    report = get_route(request)
    checks = by_name(report)
    assert checks["cardly", "api key"]["detail"] == "cardly answered HTTP 500 (its side failed); try again later"
    assert checks["cardly", "mode"]["detail"] == "skipped: the account balance could not be read"
    assert checks["cardly", "artwork"]["ok"] is True and checks["cardly", "template"]["ok"] is True
    assert failed(report) == [("cardly", "api key"), ("cardly", "mode"), ("cardly", "credit")]


# -- which providers are checked ------------------------------------------------------------------------------
def test_only_enabled_providers_are_checked(request, environ):
    environ["CARDLY_ENABLED"] = "false"
    app = request.getfixturevalue("app")
    settings = app.extensions["settings"]
    # Development always maps a demo SKU, so "no SKU mapped" is set on the settings themselves.
    settings = dataclasses.replace(settings, membership=dataclasses.replace(settings.membership, products={}))
    report = check_providers(settings)
    assert [(c.provider, c.check) for c in report.checks] == [("instagift", "credentials")]
    assert report.ok


# -- the route's authentication and contract ------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, SHOP, {"Authorization": "Bearer wrong"}], ids=["none", "shop", "wrong"])
def test_the_route_wants_the_admin_token(request, headers, sandbox):
    response = request.getfixturevalue("client").get("/v1/providers/check", headers=headers)
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert requests.get(f"{sandbox.url}/_health", timeout=5).ok
    assert request.getfixturevalue("instantcard").auth_count == 0  # refused before any provider call


# -- the real entry point -------------------------------------------------------------------------------------
def test_the_flask_command_itself(environ):
    env = {**environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "INSTAGIFT_MERCHANT_SECRET": "wrong-secret-Zq81"}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "service", "providers", "check", "--json"],
                          env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert failed(report) == [("instagift", "credentials")]
    for secret in [*SECRETS, "wrong-secret-Zq81"]:
        assert secret not in done.stdout and secret not in done.stderr
    env["INSTAGIFT_MERCHANT_SECRET"] = IG_SECRET
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "service", "providers", "check"],
                          env=env, capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(done.stdout.splitlines()) == len(GOOD_CHECKS)


# -- the sandbox's Get Artwork (added for the check) ----------------------------------------------------------
def test_sandbox_get_artwork_follows_the_docs(app, sandbox, cardly):
    base = f"{sandbox.url}/cardly/v2/art"
    art = cardly.art[0]
    assert requests.get(f"{base}/{art['id']}", timeout=5).status_code == 401  # authentication required
    assert requests.get(f"{base}/{art['id']}", headers={"API-Key": "nope"}, timeout=5).status_code == 401
    found = requests.get(f"{base}/{art['id']}", headers={"API-Key": CARDLY_KEY}, timeout=5)
    assert found.status_code == 200
    assert found.json() == {"state": {"status": "OK", "messages": []}, "data": art, "testMode": True}
    for unknown in ("00000000-0000-4000-8000-000000000000", art["slug"]):  # by id only, as documented
        missing = requests.get(f"{base}/{unknown}", headers={"API-Key": CARDLY_KEY}, timeout=5)
        assert missing.status_code == 404
        assert missing.json()["state"]["status"] == "ERROR"


# -- secrets a provider echoes back ---------------------------------------------------------------------------
@responses.activate
def test_a_secret_echoed_by_a_provider_is_hidden():
    """The messages never put a secret in a detail themselves; this is the guard for a provider that does."""
    settings = load_settings({
        "SERVICE_ENV": "development", "CARDLY_ENABLED": "false",
        "INSTAGIFT_API_URL": "https://ig.test/v2", "INSTAGIFT_MERCHANT_KEY": "key-Echoed-1",
        "INSTAGIFT_MERCHANT_SECRET": "secret-Echoed-2",
        "INSTANTCARD_API_URL": "https://ic.test/api/v2", "INSTANTCARD_EMAIL": "a@example.com",
        "INSTANTCARD_PASSWORD": "password-Echoed-3", "INSTANTCARD_ORGANIZATION_ID": "7",
        "INSTANTCARD_SHIPPING_PROVIDER_ID": "1", "ADMIN_API_TOKENS": "anna:staff-Echoed-5-0123456789",
        "SECRET_KEY": "signing-Echoed-6-0123456789abcdef0123"})
    responses.get("https://ig.test/v2/certificates", status=418,
                  json={"errors": [{"title": "key-Echoed-1 / secret-Echoed-2 are teapots "
                                             "(staff-Echoed-5-0123456789, signing-Echoed-6-0123456789abcdef0123)"}]})
    responses.post("https://ic.test/api/v2/authenticate", json={"token": "token-Echoed-4"})
    responses.get("https://ic.test/api/v2/organizations/7", status=400,
                  json={"error": "password-Echoed-3 used token-Echoed-4 for a@example.com"})
    report = check_providers(settings)
    details = " ".join(c.detail for c in report.checks)
    assert "[hidden] / [hidden] are teapots ([hidden], [hidden])" in details
    assert "[hidden] used [hidden] for a@example.com" in details
    for secret in ("key-Echoed-1", "secret-Echoed-2", "password-Echoed-3", "token-Echoed-4", "staff-Echoed-5",
                   "signing-Echoed-6"):
        assert secret not in details
