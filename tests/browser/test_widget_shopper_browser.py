"""What a shopper meets (issue 15): words for Instagift trouble and our limits, whole dollars explained, Spanish
and English end to end, a widget that never hangs, the strict CSP, balance mode, and the smaller fixes."""

from __future__ import annotations

import re

import pytest
import requests
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import Widget, run_axe, save_screenshot

pytestmark = pytest.mark.browser

SPLITTABLE_100 = "DEMO-100S-PLIT"
SPLITTABLE_50 = "DEMO-050S-PLIT"
NON_SPLITTABLE_80 = "DEMO-080N-OSPL"
SEVENTY_FIVE_FIFTY = "DEMO-7550-CENT"
REDEEMED = "DEMO-USED-0001"
UNKNOWN = "NOPE-NOPE-NOPE"
APPLY = "**/v1/carts/*/gift-cards"
ACCENT = "rgb(29, 92, 46)"  # the demo's --instagift-accent (#1d5c2e)

PROVIDER_DOWN = "Instagift isn't answering right now. Please try again in a minute, or pay another way."
PROVIDER_BUSY = "Instagift is busy right now. Please try again in a minute, or pay another way."
TIMED_OUT = "The gift card service took too long to answer. Please try again, or pay another way."
WHOLE_DOLLARS = "Gift cards pay whole dollars only, so the remaining $0.50 is paid another way."


def record_events(page: Page) -> None:
    """Collect every instagift:* event into window.seen, from before the page's own scripts run."""
    page.add_init_script("""window.seen = [];
      for (const name of ["ready", "change", "error"]) {
        document.addEventListener("instagift:" + name, (e) => window.seen.push({name, detail: e.detail}));
      }""")


def seen(page: Page, name: str) -> list[dict]:
    return [event["detail"] for event in page.evaluate("window.seen") if event["name"] == name]


def hold(page: Page, pattern: str, method: str = "POST", limit: int = 100) -> list[Route]:
    """Route the first `limit` `method` requests to `pattern` into a list and never answer them (a hung service)."""
    held: list[Route] = []

    def handler(route: Route) -> None:
        if route.request.method == method and len(held) < limit:
            held.append(route)
        else:
            route.fallback()

    page.route(pattern, handler)
    return held


@pytest.fixture
def events_demo(page, live_server) -> Widget:
    """The demo checkout page with every widget event recorded."""
    record_events(page)
    page.goto(f"{live_server.url}/demo")
    widget = Widget(page)
    expect(widget.due).to_have_text("$74.50")
    return widget


# -- Instagift trouble, our limits --------------------------------------------------------------------------

@pytest.mark.parametrize("mode, message, code", [
    ("error_500", PROVIDER_DOWN, "provider_unavailable"),
    ("rate_limit", PROVIDER_BUSY, "provider_rate_limited"),
])
def test_instagift_trouble_is_explained_for_shoppers(events_demo: Widget, instagift, mode, message, code):
    instagift.inject_fault("fetch_claim_code", mode, times=10)

    events_demo.apply(SPLITTABLE_50)

    expect(events_demo.message).to_have_text(message)
    expect(events_demo.input).to_have_value(SPLITTABLE_50)
    expect(events_demo.cards).to_have_count(0)
    errors = seen(events_demo.page, "error")
    assert [(e["code"], e["message"]) for e in errors] == [(code, message)]
    assert "instagift:" not in events_demo.element.inner_text()
    # Once Instagift is back the same code simply works.
    instagift.clear_faults()
    events_demo.apply_button.click()
    expect(events_demo.cards).to_have_count(1)


@pytest.fixture
def environ(environ):
    environ["INSTAGIFT_TIMEOUT_SECONDS"] = "1"
    environ["CART_FAILURE_LIMIT"] = "10"
    environ["CART_LOCK_MINUTES"] = "10"
    return environ


def test_instagift_timing_out_is_explained(demo: Widget, instagift):
    instagift.inject_fault("fetch_claim_code", "timeout", times=10, delay_seconds=3)

    demo.apply(SPLITTABLE_50)

    expect(demo.message).to_have_text(PROVIDER_DOWN)
    expect(demo.cards).to_have_count(0)
    expect(demo.apply_button).to_have_attribute("aria-disabled", "false")


