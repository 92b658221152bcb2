"""GET /v1/redemptions: the ledger as JSON pages and as CSV, filtered by UTC days/timestamps and state."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.db import db
from service.reports.ledger import LEDGER_TOTAL_FIELDS, ledger_totals
from service.reports.listing import DateRange
from tests.support import ADMIN
from tests.test_reconciliation_support import at, order, redemption, seed_two_days

TWO_DAYS = "from=2026-11-21&to=2026-11-22"


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_two_days()


def _all_pages(client, query: str) -> tuple[list[dict], int]:
    items, page, pages = [], 1, 0
    while page:
        body = client.get(f"/v1/redemptions?{query}&page={page}", headers=ADMIN).get_json()
        items += body["items"]
        pages += 1
        page = body["next_page"]
    return items, pages


def test_ledger_pages_through_a_range_in_order(client, seeded):
    first = client.get(f"/v1/redemptions?{TWO_DAYS}&per_page=3", headers=ADMIN).get_json()
    assert first["total"] == 7
    assert first["next_page"] == 2
    assert first["range"] == {"from": "2026-11-21T00:00:00Z", "to": "2026-11-23T00:00:00Z"}
    items, pages = _all_pages(client, f"{TWO_DAYS}&per_page=3")
    assert pages == 3
    assert [item["order_id"] for item in items] == ["1001", "1002", "1003", "1004", "1005", "1006", "1007"]
    split = items[0]
    assert split["state"] == "succeeded"
    assert split["child_certificate_id"] == "cert-child-1"
    assert split["child_balance_cents"] == 4700
    assert split["rounding_cents"] == 50
    assert split["code"] == "••••WXYZ"
    assert split["created_at"] == "2026-11-21T09:00:00Z"
    assert split["redeemed_at"] == "2026-11-21T09:00:05Z"
    assert items[1]["shortfall_cents"] == 1500 and items[1]["forfeit_cents"] == 0
    assert items[2]["forfeit_cents"] == 5000 and items[2]["shortfall_cents"] == 0 and items[2]["rounding_cents"] == 50


def test_ledger_without_a_range_lists_everything(client, seeded):
    body = client.get("/v1/redemptions?per_page=500", headers=ADMIN).get_json()
    assert body["total"] == 9
    assert body["range"] is None


def test_ledger_filters_by_state_and_timestamps(client, seeded):
    shortfalls = client.get(f"/v1/redemptions?{TWO_DAYS}&state=shortfall", headers=ADMIN).get_json()
    assert [item["order_id"] for item in shortfalls["items"]] == ["1002"]
    # Timestamps: `from` included, `to` excluded.
    late = client.get("/v1/redemptions?from=2026-11-21T23:59:59Z&to=2026-11-22T08:00:00Z", headers=ADMIN).get_json()
    assert [item["order_id"] for item in late["items"]] == ["1005"]
    offset = client.get("/v1/redemptions?from=2026-11-22T09:00:00%2B01:00&to=2026-11-22T09:00:01%2B01:00",
                        headers=ADMIN).get_json()
    assert [item["order_id"] for item in offset["items"]] == ["1006"]  # 08:00 UTC


def test_ledger_csv_parses_back_to_the_same_numbers(client, seeded):
    json_items, _ = _all_pages(client, f"{TWO_DAYS}&per_page=2")
    response = client.get(f"/v1/redemptions?{TWO_DAYS}", headers={**ADMIN, "Accept": "text/csv"})
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    text = response.get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.count("order_id") == 1  # one header row
    assert len(rows) == len(json_items) == 7
    for row, item in zip(rows, json_items, strict=True):
        assert row["order_id"] == item["order_id"]
        assert row["state"] == item["state"]
        assert row["created_at"] == item["created_at"]
        for name in ("applied", "taken", "intended", "redeemed", "rounding", "shortfall", "forfeit"):
            assert int(row[f"{name}_cents"]) == item[f"{name}_cents"]
            assert row[f"{name}_usd"] == f"{item[f'{name}_cents'] / 100:.2f}"
    assert sum(int(row["redeemed_cents"]) for row in rows) == 21000
    assert rows[0]["child_balance_usd"] == "47.00"
    assert rows[3]["child_balance_usd"] == ""  # none
    assert rows[0]["redeemed_at"] == "2026-11-21T09:00:05Z"


def test_csv_cells_cannot_become_spreadsheet_formulas(app, client):
    from datetime import UTC, datetime

    from service.db import db
    from tests.test_reconciliation_support import order, redemption

    with app.app_context():
        now = datetime.now(UTC)
        redemption(order("=HYPERLINK(1)", completed_at=now), created_at=now, state="failed", applied=100,
                   taken=100, intended=100, error="@SUM(A1)")
        db.session.commit()
    text = client.get("/v1/redemptions", headers={**ADMIN, "Accept": "text/csv"}).get_data(as_text=True)
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["order_id"] == "'=HYPERLINK(1)"
    assert row["error"] == "'@SUM(A1)"


@pytest.mark.parametrize("query", [
    "from=2026-11-32", "to=21-11-2026", "from=2026-11-21T10:00:00", "from=2026-11-22&to=2026-11-21",
    "state=lost", "per_page=0", "per_page=501", "page=-1", "from=now",
])
def test_bad_filters_are_422_problems(client, query):
    response = client.get(f"/v1/redemptions?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "validation_failed"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(
    st.integers(min_value=20, max_value=23), st.sampled_from(["pending", "succeeded", "shortfall", "failed"]),
    st.integers(min_value=1, max_value=30000), st.booleans(), st.integers(min_value=0, max_value=300)), max_size=10),
    state=st.sampled_from([None, "succeeded", "failed"]), whole_range=st.booleans())
def test_the_ledger_totals_are_the_sums_of_every_matching_row(app, rows, state, whole_range):
    """Property: the console's totals row is the sum over every matching row (not one page), with the rounding
    taken from intended (splittable) or applied (not splittable), as each row reports it."""
    with app.app_context():
        for table in ("redemptions", "gift_card_holds", "carts", "orders"):
            db.session.execute(db.text(f"DELETE FROM {table}"))
        expected = dict.fromkeys((*LEDGER_TOTAL_FIELDS, "rows"), 0)
        for n, (day, row_state, taken, splittable, extra) in enumerate(rows):
            applied = -(-taken // 100) * 100
            intended = applied + extra
            redeemed = {"succeeded": intended, "shortfall": intended // 2}.get(row_state, 0)
            shortfall = intended - redeemed if row_state in ("shortfall", "failed") else 0
            forfeit = redeemed - applied if not splittable and redeemed > applied else 0
            of = order(f"t{n}", completed_at=at(day), gift_card_cents=taken)
            redemption(of, created_at=at(day), state=row_state, applied=applied, taken=taken, intended=intended,
                       redeemed=redeemed, shortfall=shortfall, forfeit=forfeit, splittable=splittable)
            if (whole_range or 21 <= day <= 22) and state in (None, row_state):
                for key, value in (("applied_cents", applied), ("taken_cents", taken), ("intended_cents", intended),
                                   ("redeemed_cents", redeemed), ("shortfall_cents", shortfall),
                                   ("forfeit_cents", forfeit), ("rows", 1),
                                   ("rounding_cents", (intended if splittable else applied) - taken)):
                    expected[key] += value
        db.session.commit()
        window = None if whole_range else DateRange.for_days(at(21).date(), at(22).date())
        assert ledger_totals(db.session, window, state=state) == expected
