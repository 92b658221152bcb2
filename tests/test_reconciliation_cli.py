"""`flask --app service reconcile --date …`: the same figures as the API, as a table and as CSV."""

from __future__ import annotations

import csv
import io
import re
import socket

import pytest

from tests.support import ADMIN
from tests.test_reconciliation_support import seed_two_days


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_two_days()


def _run(app, *args):
    result = app.test_cli_runner().invoke(args=["reconcile", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_csv_matches_the_api(app, client, seeded):
    api = client.get("/v1/reconciliation?from=2026-11-21&to=2026-11-21", headers={**ADMIN, "Accept": "text/csv"})
    output = _run(app, "--date", "2026-11-21", "--csv")
    assert output.replace("\r\n", "\n") == api.get_data(as_text=True).replace("\r\n", "\n")
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [row["date"] for row in rows] == ["2026-11-21", "total"]
    assert rows[0]["gift_cards.redeemed_cents"] == "15800"
    assert rows[0]["gift_cards.redeemed_usd"] == "158.00"
    assert rows[0]["gift_cards.shortfall_usd"] == "15.00"
    assert rows[0]["jobs.dead"] == "1"


def test_table_shows_the_days_figures(app, seeded):
    output = _run(app, "--date", "2026-11-21")
    assert "GIFT CARDS" in output
    assert re.search(r"\n  redeemed \(dollars\) +158\.00  \(15800 cents\)\n", output)
    assert "_cents" not in output and "_" not in output.split("GIFT CARDS", 1)[1]  # labels in words
    assert "1.50" in output  # Cardly credits
    assert "Open holds right now: 2 ($36.00)".replace("$", "") in output


def test_ledger_csv_and_table(app, seeded):
    rows = list(csv.DictReader(io.StringIO(_run(app, "--date", "2026-11-22", "--ledger", "--csv"))))
    assert [row["order_id"] for row in rows] == ["1006", "1007"]
    table = _run(app, "--date", "2026-11-22", "--ledger")
    assert "2 row(s)" in table and "••••WXYZ" in table


def test_instagift_comparison_on_the_command_line(app, seeded):
    output = _run(app, "--date", "2026-11-21", "--instagift")
    assert "Instagift comparison" in output
    assert "MISSING AT INSTAGIFT order 1001" in output  # the sandbox never saw the seeded redemptions


def test_bad_date_is_refused(app):
    result = app.test_cli_runner().invoke(args=["reconcile", "--date", "21/11/2026"])
    assert result.exit_code == 2
    assert "not a date" in result.output


def test_ledger_table_columns_line_up_with_real_timestamps(app):
    from datetime import timedelta

    from service.db import db
    from tests.test_reconciliation_support import at, order, redemption

    with app.app_context():
        made = at(22, 10) + timedelta(microseconds=857663)  # what real rows carry
        redemption(order("m1", completed_at=made), created_at=made, state="succeeded", applied=5000, taken=5000,
                   intended=5000, redeemed=5000)
        db.session.commit()
    header, *rows = [line for line in _run(app, "--date", "2026-11-22", "--ledger").splitlines()
                     if line.startswith(("time", "2026"))]
    assert rows and all(len(row) == len(header) for row in rows), (header, rows)
    assert rows[0].startswith("2026-11-22T10:00:00Z ")


def test_an_unreachable_instagift_is_named_by_its_address_and_setting(environ, request):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environ["SANDBOX_URL"] = f"http://127.0.0.1:{port}"
    app = request.getfixturevalue("app")
    result = app.test_cli_runner().invoke(args=["reconcile", "--date", "2026-11-21", "--instagift"])
    assert result.exit_code == 1
    assert (f"Error: Instagift could not be read at http://127.0.0.1:{port}/instagift/v2 (the sandbox, SANDBOX_URL): "
            "instagift: GET redemptions failed to connect or was cut off") in result.output
    assert "sandbox-merchant" not in result.output  # the sandbox's key and secret
