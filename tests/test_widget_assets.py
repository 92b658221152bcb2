"""Serving the widget: stable URL with a short cache, immutable versioned file, manifest; demo off in production."""

from __future__ import annotations

import base64
import gzip
import hashlib

import brotli
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


def test_manifest_carries_absolute_urls(client):
    manifest = client.get("/widget/v1/manifest.json", base_url="https://checkout.example").get_json()
    assert manifest["url"] == f"https://checkout.example/widget/v1/{manifest['file']}"
    spanish = manifest["languages"]["es"]
    assert spanish["url"] == f"https://checkout.example/widget/v1/{spanish['file']}"


@pytest.mark.parametrize("accept, encoding, decode", [
    ("gzip, deflate, br, zstd", "br", brotli.decompress),  # what Chromium sends: brotli is smaller
    ("gzip", "gzip", gzip.decompress),
    ("br;q=0, gzip", "gzip", gzip.decompress),
    ("", None, bytes),
])
def test_widget_is_served_compressed_as_the_browser_asks(client, accept, encoding, decode):
    manifest = widget_manifest()
    for path in ("/widget/v1/instagift-claim-code.js", f"/widget/v1/{manifest['file']}"):
        response = client.get(path, headers={"Accept-Encoding": accept} if accept else {})
        assert response.status_code == 200
        assert response.headers.get("Content-Encoding") == encoding
        assert "Accept-Encoding" in response.headers["Vary"]
        assert hashlib.sha256(decode(response.data)).hexdigest() == manifest["sha256"]
        if encoding:
            assert len(response.data) <= manifest["gzip_bytes"] <= 6144


def test_a_compressed_and_a_plain_answer_have_different_etags(client):
    plain = client.get("/widget/v1/instagift-claim-code.js").headers["ETag"]
    gzipped = client.get("/widget/v1/instagift-claim-code.js", headers={"Accept-Encoding": "gzip"}).headers["ETag"]
    assert plain != gzipped
    again = client.get("/widget/v1/instagift-claim-code.js", headers={"Accept-Encoding": "gzip",
                                                                      "If-None-Match": gzipped})
    assert again.status_code == 304


def test_language_files_are_served_immutable(client):
    spanish = widget_manifest()["languages"]["es"]
    response = client.get(f"/widget/v1/{spanish['file']}", headers={"Accept-Encoding": "br"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    body = brotli.decompress(response.data)
    assert hashlib.sha256(body).hexdigest() == spanish["sha256"]
    assert "Importe pendiente" in body.decode()


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
                                          ("GET", "/demo/orders/1001"), ("GET", "/demo/orders/1001/timeline"),
                                          ("GET", "/demo/balance"), ("GET", "/demo/static/demo.css")])
def test_demo_is_not_found_in_production(production_app, method, path):
    response = production_app.test_client().open(path, method=method)
    assert response.status_code == 404


def test_widget_is_served_in_production(production_app):
    assert production_app.test_client().get("/widget/v1/instagift-claim-code.js").status_code == 200
