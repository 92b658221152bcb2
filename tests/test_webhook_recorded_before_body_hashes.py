"""Issue 14 › 9 across the migration: an event recorded before a9c4e6b1d3f8 has no body hash, so a delivery under
its webhook id cannot be told apart from a true redelivery: it is a 200 duplicate that changes nothing, never a 409."""

from __future__ import annotations

import sqlalchemy as sa

from service.db import db
from service.orders.models import Order, OrderEvent
from tests.support import order_completed, signed_webhook
from tests.test_webhooks import counts, post


def test_an_event_recorded_without_a_body_hash_takes_any_body_under_its_id_as_a_redelivery(app, client):
    raw, headers = signed_webhook(order_completed("91"))
    assert post(client, raw, headers).status_code == 202
    with app.app_context():  # as the migration leaves events recorded before it
        db.session.execute(sa.update(OrderEvent).values(body_sha256=None))
        db.session.commit()
    before = counts(app)
    changed, changed_headers = signed_webhook(order_completed("91", total_cents=9999), msg_id=headers["webhook-id"])
    again = post(client, changed, changed_headers)
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate", again.get_json()
    assert counts(app) == before
    with app.app_context():
        assert db.session.scalar(sa.select(Order.total_cents).where(Order.shop_order_id == "91")) == 5250
