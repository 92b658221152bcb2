"""The widget as a shopper uses it: real Chromium on the demo storefront, the service and sandbox over HTTP."""

from __future__ import annotations

import os
import shutil

import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS, ROOT, Widget, run_axe

pytestmark = pytest.mark.browser

SPLITTABLE_100 = "DEMO-100S-PLIT"
SPLITTABLE_50 = "DEMO-050S-PLIT"
NON_SPLITTABLE_25 = "DEMO-025N-OSPL"
NON_SPLITTABLE_80 = "DEMO-080N-OSPL"
REDEEMED = "DEMO-USED-0001"
EXPIRED = "DEMO-EXPD-0001"
SCREENSHOT = ROOT / "docs" / "screenshots" / "widget-applied.png"


def server_cart(live_server, token: str) -> dict:
    response = requests.get(f"{live_server.url}/v1/carts/{token}", timeout=5)
    response.raise_for_status()
    return response.json()


def test_apply_a_claim_code_shows_balance_applied_and_amount_due(demo: Widget, live_server):
    demo.apply(SPLITTABLE_100)

    expect(demo.cards).to_have_count(1)
    card = demo.cards.first
    expect(card).to_contain_text("••••PLIT")
    expect(card).to_contain_text("Balance $100.00")
    expect(card).to_contain_text("Applied $74.00")
    expect(card).to_contain_text("The remaining $26.00 stays on a new Instagift certificate after your order.")
    expect(demo.due).to_have_text("$0.50")
    expect(demo.message).to_have_text("Gift card ••••PLIT applied: $74.00. Amount still due $0.50. Gift cards pay "
                                      "whole dollars only, so the remaining $0.50 is paid another way.")
    expect(demo.input).to_have_value("")
    # The storefront heard `instagift:change` and updated its own summary.
    expect(demo.page.locator("#amount-due")).to_have_text("$0.50")
    # The widget never shows the code in full once applied.
    assert SPLITTABLE_100 not in demo.element.evaluate("el => el.shadowRoot.innerHTML")
    assert server_cart(live_server, demo.cart_token())["amount_due_cents"] == 50

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "widget-applied.png"
    demo.element.screenshot(path=str(shot), animations="disabled")
    assert shot.stat().st_size > 1000
    if not SCREENSHOT.exists() or _refresh_screenshots():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def _refresh_screenshots() -> bool:
    return os.environ.get("UPDATE_SCREENSHOTS") == "1"


def test_apply_a_second_card_then_remove_one(demo: Widget, live_server):
    demo.page.get_by_label("T-shirt quantity").select_option("3")  # $50 + 3 × $24.50 = $123.50
    expect(demo.due).to_have_text("$123.50")

    demo.apply(SPLITTABLE_50)
    expect(demo.cards).to_have_count(1)
    expect(demo.due).to_have_text("$73.50")
    demo.apply(NON_SPLITTABLE_25)
    expect(demo.cards).to_have_count(2)
    expect(demo.cards.nth(1)).to_contain_text("Applied $25.00")
    expect(demo.due).to_have_text("$48.50")

    demo.remove_button("PLIT").click()
    expect(demo.cards).to_have_count(1)
    expect(demo.cards.first).to_contain_text("••••OSPL")
    expect(demo.due).to_have_text("$98.50")
    expect(demo.message).to_have_text("Gift card ••••PLIT removed. Amount still due $98.50.")
    cart = server_cart(live_server, demo.cart_token())
    assert cart["total_cents"] == 12350
    assert [c["code"] for c in cart["gift_cards"]] == ["••••OSPL"]


