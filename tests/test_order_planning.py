"""A completed order's cards are planned by one job written in the intake transaction, exactly once."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa

from service.db import db
from service.jobs.models import Job
from service.membership.models import MembershipCard
from service.orders.models import Order
from service.thank_you.models import ThankYouCard
from tests.support import order_completed, signed_webhook

GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 2, "unit_price_cents": 5000}


def kinds(app) -> Counter:
    with app.app_context():
        return Counter(db.session.scalars(sa.select(Job.kind).where(~Job.dedupe_key.like("periodic:%"))))


def test_intake_writes_the_planning_job_with_the_order_and_the_job_plans_once_even_if_run_twice(client, app, run_jobs):
    raw, headers = signed_webhook(order_completed("5001", line_items=[GOLD]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    assert kinds(app) == {"plan_order_effects": 1}

    assert run_jobs(kinds=("plan_order_effects",)) == 1
    with app.app_context():
        # A worker whose lease ran out mid-job means the same planning job can run again.
        db.session.execute(sa.update(Job).where(Job.kind == "plan_order_effects").values(state="queued"))
        db.session.commit()
    assert run_jobs(kinds=("plan_order_effects",)) == 1
    with app.app_context():
        order = db.session.scalar(sa.select(Order).where(Order.shop_order_id == "5001"))
        assert order.effects_planned_at is not None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(MembershipCard)) == 2
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ThankYouCard)) == 1
        plan = db.session.scalar(sa.select(Job).where(Job.kind == "plan_order_effects"))
        assert (plan.state, plan.failures) == ("succeeded", 0)  # the rerun was a clean no-op
    assert kinds(app) == {"plan_order_effects": 1, "send_thank_you_card": 1, "issue_membership_card": 2}


def test_an_order_cancelled_before_its_cards_were_planned_gets_no_card(client, app, run_jobs):
    raw, headers = signed_webhook(order_completed("5002"))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    raw, headers = signed_webhook({"type": "order.cancelled", "data": {"id": "5002"}})
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    run_jobs()
    with app.app_context():
        card = db.session.scalar(sa.select(ThankYouCard))
        assert (card.status, card.skip_reason) == ("skipped", "order_cancelled")
