"""Configuration (development defaults, production refusals) and secret masking in logs."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.config import ConfigurationError, normalise_database_url
from service.features import load_settings
from service.logs import JsonFormatter, RedactingFilter, mask, redact

ROOT = Path(__file__).resolve().parent.parent


def test_development_defaults_point_providers_at_the_sandbox():
    settings = load_settings({"SANDBOX_URL": "http://127.0.0.1:9999"}, "/tmp/instance")
    assert settings.env == "development"
    assert settings.database_url == "sqlite:////tmp/instance/service.sqlite3"
    assert settings.instagift.api_url == "http://127.0.0.1:9999/instagift/v2" and settings.instagift.sandbox
    assert settings.cardly.api_url == "http://127.0.0.1:9999/cardly/v2" and settings.cardly.sandbox
    assert settings.instantcard.api_url == "http://127.0.0.1:9999/instantcard/api/v2"
    assert settings.gift_card_rounding == "down" and settings.hold_minutes == 30


def test_development_with_credentials_uses_the_live_urls():
    settings = load_settings({"INSTAGIFT_MERCHANT_KEY": "k", "INSTAGIFT_MERCHANT_SECRET": "s"}, "/tmp/i")
    assert settings.instagift.api_url == "https://api.instagift.com/v2" and not settings.instagift.sandbox


@pytest.mark.parametrize("url,expected", [
    ("postgres://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
    ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_database_urls_of_both_spellings_use_psycopg3(url, expected):
    assert normalise_database_url(url) == expected


PRODUCTION = {
    "SERVICE_ENV": "production", "WEBHOOK_SECRETS": "whsec_c2VjcmV0", "SHOP_API_TOKEN": "s" * 24,
    "ADMIN_API_TOKEN": "a" * 24, "INSTAGIFT_MERCHANT_KEY": "k", "INSTAGIFT_MERCHANT_SECRET": "x",
    "ALLOWED_ORIGINS": "https://shop.example", "DATABASE_URL": "postgresql://db.example/shop",
    "RATELIMIT_STORAGE_URI": "redis://cache.example:6379", "CARDLY_ENABLED": "false",
    "SECRET_KEY": "k" * 40,
}


def test_production_without_secrets_lists_everything_missing_at_once():
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"SERVICE_ENV": "production", "INSTANTCARD_PRODUCTS": '{"GOLD": {"template_id": 1}}'}, "/tmp/i")
    message = str(caught.value)
    for name in ("WEBHOOK_SECRETS", "SHOP_API_TOKEN", "ADMIN_API_TOKEN", "INSTAGIFT_MERCHANT_KEY",
                 "INSTAGIFT_MERCHANT_SECRET", "CARDLY_API_KEY", "INSTANTCARD_EMAIL", "INSTANTCARD_PASSWORD",
                 "INSTANTCARD_ORGANIZATION_ID", "INSTANTCARD_SHIPPING_PROVIDER_ID", "ALLOWED_ORIGINS", "DATABASE_URL",
                 "RATELIMIT_STORAGE_URI"):
        assert name in message


def test_production_needs_no_cardly_or_instantcard_credentials_when_those_features_are_off():
    settings = load_settings({
        **PRODUCTION, "CARDLY_ENABLED": "false",
    }, "/tmp/i")
    assert settings.is_production and not settings.uses_sandbox
    assert settings.membership.products == {}


@pytest.mark.parametrize("overrides, complaint", [
    ({"WEBHOOK_SECRETS": "whsec_!!!not-base64"}, "whsec_ followed by base64"),
    ({"ALLOWED_ORIGINS": "*"}, "ALLOWED_ORIGINS entries must be origins"),
    ({"ALLOWED_ORIGINS": "https://shop.example/checkout"}, "ALLOWED_ORIGINS entries must be origins"),
    ({"SHOP_API_TOKEN": "x"}, "SHOP_API_TOKEN must be at least 16 characters"),
    ({"ADMIN_API_TOKEN": "s" * 24}, "ADMIN_API_TOKEN must differ from SHOP_API_TOKEN"),
    ({"CARDLY_ENABLED": "true", "CARDLY_API_KEY": "abc123", "CARDLY_ARTWORK": "art"}, "CARDLY_API_KEY must start"),
    ({"INSTAGIFT_API_URL": "notaurl"}, "INSTAGIFT_API_URL must be an http(s) URL"),
    ({"HOLD_MINUTES": "-5"}, "HOLD_MINUTES must be at least 1"),
    ({"MAX_REQUEST_BYTES": "0"}, "MAX_REQUEST_BYTES must be at least 1024"),
])
def test_production_refuses_values_that_would_fail_later(overrides, complaint):
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**PRODUCTION, **overrides}, "/tmp/i")
    assert complaint in str(caught.value)


def test_bad_values_are_reported_not_ignored():
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"GIFT_CARD_ROUNDING": "sideways", "HOLD_MINUTES": "soon", "INSTANTCARD_PRODUCTS": "{"}, "/tmp/i")
    assert "GIFT_CARD_ROUNDING" in str(caught.value) and "HOLD_MINUTES" in str(caught.value)
    assert "INSTANTCARD_PRODUCTS" in str(caught.value)


def test_production_lists_exactly_what_is_missing_missing_settings_first():
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"SERVICE_ENV": "production", "HOLD_MINUTES": "0",
                       "INSTANTCARD_PRODUCTS": '{"GOLD": {"template_id": 1, "fields": {"No": "{member_number}"}}}'},
                      "/tmp/i")
    assert caught.value.problems == [
        "DATABASE_URL is required in production (postgresql://…; SQLite only by choice)",
        "WEBHOOK_SECRETS is required in production (comma-separated whsec_… secrets)",
        "SHOP_API_TOKEN is required in production",
        "ADMIN_API_TOKEN is required in production (or ADMIN_API_TOKENS, one name:token per person)",
        "SECRET_KEY is required in production (a random secret: it signs the console's session cookies)",
        "ALLOWED_ORIGINS is required in production (the storefront's origin)",
        "RATELIMIT_STORAGE_URI is required in production (redis://… shared by every web process; memory:// only "
        "for a single process)",
        "INSTAGIFT_MERCHANT_KEY is required in production",
        "INSTAGIFT_MERCHANT_SECRET is required in production",
        "CARDLY_API_KEY is required in production while CARDLY_ENABLED is true",
        "CARDLY_ARTWORK is required in production while CARDLY_ENABLED is true",
        "INSTANTCARD_EMAIL is required in production while INSTANTCARD_PRODUCTS maps a SKU",
        "INSTANTCARD_PASSWORD is required in production while INSTANTCARD_PRODUCTS maps a SKU",
        "INSTANTCARD_ORGANIZATION_ID is required in production while INSTANTCARD_PRODUCTS maps a SKU",
        "INSTANTCARD_SHIPPING_PROVIDER_ID is required in production while INSTANTCARD_PRODUCTS maps a SKU",
        "HOLD_MINUTES must be at least 1 (got 0)",
    ]


def test_a_wrong_product_mapping_still_needs_instantcards_credentials_in_production():
    with pytest.raises(ConfigurationError) as caught:
        load_settings({**PRODUCTION, "INSTANTCARD_PRODUCTS": '{"GOLD": {"template_id": "x"}}'}, "/tmp/i")
    problems = caught.value.problems
    assert "INSTANTCARD_EMAIL is required in production while INSTANTCARD_PRODUCTS maps a SKU" in problems
    assert "INSTANTCARD_PRODUCTS['GOLD'].template_id must be a whole number" in problems


@pytest.mark.parametrize("overrides, complaint", [
    ({"HOLD_MINUTES": "2.5"}, "HOLD_MINUTES must be a whole number (got '2.5')"),
    ({"CART_LOCK_MINUTES": "-1"}, "CART_LOCK_MINUTES must be at least 0 (got -1)"),
    ({"CARDLY_SKIP_OPTED_OUT": "nah"}, "CARDLY_SKIP_OPTED_OUT must be true or false (got 'nah')"),
    ({"GIFT_CARD_ROUNDING": "UP"}, "GIFT_CARD_ROUNDING must be one of down, up (got 'UP')"),
    ({"INSTANTCARD_SHIP_TO": "moon"}, "INSTANTCARD_SHIP_TO must be one of member, store (got 'moon')"),
    ({"CARDLY_SENDER": "{"}, "CARDLY_SENDER is not valid JSON (Expecting property name enclosed in double quotes "
                              "at position 1)"),
    ({"CARDLY_SENDER": "[1]"}, "CARDLY_SENDER must be a JSON object with Cardly's sender fields"),
    ({"CARDLY_SENDER": '{"firstName": "Shop", "company": "Shop Inc", "address": "1 High St", "city": "Springfield", '
                       '"postcode": "62701", "country": "US"}'},
     "CARDLY_SENDER has company, which Cardly's sender does not have (its fields: firstName, lastName, address, "
     "address2, city, region, postcode, country, omitAddress)"),
    ({"INSTANTCARD_PRODUCTS": "[]"}, "INSTANTCARD_PRODUCTS must be a JSON object mapping SKU to a card template"),
    ({"INSTANTCARD_PRODUCTS": "null"}, "INSTANTCARD_PRODUCTS must be a JSON object mapping SKU to a card template"),
    ({"WEBHOOK_SECRETS": "whsec_c2VjcmV0,hunter2"}, "WEBHOOK_SECRETS entries must start with whsec_ (one entry "
                                                    "does not)"),
    ({"INSTANTCARD_BATCH_MAX_CARDS": "0"}, "INSTANTCARD_BATCH_MAX_CARDS must be at least 1 (got 0)"),
    ({"CARDLY_API_KEY": "abc123", "CARDLY_API_URL": "ftp://cardly"}, "CARDLY_API_URL must be an http(s) URL"),
])
def test_development_refuses_invalid_values_in_the_same_words(overrides, complaint):
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"SERVICE_ENV": "development", **overrides}, "/tmp/i")
    assert any(problem.startswith(complaint) for problem in caught.value.problems), caught.value.problems
    assert "hunter2" not in str(caught.value)  # a secret is described, never echoed


def test_blank_values_count_as_unset_and_values_are_stripped():
    settings = load_settings({"HOLD_MINUTES": "  ", "CARDLY_API_KEY": "", "SHOP_NAME": "  Corner Shop ",
                              "ALLOWED_ORIGINS": " , ", "CARDLY_COUNTRIES": "us, ,ca,", "GIFT_CARD_ROUNDING": " up"},
                             "/tmp/i")
    assert settings.hold_minutes == 30 and settings.cardly.sandbox and settings.shop_name == "Corner Shop"
    assert settings.allowed_origins == ("http://127.0.0.1:5000", "http://localhost:5000")
    assert settings.thank_you.countries == ("US", "CA") and settings.gift_card_rounding == "up"


@pytest.mark.parametrize("text, value", [("true", True), ("YES", True), ("On", True), ("1", True),
                                         ("false", False), ("No", False), ("OFF", False), ("0", False)])
def test_booleans_take_the_usual_words_in_any_case(text, value):
    assert load_settings({"CARDLY_SKIP_OPTED_OUT": text}, "/tmp/i").thank_you.skip_opted_out is value


def test_settings_come_from_the_given_environment_only(monkeypatch):
    monkeypatch.setenv("SERVICE_ENV", "production")
    monkeypatch.setenv("HOLD_MINUTES", "7")
    settings = load_settings({"SANDBOX_URL": "http://127.0.0.1:9999"}, "/tmp/i")
    assert settings.env == "development" and settings.hold_minutes == 30


def test_production_process_refuses_to_start_with_one_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTAGIFT_", "CARDLY_", "WEBHOOK_", "SHOP_",
                                                                    "ADMIN_", "INSTANTCARD_"))}
    env.update(SERVICE_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path}/p.db")
    result = subprocess.run([sys.executable, "-c", "from service import create_app; create_app()"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "The service cannot start; fix these settings:" in result.stderr
    assert "WEBHOOK_SECRETS is required in production" in result.stderr


def test_sandbox_refuses_to_exist_in_production(monkeypatch):
    from sandbox import create_sandbox_app

    monkeypatch.setenv("SERVICE_ENV", "production")
    with pytest.raises(RuntimeError, match="never started in production"):
        create_sandbox_app()


def test_mask_shows_only_the_last_four():
    assert mask("62DD-CV4T-R2NTM2") == "••••NTM2"
    assert mask("abc") == "•••"


@pytest.mark.parametrize("secret_text", [
    "claim code 62DD-CV4T-R2NTM2 applied",
    "code=MNK-QPF27E-EHJ3",
    "Authorization: Bearer dev-admin-token-1234567",
    "key whsec_ZGV2LXdlYmhvb2stc2VjcmV0",
    "cardly key test_abcdef123456",
    "token bG9uZ3Rva2VuaGVyZWZvcnRlc3RzMTIzNDU2",
])
def test_redaction_masks_codes_tokens_and_keys(secret_text):
    redacted = redact(secret_text)
    for word in secret_text.split():
        if len(word) >= 12 and any(c.isdigit() for c in word):
            assert word not in redacted


def test_logging_filter_masks_whatever_the_caller_passes():
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "applying %s for %s", ("U4KR-9CLT-3KNPU4", "cart"), None)
    RedactingFilter().filter(record)
    record.request_id = "r1"
    line = JsonFormatter().format(record)
    entry = json.loads(line)
    assert "U4KR-9CLT-3KNPU4" not in line and entry["message"].endswith("for cart")
    assert entry["request_id"] == "r1" and entry["level"] == "info"


def test_problem_instance_masks_a_cart_token_in_the_path(client):
    token = "Zq8yQ2rP0sT4uV6wX8yZ0aB2cD4eF6gH"
    body = client.get(f"/v1/carts/{token}").get_json()
    assert body["code"] == "cart_not_found"
    assert token not in body["instance"] and body["instance"].endswith(token[-4:])


def test_the_sandbox_process_masks_claim_codes_in_its_access_log(tmp_path):
    import socket
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path / "sandbox.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "sandbox.dev", "sandbox", "--port", str(port)],
                                   cwd=ROOT, env={**os.environ, "SERVICE_ENV": "development",
                                                      "SANDBOX_INSTAGIFT_BARE_CODES": "true"}, stdout=log_file,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:  # wait until it listens
                try:
                    requests.get(f"http://127.0.0.1:{port}/_health", timeout=1)
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, "the sandbox did not start"
                    time.sleep(0.1)
            response = requests.get(f"http://127.0.0.1:{port}/instagift/v2/claim_codes/DEMO-100S-PLIT", timeout=5,
                                    headers={"X-Merchant-Key": "sandbox-merchant-key",
                                             "X-Merchant-Secret": "sandbox-merchant-secret"})
            assert response.status_code == 200
            bare = requests.get(f"http://127.0.0.1:{port}/instagift/v2/claim_codes/DEMO100SPLIT", timeout=5,
                                headers={"X-Merchant-Key": "sandbox-merchant-key",
                                         "X-Merchant-Secret": "sandbox-merchant-secret"})
            assert bare.status_code == 200  # taken because the environment says so (strict by default)
        finally:
            process.terminate()
            process.wait(timeout=30)
    logged = log_path.read_text()
    assert logged.count("claim_codes/••••PLIT") == 2, logged
    assert "DEMO-100S-PLIT" not in logged and "DEMO100SPLIT" not in logged


def test_the_request_id_is_returned_and_appears_in_the_request_log_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="service.web"):
        response = client.get("/healthz", headers={"X-Request-Id": "shop-trace-77"})
    assert response.headers["X-Request-Id"] == "shop-trace-77"
    [line] = [r for r in caplog.records if r.name == "service.web" and "/healthz" in r.getMessage()]
    assert line.request_id == "shop-trace-77"


def test_readiness_is_503_when_the_database_is_unreachable():
    from service import create_app

    app = create_app({"SERVICE_ENV": "development", "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})
    response = app.test_client().get("/readyz", headers={"Authorization": "Bearer dev-admin-token"})
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_readiness_calls_instantcard_disabled_while_no_product_is_mapped(tmp_path):
    """InstantCard is used only for a mapped SKU (as `providers check` says): without one, readiness must not call
    it live."""
    from service import create_app

    env = dict(PRODUCTION, DATABASE_URL=f"sqlite:///{tmp_path}/ready.sqlite3", RATELIMIT_STORAGE_URI="memory://")
    staff = {"Authorization": f"Bearer {PRODUCTION['ADMIN_API_TOKEN']}"}  # /readyz's detail is for staff only
    unmapped = create_app(env).test_client().get("/readyz", headers=staff).get_json()["providers"]
    assert unmapped == {"instagift": "live", "cardly": "disabled", "instantcard": "disabled"}
    mapped = dict(env, INSTANTCARD_EMAIL="ops@shop.example", INSTANTCARD_PASSWORD="p" * 20,
                  INSTANTCARD_ORGANIZATION_ID="7", INSTANTCARD_SHIPPING_PROVIDER_ID="3",
                  INSTANTCARD_PRODUCTS='{"MEMBER-GOLD": {"template_id": 101, "fields": {"No": "{member_number}"}}}')
    assert create_app(mapped).test_client().get("/readyz", headers=staff).get_json()["providers"]["instantcard"] == "live"


@settings(max_examples=300)
@given(st.binary(min_size=24, max_size=24))
def test_a_cart_token_in_a_logged_path_shows_only_its_last_four(raw):
    token = base64.urlsafe_b64encode(raw).decode()  # what secrets.token_urlsafe(24) makes
    assert redact(f"POST /v1/carts/{token}/gift-cards 409") == f"POST /v1/carts/••••{token[-4:]}/gift-cards 409"


def test_the_procfile_web_process_never_prints_a_cart_token(tmp_path):
    """The production web command, run as written in the Procfile: no log line of it may carry a cart token."""
    import re
    import socket
    import time

    import requests

    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "SERVICE_ENV": "development", "PORT": str(port),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'procfile.db'}", "WEB_CONCURRENCY": "1",
           "BIND_ADDRESS": "127.0.0.1"}
    subprocess.run(["bash", "-c", procfile["release"]], cwd=ROOT, env=env, check=True, capture_output=True)
    log_path = tmp_path / "web.log"
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(["bash", "-c", f"exec {procfile['web']}"], cwd=ROOT, env=env, stdout=log_file,
                                   stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except (requests.ConnectionError, requests.Timeout):
                    # Timeout: gunicorn has bound the port but its worker is still importing the app (over 1 s
                    # when the machine is busy); keep asking until the deadline.
                    assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
                    time.sleep(0.1)
            base = f"http://127.0.0.1:{port}/v1/carts"
            token = requests.post(base, json={"total_cents": 5000}, timeout=5).json()["cart_token"]
            assert requests.get(f"{base}/{token}", timeout=5).status_code == 200
            unknown = "-" + token[1:-1] + "-"  # a token-shaped path the service has never seen
            assert requests.get(f"{base}/{unknown}", timeout=5).status_code == 404
        finally:
            process.terminate()
            process.wait(timeout=30)
    logged = log_path.read_text()
    assert f"Listening at: http://127.0.0.1:{port}" in logged  # BIND_ADDRESS, not every interface
    assert f"GET /v1/carts/••••{token[-4:]} 200" in logged
    assert not re.search(re.escape(token[4:-4]) + "|" + re.escape(unknown[4:-4]), logged)


@pytest.fixture
def app_with(environ, app):
    """Another app on the test database (emptied by `app`), built with extra settings; disposed afterwards."""
    from service import create_app
    from service.db import db

    made = []

    def make(**extra):
        made.append(create_app({**environ, **extra}))
        return made[-1]

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def test_behind_a_trusted_proxy_each_shopper_has_their_own_limit(app_with):
    client = app_with(TRUSTED_PROXIES="1", CART_CREATE_RATE_LIMIT="2/minute").test_client()
    shopper = {"X-Forwarded-For": "198.51.100.7"}
    assert [client.post("/v1/carts", json={"total_cents": 100}, headers=shopper).status_code
            for _ in range(3)] == [201, 201, 429]
    other = {"X-Forwarded-For": "203.0.113.10"}
    assert client.post("/v1/carts", json={"total_cents": 100}, headers=other).status_code == 201


def test_without_trusted_proxies_the_forwarded_header_cannot_dodge_the_limit(app_with):
    client = app_with(CART_CREATE_RATE_LIMIT="2/minute").test_client()
    codes = [client.post("/v1/carts", json={"total_cents": 100}, headers={"X-Forwarded-For": f"198.51.100.{n}"})
             .status_code for n in range(3)]
    assert codes == [201, 201, 429]


def test_an_unreachable_rate_limit_store_degrades_readiness_but_not_checkout(app_with):
    client = app_with(RATELIMIT_STORAGE_URI="redis://127.0.0.1:9").test_client()
    ready = client.get("/readyz", headers={"Authorization": "Bearer dev-admin-token"})
    assert ready.status_code == 200
    assert (ready.get_json()["status"], ready.get_json()["rate_limits"]) == ("degraded", "unreachable")
    assert client.post("/v1/carts", json={"total_cents": 100}).status_code == 201
    assert client.post("/v1/gift-cards/balance", json={"claim_code": "DEMO-100S-PLIT"}).status_code == 200


def test_api_answers_are_not_cached_and_verify_gets_no_cors(client):
    created = client.post("/v1/carts", json={"total_cents": 100}, headers={"Origin": "http://127.0.0.1:5000"})
    assert created.headers["Cache-Control"] == "no-store"
    assert created.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5000"
    token = created.get_json()["cart_token"]
    preflight = client.options(f"/v1/carts/{token}/verify", headers={
        "Origin": "http://127.0.0.1:5000", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in preflight.headers
    applied = client.options(f"/v1/carts/{token}/gift-cards", headers={
        "Origin": "http://127.0.0.1:5000", "Access-Control-Request-Method": "POST"})
    assert applied.headers["Access-Control-Allow-Origin"] == "http://127.0.0.1:5000"


@pytest.mark.parametrize("address, key", [
    ("198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    (None, "unknown"),
])
def test_rate_limits_count_an_ipv6_client_by_its_64(address, key):
    from service.api.ratelimit import client_key

    assert client_key(address) == key


def test_an_ipv6_shopper_rotating_addresses_in_their_64_shares_one_limit(app_with):
    client = app_with(TRUSTED_PROXIES="1", BIND_ADDRESS="127.0.0.1", CART_CREATE_RATE_LIMIT="2/minute",
                      LOOKUP_RATE_LIMIT="2/minute").test_client()
    same_64 = ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9", "2001:db8:1:2:1234:5678:9abc:def0"]
    codes = [client.post("/v1/carts", json={"total_cents": 100}, headers={"X-Forwarded-For": a}).status_code
             for a in same_64]
    assert codes == [201, 201, 429]
    assert client.post("/v1/carts", json={"total_cents": 100},
                       headers={"X-Forwarded-For": "2001:db8:1:3::1"}).status_code == 201  # another subscriber
    lookups = [client.post("/v1/gift-cards/balance", json={"claim_code": "DEMO-100S-PLIT"},
                           headers={"X-Forwarded-For": f"2001:db8:9:9::{n}"}).status_code for n in range(1, 4)]
    assert lookups == [200, 200, 429]


def test_trusting_proxies_on_an_all_interfaces_bind_warns_at_start(environ, caplog):
    from service import create_app

    def warnings(**extra) -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="service.web"):
            create_app({**environ, **extra})
        return [r.getMessage() for r in caplog.records if "BIND_ADDRESS" in r.getMessage()]

    [warning] = warnings(TRUSTED_PROXIES="1")
    assert "BIND_ADDRESS=0.0.0.0" in warning and "X-Forwarded-For" in warning
    assert len(warnings(TRUSTED_PROXIES="2", BIND_ADDRESS="[::]")) == 1
    assert warnings(TRUSTED_PROXIES="1", BIND_ADDRESS="127.0.0.1") == []
    assert warnings(TRUSTED_PROXIES="1", BIND_ADDRESS="[::1]") == []
    assert warnings() == []


@pytest.mark.parametrize("value", ["localhost:80", "::1", "not an address"])
def test_a_bind_address_gunicorn_cannot_take_is_refused(value):
    with pytest.raises(ConfigurationError, match="BIND_ADDRESS"):
        load_settings({"SERVICE_ENV": "development", "BIND_ADDRESS": value}, "/tmp")


@pytest.mark.parametrize("switch", ["FLASK_ENV", "APP_ENV", "ENV"])
@pytest.mark.parametrize("service_env", [None, "development"])
def test_production_said_anywhere_but_service_env_refuses_to_start(switch, service_env):
    environ = {switch: "Production"} | ({"SERVICE_ENV": service_env} if service_env else {})
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ, "/tmp/i")
    assert caught.value.problems == [
        f"{switch}=production is not read; set SERVICE_ENV=production (only SERVICE_ENV selects production; "
        "SERVICE_ENV is 'development' now)"]


def test_other_switches_agreeing_with_service_env_are_fine():
    assert load_settings({"FLASK_ENV": "development", "APP_ENV": "dev"}, "/tmp/i").env == "development"
    assert load_settings(PRODUCTION | {"FLASK_ENV": "production", "ENV": "production"}, "/tmp/i").is_production


@pytest.mark.parametrize("command", [["db", "upgrade"], ["worker"]])
def test_a_flask_command_without_production_settings_prints_the_list_and_no_traceback(tmp_path, command):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTAGIFT_", "CARDLY_", "WEBHOOK_", "SHOP_",
                                                                    "ADMIN_", "INSTANTCARD_"))}
    env.update(SERVICE_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path}/p.db")
    flask = str(Path(sys.executable).parent / "flask")
    result = subprocess.run([flask, "--app", "service", *command], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert result.stderr.startswith("Error: The service cannot start; fix these settings:\n")
    assert "  - WEBHOOK_SECRETS is required in production" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) < 15


def test_gunicorn_without_production_settings_says_which_once_per_worker_and_stops(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INSTAGIFT_", "CARDLY_", "WEBHOOK_", "SHOP_",
                                                                    "ADMIN_", "INSTANTCARD_", "PROMETHEUS_"))}
    env.update(SERVICE_ENV="production", DATABASE_URL=f"sqlite:///{tmp_path}/p.db")
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    result = subprocess.run([gunicorn, "--no-control-socket", "--bind", "127.0.0.1:0", "--workers", "2",
                             "service:create_app()"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    # The master stops and respawns no worker: exit 4 ("App failed to load") from its loop, or 1 when a worker
    # failed before the loop began (gunicorn then raises the same HaltServer out of start(): its trace, not ours).
    assert result.returncode in (1, 4)
    assert "App failed to load" in result.stderr
    assert "ConfigurationError" not in result.stderr  # no worker printed a trace of the settings error
    assert 1 <= result.stderr.count("The service cannot start; fix these settings:\n") <= 2
    assert "  - WEBHOOK_SECRETS is required in production" in result.stderr
