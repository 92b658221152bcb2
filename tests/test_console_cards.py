"""The console's cards page (issue 16 › Cards): each order's thank-you card and membership card states, newest order
first, orders without a card left out, read from the rendered page."""

from __future__ import annotations

import re

import pytest

from service.db import db
from tests.test_console_auth import ANNA, sign_in
from tests.test_reconciliation_support import at, membership_card, order, thank_you


@pytest.fixture
def environ(environ):
    environ["ADMIN_API_TOKENS"] = f"anna:{ANNA}"
    return environ


def rows(text: str) -> list[tuple[str, str, str]]:
    body = text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r'<tr><td><a href="/admin/orders/([^"]+)">[^<]*</a></td>\s*<td>([^<]*)</td>\s*<td>([^<]*)</td>',
                      body)


def test_each_order_with_a_card_shows_its_states_newest_first(app, client):
    with app.app_context():
        thanked = order("cards-1", completed_at=at(20))
        thank_you(thanked, status="placed", created_at=at(20), placed_at=at(20), cost="1.50")
        order("cards-2", completed_at=at(20))  # no card at all: not on the page
        members = order("cards-3", completed_at=at(21))
        first = membership_card(members, status="submitted", created_at=at(21), unit=0)
        second = membership_card(members, status="failed", created_at=at(21), unit=1)
        both = order("cards-4", completed_at=at(22))
        thank_you(both, status="pending", created_at=at(22))
        third = membership_card(both, status="cancelled", created_at=at(22))
        numbers = [first.member_number, second.member_number, third.member_number]
        db.session.commit()
    sign_in(client)
    page = client.get("/admin/cards")
    assert page.status_code == 200
    assert rows(page.text) == [
        ("cards-4", "pending", f"{numbers[2]}: cancelled"),
        ("cards-3", "none", f"{numbers[0]}: submitted; {numbers[1]}: failed"),
        ("cards-1", "placed", "none"),
    ]


def test_no_cards_yet_says_so(client):
    sign_in(client)
    assert "No cards yet." in client.get("/admin/cards").text
