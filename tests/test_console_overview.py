"""The console's overview page (issue 16 › Overview): today's and the last 30 days' gift-card figures, the redeemed
dollars of each day (chart and table), and the counts that need a person, read from the rendered page."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import pytest

from service.db import db, utcnow
from service.jobs.queue import PERIODIC_KEY_PREFIX
from service.orders.models import OrderAttentionItem
from tests.test_console_auth import ANNA, sign_in
from tests.test_reconciliation_support import job, order, redemption


@pytest.fixture
def environ(environ):
    environ["ADMIN_API_TOKENS"] = f"anna:{ANNA}"
    return environ


def _attention(of, *, resolved: bool = False) -> None:
    db.session.add(OrderAttentionItem(order_id=of.id, kind="redemption_shortfall", message="look at it",
                                      resolved_at=utcnow() if resolved else None))


@pytest.fixture
def seeded(app) -> datetime:
    """Redemptions today, 10 days ago and 40 days ago; attention items open and resolved; dead, parked and
    periodic jobs. Returns the moment today's redemption was made."""
    now = utcnow()
    start_of_today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = max(start_of_today + timedelta(seconds=1), now - timedelta(minutes=1))
    with app.app_context():
        fresh = order("ov-today", completed_at=today, gift_card_cents=2500)
        redemption(fresh, created_at=today, state="succeeded", applied=2500, taken=2500, intended=2500,
                   redeemed=2500)
        recent = order("ov-10d", completed_at=now - timedelta(days=10), gift_card_cents=4000)
        redemption(recent, created_at=now - timedelta(days=10), state="succeeded", applied=4000, taken=4000,
                   intended=4000, redeemed=4000)
        old = order("ov-40d", completed_at=now - timedelta(days=40), gift_card_cents=9900)
        redemption(old, created_at=now - timedelta(days=40), state="succeeded", applied=9900, taken=9900,
                   intended=9900, redeemed=9900)
        _attention(fresh)
        _attention(fresh)  # two open items on one order: one order needing attention
        _attention(recent, resolved=True)  # resolved: not counted
        _attention(old)
        job("test_overview", state="dead", created_at=now, of=fresh)
        for _ in range(2):
            job("test_overview", state="parked", created_at=now, of=recent)
        # Housekeeping runs are not a business effect: a dead one is not counted with the orders' jobs.
        job("purge_jobs", state="dead", created_at=now, dedupe_key=f"{PERIODIC_KEY_PREFIX}purge:1")
        db.session.commit()
    return today


def _overview(client) -> str:
    sign_in(client)
    page = client.get("/admin/")
    assert page.status_code == 200
    return page.text


def test_the_counts_that_need_a_person_are_open_items_by_order_and_business_jobs(client, seeded):
    text = _overview(client)
    assert re.search(r"<strong>2</strong> orders needing attention</a>", text)
    assert re.search(r"<strong>1</strong> dead jobs</a>", text)
    assert re.search(r"<strong>2</strong> parked jobs</a>", text)
    assert 'href="/admin/orders?attention=open"' in text


def test_redeemed_today_and_in_the_last_30_days(client, seeded):
    text = _overview(client)
    row = re.search(r'<th scope="row">Redeemed</th><td class="num">([^<]*)</td><td class="num">([^<]*)</td>', text)
    assert row and row.groups() == ("$25.00", "$65.00")  # the 40-day-old $99.00 is in neither


def test_the_charts_table_lists_every_one_of_the_30_days_with_its_redeemed_dollars(client, seeded):
    text = _overview(client)
    table = text.split("Redeemed dollars per UTC day", 1)[1].split("</table>", 1)[0]
    days = dict(re.findall(r'<th scope="row">(\d{4}-\d\d-\d\d)</th><td class="num">([^<]*)</td>', table))
    today = seeded.date()
    assert list(days) == [(today - timedelta(days=n)).isoformat() for n in range(29, -1, -1)]
    ten_days_ago = (utcnow() - timedelta(days=10)).date().isoformat()
    assert {day: amount for day, amount in days.items() if amount != "$0.00"} == {
        today.isoformat(): "$25.00", ten_days_ago: "$40.00"}
    # The SVG has one bar per day saying what it stands for; the highest day fills the chart, the others scale.
    bars = re.findall(r'<rect [^>]*height="([\d.]+)" class="bar"><title>([^<]*)</title>', text)
    assert len(bars) == 30
    assert bars[-11] == ("190.0", html.escape(f"{ten_days_ago}: $40.00"))
    assert bars[-1] == ("118.8", html.escape(f"{today.isoformat()}: $25.00"))  # 190 × 25 / 40
