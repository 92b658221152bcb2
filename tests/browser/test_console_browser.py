"""The merchant console in Chromium: sign in, an order's page, retry a dead job, download the ledger CSV, sign out;
axe-core on every page at 1280 and 375 px; no full claim code or cart token on any page; CSRF and expiry."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from service.db import db
from service.jobs.models import Job
from service.jobs.queue import enqueue
from service.jobs.registry import PermanentFailure, handler
from service.membership.models import MembershipCard
from service.orders.models import Order
from service.providers.instagift import normalise_claim_code
from tests.browser.conftest import ARTIFACTS, ROOT, run_axe
from tests.support import SHOP, cancel_order, order_completed, signed_webhook

pytestmark = pytest.mark.browser

ANNA = "anna-token-0123456789abcdef"
ORDER_ID = "5001"
GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000}
TEE = {"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "unit_price_cents": 2450}
SCREENSHOTS = ROOT / "docs" / "screenshots"


@handler("test_console_browser_fails")
def _fails(ctx):
    raise PermanentFailure("the merchant's template is missing")


@pytest.fixture
def environ(environ):
    environ["ADMIN_API_TOKENS"] = f"anna:{ANNA}"
    return environ


@pytest.fixture
def full_order(app, client, sandbox, run_jobs):
    """A real checkout: a claim code applied and verified, the order completed with a membership, every job run,
    and one dead job on the order. Returns (claim code, cart token, dead job id)."""
    state = sandbox.app.extensions["sandbox"]["instagift"]
    _, code = state.add_certificate(10000, splittable=True)
    token = client.post("/v1/carts", json={"total_cents": 7450}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}).status_code in (200, 201)
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200
    raw, headers = signed_webhook(order_completed(ORDER_ID, cart_token=token, total_cents=7450, gift_card_cents=7400,
                                                  line_items=[GOLD, TEE]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    run_jobs()
    run_jobs()
    cancel_order(client, ORDER_ID)  # after its card was redeemed: "refund manually" needs a person
    run_jobs()
    with app.app_context():
        order_row = db.session.scalar(db.select(Order.id).where(Order.shop_order_id == ORDER_ID))
        enqueue(db.session, "test_console_browser_fails", {}, order_id=order_row)
        db.session.commit()
        job_id = db.session.scalar(db.select(db.func.max(Job.id)))
    run_jobs()
    return code, token, job_id


def sign_in(page: Page, url: str, next_path: str = "/admin/") -> None:
    page.goto(url + next_path)
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    page.get_by_label("Your admin token").fill(ANNA)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_contain_text("anna")


def test_sign_in_order_retry_download_and_sign_out(page: Page, live_server, full_order, app):
    code, token, job_id = full_order
    sign_in(page, live_server.url)
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("1 dead jobs"))).to_be_visible()

    last4 = normalise_claim_code(code)[-4:]
    page.get_by_role("link", name="orders needing attention").click()
    expect(page.get_by_role("link", name=ORDER_ID, exact=True)).to_be_visible()
    page.get_by_label("Order id or last 4 of a gift card").fill(last4.lower())
    page.get_by_label("Attention").select_option("")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("1 orders, newest first.")).to_be_visible()
    expect(page.get_by_role("cell", name="••••" + last4)).to_be_visible()
    page.get_by_label("Order id or last 4 of a gift card").fill(ORDER_ID)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=ORDER_ID, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Order {ORDER_ID}")
    expect(page.locator(".timeline")).to_contain_text("redeemed")
    expect(page.get_by_role("cell", name="••••" + normalise_claim_code(code)[-4:]).first).to_be_visible()
    refund = page.locator(".attention", has_text="cancelled after redeemed")
    refund.get_by_label("What was done (optional)").fill("Refunded $74.00 by card")
    refund.get_by_role("button", name="Mark resolved").click()
    expect(page.get_by_role("status")).to_contain_text("Marked resolved")
    expect(page.locator(".attention.resolved", has_text="cancelled after redeemed")).to_contain_text(
        "by anna: Refunded $74.00 by card")
    expect(page.locator("section:has(#order-audit)").get_by_role("cell", name="resolve", exact=True)).to_be_visible()

    page.get_by_role("link", name="Failures").click()
    page.get_by_role("button", name=f"Retry job {job_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Job {job_id} (test_console_browser_fails) is queued again")
    with app.app_context():
        assert db.session.get(Job, job_id).state == "queued"

    page.get_by_role("link", name="Ledger").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("redemptions_")
    csv_text = Path(download.path()).read_text(encoding="utf-8")
    assert ORDER_ID in csv_text and code not in csv_text

    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("cell", name="retry")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto(f"{live_server.url}/admin/ledger")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/ledger"))


def _console_pages(app) -> dict[str, str]:
    with app.app_context():
        card_id = db.session.scalar(db.select(MembershipCard.id))
    return {"overview": "/admin/", "ledger": "/admin/ledger", "reconciliation": "/admin/reconciliation",
            "failures": "/admin/failures", "audit": "/admin/audit", "cards": "/admin/cards",
            "orders": "/admin/orders", "orders-search": f"/admin/orders?q={ORDER_ID}&attention=open",
            "order": f"/admin/orders/{ORDER_ID}",
            "thank-you-preview": f"/admin/orders/{ORDER_ID}/thank-you-card/preview",
            "membership-preview": f"/admin/membership-cards/{card_id}/preview"}


@pytest.mark.parametrize("width", [1280, 375])
def test_every_page_is_accessible_and_shows_no_secret(browser, live_server, full_order, width, app):
    code, token, job_id = full_order
    # axe-core is injected as an inline script, which the pages' CSP (rightly) refuses.
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-US", bypass_csp=True)
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        sign_in(page, live_server.url)
        pages = _console_pages(app)
        normalised = normalise_claim_code(code)
        for name, path in pages.items():
            response = page.goto(live_server.url + path)
            assert response.status == 200, path
            # Only the tables scroll sideways (in their own region); the page itself never does.
            assert page.evaluate("document.documentElement.scrollWidth") <= width, (path, "scrolls sideways")
            html = page.content()
            for secret in (code, normalised, normalised[:-4], token, ANNA):
                assert secret not in html, (path, "shows a secret")
            if name == "membership-preview":  # InstantCard's images, served from this site under the CSP
                assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
                assert page.locator("img").count() == 2
            violations = run_axe(page)
            assert violations == [], (path, width, [(v["id"], [n["target"] for n in v["nodes"]]) for v in violations])
            if width == 1280 and "preview" not in name and "search" not in name:
                ARTIFACTS.mkdir(exist_ok=True)
                shot = ARTIFACTS / f"console-{name}.png"
                page.screenshot(path=str(shot), full_page=True)
                if not (SCREENSHOTS / shot.name).exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1":
                    shutil.copyfile(shot, SCREENSHOTS / shot.name)
        page.get_by_role("button", name="Sign out").click()
        assert run_axe(page) == []
        if width == 1280:
            page.screenshot(path=str(ARTIFACTS / "console-login.png"), full_page=True)
            if not (SCREENSHOTS / "console-login.png").exists() or os.environ.get("UPDATE_SCREENSHOTS") == "1":
                shutil.copyfile(ARTIFACTS / "console-login.png", SCREENSHOTS / "console-login.png")
    finally:
        context.close()


def test_a_post_without_its_csrf_token_is_refused(page: Page, live_server, full_order, app):
    _, _, job_id = full_order
    sign_in(page, live_server.url)
    # The browser's own cookies, but no csrf_token field: what a forged form from elsewhere would send.
    refused = page.request.post(f"{live_server.url}/admin/jobs/{job_id}/retry", form={"next": "/admin/"})
    assert refused.status == 400
    assert "did not come from this console" in refused.text()
    with app.app_context():
        assert db.session.get(Job, job_id).state == "dead"


def test_an_expired_session_is_sent_back_to_sign_in(page: Page, live_server, app):
    from service.console.auth import token_fingerprint

    with app.test_request_context():
        key = token_fingerprint(ANNA)
    old = app.session_interface.get_signing_serializer(app).dumps(
        {"staff": "anna", "since": int(time.time()) - 9 * 3600 - 5, "key": key})
    page.context.add_cookies([{"name": "console_session", "value": old, "url": f"{live_server.url}/admin/"}])
    page.goto(f"{live_server.url}/admin/failures")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=/admin/failures&expired=1"))
    expect(page.get_by_role("status")).to_contain_text("Your session has ended; sign in again.")
