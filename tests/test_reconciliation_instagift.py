"""GET /v1/reconciliation/instagift: Instagift's own redemption list (every page, fetched over real HTTP from the
sandbox) compared with the local ledger; each kind of disagreement is planted and found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from service.db import db
from tests.support import ADMIN
from tests.test_reconciliation_support import order, redemption


def _control(sandbox, path: str, body: dict) -> dict:
    response = requests.post(f"{sandbox.url}/instagift/v2/_control/{path}", json=body, timeout=5)
    response.raise_for_status()
    return response.json()


def _certificate(sandbox, dollars: int) -> str:
    return _control(sandbox, "certificates", {"face_value_cents": dollars * 100, "splittable": True})["id"]


def _window() -> str:
    today = datetime.now(UTC).date()
    return f"from={(today - timedelta(days=1)).isoformat()}&to={(today + timedelta(days=1)).isoformat()}"


def test_comparison_finds_every_planted_kind_across_many_pages(app, client, sandbox):
    instagift = app.extensions["providers"].instagift
    now = datetime.now(UTC)
    with app.app_context():
        # At Instagift first (no provider call is made inside a database transaction, the tests' own included).
        # 30 agreeing redemptions: with Instagift's 25 a page, its list spans two pages.
        agreeing = [instagift.redeem_certificate(_certificate(sandbox, 50), 2000) for _ in range(30)]
        # Amount mismatch: Instagift took $20, our row says $25.
        mismatch = instagift.redeem_certificate(_certificate(sandbox, 50), 2000)
        # Redeemed through the API at Instagift, but nothing here knows it.
        stranger = instagift.redeem_certificate(_certificate(sandbox, 40), 1000)
        # Redeemed in store: expected to be at Instagift only.
        in_store_certificate = _certificate(sandbox, 60)
        in_store = _control(sandbox, f"certificates/{in_store_certificate}/spend", {"amount_cents": 1500})
        # Uncertain here (the answer was lost) but Instagift did redeem it: matched by certificate.
        lost = instagift.redeem_certificate(_certificate(sandbox, 30), 1200)

        # Then the ledger here.
        for n, made in enumerate(agreeing):
            redemption(order(f"m{n}", completed_at=now), created_at=now, state="succeeded", applied=2000,
                       taken=2000, intended=2000, redeemed=2000, provider_redemption_id=made.id,
                       certificate_id=made.certificate_id)
        redemption(order("mismatch", completed_at=now), created_at=now, state="succeeded", applied=2500, taken=2500,
                   intended=2500, redeemed=2500, provider_redemption_id=mismatch.id,
                   certificate_id=mismatch.certificate_id)
        # Recorded here as redeemed, unknown at Instagift.
        redemption(order("ghost", completed_at=now), created_at=now, state="succeeded", applied=3000, taken=3000,
                   intended=3000, redeemed=3000, provider_redemption_id="not-at-instagift",
                   certificate_id="cert-ghost")
        redemption(order("lost", completed_at=now), created_at=now, state="uncertain", applied=1200, taken=1200,
                   intended=1200, certificate_id=lost.certificate_id)
        db.session.commit()

    response = client.get(f"/v1/reconciliation/instagift?{_window()}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["instagift_redemptions_read"] == 34
    assert body["summary"] == {"matched": 30, "amount_mismatches": 1, "unknown_here": 2, "unknown_here_in_store": 1,
                               "missing_at_instagift": 1, "unsettled_here": 1}
    assert all(item["difference_cents"] == 0 and item["matched_by"] == "redemption_id" for item in body["matched"])

    [wrong] = body["amount_mismatches"]
    assert wrong["instagift"]["id"] == mismatch.id
    assert wrong["local"]["order_id"] == "mismatch"
    assert wrong["difference_cents"] == -500

    unknown = {item["id"]: item for item in body["unknown_here"]}
    assert unknown[stranger.id]["expected"] is False
    assert unknown[stranger.id]["source"] == "api-v2-merchant"
    assert unknown[in_store["redemption"]["id"]]["expected"] is True
    assert unknown[in_store["redemption"]["id"]]["source"] == "in-store"
    assert unknown[in_store["redemption"]["id"]]["amount_cents"] == 1500

    [missing] = body["missing_at_instagift"]
    assert missing["order_id"] == "ghost"
    assert missing["provider_redemption_id"] == "not-at-instagift"

    [unsettled] = body["unsettled_here"]
    assert unsettled["matched_by"] == "certificate_id"
    assert unsettled["local"]["state"] == "uncertain"
    assert unsettled["instagift"]["id"] == lost.id


def test_only_the_window_is_reported_but_matching_spans_all_dates(app, client, sandbox):
    instagift = app.extensions["providers"].instagift
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    with app.app_context():
        # Recorded here years ago, redeemed at Instagift today (its clock): matched, so never "unknown".
        made = instagift.redeem_certificate(_certificate(sandbox, 50), 2000)
        redemption(order("old", completed_at=long_ago), created_at=long_ago, state="succeeded", applied=2000,
                   taken=2000, intended=2000, redeemed=2000, provider_redemption_id=made.id,
                   certificate_id=made.certificate_id)
        redemption(order("old-ghost", completed_at=long_ago), created_at=long_ago, state="succeeded", applied=100,
                   taken=100, intended=100, redeemed=100, provider_redemption_id="gone")
        db.session.commit()
    today = client.get(f"/v1/reconciliation/instagift?{_window()}", headers=ADMIN).get_json()
    assert today["summary"]["matched"] == 1
    assert today["summary"]["unknown_here"] == 0
    assert today["summary"]["missing_at_instagift"] == 0  # the old ghost is outside the window
    old = client.get("/v1/reconciliation/instagift?from=2020-01-01&to=2020-01-01", headers=ADMIN).get_json()
    assert old["summary"]["matched"] == 1
    assert [row["order_id"] for row in old["missing_at_instagift"]] == ["old-ghost"]


def test_instagift_failing_is_a_problem_not_a_500(client, sandbox):
    _control(sandbox, "faults", {"endpoint_kind": "list_redemptions", "mode": "error_500", "times": 10})
    response = client.get(f"/v1/reconciliation/instagift?{_window()}", headers=ADMIN)
    assert response.status_code in (502, 503)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "provider_unavailable"


def test_bad_dates_are_422_before_instagift_is_called(client):
    response = client.get("/v1/reconciliation/instagift?from=2026-02-30", headers=ADMIN)
    assert response.status_code == 422
    assert "from" in response.get_json()["errors"]


def test_a_row_that_redeemed_nothing_is_not_missing_at_instagift(app, client, sandbox):
    now = datetime.now(UTC)
    with app.app_context():
        # Spent in store before the job ran: nothing left to redeem, nothing at Instagift, correctly.
        redemption(order("spent", completed_at=now), created_at=now, state="shortfall", applied=4000, taken=4000,
                   intended=4000, redeemed=0, shortfall=4000, certificate_id="cert-spent")
        db.session.commit()
    body = client.get(f"/v1/reconciliation/instagift?{_window()}", headers=ADMIN).get_json()
    assert body["summary"]["missing_at_instagift"] == 0 and body["missing_at_instagift"] == []