@pytest.mark.parametrize("code, message", [
    ("NOPE-NOPE-NOPE", "We couldn't find that claim code. Check it and try again."),
    (REDEEMED, "That Instagift certificate has already been redeemed."),
    (EXPIRED, "That Instagift certificate has expired."),
])
def test_a_code_that_cannot_be_used_shows_why_and_changes_nothing(demo: Widget, live_server, code, message):
    demo.apply(SPLITTABLE_50)
    expect(demo.due).to_have_text("$24.50")
    before = server_cart(live_server, demo.cart_token())

    demo.apply(code)

    expect(demo.message).to_have_text(message)
    expect(demo.input).to_have_attribute("aria-invalid", "true")
    expect(demo.input).to_have_value(code)
    expect(demo.cards).to_have_count(1)
    expect(demo.due).to_have_text("$24.50")
    after = server_cart(live_server, demo.cart_token())
    assert after["gift_cards"] == before["gift_cards"]
    assert after["amount_due_cents"] == before["amount_due_cents"] == 2450


def test_non_splittable_card_worth_more_than_due_needs_explicit_confirmation(demo: Widget, live_server):
    demo.apply(NON_SPLITTABLE_80)

    expect(demo.confirm).to_be_visible()
    expect(demo.confirm).to_contain_text("$5.50 of its $80.00 value will be forfeited (lost)")
    expect(demo.cards).to_have_count(0)
    assert server_cart(live_server, demo.cart_token())["gift_cards"] == []

    demo.page.get_by_role("button", name="Cancel").click()
    expect(demo.confirm).to_be_hidden()
    expect(demo.message).to_have_text("Certificate not applied.")
    assert server_cart(live_server, demo.cart_token())["gift_cards"] == []

    demo.apply_button.click()
    demo.page.get_by_role("button", name="Apply and forfeit $5.50").click()

    expect(demo.confirm).to_be_hidden()
    expect(demo.cards).to_have_count(1)
    expect(demo.cards.first).to_contain_text("Applied $74.50")
    expect(demo.cards.first).to_contain_text("$5.50 of this card's value will be forfeited.")
    expect(demo.due).to_have_text("$0.00")
    cart = server_cart(live_server, demo.cart_token())
    assert cart["gift_cards"][0]["forfeit_cents"] == 550
    assert cart["amount_due_cents"] == 0


def test_a_forfeit_question_is_withdrawn_when_the_total_changes(demo: Widget, live_server):
    demo.apply(NON_SPLITTABLE_80)
    expect(demo.confirm).to_contain_text("Your order needs $74.50")

    demo.page.get_by_label("T-shirt quantity").select_option("2")  # $99.00: the $5.50 quoted no longer holds

    expect(demo.confirm).to_be_hidden()
    expect(demo.message).to_have_text("Your order total changed, so the certificate was not applied. Amount still "
                                      "due $99.00. Apply the code again if you still want to use it.")
    assert server_cart(live_server, demo.cart_token())["gift_cards"] == []
    demo.apply_button.click()  # asked again, it now fits under the new total: no question, all $80 applied
    expect(demo.cards.first).to_contain_text("Applied $80.00")
    expect(demo.due).to_have_text("$19.00")


def test_a_card_forfeiting_more_than_agreed_after_a_total_change_is_taken_off_and_the_shopper_told(
        demo: Widget, live_server):
    demo.apply(NON_SPLITTABLE_80)
    demo.page.get_by_role("button", name="Apply and forfeit $5.50").click()
    expect(demo.cards.first).to_contain_text("$5.50 of this card's value will be forfeited.")

    demo.page.get_by_label("T-shirt quantity").select_option("0")  # $50.00: $30.00 would be lost, $5.50 was agreed

    expect(demo.message).to_have_text("Gift card ••••OSPL was taken off: with the new total more of its value would "
                                      "be forfeited than you agreed. Apply it again if you still want to use it. "
                                      "Amount still due $50.00.")
    expect(demo.cards).to_have_count(0)
    expect(demo.due).to_have_text("$50.00")
    expect(demo.page.locator("#amount-due")).to_have_text("$50.00")
    assert server_cart(live_server, demo.cart_token())["gift_cards"] == []
    demo.apply(NON_SPLITTABLE_80)  # applying it again asks with the new figures
    expect(demo.confirm).to_contain_text("$30.00 of its $80.00 value will be forfeited (lost)")


def _tab_until_focused(page, locator, limit: int = 30) -> None:
    for _ in range(limit):
        if locator.evaluate("el => el === (el.getRootNode().activeElement)"):
            return
        page.keyboard.press("Tab")
    raise AssertionError("keyboard focus never reached the element")


