"""Playwright fixtures: Debian's chromium (/usr/bin/chromium) driving the demo storefront over real HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
AXE_JS = ROOT / "widget" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Browser:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def environ(environ):
    """Browser tests make more lookups than a shopper would; keep the per-client limit out of their way."""
    environ["LOOKUP_RATE_LIMIT"] = "1000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "1000/minute"
    return environ


@pytest.fixture
def page(browser) -> Page:
    """A fresh browser context (empty sessionStorage) per test."""
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


class Widget:
    """The claim-code widget on a page, found the way a shopper finds it: by its label and button names."""

    def __init__(self, page: Page):
        self.page = page
        self.element = page.locator("instagift-claim-code")
        self.input = page.get_by_label("Instagift Claim Code", exact=True)
        self.apply_button = page.get_by_role("button", name="Apply", exact=True)
        self.message = self.element.locator("[part=message]")
        self.cards = self.element.locator("li[part=card]")
        self.due = self.element.locator("[part=due-amount]")
        self.confirm = self.element.locator("[part=confirm]")

    def apply(self, code: str) -> None:
        self.input.fill(code)
        self.apply_button.click()

    def remove_button(self, masked_tail: str):
        return self.page.get_by_role("button", name=f"Remove gift card ••••{masked_tail}")

    def cart_token(self) -> str:
        return self.page.locator("input[name=instagift_cart_token]").input_value()


@pytest.fixture
def demo(page, live_server) -> Widget:
    """The demo checkout page (1 membership + 1 T-shirt = $74.50) with its cart created."""
    page.goto(f"{live_server.url}/demo")
    widget = Widget(page)
    expect(widget.due).to_have_text("$74.50")
    return widget


def save_screenshot(locator, name: str) -> None:
    """Screenshot into artifacts/; also refresh docs/screenshots/<name> when missing or UPDATE_SCREENSHOTS=1."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    locator.screenshot(path=str(shot), animations="disabled")
    assert shot.stat().st_size > 1000
    docs = ROOT / "docs" / "screenshots" / name
    if not docs.exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1":
        docs.parent.mkdir(parents=True, exist_ok=True)
        docs.write_bytes(shot.read_bytes())


def run_axe(page: Page) -> list[dict]:
    """axe-core's violations on the page (open shadow roots included)."""
    # Evaluated through the DevTools protocol rather than a <script> tag: the demo's strict CSP refuses inline scripts.
    page.evaluate(f"() => {{ if (!window.axe) {{ {AXE_JS.read_text()}\n }} }}")
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "nodes": [n["target"] for n in v["nodes"]]} for v in found]
