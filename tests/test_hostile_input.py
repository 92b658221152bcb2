"""Bad and hostile input: a clear problem response (never a 500), nothing stored, no secret echoed."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from service.checkout.models import Cart, GiftCardHold
from service.db import db
from service.logs import redact
from service.orders.models import Order
from tests.support import ADMIN, order_completed, signed_webhook

NON_SPLITTABLE_80 = "DEMO-080N-OSPL"


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def post_webhook(client, body, **kwargs):
    raw, headers = signed_webhook(body, **kwargs)
    return client.post("/v1/webhooks/orders", data=raw, headers=headers)


@pytest.mark.parametrize("overrides", [
    {"total_cents": 10**30},
    {"total_cents": 2**63},
    {"gift_card_cents": 10**30},
    {"total_cents": 5000, "gift_card_cents": 1_000_000_000},
    {"total_cents": 5000, "gift_card_cents": 5001},
    {"line_items": [{"sku": "TEE-1", "quantity": 1, "unit_price_cents": 2**63}]},
    {"id": "p2\u0000x"},
    {"number": "#\u0000"},
])
def test_order_webhook_with_impossible_values_is_refused_and_nothing_stored(app, client, overrides):
    response = post_webhook(client, order_completed("h1", **overrides))
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert count(app, Order) == 0


def test_order_webhook_with_an_overlong_id_is_refused(app, client):
    response = post_webhook(client, order_completed("h2"), msg_id="msg_" + "x" * 300)
    assert response.status_code == 422 and "webhook-id" in response.get_json()["errors"]
    assert count(app, Order) == 0


@pytest.mark.parametrize("path", [
    "/v1/jobs/9223372036854775808/retry",
    "/v1/jobs/0/retry",
])
def test_ids_no_row_can_have_are_not_found(client, path):
    response = client.post(path, headers=ADMIN)
    assert response.status_code == 404 and response.mimetype == "application/problem+json"


def test_huge_membership_card_and_gift_card_ids_are_not_found(client):
    assert client.get("/v1/membership-cards/9223372036854775808/preview", headers=ADMIN).status_code == 404
    token = client.post("/v1/carts", json={"total_cents": 1000}).get_json()["cart_token"]
    assert client.delete(f"/v1/carts/{token}/gift-cards/99999999999999999999").status_code == 404


@pytest.mark.parametrize("endpoint", ["/v1/redemptions", "/v1/reconciliation", "/v1/reconciliation/instagift"])
@pytest.mark.parametrize("query", [
    "to=9999-12-31",
    "from=9999-12-30&to=9999-12-31",
    "from=0001-01-01T00:00:00%2B01:00",
    "to=9999-12-31T23:59:59-01:00",
])
def test_dates_at_the_ends_of_the_calendar_are_refused(client, endpoint, query):
    response = client.get(f"{endpoint}?{query}", headers=ADMIN)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == "validation_failed"


@pytest.mark.parametrize("url", ["/v1/orders/abc%00def", "/v1/jobs?kind=a%00b"])
def test_a_nul_character_in_the_address_is_a_bad_request(client, url):
    response = client.get(url, headers=ADMIN)
    assert response.status_code == 400 and response.mimetype == "application/problem+json"


@pytest.mark.parametrize("consent", ["yes", "on", "true", 1, "1"])
def test_only_json_true_counts_as_accepting_a_forfeit(app, client, consent):
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    response = client.post(f"/v1/carts/{token}/gift-cards",
                           json={"claim_code": NON_SPLITTABLE_80, "accept_forfeit": consent})
    assert response.status_code == 422 and "accept_forfeit" in response.get_json()["errors"]
    assert count(app, GiftCardHold) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_body_not_sent_as_json_is_unsupported(app, client, content_type):
    response = client.post("/v1/carts", data='{"total_cents": 1000}', headers={"Content-Type": content_type})
    assert response.status_code == 415 and response.get_json()["code"] == "unsupported_media_type"
    assert count(app, Cart) == 0


def test_json_with_a_charset_or_a_json_suffix_type_is_accepted(client):
    for content_type in ("application/json; charset=utf-8", "application/merchant+json"):
        response = client.post("/v1/carts", data='{"total_cents": 1000}', headers={"Content-Type": content_type})
        assert response.status_code == 201, content_type


def test_a_cart_token_in_the_path_is_masked_whatever_its_shape(client, caplog):
    with caplog.at_level(logging.INFO, logger="service.web"):
        body = client.get("/v1/carts/DEMO100SPLIT").get_json()
    assert body["instance"] == "/v1/carts/••••PLIT"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "/v1/carts/••••PLIT" in logged and "DEMO100SPLIT" not in logged


def test_redaction_keeps_snake_case_names_readable_for_tracebacks():
    text = ('File "service/db.py", in insert_ignoring_conflict_for_the_ledger, '
            "Connection._revalidate_connection(), order ord-audit-1, order tp0-1483")
    assert redact(text) == text
    assert "StringDataRightTruncation" not in redact("psycopg.errors.StringDataRightTruncation")  # could be a key


def nested_body(depth: int) -> str:
    """A body a widget or shop could send, plus one member nested `depth` levels deep (the object is level 1)."""
    return ('{"claim_code":"DEMO-100S-PLIT","total_cents":100,"x":' + "[" * (depth - 1) + "]" * (depth - 1) + "}")


def _deep_sender(client, endpoint: str):
    """A function sending a raw JSON body to `endpoint` (a cart is opened first where the endpoint needs one)."""
    if endpoint == "webhook":
        def send_webhook(raw: str):
            signed, headers = signed_webhook(raw)
            return client.post("/v1/webhooks/orders", data=signed, headers=headers)
        return send_webhook
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    method, path = {
        "balance": ("POST", "/v1/gift-cards/balance"),
        "create_cart": ("POST", "/v1/carts"),
        "update_cart": ("PUT", f"/v1/carts/{token}"),
        "apply": ("POST", f"/v1/carts/{token}/gift-cards"),
    }[endpoint]
    return lambda raw: client.open(path, method=method, data=raw, content_type="application/json")


@pytest.mark.parametrize("depth", [33, 480, 30_000])  # 30,000 levels: about 60 KB, still inside the body limit
@pytest.mark.parametrize("endpoint", ["balance", "create_cart", "update_cart", "apply", "webhook"])
def test_deeply_nested_json_is_a_400_problem_and_changes_nothing(app, client, endpoint, depth):
    raw = nested_body(depth)
    assert len(raw) < app.extensions["settings"].max_request_bytes
    send = _deep_sender(client, endpoint)
    carts_before = count(app, Cart)
    response = send(raw)
    assert response.status_code == 400, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "json_too_deep"
    assert (count(app, Cart), count(app, GiftCardHold), count(app, Order)) == (carts_before, 0, 0)


@pytest.mark.parametrize("endpoint", ["balance", "create_cart", "apply"])
def test_json_nested_up_to_the_limit_is_read(client, endpoint):
    response = _deep_sender(client, endpoint)(nested_body(32))
    assert response.status_code in (200, 201), response.get_json()


def test_no_log_record_is_longer_than_a_few_kilobytes(capfd):
    """A traceback 1,000 frames deep once wrote 107 KB per request: a record keeps its beginning and its end."""
    import json
    import logging

    from service.logs import configure_logging

    configure_logging("json")

    def dive(depth: int) -> int:
        return dive(depth + 1) + 1

    try:
        dive(0)
    except RecursionError:
        logging.getLogger("service.web").exception("unhandled error while reading %s", "more " * 5_000)
    [line] = [line for line in capfd.readouterr().err.splitlines() if "unhandled error" in line]
    assert len(line.encode()) < 8 * 1024
    entry = json.loads(line)
    assert entry["message"].startswith("unhandled error while reading more more") and "left out" in entry["message"]
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("RecursionError: maximum recursion depth exceeded")


@pytest.mark.parametrize("authorization", [
    "Bearer not-the-shop-token",
    "Bearer dev-shop-token-and-more",
    "Bearer ",
    "Basic dev-shop-token",
    "dev-shop-token",
])
def test_verify_refuses_any_authorization_but_the_shop_token(client, authorization):
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    response = client.post(f"/v1/carts/{token}/verify", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="shop"'
    assert "dev-shop-token" not in response.get_data(as_text=True)
    # The scheme is case-insensitive (RFC 9110 § 11.1) and the same cart verifies with the right token.
    assert client.post(f"/v1/carts/{token}/verify", headers={"Authorization": "bearer dev-shop-token"}).status_code == 200