def _focus_is_visible(locator) -> bool:
    return locator.evaluate("el => getComputedStyle(el).outlineStyle !== 'none' && "
                            "parseFloat(getComputedStyle(el).outlineWidth) >= 2")


def test_keyboard_only_apply_confirm_and_remove(demo: Widget):
    page = demo.page
    page.locator("body").click(position={"x": 5, "y": 5})
    _tab_until_focused(page, demo.input)
    page.keyboard.type(SPLITTABLE_50)
    page.keyboard.press("Enter")
    expect(demo.cards).to_have_count(1)
    expect(demo.due).to_have_text("$24.50")
    # Focus stays in the input, ready for another code; the confirmation gets focus when it appears.
    page.keyboard.type(NON_SPLITTABLE_25)
    page.keyboard.press("Enter")
    confirm = page.get_by_role("button", name="Apply and forfeit $0.50")
    expect(confirm).to_be_focused()
    assert _focus_is_visible(confirm)
    page.keyboard.press("Enter")
    expect(demo.cards).to_have_count(2)
    expect(demo.due).to_have_text("$0.00")

    remove = demo.remove_button("PLIT")
    _tab_until_focused(page, remove)
    assert _focus_is_visible(remove)
    page.keyboard.press("Enter")
    expect(demo.cards).to_have_count(1)
    expect(demo.input).to_be_focused()
    assert _focus_is_visible(demo.input)
    expect(demo.due).to_have_text("$49.50")  # the $25 card alone: $74.50 − $25.00


def test_axe_finds_no_accessibility_violations_on_the_demo_page(demo: Widget):
    assert run_axe(demo.page) == []
    demo.apply(SPLITTABLE_50)
    expect(demo.cards).to_have_count(1)
    demo.apply("NOPE-NOPE-NOPE")
    expect(demo.message).to_contain_text("couldn't find")
    assert _violations(demo) == []
    demo.apply(NON_SPLITTABLE_80)
    expect(demo.confirm).to_be_visible()
    assert _violations(demo) == []


def _violations(demo: Widget) -> list[dict]:
    found = demo.page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]} for v in found]


def test_total_changes_follow_the_cart_and_recompute_applied_amounts(demo: Widget, live_server):
    demo.apply(SPLITTABLE_100)
    expect(demo.due).to_have_text("$0.50")
    demo.page.get_by_label("T-shirt quantity").select_option("4")  # $50 + 4 × $24.50 = $148
    expect(demo.due).to_have_text("$48.00")
    expect(demo.cards.first).to_contain_text("Applied $100.00")
    demo.page.get_by_label("T-shirt quantity").select_option("0")  # $50
    expect(demo.due).to_have_text("$0.00")
    expect(demo.cards.first).to_contain_text("Applied $50.00")
    assert server_cart(live_server, demo.cart_token())["total_cents"] == 5000


def test_cart_survives_a_reload_in_the_same_tab(demo: Widget):
    demo.apply(SPLITTABLE_50)
    expect(demo.cards).to_have_count(1)
    token = demo.cart_token()
    demo.page.reload()
    widget = Widget(demo.page)
    expect(widget.cards).to_have_count(1)
    expect(widget.due).to_have_text("$24.50")
    assert widget.cart_token() == token


def test_network_down_is_explained(demo: Widget):
    demo.page.route("**/v1/carts/**", lambda route: route.abort("internetdisconnected"))
    demo.apply(SPLITTABLE_50)
    expect(demo.message).to_have_text(
        "We couldn't reach the gift card service. Check your connection and try again.")
    expect(demo.cards).to_have_count(0)


def test_strings_can_be_overridden_for_another_language(demo: Widget):
    demo.element.evaluate("el => { el.strings = {label: 'Code Instagift', apply: 'Appliquer', "
                          "due: 'Reste à payer'}; }")
    expect(demo.page.get_by_label("Code Instagift", exact=True)).to_be_visible()
    expect(demo.page.get_by_role("button", name="Appliquer", exact=True)).to_be_visible()
    expect(demo.element.locator("[part=due]")).to_contain_text("Reste à payer")


