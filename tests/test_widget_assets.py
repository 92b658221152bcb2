"""Serving the widget: stable URL with a short cache, immutable versioned file, manifest; demo off in production."""

from __future__ import annotations

import base64
import hashlib

import pytest

from service import create_app
from service.widget.routes import widget_manifest


def test_stable_url_serves_the_current_build_with_a_short_cache(client):
    response = client.get("/widget/v1/instagift-claim-code.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert "max-age=300" in response.headers["Cache-Control"]
    assert "immutable" not in response.headers["Cache-Control"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert hashlib.sha256(response.data).hexdigest() == widget_manifest()["sha256"]


def test_versioned_url_is_cacheable_forever_and_matches_its_integrity(client):
    manifest = client.get("/widget/v1/manifest.json").get_json()
    response = client.get(manifest["url"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(response.data).digest()).decode()
    assert integrity == manifest["integrity"]


def test_conditional_request_gets_not_modified(client):
    etag = client.get("/widget/v1/instagift-claim-code.js").headers["ETag"]
    again = client.get("/widget/v1/instagift-claim-code.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.data == b""


def test_an_old_or_unknown_version_is_not_found(client):
    response = client.get("/widget/v1/instagift-claim-code.000000000000.js")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_demo_page_embeds_the_versioned_widget(client):
    page = client.get("/demo")
    assert page.status_code == 200
    assert widget_manifest()["file"] in page.get_data(as_text=True)
    assert "<instagift-claim-code" in page.get_data(as_text=True)


@pytest.fixture
def production_app(database_url):
    return create_app({
        "SERVICE_ENV": "production", "DATABASE_URL": database_url, "WEBHOOK_SECRETS": "whsec_cHJvZHVjdGlvbi1zZWNyZXQ=",
        "SHOP_API_TOKEN": "shop-token-0123456789", "ADMIN_API_TOKEN": "admin-token-0123456789",
        "INSTAGIFT_MERCHANT_KEY": "key", "INSTAGIFT_MERCHANT_SECRET": "secret", "CARDLY_ENABLED": "false",
        "ALLOWED_ORIGINS": "https://shop.example", "RATELIMIT_STORAGE_URI": "memory://",
        "SECRET_KEY": "secret-key-0123456789-0123456789-0123",
    })


@pytest.mark.parametrize("method, path", [("GET", "/demo"), ("POST", "/demo/orders"),
                                          ("GET", "/demo/orders/1001"), ("GET", "/demo/orders/1001/timeline")])
def test_demo_is_not_found_in_production(production_app, method, path):
    response = production_app.test_client().open(path, method=method)
    assert response.status_code == 404


def test_widget_is_served_in_production(production_app):
    assert production_app.test_client().get("/widget/v1/instagift-claim-code.js").status_code == 200
