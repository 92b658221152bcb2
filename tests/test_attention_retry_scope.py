"""Issue 16 › Order: "a successful retry resolves the attention it caused" — and only that: items another job raised
on the same order, and items of kinds a retry does not settle, stay open for a person."""

from __future__ import annotations

import sqlalchemy as sa

from service.db import db, utcnow
from service.jobs.models import Job
from service.orders.models import Order, OrderAttentionItem
from tests.support import ADMIN, order_completed, signed_webhook


def two_card_order(client, instagift, order_id: str) -> list[str]:
    """An order paid with two new certificates (one redemption job each); the certificates' ids."""
    token = client.post("/v1/carts", json={"total_cents": 6000}).get_json()["cart_token"]
    certificates, covered = [], 0
    for _ in range(2):
        cert_id, code = instagift.add_certificate(3000)
        applied = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code})
        assert applied.status_code == 200, applied.get_json()
        certificates.append(cert_id)
        covered = applied.get_json()["covered_cents"]
    raw, headers = signed_webhook(order_completed(order_id, cart_token=token, total_cents=6000,
                                                  gift_card_cents=covered))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    return certificates


def attention(client, order_id: str) -> list[tuple[str, int | None, bool]]:
    items = client.get(f"/v1/orders/{order_id}", headers=ADMIN).get_json()["attention"]
    return [(i["kind"], i["job_id"], i["open"]) for i in items]


def dead_redemption_jobs(app) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Job.id).where(Job.kind == "redeem_gift_card", Job.state == "dead")
                                       .order_by(Job.id)))


def test_a_successful_retry_resolves_only_its_own_jobs_items(app, client, instagift, run_jobs):
    certificates = two_card_order(client, instagift, "7101")
    instagift.inject_fault("redeem_certificate", "reject_400", times=2)
    run_jobs()
    first, second = dead_redemption_jobs(app)
    assert attention(client, "7101") == [("redemption_failed", first, True), ("redemption_failed", second, True)]

    assert client.post(f"/v1/jobs/{first}/retry", headers=ADMIN).status_code == 202
    run_jobs()

    assert sum(len(instagift.redemptions_for(c)) for c in certificates) == 1
    assert attention(client, "7101") == [("redemption_failed", first, False), ("redemption_failed", second, True)]
    assert client.get("/v1/orders/7101", headers=ADMIN).get_json()["order"]["needs_attention"] is True


def test_a_successful_retry_leaves_items_a_retry_does_not_settle_open(app, client, instagift, run_jobs):
    two_card_order(client, instagift, "7102")
    instagift.inject_fault("redeem_certificate", "reject_400")
    run_jobs()
    [job_id] = dead_redemption_jobs(app)
    with app.app_context():  # an item of a kind only a person settles, raised by that job's first attempt
        order_id = db.session.scalar(sa.select(Order.id).where(Order.shop_order_id == "7102"))
        db.session.add(OrderAttentionItem(order_id=order_id, kind="shortfall", message="look",
                                          created_at=utcnow(), job_id=job_id, job_attempt=1))
        db.session.commit()

    assert client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN).status_code == 202
    run_jobs()

    assert attention(client, "7102") == [("redemption_failed", job_id, False), ("shortfall", job_id, True)]