def test_the_cart_locks_at_the_tenth_failure_and_the_right_code_works_before_it(demo: Widget):
    for _ in range(9):
        demo.apply(UNKNOWN)
        expect(demo.message).to_have_text("We couldn't find that claim code. Check it and try again.")
        demo.input.fill("")
    demo.apply(SPLITTABLE_50)  # the right code, after nine typos
    expect(demo.cards).to_have_count(1)
    expect(demo.due).to_have_text("$24.50")

    locked = ("Too many claim codes were not recognised, so gift cards are locked on this order for 10 minutes. "
              "Try again then, or pay another way.")
    demo.apply(UNKNOWN)  # the tenth failure locks the cart (its own answer may still say "couldn't find")
    expect(demo.message).to_have_text(re.compile(
        "^(We couldn't find that claim code. Check it and try again.|" + re.escape(locked) + ")$"))
    demo.input.fill("")
    demo.apply(SPLITTABLE_100)  # locked means locked, even for a real card
    expect(demo.message).to_have_text(locked)
    expect(demo.cards).to_have_count(1)
    expect(demo.due).to_have_text("$24.50")


# -- whole dollars, languages ---------------------------------------------------------------------------------

def test_whole_dollars_are_explained_when_cents_remain_due(demo: Widget):
    demo.apply(SPLITTABLE_100)
    expect(demo.message).to_have_text(f"Gift card ••••PLIT applied: $74.00. Amount still due $0.50. {WHOLE_DOLLARS}")
    # A card that pays the whole total in cents leaves nothing to explain.
    demo.remove_button("PLIT").click()
    expect(demo.cards).to_have_count(0)
    demo.apply(NON_SPLITTABLE_80)
    demo.page.get_by_role("button", name="Apply and forfeit $5.50").click()
    expect(demo.message).to_have_text("Gift card ••••OSPL applied: $74.50. Amount still due $0.00.")


def test_spanish_end_to_end(page, live_server):
    record_events(page)
    with page.expect_request(lambda r: r.url.endswith("/v1/carts") and r.method == "POST") as created:
        page.goto(f"{live_server.url}/demo?lang=es")
    assert created.value.headers["accept-language"] == "es-US"
    widget = Widget(page)
    apply = page.get_by_role("button", name="Aplicar", exact=True)
    expect(apply).to_be_visible()
    expect(widget.input).to_be_visible()  # the label Instagift asks for stays "Instagift Claim Code"

    widget.input.fill(SPLITTABLE_100)
    apply.click()
    expect(widget.message).to_have_text(re.compile(
        r"^Tarjeta regalo ••••PLIT aplicada: 74[.,]00\s?US\$|^Tarjeta regalo ••••PLIT aplicada: \$74[.,]00"))
    expect(widget.message).to_contain_text("Las tarjetas regalo solo pagan dólares enteros, así que los")
    expect(widget.cards.first).to_contain_text("Saldo")
    expect(page.get_by_role("button", name=re.compile("^Quitar la tarjeta regalo ••••PLIT"))).to_be_visible()
    save_screenshot(widget.element, "widget-applied-es.png")

    widget.input.fill(UNKNOWN)
    with page.expect_response(APPLY) as answered:
        apply.click()  # the widget's own Spanish words; the service answered in Spanish too
    assert answered.value.headers["content-language"] == "es"
    expect(widget.message).to_have_text("No encontramos ese código de canje. Revísalo e inténtalo de nuevo.")
    spanish = requests.post(f"{live_server.url}/v1/carts/{widget.cart_token()}/gift-cards",
                            json={"claim_code": SPLITTABLE_100}, headers={"Accept-Language": "es"}, timeout=5)
    assert (spanish.json()["code"], spanish.headers["Content-Language"]) == ("gift_card_already_applied", "es")
    widget.input.fill(SPLITTABLE_100)
    apply.click()  # a problem the widget has no words of its own for: the service's, in Spanish
    expect(widget.message).to_have_text(spanish.json()["detail"])
    assert seen(page, "error")[-1]["code"] == "gift_card_already_applied"


def test_english_end_to_end_sends_and_gets_english(page, live_server):
    with page.expect_request(lambda r: r.url.endswith("/v1/carts") and r.method == "POST") as created:
        page.goto(f"{live_server.url}/demo")
    assert created.value.headers["accept-language"] == "en-US"
    widget = Widget(page)
    widget.apply(SPLITTABLE_100)
    expect(widget.message).to_contain_text(WHOLE_DOLLARS)
    widget.input.fill(UNKNOWN)
    with page.expect_response(APPLY) as answered:
        widget.apply_button.click()
    assert answered.value.headers["content-language"] == "en"
    expect(widget.message).to_have_text("We couldn't find that claim code. Check it and try again.")


