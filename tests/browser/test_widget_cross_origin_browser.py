"""The widget embedded the way a merchant embeds it: on the storefront's own origin, the service elsewhere."""

from __future__ import annotations

import html
import re

import pytest
from flask import Flask, request
from playwright.sync_api import expect

from tests.browser.conftest import Widget
from tests.support import ServerThread

pytestmark = pytest.mark.browser


def storefront_app() -> Flask:
    """A bare shop page: script tag from the service's stable URL, the element inside the shop's form."""
    shop = Flask("storefront")

    @shop.get("/checkout")
    def checkout():
        service = html.escape(request.args["service"])
        lang = html.escape(request.args.get("lang", "en"))
        headers = {}
        if request.args.get("csp"):
            # What docs/widget.md tells a storefront with a strict policy to add for a service on another origin.
            headers["Content-Security-Policy"] = (f"default-src 'self'; style-src 'self'; "
                                                  f"script-src 'self' {request.args['service']}; "
                                                  f"connect-src 'self' {request.args['service']}")
        return (f'<!doctype html><html lang="{lang}"><head><title>Shop</title>'
                f'<script src="{service}/widget/v1/instagift-claim-code.js" defer></script></head>'
                f'<body><main><form method="post" action="/order"><h1>Checkout</h1>'
                f'<instagift-claim-code api-base="{service}" total-cents="5250"></instagift-claim-code>'
                f'<button>Pay</button></form></main></body></html>', headers)

    return shop


@pytest.fixture
def storefront():
    with ServerThread(storefront_app()) as server:
        yield server


@pytest.fixture
def environ(environ, storefront):
    environ["ALLOWED_ORIGINS"] = storefront.url
    return environ


def test_widget_works_from_another_origin_through_cors(page, storefront, live_server):
    page.goto(f"{storefront.url}/checkout?service={live_server.url}")
    widget = Widget(page)
    expect(widget.due).to_have_text("$52.50")

    widget.apply("DEMO-100S-PLIT")  # POST with a JSON body: a CORS preflight first
    expect(widget.due).to_have_text("$0.50")
    widget.remove_button("PLIT").click()  # DELETE: preflighted too
    expect(widget.cards).to_have_count(0)
    expect(widget.due).to_have_text("$52.50")
    widget.apply("NOPE-NOPE-NOPE")
    expect(widget.message).to_have_text("We couldn't find that claim code. Check it and try again.")
    # The token is in the shop's own form, ready for its backend.
    assert page.locator("form input[type=hidden][name=instagift_cart_token]").input_value()


def test_an_origin_not_allowed_cannot_use_the_api(page, storefront, live_server):
    other = storefront.url.replace("127.0.0.1", "localhost")  # same server, a different origin
    page.goto(f"{other}/checkout?service={live_server.url}")
    widget = Widget(page)
    expect(widget.message).to_have_text(
        "We couldn't reach the gift card service. Check your connection and try again.")


def test_a_strict_csp_storefront_in_spanish_with_the_service_elsewhere(page, storefront, live_server):
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(f"{storefront.url}/checkout?service={live_server.url}&lang=es&csp=1")
    assert "connect-src" in response.headers["content-security-policy"]
    widget = Widget(page)
    expect(widget.due).to_have_text(re.compile(r"52[.,]50"))
    # <html lang="es"> and no locale attribute: the Spanish strings load from the service, next to the script.
    apply = page.get_by_role("button", name="Aplicar", exact=True)
    expect(apply).to_be_visible()
    assert apply.evaluate("el => getComputedStyle(el).borderTopStyle") == "solid"

    widget.input.fill("NOPE-NOPE-NOPE")
    apply.click()
    expect(widget.message).to_have_text("No encontramos ese código de canje. Revísalo e inténtalo de nuevo.")
    widget.input.fill("DEMO-050S-PLIT")
    apply.click()
    expect(widget.cards).to_have_count(1)
    assert violations == []
