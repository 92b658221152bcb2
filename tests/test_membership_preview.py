"""Admin preview of a membership card: front and back images from InstantCard, admin token only."""

from __future__ import annotations

import sqlalchemy as sa

from service.db import db
from service.membership.models import MembershipCard
from tests.support import ADMIN, SHOP, order_completed, signed_webhook

GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000}



def make_card(client, run_jobs, app, *, run=True) -> int:
    raw, headers = signed_webhook(order_completed("3001", line_items=[GOLD]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    run_jobs(**({} if run else {"kinds": ("plan_order_effects",)}))
    with app.app_context():
        return db.session.scalars(sa.select(MembershipCard.id)).one()


def test_admin_gets_front_and_back_images(app, client, run_jobs):
    card_id = make_card(client, run_jobs, app)
    response = client.get(f"/v1/membership-cards/{card_id}/preview", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["id"] == card_id and body["status"] == "submitted"
    assert body["member_number"].startswith("M-")
    assert body["front"].startswith("data:image/png;base64,iVBOR")
    assert body["back"].startswith("data:image/png;base64,iVBOR")


def test_shop_token_and_no_token_are_refused(app, client, run_jobs):
    card_id = make_card(client, run_jobs, app)
    for headers in (SHOP, {}, {"Authorization": "Bearer wrong"}):
        response = client.get(f"/v1/membership-cards/{card_id}/preview", headers=headers)
        assert response.status_code == 401
        assert response.mimetype == "application/problem+json"
        assert "front" not in response.get_json()


def test_unknown_card_is_404_and_undrafted_card_is_409(app, client, run_jobs):
    response = client.get("/v1/membership-cards/999999/preview", headers=ADMIN)
    assert response.status_code == 404
    assert response.get_json()["code"] == "membership_card_not_found"
    card_id = make_card(client, run_jobs, app, run=False)
    response = client.get(f"/v1/membership-cards/{card_id}/preview", headers=ADMIN)
    assert response.status_code == 409
    assert response.get_json()["code"] == "membership_card_not_drafted"
