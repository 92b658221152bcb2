"""The timeline and every merchant answer after a real checkout: apply a claim code, verify, complete the order,
run the redemption job against the sandbox; the full claim code appears in none of the merchant responses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.providers.instagift import normalise_claim_code
from tests.support import ADMIN, SHOP, order_completed, signed_webhook


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "1000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "1000/minute"
    return environ


def test_split_redemption_timeline_and_no_claim_code_anywhere(client, sandbox, run_jobs):
    state = sandbox.app.extensions["sandbox"]["instagift"]
    certificate_id, code = state.add_certificate(10000, splittable=True)
    cart = client.post("/v1/carts", json={"total_cents": 5250})
    assert cart.status_code == 201, cart.get_json()
    token = cart.get_json()["cart_token"]
    applied = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code})
    assert applied.status_code in (200, 201), applied.get_json()
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200
    raw, headers = signed_webhook(order_completed("3001", cart_token=token, total_cents=5250, gift_card_cents=5200))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    run_jobs()

    timeline = client.get("/v1/orders/3001", headers=ADMIN)
    assert timeline.status_code == 200
    body = timeline.get_json()
    [hold] = body["holds"]
    assert hold["code"] == "••••" + normalise_claim_code(code)[-4:]
    assert hold["applied_cents"] == 5200
    assert body["verifies"][0]["last_verified_at"] is not None
    [redeemed] = body["redemptions"]
    assert redeemed["state"] == "succeeded"
    assert redeemed["redeemed_cents"] == 5200
    assert redeemed["certificate_id"] == certificate_id
    assert redeemed["child_balance_cents"] == 4800  # the split's new certificate holds the rest
    assert redeemed["child_certificate_id"] == state.children_of(certificate_id)[0]["id"]
    assert any(j["state"] == "succeeded" and j["attempt_log"][-1]["outcome"] == "succeeded" for j in body["jobs"])

    today = datetime.now(UTC).date().isoformat()
    answers = [
        timeline,
        client.get("/v1/redemptions", headers=ADMIN),
        client.get("/v1/redemptions", headers={**ADMIN, "Accept": "text/csv"}),
        client.get(f"/v1/reconciliation?from={today}", headers=ADMIN),
        client.get(f"/v1/reconciliation/instagift?from={today}", headers=ADMIN),
        client.get("/v1/jobs", headers=ADMIN),
    ]
    ledger = answers[1].get_json()
    assert ledger["items"][0]["order_id"] == "3001"
    comparison = answers[4].get_json()
    assert comparison["summary"]["matched"] == 1
    normalised = normalise_claim_code(code)
    for answer in answers:
        assert answer.status_code == 200
        text = answer.get_data(as_text=True)
        assert code not in text
        assert normalised not in text
        assert normalised[:-4] not in text.replace("-", "")
