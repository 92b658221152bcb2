"""GET /v1/orders/{id}: the order, its events and every job attempt, for an order that came in by webhook."""

from service.db import db
from service.jobs.models import Job
from service.jobs.queue import enqueue
from service.orders.models import Order
from tests.support import ADMIN, order_completed, signed_webhook
from tests.test_reconciliation_support import (
    at,
    job,
    membership_card,
    order,
    print_job,
    redemption,
    thank_you,
)


def _deliver(client, body):
    raw, headers = signed_webhook(body)
    response = client.post("/v1/webhooks/orders", data=raw, headers=headers)
    assert response.status_code in (200, 202), response.get_json()


def test_unknown_order_is_a_404_problem(client):
    response = client.get("/v1/orders/nope", headers=ADMIN)
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "order_not_found"


def test_timeline_shows_order_events_and_job_attempts(app, client, run_jobs):
    _deliver(client, order_completed("2001", total_cents=7000))
    _deliver(client, {"type": "order.cancelled", "timestamp": "2026-11-21T11:00:00Z", "data": {"id": "2001"}})
    with app.app_context():
        order = db.session.scalar(db.select(Order).where(Order.shop_order_id == "2001"))
        enqueue(db.session, "test_timeline_unknown_kind", {"x": 1}, order_id=order.id)
        db.session.commit()
    run_jobs()

    body = client.get("/v1/orders/2001", headers=ADMIN).get_json()
    assert body["order"]["id"] == "2001"
    assert body["order"]["total_cents"] == 7000
    assert body["order"]["cancelled_at"] is not None
    assert [e["type"] for e in body["events"]] == ["order.completed", "order.cancelled"]
    mine = [j for j in body["jobs"] if j["kind"] == "test_timeline_unknown_kind"]
    assert len(mine) == 1
    assert mine[0]["state"] == "dead"
    assert len(mine[0]["attempt_log"]) == 1
    assert mine[0]["attempt_log"][0]["outcome"] == "failed"
    assert "no handler" in mine[0]["attempt_log"][0]["error"]
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Job)) >= 1


def test_timeline_shows_ledger_card_and_membership_rows(app, client):
    with app.app_context():
        of = order("4001", completed_at=at(21, 9), gift_card_cents=8000)
        redemption(of, created_at=at(21, 9), state="shortfall", applied=8000, taken=8000, intended=8000,
                   redeemed=6000, shortfall=2000, provider_redemption_id="ig-1", child_certificate_id="child-1",
                   child_balance_cents=0, error="instagift: balance changed")
        thank_you(of, status="placed", created_at=at(21, 9), placed_at=at(21, 9, 2), cost="1.85", test_mode=True)
        pj = print_job(submitted_at=at(21, 13), cost_cents=1250, shipping_cents=400)
        membership_card(of, status="submitted", created_at=at(21, 9), job=pj, unit=0)
        membership_card(of, status="waiting_for_funds", created_at=at(21, 9), unit=1)
        job("membership_card", state="parked", created_at=at(21, 9), of=of)
        db.session.commit()

    body = client.get("/v1/orders/4001", headers=ADMIN).get_json()
    [row] = body["redemptions"]
    assert (row["state"], row["redeemed_cents"], row["shortfall_cents"]) == ("shortfall", 6000, 2000)
    assert row["error"] == "instagift: balance changed"
    card = body["thank_you_card"]
    assert card["status"] == "placed"
    assert card["cardly_order_id"] == "cardly-4001"
    assert card["cost_credits"] == "1.85"
    assert card["test_mode"] is True
    first, second = body["membership_cards"]
    assert first["status"] == "submitted"
    assert first["instantcard_card_id"].startswith("ic-")
    assert first["print_job"]["cost_cents"] == 1250
    assert first["print_job"]["instantcard_print_job_id"].startswith("pj-")
    assert second["status"] == "waiting_for_funds" and second["print_job"] is None
    assert [j["state"] for j in body["jobs"]] == ["parked"]
    assert body["holds"] == [] and body["verifies"] == []  # no cart on this order
