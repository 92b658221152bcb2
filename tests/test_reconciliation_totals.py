"""GET /v1/reconciliation: exact totals per UTC day and overall for seeded days, as JSON and as CSV."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.db import db
from service.reports.listing import DateRange
from service.reports.reconciliation import reconciliation_report
from tests.support import ADMIN
from tests.test_reconciliation_support import at, order, redemption, seed_two_days

DAY_21 = {
    "orders": {"completed": 5, "cancelled": 0, "gift_card_cents": 15200},
    "gift_cards": {"redemptions": 5, "applied_cents": 15300, "taken_cents": 15200, "intended_cents": 20300,
                   "redeemed_cents": 15800, "rounding_cents": 100, "shortfall_cents": 1500, "forfeit_cents": 5000,
                   "succeeded": 2, "shortfall": 1, "pending": 1, "uncertain": 0, "failed": 1, "cancelled": 0,
                   "unredeemed_cents": 1000, "failed_cents": 2000},
    "open_holds": {"count": 1, "applied_cents": 2500},
    "thank_you_cards": {"placed": 1, "credits_spent": "1.50", "test_mode_placed": 1, "test_mode_credits": "2.00",
                        "pending": 0, "waiting_for_credit": 1, "failed": 0, "skipped": 0},
    "membership_cards": {"cards": 2, "submitted": 1, "waiting_for_funds": 1, "failed": 0,
                         "print_jobs_submitted": 1, "job_cost_cents": 1250, "shipping_cost_cents": 400},
    "jobs": {"queued": 1, "running": 0, "succeeded": 2, "parked": 1, "dead": 1, "retrying": 1},
}
DAY_22 = {
    "orders": {"completed": 2, "cancelled": 1, "gift_card_cents": 5900},
    "gift_cards": {"redemptions": 2, "applied_cents": 5900, "taken_cents": 5900, "intended_cents": 5900,
                   "redeemed_cents": 5200, "rounding_cents": 0, "shortfall_cents": 0, "forfeit_cents": 0,
                   "succeeded": 1, "shortfall": 0, "pending": 0, "uncertain": 1, "failed": 0, "cancelled": 0,
                   "unredeemed_cents": 700, "failed_cents": 0},
    "open_holds": {"count": 1, "applied_cents": 1100},
    "thank_you_cards": {"placed": 1, "credits_spent": "1.25", "test_mode_placed": 0, "test_mode_credits": "0.00",
                        "pending": 0, "waiting_for_credit": 0, "failed": 1, "skipped": 1},
    "membership_cards": {"cards": 2, "submitted": 1, "waiting_for_funds": 0, "failed": 1,
                         "print_jobs_submitted": 1, "job_cost_cents": 900, "shipping_cost_cents": 0},
    "jobs": {"queued": 1, "running": 0, "succeeded": 0, "parked": 0, "dead": 1, "retrying": 0},
}
OVERALL = {
    "orders": {"completed": 7, "cancelled": 1, "gift_card_cents": 21100},
    "gift_cards": {"redemptions": 7, "applied_cents": 21200, "taken_cents": 21100, "intended_cents": 26200,
                   "redeemed_cents": 21000, "rounding_cents": 100, "shortfall_cents": 1500, "forfeit_cents": 5000,
                   "succeeded": 3, "shortfall": 1, "pending": 1, "uncertain": 1, "failed": 1, "cancelled": 0,
                   "unredeemed_cents": 1700, "failed_cents": 2000},
    "open_holds": {"count": 2, "applied_cents": 3600},
    "thank_you_cards": {"placed": 2, "credits_spent": "2.75", "test_mode_placed": 1, "test_mode_credits": "2.00",
                        "pending": 0, "waiting_for_credit": 1, "failed": 1, "skipped": 1},
    "membership_cards": {"cards": 4, "submitted": 2, "waiting_for_funds": 1, "failed": 1,
                         "print_jobs_submitted": 2, "job_cost_cents": 2150, "shipping_cost_cents": 400},
    "jobs": {"queued": 2, "running": 0, "succeeded": 2, "parked": 1, "dead": 2, "retrying": 1},
}


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_two_days()


def test_seeded_days_give_exact_totals(client, seeded):
    response = client.get("/v1/reconciliation?from=2026-11-21&to=2026-11-22", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["range"] == {"from": "2026-11-21T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
    assert [day["date"] for day in body["days"]] == ["2026-11-21", "2026-11-22"]
    assert {k: v for k, v in body["days"][0].items() if k != "date"} == DAY_21
    assert {k: v for k, v in body["days"][1].items() if k != "date"} == DAY_22
    assert body["overall"] == OVERALL
    assert body["open_holds_now"] == {"count": 2, "applied_cents": 3600}


def test_one_day_and_a_timestamp_window(client, seeded):
    one_day = client.get("/v1/reconciliation?from=2026-11-22&to=2026-11-22", headers=ADMIN).get_json()
    assert one_day["overall"]["gift_cards"] == DAY_22["gift_cards"]
    # The last second of the 21st holds only order 1005's pending redemption.
    late = client.get("/v1/reconciliation?from=2026-11-21T23:00:00Z&to=2026-11-22T00:00:00Z",
                      headers=ADMIN).get_json()
    assert late["overall"]["gift_cards"]["redemptions"] == 1
    assert late["overall"]["gift_cards"]["unredeemed_cents"] == 1000
    assert [day["date"] for day in late["days"]] == ["2026-11-21"]


def test_totals_csv_parses_back_to_the_same_numbers(client, seeded):
    json_body = client.get("/v1/reconciliation?from=2026-11-21&to=2026-11-22", headers=ADMIN).get_json()
    response = client.get("/v1/reconciliation?from=2026-11-21&to=2026-11-22",
                          headers={**ADMIN, "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["date"] for row in rows] == ["2026-11-21", "2026-11-22", "total"]
    for row, expected in zip(rows, [*json_body["days"], json_body["overall"]], strict=True):
        for section, values in expected.items():
            if section == "date":
                continue
            for key, value in values.items():
                column = f"{section}.{key}"
                assert row[column] == str(value), column
                if key.endswith("_cents"):
                    assert row[column[: -len("_cents")] + "_usd"] == f"{value / 100:.2f}"
    assert rows[2]["gift_cards.redeemed_usd"] == "210.00"
    assert rows[2]["thank_you_cards.credits_spent"] == "2.75"


@pytest.mark.parametrize("query", [
    "from=2026-13-01", "from=yesterday", "to=2026-11-31", "from=2026-11-21T10:00:00",
    "from=2026-11-22&to=2026-11-21", "from=2025-01-01&to=2026-11-21", "from=",
])
def test_bad_dates_are_422_problems(client, query):
    response = client.get(f"/v1/reconciliation?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["errors"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(
    st.integers(min_value=20, max_value=23), st.integers(min_value=0, max_value=23),
    st.sampled_from(["pending", "uncertain", "succeeded", "shortfall", "failed", "cancelled"]),
    st.integers(min_value=0, max_value=300), st.integers(min_value=0, max_value=99), st.booleans(),
    st.integers(min_value=0, max_value=100)), max_size=12))
def test_totals_add_up_whatever_the_rows(app, rows):
    """Property: each day's figures are the sums over its rows, and the overall figures are the days' sums."""
    with app.app_context():
        db.session.execute(db.text("DELETE FROM redemptions"))
        db.session.execute(db.text("DELETE FROM gift_card_holds"))
        db.session.execute(db.text("DELETE FROM carts"))
        db.session.execute(db.text("DELETE FROM orders"))
        expected: dict[int, dict[str, int]] = {}
        for n, (day, hour, state, dollars, cents, splittable, short_pct) in enumerate(rows):
            taken = dollars * 100 + cents
            applied = -(-taken // 100) * 100
            intended = applied if splittable else applied + 1000
            redeemed = intended - intended * short_pct // 100 if state in ("succeeded", "shortfall") else 0
            forfeit = (redeemed - applied) if not splittable and redeemed > applied else 0
            of = order(f"p{n}", completed_at=at(day, hour), gift_card_cents=taken)
            redemption(of, created_at=at(day, hour), state=state, applied=applied, taken=taken, intended=intended,
                       redeemed=redeemed, shortfall=intended - redeemed if redeemed else 0, forfeit=forfeit,
                       splittable=splittable)
            if 21 <= day <= 22:
                sums = expected.setdefault(day, {"redemptions": 0, "taken_cents": 0, "redeemed_cents": 0,
                                                 "rounding_cents": 0, "forfeit_cents": 0})
                sums["redemptions"] += 1
                sums["taken_cents"] += taken
                sums["forfeit_cents"] += forfeit
                if state in ("succeeded", "shortfall"):
                    sums["redeemed_cents"] += redeemed
                    sums["rounding_cents"] += applied - taken  # whole-dollar rounding up of what was taken
        db.session.commit()
        report = reconciliation_report(db.session, DateRange.for_days(at(21).date(), at(22).date()), now=at(23))
        for day in report["days"]:
            got = day["gift_cards"]
            want = expected.get(int(day["date"][-2:]), {})
            for key in ("redemptions", "taken_cents", "redeemed_cents", "rounding_cents", "forfeit_cents"):
                assert got[key] == want.get(key, 0), (day["date"], key)
        for key, value in report["overall"]["gift_cards"].items():
            assert value == sum(day["gift_cards"][key] for day in report["days"]), key