def test_page_language_picks_the_strings_when_there_is_no_locale_attribute(page, live_server):
    page.goto(f"{live_server.url}/demo/balance?lang=es")
    page.locator("instagift-claim-code").evaluate("el => el.removeAttribute('locale')")  # <html lang="es"> decides
    expect(page.get_by_role("button", name="Consultar saldo", exact=True)).to_be_visible()
    page.locator("instagift-claim-code").evaluate(
        "el => { el.strings = {check: 'Ver saldo'}; }")  # a storefront still overrides any string
    expect(page.get_by_role("button", name="Ver saldo", exact=True)).to_be_visible()


# -- never hangs -----------------------------------------------------------------------------------------------

def test_a_service_that_never_answers_times_out(events_demo: Widget):
    page = events_demo.page
    held = hold(page, APPLY)
    events_demo.element.evaluate("el => el.setAttribute('timeout', '1')")

    events_demo.apply(SPLITTABLE_50)
    expect(events_demo.message).to_have_text("Checking your claim code…")
    expect(events_demo.message).to_have_text(TIMED_OUT)

    assert len(held) == 1
    expect(events_demo.apply_button).to_have_attribute("aria-disabled", "false")
    assert [e["code"] for e in seen(page, "error")] == ["timeout"]


def test_a_total_change_supersedes_a_hung_request_and_its_answer_is_dropped(events_demo: Widget, live_server):
    page = events_demo.page
    held = hold(page, APPLY)
    events_demo.apply(SPLITTABLE_50)
    expect(events_demo.apply_button).to_have_attribute("aria-disabled", "true")

    with page.expect_event("requestfailed", lambda r: r.url.endswith("/gift-cards")):
        page.get_by_label("T-shirt quantity").select_option("2")  # $99.00

    expect(page.locator("#amount-due")).to_have_text("$99.00")
    expect(events_demo.due).to_have_text("$99.00")
    expect(events_demo.apply_button).to_have_attribute("aria-disabled", "false")
    expect(events_demo.message).to_have_text("")
    # The abandoned request's answer arrives after all; the widget no longer listens to it.
    held[0].fulfill(status=500, json={"code": "internal_error", "detail": "stale"})
    page.unroute(APPLY)
    events_demo.apply(SPLITTABLE_100)  # the next request runs and answers; the stale one said nothing meanwhile
    expect(events_demo.cards).to_have_count(1)
    expect(events_demo.message).to_contain_text("Gift card ••••PLIT applied: $99.00.")
    assert seen(page, "error") == []
    assert seen(page, "change")[-1]["total_cents"] == 9900
    cart = requests.get(f"{live_server.url}/v1/carts/{events_demo.cart_token()}", timeout=5).json()
    assert cart["total_cents"] == 9900


def test_a_newer_total_aborts_the_older_total_change(events_demo: Widget, live_server):
    page = events_demo.page
    hold(page, "**/v1/carts/*", method="PUT", limit=1)
    quantity = page.get_by_label("T-shirt quantity")
    with page.expect_request(lambda r: r.method == "PUT"):
        quantity.select_option("2")  # its PUT never answers
    expect(page.locator("#amount-due")).to_have_text("…")
    expect(events_demo.due).to_have_text("…")
    with page.expect_event("requestfailed", lambda r: r.method == "PUT"):
        quantity.select_option("3")  # $123.50

    expect(page.locator("#amount-due")).to_have_text("$123.50")
    expect(events_demo.due).to_have_text("$123.50")
    cart = requests.get(f"{live_server.url}/v1/carts/{events_demo.cart_token()}", timeout=5).json()
    assert cart["total_cents"] == 12350


def test_the_shop_never_shows_an_amount_for_an_older_total(events_demo: Widget):
    page = events_demo.page
    page.route("**/v1/carts/*", lambda route: route.abort("connectionreset") if route.request.method == "PUT"
               else route.fallback())
    page.get_by_label("T-shirt quantity").select_option("4")

    expect(events_demo.message).to_have_text(
        "We couldn't reach the gift card service. Check your connection and try again.")
    # The widget and the shop agree that no amount due is known for the new total yet.
    expect(page.locator("#amount-due")).to_have_text("…")
    expect(events_demo.due).to_have_text("…")
    page.unroute("**/v1/carts/*")
    events_demo.apply(SPLITTABLE_50)  # the next action sends the total first
    expect(events_demo.cards).to_have_count(1)
    expect(page.locator("#amount-due")).to_have_text("$98.00")  # $148.00 − $50.00
    expect(events_demo.due).to_have_text("$98.00")


