"""The demo storefront (development only; 404 in production).

It plays both parts a merchant would build: a checkout page with the widget, and a tiny shop backend that, on
"Place order", verifies the cart and POSTs a signed `order.completed` webhook to this service over HTTP, exactly
as a real shop backend would. The order page then shows the order's timeline through a server-side proxy, so
the admin token never reaches the browser.
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import requests
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from standardwebhooks.webhooks import Webhook

from service.config import Settings
from service.widget.routes import widget_versioned_path

# The demo's own CSS and scripts are same-origin files, so its pages run under the strict policy a storefront may
# have; the widget must work and be styled under it (docs/widget.md lists what a storefront's policy needs).
bp = Blueprint("demo", __name__, static_folder="static", static_url_path="/demo/static")
STRICT_CSP = "default-src 'self'; style-src 'self'; script-src 'self'"
# The demo's languages: the page's `lang` and the widget's `locale` (money formats follow it).
LOCALES = {"en": "en-US", "es": "es-US"}

MEMBERSHIP = {"sku": "MEMBER-GOLD", "title": "Gold membership (1 year)", "unit_price_cents": 5000}
TSHIRT = {"sku": "TEE-1", "title": "Instagift T-shirt", "unit_price_cents": 2450}
MAX_TSHIRTS = 5
CUSTOMER = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "accepts_mail": True}
SHIPPING_ADDRESS = {"name": "Ada Lovelace", "company": None, "address1": "10 Main St", "address2": None,
                    "city": "Springfield", "region": "IL", "postcode": "62701", "country": "US"}
# The sandbox's seeded certificates (docs/instagift.md), shown as hints on the page.
DEMO_CODES = (
    ("DEMO-100S-PLIT", "$100, splittable: the rest stays on a new certificate"),
    ("DEMO-050S-PLIT", "$50, splittable"),
    ("DEMO-025N-OSPL", "$25, not splittable"),
    ("DEMO-080N-OSPL", "$80, not splittable: asks you to accept the forfeit"),
    ("DEMO-USED-0001", "already redeemed"),
    ("DEMO-EXPD-0001", "expired"),
)
HTTP_TIMEOUT = 15


@bp.before_request
def development_only():
    if current_app.extensions["settings"].is_production:
        abort(404)


@bp.after_request
def strict_content_security_policy(response):
    """Every demo page and file is served under the strict CSP the widget has to live with."""
    response.headers["Content-Security-Policy"] = STRICT_CSP
    return response


def _lang(raw: str | None) -> str:
    return raw if raw in LOCALES else "en"


def demo_line_items(tshirts: int) -> list[dict[str, Any]]:
    """The demo cart: one Gold membership and `tshirts` T-shirts."""
    items = [dict(MEMBERSHIP, quantity=1)]
    if tshirts > 0:
        items.append(dict(TSHIRT, quantity=tshirts))
    return items


def cart_total_cents(line_items: list[dict[str, Any]]) -> int:
    """What the demo cart costs, in cents."""
    return sum(item["unit_price_cents"] * item["quantity"] for item in line_items)


def order_completed_body(order_id: str, cart_token: str | None, line_items: list[dict[str, Any]],
                         gift_card_cents: int, now: datetime) -> dict[str, Any]:
    """The `order.completed` event a shop backend sends once payment is taken."""
    placed_at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "order.completed", "timestamp": placed_at,
        "data": {"id": order_id, "number": f"#{order_id.upper()}", "cart_token": cart_token, "currency": "USD",
                 "total_cents": cart_total_cents(line_items), "gift_card_cents": gift_card_cents,
                 "customer": CUSTOMER, "shipping_address": SHIPPING_ADDRESS, "line_items": line_items,
                 "placed_at": placed_at},
    }


def send_signed_webhook(service_url: str, body: dict[str, Any], settings: Settings, now: datetime) -> requests.Response:
    """POST `body` to /v1/webhooks/orders signed with the first webhook secret (Standard Webhooks)."""
    raw = json.dumps(body)
    msg_id = f"msg_demo_{secrets.token_hex(8)}"
    signature = Webhook(settings.webhook_secrets[0]).sign(msg_id, now, raw)
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature, "Content-Type": "application/json"}
    return requests.post(f"{service_url}/v1/webhooks/orders", data=raw.encode(), headers=headers,
                         timeout=HTTP_TIMEOUT)


def gift_card_cents_for_cart(service_url: str, cart_token: str, total_cents: int,
                             settings: Settings) -> tuple[int, str | None]:
    """Verify the cart as the shop backend does before payment; (what gift cards cover, problem text or None)."""
    response = requests.post(f"{service_url}/v1/carts/{cart_token}/verify",
                             headers={"Authorization": f"Bearer {settings.shop_api_token}"}, timeout=HTTP_TIMEOUT)
    body = _json(response)
    if response.status_code != 200:
        return 0, body.get("detail") or body.get("title") or f"The cart could not be verified ({response.status_code})."
    if body.get("total_cents") != total_cents:
        return 0, "The cart total changed; please check the amount due and place the order again."
    return max(0, min(total_cents, total_cents - int(body.get("amount_due_cents", total_cents)))), None


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _service_url() -> str:
    # The demo's "shop backend" calls this very service over HTTP with the shop and admin tokens: at the configured
    # local address (DEMO_SERVICE_URL), never one a request names (a forged Host header would receive the tokens).
    return current_app.extensions["settings"].demo_service_url


def _tshirts(raw: str | None) -> int:
    try:
        return max(0, min(MAX_TSHIRTS, int(raw or 1)))
    except ValueError:
        return 1


def _checkout_page(tshirts: int, lang: str, error: str | None = None, status: int = 200):
    items = demo_line_items(tshirts)
    return render_template("demo/checkout.html", items=items, membership=MEMBERSHIP, tshirt=TSHIRT,
                           tshirts=tshirts, max_tshirts=MAX_TSHIRTS, total_cents=cart_total_cents(items),
                           codes=DEMO_CODES, widget_src=widget_versioned_path(), api_base=_service_url(),
                           error=error, lang=lang, locale=LOCALES[lang]), status


@bp.get("/demo")
def checkout():
    """The demo checkout page: cart lines, the widget, the amount still due and "Place order" (`?lang=es`)."""
    return _checkout_page(_tshirts(request.args.get("tshirts")), _lang(request.args.get("lang")))


@bp.get("/demo/balance")
def balance_page():
    """A "check your gift card balance" page: the widget in balance mode, no cart (`?lang=es`)."""
    lang = _lang(request.args.get("lang"))
    return render_template("demo/balance.html", widget_src=widget_versioned_path(), api_base=_service_url(),
                           lang=lang, locale=LOCALES[lang], codes=DEMO_CODES)


@bp.post("/demo/orders")
def place_order():
    """The demo shop backend: verify the cart, then send the signed order.completed webhook."""
    settings = current_app.extensions["settings"]
    tshirts = _tshirts(request.form.get("tshirts"))
    lang = _lang(request.form.get("lang"))
    items = demo_line_items(tshirts)
    total = cart_total_cents(items)
    cart_token = request.form.get("instagift_cart_token") or None
    gift_card_cents = 0
    if cart_token:
        gift_card_cents, problem = gift_card_cents_for_cart(_service_url(), cart_token, total, settings)
        if problem:
            return _checkout_page(tshirts, lang, error=problem, status=409)
    order_id = f"demo-{secrets.token_hex(4)}"
    now = datetime.now(UTC)
    body = order_completed_body(order_id, cart_token, items, gift_card_cents, now)
    response = send_signed_webhook(_service_url(), body, settings, now)
    if response.status_code not in (200, 202):
        detail = _json(response).get("detail") or f"status {response.status_code}"
        return _checkout_page(tshirts, lang, error=f"The order webhook was refused: {detail}", status=502)
    return redirect(url_for("demo.order_page", order_id=order_id), code=303)


@bp.get("/demo/orders/<order_id>")
def order_page(order_id: str):
    """The placed order; the page polls the timeline until the worker has finished."""
    return render_template("demo/order.html", order_id=order_id)


@bp.get("/demo/orders/<order_id>/timeline")
def order_timeline_proxy(order_id: str):
    """The order's timeline from GET /v1/orders/{id}, fetched server side with the admin token."""
    settings = current_app.extensions["settings"]
    response = requests.get(f"{_service_url()}/v1/orders/{requests.utils.quote(order_id, safe='')}",
                            headers={"Authorization": f"Bearer {settings.admin_api_token}"}, timeout=HTTP_TIMEOUT)
    return _json(response), response.status_code
