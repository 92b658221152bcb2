"""Hardening of what every answer carries and tells: security headers, HSTS, Vary: Origin, /readyz detail only
for the merchant, and the demo's tokens sent only to the configured address."""

from __future__ import annotations

import flask
import pytest
import requests
from flask import Flask

from service import create_app
from tests.support import ADMIN, ServerThread

FRAMING = "frame-ancestors 'none'"


def assert_hardened(response) -> None:
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert FRAMING in headers["Content-Security-Policy"]


@pytest.mark.parametrize("method, path, status", [
    ("POST", "/v1/carts", 201),                      # an API answer
    ("GET", "/v1/carts/no-such-cart-token", 404),    # a problem
    ("POST", "/v1/gift-cards/balance", 415),         # a problem from the parser
    ("GET", "/v1/jobs", 401),                        # a problem from the auth check
    ("GET", "/openapi.json", 200),                   # the OpenAPI document
    ("GET", "/healthz", 200),
    ("GET", "/nowhere", 404),                        # Werkzeug's own 404, as a problem
])
def test_api_problem_and_openapi_answers_carry_the_security_headers(client, method, path, status):
    kwargs = {"json": {"total_cents": 100}} if path == "/v1/carts" else {}
    if path == "/v1/gift-cards/balance":
        kwargs = {"data": "claim_code=x", "content_type": "application/x-www-form-urlencoded"}
    response = client.open(path, method=method, **kwargs)
    assert response.status_code == status
    assert_hardened(response)
    assert "Strict-Transport-Security" not in response.headers  # development


@pytest.fixture
def production(database_url) -> Flask:
    return create_app({
        "SERVICE_ENV": "production", "DATABASE_URL": database_url, "WEBHOOK_SECRETS": "whsec_cHJvZHVjdGlvbi1zZWNyZXQ=",
        "SHOP_API_TOKEN": "shop-token-0123456789", "ADMIN_API_TOKEN": "admin-token-0123456789",
        "INSTAGIFT_MERCHANT_KEY": "key", "INSTAGIFT_MERCHANT_SECRET": "secret", "CARDLY_ENABLED": "false",
        "ALLOWED_ORIGINS": "https://shop.example", "RATELIMIT_STORAGE_URI": "memory://", "TRUSTED_PROXIES": "1",
        "SECRET_KEY": "production-secret-key-0123456789abcdef",
    })


def test_production_sends_hsts_only_for_requests_that_arrived_over_https(production):
    client = production.test_client()
    over_https = client.get("/healthz", base_url="https://checkout.example")
    assert over_https.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert_hardened(over_https)
    # Behind the trusted proxy, its X-Forwarded-Proto says how the request arrived.
    proxied = client.get("/healthz", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"})
    assert "Strict-Transport-Security" in proxied.headers
    assert "Strict-Transport-Security" not in client.get("/healthz").headers


@pytest.mark.parametrize("origin", ["http://127.0.0.1:5000", "https://elsewhere.example", None])
def test_cors_answers_vary_by_origin_whatever_the_origin(client, origin):
    headers = {"Origin": origin} if origin else {}
    created = client.post("/v1/carts", json={"total_cents": 100}, headers=headers)
    assert "Origin" in created.headers.get("Vary", "")
    preflight = client.options("/v1/gift-cards/balance",
                               headers={**headers, "Access-Control-Request-Method": "POST"})
    assert "Origin" in preflight.headers.get("Vary", "")


def test_readiness_tells_only_the_status_without_the_admin_token(client):
    anonymous = client.get("/readyz")
    assert anonymous.status_code == 200 and anonymous.get_json() == {"status": "ok"}
    assert client.get("/readyz", headers={"Authorization": "Bearer dev-shop-token"}).get_json() == {"status": "ok"}
    merchant = client.get("/readyz", headers=ADMIN).get_json()
    assert set(merchant) == {"status", "database", "rate_limits", "providers", "environment"}


def test_readiness_without_the_token_does_not_say_that_rate_limits_are_off(app, environ):
    degraded = create_app({**environ, "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:9"}).test_client()
    assert degraded.get("/readyz").get_json() == {"status": "degraded"}
    assert degraded.get("/readyz", headers=ADMIN).get_json()["rate_limits"] == "unreachable"


def test_the_demo_sends_its_tokens_only_to_the_configured_address_never_the_host_header(app, live_server):
    """A forged Host header names another server: the demo's backend still calls this service, and the other
    server hears nothing (before, it received the shop token on verify and the admin token on the timeline)."""
    heard: list[dict] = []
    catcher = Flask("catcher")

    @catcher.route("/<path:anything>", methods=["GET", "POST"])
    def listen(anything):
        heard.append({"path": anything, "authorization": flask.request.headers.get("Authorization")})
        return {"status": "accepted"}, 202

    with ServerThread(catcher) as other:
        forged = {"Host": other.url.removeprefix("http://")}
        token = requests.post(f"{live_server.url}/v1/carts", json={"total_cents": 7450}, timeout=5).json()["cart_token"]
        requests.post(f"{live_server.url}/v1/carts/{token}/gift-cards", json={"claim_code": "DEMO-100S-PLIT"},
                      timeout=5).raise_for_status()
        placed = requests.post(f"{live_server.url}/demo/orders", data={"tshirts": "1", "instagift_cart_token": token},
                               headers=forged, allow_redirects=False, timeout=15)
        assert placed.status_code == 303, placed.text
        order_id = placed.headers["Location"].rsplit("/", 1)[-1]
        timeline = requests.get(f"{live_server.url}/demo/orders/{order_id}/timeline", headers=forged, timeout=15)
        assert timeline.status_code == 200 and order_id in timeline.text
        page = requests.get(f"{live_server.url}/demo", headers=forged, timeout=15)
        assert other.url not in page.text
    assert heard == []