def test_ready_and_change_events(events_demo: Widget):
    page = events_demo.page
    ready = seen(page, "ready")
    assert len(ready) == 1 and ready[0]["total_cents"] == 7450 and ready[0]["cart_token"]
    events_demo.apply(SPLITTABLE_50)
    expect(events_demo.cards).to_have_count(1)
    assert seen(page, "change")[-1]["amount_due_cents"] == 2450


# -- strict CSP ------------------------------------------------------------------------------------------------

def test_the_widget_works_and_is_styled_under_a_strict_csp(page, live_server):
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(f"{live_server.url}/demo")
    # The demo's own strict policy, with the frame-ancestors every answer gets (service/api/headers.py).
    assert response.headers["content-security-policy"] == ("default-src 'self'; style-src 'self'; script-src 'self'; "
                                                           "frame-ancestors 'none'")
    widget = Widget(page)
    expect(widget.due).to_have_text("$74.50")

    style = widget.apply_button.evaluate("el => { const s = getComputedStyle(el); "
                                         "return [s.backgroundColor, s.borderTopStyle, s.fontWeight]; }")
    assert style == [ACCENT, "solid", "600"]
    assert widget.input.evaluate("el => getComputedStyle(el).textTransform") == "uppercase"
    widget.apply(SPLITTABLE_50)
    expect(widget.cards).to_have_count(1)
    assert violations == []


# -- balance mode ----------------------------------------------------------------------------------------------

def test_balance_mode_checks_a_card_without_a_cart(page, live_server):
    carts: list[str] = []
    page.on("request", lambda r: carts.append(r.url) if "/v1/carts" in r.url else None)
    page.goto(f"{live_server.url}/demo/balance")
    widget = Widget(page)
    check = page.get_by_role("button", name="Check balance", exact=True)

    widget.input.fill(SPLITTABLE_100)
    check.click()
    expect(widget.message).to_have_text("Gift card ••••PLIT: balance $100.00.")
    save_screenshot(widget.element, "widget-balance.png")
    expect(widget.input).to_have_value("")
    widget.input.fill(SEVENTY_FIVE_FIFTY)
    page.keyboard.press("Enter")
    expect(widget.message).to_have_text(
        "Gift card ••••CENT: balance $75.50; cards pay whole dollars, so it can pay up to $75.00.")
    widget.input.fill(REDEEMED)
    check.click()
    expect(widget.message).to_have_text("That Instagift certificate has already been redeemed.")
    expect(widget.input).to_have_attribute("aria-invalid", "true")
    widget.input.fill(UNKNOWN)
    check.click()
    expect(widget.message).to_have_text("We couldn't find that claim code. Check it and try again.")
    expect(widget.cards).to_have_count(0)
    assert page.locator("input[name=instagift_cart_token]").count() == 0
    widget.element.evaluate("el => el.setAttribute('total-cents', '5000')")  # balance mode has no cart to total
    widget.input.fill(SPLITTABLE_50)
    check.click()
    expect(widget.message).to_have_text("Gift card ••••PLIT: balance $50.00.")
    assert carts == []


# -- the smaller items -----------------------------------------------------------------------------------------

def test_escape_closes_the_forfeit_question(demo: Widget, live_server):
    demo.apply(NON_SPLITTABLE_80)
    expect(demo.page.get_by_role("button", name="Apply and forfeit $5.50")).to_be_focused()

    demo.page.keyboard.press("Escape")

    expect(demo.confirm).to_be_hidden()
    expect(demo.message).to_have_text("Certificate not applied.")
    expect(demo.input).to_be_focused()
    cart = requests.get(f"{live_server.url}/v1/carts/{demo.cart_token()}", timeout=5).json()
    assert cart["gift_cards"] == []


def test_apply_shows_a_busy_state_while_checking(demo: Widget):
    held = hold(demo.page, APPLY)
    opacity = "el => getComputedStyle(el).opacity"
    assert demo.apply_button.evaluate(opacity) == "1"

    demo.apply(SPLITTABLE_50)

    expect(demo.apply_button).to_have_attribute("aria-disabled", "true")
    assert demo.apply_button.evaluate(opacity) == "0.6"
    assert demo.apply_button.evaluate("el => getComputedStyle(el).cursor") == "progress"
    assert len(held) == 1
    held[0].continue_()
    expect(demo.cards).to_have_count(1)
    expect(demo.apply_button).to_have_attribute("aria-disabled", "false")
    assert demo.apply_button.evaluate(opacity) == "1"


