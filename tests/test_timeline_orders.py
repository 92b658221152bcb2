"""GET /v1/orders/{id}: the order, its events and every job attempt, for an order that came in by webhook."""

from service.jobs.queue import enqueue
from service.persistence import Job, Order, db
from tests.support import ADMIN, order_completed, signed_webhook


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
