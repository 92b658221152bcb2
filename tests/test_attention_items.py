"""Attention items: typed records raised by the rules, shown in the order's timeline, resolved by staff through the
API or by a successful retry of the job that raised them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service.db import db
from service.jobs.models import Job
from service.orders.models import OrderAttentionItem
from tests.support import ADMIN, cancel_order, order_paid_with_gift_card


def redeem_job(app) -> Job:
    with app.app_context():
        job = db.session.scalar(sa.select(Job).where(Job.kind == "redeem_gift_card"))
        db.session.expunge_all()
        return job


def refund_item(client, order_id: str) -> dict:
    """The order's item asking for a refund (its thank-you card, placed before the cancellation, raises another)."""
    [item] = [i for i in items(client, order_id) if i["kind"] == "cancelled_after_redeemed"]
    return item


def items(client, order_id: str) -> list[dict]:
    answer = client.get(f"/v1/orders/{order_id}", headers=ADMIN)
    assert answer.status_code == 200
    return answer.get_json()["attention"]


def test_a_successful_retry_resolves_the_attention_its_job_raised(app, client, instagift, run_jobs):
    cert_id, code = order_paid_with_gift_card(client, instagift, "7001")
    instagift.inject_fault("redeem_certificate", "reject_400")
    run_jobs()
    job = redeem_job(app)
    [item] = items(client, "7001")
    assert job.state == "dead"
    assert (item["kind"], item["job_id"], item["open"], item["resolved_by"]) == (
        "redemption_failed", job.id, True, None)
    assert f"••••{code[-4:]}" in item["message"] and code not in item["message"]
    assert client.get("/v1/orders/7001", headers=ADMIN).get_json()["order"]["needs_attention"] is True

    assert client.post(f"/v1/jobs/{job.id}/retry", headers=ADMIN).status_code == 202
    run_jobs()

    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [3000]
    [item] = items(client, "7001")
    assert item["open"] is False and item["resolved_at"] is not None
    assert item["resolved_by"] == "retry by admin"
    assert f"Job {job.id}" in item["resolution_note"]
    timeline = client.get("/v1/orders/7001", headers=ADMIN).get_json()
    assert timeline["order"]["needs_attention"] is False
    assert timeline["jobs"][0]["retried_by"] == "admin" and timeline["jobs"][0]["retried_at"]


def test_a_retry_that_fails_again_leaves_the_attention_open(app, client, instagift, run_jobs):
    order_paid_with_gift_card(client, instagift, "7002")
    instagift.inject_fault("redeem_certificate", "reject_400", times=2)
    run_jobs()
    job = redeem_job(app)
    assert client.post(f"/v1/jobs/{job.id}/retry", headers=ADMIN).status_code == 202
    run_jobs()

    assert redeem_job(app).state == "dead"
    found = items(client, "7002")
    assert [(i["kind"], i["open"]) for i in found] == [("redemption_failed", True), ("redemption_failed", True)]


def test_attention_raised_by_a_webhook_belongs_to_no_job(app, client, instagift, run_jobs):
    """The cancellation (a webhook) raises these: no job owns them, so no retry resolves them; staff do."""
    order_paid_with_gift_card(client, instagift, "7003")
    run_jobs()
    cancel_order(client, "7003")
    run_jobs()
    refund, card = items(client, "7003")
    assert [(i["kind"], i["job_id"], i["open"]) for i in (refund, card)] == [
        ("cancelled_after_redeemed", None, True), ("thank_you_card_placed_for_cancelled_order", None, True)]
    assert "$30.00" in refund["message"] and "refund manually" in refund["message"]


def test_staff_resolve_an_item_with_a_note_once(app, client, instagift, run_jobs):
    order_paid_with_gift_card(client, instagift, "7004")
    run_jobs()
    cancel_order(client, "7004")
    item = refund_item(client, "7004")
    url = f"/v1/orders/7004/attention/{item['id']}/resolve"

    answer = client.post(url, json={"note": "Refunded $30.00 by bank transfer"}, headers=ADMIN)

    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["id"], body["open"], body["resolved_by"], body["resolution_note"]) == (
        item["id"], False, "admin", "Refunded $30.00 by bank transfer")
    assert refund_item(client, "7004") == body

    again = client.post(url, json={"note": "twice"}, headers=ADMIN)
    assert again.status_code == 409 and again.get_json()["code"] == "attention_already_resolved"
    assert refund_item(client, "7004") == body  # the first resolution stands


def test_a_note_is_optional(app, client, instagift, run_jobs):
    order_paid_with_gift_card(client, instagift, "7005")
    run_jobs()
    cancel_order(client, "7005")
    item = refund_item(client, "7005")
    answer = client.post(f"/v1/orders/7005/attention/{item['id']}/resolve", json={}, headers=ADMIN)
    assert answer.status_code == 200 and answer.get_json()["resolution_note"] is None


@pytest.mark.parametrize(("path_order", "body", "headers", "status", "code"), [
    ("7006", {"note": "x"}, {}, 401, "unauthorized"),
    ("nope", {"note": "x"}, ADMIN, 404, "attention_item_not_found"),
    ("7006", {"note": "x" * 2001}, ADMIN, 422, "validation_failed"),
    ("7006", {"note": 5}, ADMIN, 422, "validation_failed"),
])
def test_a_refused_resolve_is_a_problem_and_changes_nothing(app, client, instagift, run_jobs, path_order, body,
                                                            headers, status, code):
    order_paid_with_gift_card(client, instagift, "7006")
    run_jobs()
    cancel_order(client, "7006")
    item = refund_item(client, "7006")

    answer = client.post(f"/v1/orders/{path_order}/attention/{item['id']}/resolve", json=body, headers=headers)

    assert answer.status_code == status
    assert answer.content_type == "application/problem+json" and answer.get_json()["code"] == code
    assert refund_item(client, "7006") == item


def test_an_item_of_another_order_is_not_found_through_this_one(app, client, instagift, run_jobs):
    for order_id in ("7007", "7008"):
        order_paid_with_gift_card(client, instagift, order_id)
    run_jobs()
    cancel_order(client, "7007")
    item = refund_item(client, "7007")
    answer = client.post(f"/v1/orders/7008/attention/{item['id']}/resolve", json={}, headers=ADMIN)
    assert answer.status_code == 404 and answer.get_json()["code"] == "attention_item_not_found"
    with app.app_context():
        assert db.session.get(OrderAttentionItem, item["id"]).resolved_at is None