def test_a_double_click_on_remove_removes_once_and_reports_no_error(demo: Widget):
    demo.apply(SPLITTABLE_50)
    expect(demo.cards).to_have_count(1)
    deletes: list[str] = []
    demo.page.on("request", lambda r: deletes.append(r.url) if r.method == "DELETE" else None)

    demo.remove_button("PLIT").dblclick()

    expect(demo.message).to_have_text("Gift card ••••PLIT removed. Amount still due $74.50.")
    expect(demo.cards).to_have_count(0)
    expect(demo.input).not_to_have_attribute("aria-invalid", "true")
    assert len(deletes) == 1


def test_an_empty_input_is_marked_invalid(demo: Widget):
    demo.apply_button.click()
    expect(demo.message).to_have_text("Enter your Instagift claim code.")
    expect(demo.input).to_have_attribute("aria-invalid", "true")
    expect(demo.input).to_be_focused()
    demo.apply(SPLITTABLE_50)
    expect(demo.cards).to_have_count(1)
    expect(demo.input).not_to_have_attribute("aria-invalid", "true")


def test_two_cards_ending_alike_are_told_apart(demo: Widget):
    demo.page.get_by_label("T-shirt quantity").select_option("5")  # $172.50
    expect(demo.due).to_have_text("$172.50")
    demo.apply(SPLITTABLE_100)
    expect(demo.cards).to_have_count(1)
    expect(demo.cards.first).to_contain_text("••••PLIT")
    demo.apply(SPLITTABLE_50)

    expect(demo.message).to_have_text("Gift card ••••PLIT (2) applied: $50.00. Amount still due $22.50.")
    expect(demo.cards.nth(0)).to_contain_text("••••PLIT (1)")
    expect(demo.cards.nth(1)).to_contain_text("••••PLIT (2)")
    demo.page.get_by_role("button", name="Remove gift card ••••PLIT (1)").click()
    expect(demo.message).to_have_text("Gift card ••••PLIT (1) removed. Amount still due $122.50.")
    expect(demo.cards).to_have_count(1)
    expect(demo.cards.first).to_contain_text("Balance $50.00")


@pytest.mark.parametrize("width", [375, 1280])
def test_the_demo_page_fits_the_screen_and_says_amount_still_due_once(browser, live_server, width):
    context = browser.new_context(viewport={"width": width, "height": 800}, locale="en-US")
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/demo")
        widget = Widget(page)
        expect(page.locator("#amount-due")).to_have_text("$74.50")
        widget.apply(SPLITTABLE_100)
        expect(widget.cards).to_have_count(1)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        expect(page.get_by_text("Amount still due", exact=True).locator("visible=true")).to_have_count(1)
    finally:
        context.close()


# -- accessibility in every state, both languages, desktop and mobile ------------------------------------------

@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("width", [1280, 375])
def test_axe_finds_no_violations_in_any_state(browser, live_server, instagift, lang, width):
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/demo?lang={lang}")
        widget = Widget(page)
        expect(page.locator("#amount-due")).not_to_have_text("…")
        expect(widget.due).to_have_text(re.compile(r"74[.,]50"))
        apply = widget.apply_button if lang == "en" else page.get_by_role("button", name="Aplicar", exact=True)
        states = {"initial": run_axe(page)}

        widget.input.fill(SPLITTABLE_100)
        apply.click()
        expect(widget.cards).to_have_count(1)
        states["applied, whole dollars explained"] = run_axe(page)

        widget.input.fill(UNKNOWN)
        apply.click()
        expect(widget.input).to_have_attribute("aria-invalid", "true")
        states["error"] = run_axe(page)

        page.get_by_role("button", name=re.compile("^(Remove gift card|Quitar la tarjeta)")).click()
        expect(widget.cards).to_have_count(0)
        widget.input.fill(NON_SPLITTABLE_80)
        apply.click()
        expect(widget.confirm).to_be_visible()
        states["forfeit question"] = run_axe(page)
        page.keyboard.press("Escape")

        instagift.inject_fault("fetch_claim_code", "error_500", times=10)
        widget.input.fill(SPLITTABLE_50)
        apply.click()
        expect(widget.input).to_have_attribute("aria-invalid", "true")
        states["provider trouble"] = run_axe(page)
        instagift.clear_faults()

        held = hold(page, APPLY)
        apply.click()
        expect(apply).to_have_attribute("aria-disabled", "true")
        states["busy"] = run_axe(page)
        held[0].continue_()
        expect(widget.cards).to_have_count(1)

        page.goto(f"{live_server.url}/demo/balance?lang={lang}")
        widget = Widget(page)
        widget.input.fill(SPLITTABLE_100)
        page.keyboard.press("Enter")
        expect(widget.message).to_contain_text("••••PLIT")
        states["balance"] = run_axe(page)

        assert {state: found for state, found in states.items() if found} == {}
    finally:
        context.close()
