"""The demo storefront's shop backend: verify the cart, then a signed order.completed over real HTTP."""

from __future__ import annotations

import hashlib
import json
import re

import requests
import sqlalchemy as sa

from service.db import db
from service.orders.models import Order


def cart_with_card(live_server, code: str, total_cents: int = 7450) -> str:
    token = requests.post(f"{live_server.url}/v1/carts", json={"total_cents": total_cents, "currency": "USD"},
                          timeout=5).json()["cart_token"]
    applied = requests.post(f"{live_server.url}/v1/carts/{token}/gift-cards", json={"claim_code": code}, timeout=5)
    assert applied.status_code == 200, applied.text
    return token


def place_order(live_server, token: str | None, tshirts: int = 1) -> requests.Response:
    form = {"tshirts": str(tshirts)}
    if token:
        form["instagift_cart_token"] = token
    return requests.post(f"{live_server.url}/demo/orders", data=form, allow_redirects=False, timeout=15)


def orders(app) -> list[Order]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Order)))


def test_place_order_sends_a_signed_order_completed_with_the_cart_and_what_it_covers(
        app, live_server, run_jobs, instagift):
    token = cart_with_card(live_server, "DEMO-050S-PLIT")

    response = place_order(live_server, token)

    assert response.status_code == 303
    order_id = re.fullmatch(r"/demo/orders/(demo-[0-9a-f]{8})", response.headers["Location"]).group(1)
    [order] = orders(app)
    assert order.shop_order_id == order_id
    # At rest the order keeps only the token's hash, in its column and in the stored payload.
    assert order.cart_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(order.payload) and order.payload["cart_token_hash"] == order.cart_token_hash
    assert (order.total_cents, order.gift_card_cents) == (7450, 5000)
    assert order.customer_email == "ada@example.com"
    assert [line["sku"] for line in order.payload["line_items"]] == ["MEMBER-GOLD", "TEE-1"]
    assert order.payload["shipping_address"]["city"] == "Springfield"

    run_jobs()
    certificate = instagift.certificate_by_code("DEMO-050S-PLIT")
    assert [r["amount_cents"] for r in instagift.redemptions_for(certificate["id"])] == [5000]
    timeline = requests.get(f"{live_server.url}/demo/orders/{order_id}/timeline", timeout=5)
    assert timeline.status_code == 200
    assert timeline.json()["order"]["id"] == order_id


def test_place_order_without_a_cart_pays_nothing_with_gift_cards(app, live_server):
    response = place_order(live_server, None, tshirts=0)
    assert response.status_code == 303
    [order] = orders(app)
    assert (order.total_cents, order.gift_card_cents, order.cart_token_hash) == (5000, 0, None)


def test_a_cart_that_no_longer_verifies_sends_no_order(app, live_server, instagift):
    token = cart_with_card(live_server, "DEMO-050S-PLIT")
    instagift.spend_elsewhere(instagift.certificate_by_code("DEMO-050S-PLIT")["id"], 5000)

    response = place_order(live_server, token)

    assert response.status_code == 409
    assert 'id="order-error"' in response.text
    assert orders(app) == []


def test_a_form_total_that_differs_from_the_cart_sends_no_order(app, live_server):
    token = cart_with_card(live_server, "DEMO-050S-PLIT")
    response = place_order(live_server, token, tshirts=2)  # $99.00, the cart says $74.50
    assert response.status_code == 409
    assert "The cart total changed" in response.text
    assert orders(app) == []


def test_timeline_proxy_keeps_the_admin_token_server_side(app, live_server):
    page = requests.get(f"{live_server.url}/demo/orders/nope", timeout=5)
    assert page.status_code == 200
    assert "dev-admin-token" not in page.text
    missing = requests.get(f"{live_server.url}/demo/orders/nope/timeline", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["code"] == "order_not_found"