def test_shop_css_does_not_leak_into_the_widget(demo: Widget):
    # The demo page styles every <input> with a dotted red border; the widget's input must not get it.
    style = demo.input.evaluate("el => getComputedStyle(el).borderTopStyle")
    assert style == "solid"


def test_place_order_sends_the_signed_webhook_and_shows_the_timeline(demo: Widget, live_server, run_jobs):
    demo.apply(SPLITTABLE_100)
    expect(demo.due).to_have_text("$0.50")
    token = demo.cart_token()

    demo.page.get_by_role("button", name="Place order").click()

    expect(demo.page.get_by_role("heading", level=2)).to_contain_text("is placed")
    order_id = demo.page.locator("#order-number").inner_text()
    jobs = demo.page.locator("#jobs")
    expect(jobs).to_contain_text("queued")
    run_jobs()
    expect(demo.page.locator("#timeline-status")).to_have_text("Done: the worker has finished this order.")
    expect(demo.page.locator("#redemptions")).to_contain_text("••••PLIT: $74.00 — succeeded")
    expect(demo.page.locator("#thank-you-card")).to_contain_text("placed")
    expect(demo.page.locator("#membership-cards")).to_contain_text("submitted")
    # The shop backend told the service what the order took from gift cards, against the widget's cart.
    timeline = requests.get(f"{live_server.url}/v1/orders/{order_id}",
                            headers={"Authorization": "Bearer dev-admin-token"}, timeout=5).json()
    assert timeline["order"]["gift_card_cents"] == 7400
    assert timeline["order"]["has_cart"] is True
    assert token not in demo.page.content()
    demo.page.screenshot(path=str(ARTIFACTS / "order-timeline.png"), full_page=True)


def test_an_expired_cart_is_replaced_and_the_shopper_told(demo: Widget, app):
    from datetime import timedelta

    import sqlalchemy as sa

    from service.checkout.models import Cart
    from service.checkout.rules import hash_token
    from service.db import db, utcnow

    demo.apply(SPLITTABLE_50)
    expect(demo.cards).to_have_count(1)
    old_token = demo.cart_token()
    with app.app_context():
        db.session.execute(sa.update(Cart).where(Cart.token_hash == hash_token(old_token))
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()

    demo.apply(NON_SPLITTABLE_25)

    expect(demo.message).to_have_text(
        "Your checkout session expired, so gift cards were removed. Please enter your code again.")
    expect(demo.cards).to_have_count(0)
    expect(demo.due).to_have_text("$74.50")
    expect(demo.page.locator("input[name=instagift_cart_token]")).not_to_have_value(old_token)
    # The code is still in the input: one more press applies it to the new cart.
    demo.apply_button.click()
    expect(demo.cards).to_have_count(1)
    expect(demo.due).to_have_text("$49.50")


def test_a_card_held_by_another_checkout_is_refused(demo: Widget, browser, live_server):
    demo.apply(SPLITTABLE_50)
    expect(demo.cards).to_have_count(1)
    other_context = browser.new_context()
    try:
        other = other_context.new_page()
        other.goto(f"{live_server.url}/demo")
        second = Widget(other)
        expect(second.due).to_have_text("$74.50")
        second.apply(SPLITTABLE_50)
        expect(second.message).to_have_text(
            "That Instagift certificate is already being used in another checkout.")
        expect(second.cards).to_have_count(0)
    finally:
        other_context.close()


def test_the_widget_accepts_exactly_the_forfeit_it_showed(demo: Widget):
    import json

    demo.apply(NON_SPLITTABLE_80)
    expect(demo.confirm).to_contain_text("$5.50 of its $80.00 value will be forfeited")
    with demo.page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/gift-cards")) as sent:
        demo.page.get_by_role("button", name="Apply and forfeit $5.50").click()
    body = json.loads(sent.value.post_data)
    assert (body["accept_forfeit"], body["accept_forfeit_cents"]) == (True, 550)
    expect(demo.cards).to_have_count(1)
