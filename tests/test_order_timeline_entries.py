"""The order's chronological timeline (`entries` of GET /v1/orders/{id}): everything that happened, oldest first, in
sentences for staff with money in dollars and codes masked."""

from __future__ import annotations

from service.providers.instagift import normalise_claim_code
from tests.support import ADMIN, SHOP, cancel_order, order_completed, signed_webhook

GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000}


def test_everything_that_happened_in_order(client, instagift, run_jobs):
    certificate_id, code = instagift.add_certificate(10000, splittable=True)
    token = client.post("/v1/carts", json={"total_cents": 5250}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}).status_code == 200
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200
    raw, headers = signed_webhook(order_completed("9001", cart_token=token, total_cents=5250, gift_card_cents=5200,
                                                  line_items=[GOLD]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    run_jobs()
    cancel_order(client, "9001")
    body = client.get("/v1/orders/9001", headers=ADMIN).get_json()
    refund = next(i for i in body["attention"] if i["kind"] == "cancelled_after_redeemed")
    resolved = client.post(f"/v1/orders/9001/attention/{refund['id']}/resolve", json={"note": "Refunded by cheque"},
                           headers=ADMIN)
    assert resolved.status_code == 200

    response = client.get("/v1/orders/9001", headers=ADMIN)
    entries = response.get_json()["entries"]
    summaries = [e["summary"] for e in entries]
    text = "\n".join(summaries)
    last4 = normalise_claim_code(code)[-4:]
    child = instagift.children_of(certificate_id)[0]["id"]

    assert [e["at"] for e in entries] == sorted(e["at"] for e in entries)
    assert {"event", "hold", "verify", "redemption", "thank_you_card", "membership_card", "job", "job_attempt",
            "attention"} <= {e["type"] for e in entries}
    assert summaries[0] == f"Gift card ••••{last4} applied: $52.00 of its $100.00 balance held."
    assert f"Redeemed $52.00 from gift card ••••{last4}; the rest is on new certificate {child} holding $48.00." \
        in summaries
    assert "Thank-you card placed with Cardly" in text and "Membership card" in text
    assert any(s.startswith("Job ") and "attempt 1" in s and "ended succeeded" in s for s in summaries)
    assert "Needs attention (cancelled_after_redeemed): Cancelled after $52.00 was redeemed" in text
    assert summaries[-1] == "Resolved by admin (cancelled_after_redeemed): Refunded by cheque"
    order_events = [s for s in summaries if s.startswith("The shop sent")]
    assert [s.split()[3] for s in order_events] == ["order.completed", "order.cancelled"]
    # The completion comes after the hold and the verify, the cancellation after the redemption.
    applied = next(i for i, s in enumerate(summaries) if s.startswith("Gift card") and " applied: " in s)
    verified = next(i for i, s in enumerate(summaries) if s.startswith("The shop verified"))
    assert applied < verified < summaries.index(order_events[0])
    assert summaries.index(order_events[1]) > next(i for i, s in enumerate(summaries) if s.startswith("Redeemed"))
    page = response.get_data(as_text=True)
    assert normalise_claim_code(code) not in page and code not in page and token not in page


def test_a_failed_redemption_and_the_retry_that_fixed_it(app, client, instagift, run_jobs):
    _, code = instagift.add_certificate(10000)
    token = client.post("/v1/carts", json={"total_cents": 3000}).get_json()["cart_token"]
    assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}).status_code == 200
    raw, headers = signed_webhook(order_completed("9002", cart_token=token, total_cents=3000, gift_card_cents=3000))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    instagift.inject_fault("redeem_certificate", "reject_400")
    run_jobs()
    job = next(j for j in client.get("/v1/orders/9002", headers=ADMIN).get_json()["jobs"]
               if j["kind"] == "redeem_gift_card")
    assert client.post(f"/v1/jobs/{job['id']}/retry", headers=ADMIN).status_code == 202
    run_jobs()

    summaries = [e["summary"] for e in client.get("/v1/orders/9002", headers=ADMIN).get_json()["entries"]]
    attempts = [s for s in summaries if s.startswith(f"Job {job['id']} (redeem_gift_card) attempt")]
    assert len(attempts) == 2 and "ended failed" in attempts[0] and "ended succeeded" in attempts[1]
    retried = summaries.index(f"Job {job['id']} (redeem_gift_card) retried by admin.")
    assert summaries.index(attempts[0]) < retried < summaries.index(attempts[1])
    assert any(s.startswith("Needs attention (redemption_failed)") for s in summaries)
    assert any(s.startswith("Resolved by retry by admin (redemption_failed)") for s in summaries)


def test_a_gift_card_the_verify_refused_is_named_in_the_verify_section_and_its_entry(client, instagift):
    spent_id, spent = instagift.add_certificate(2000)
    _, kept = instagift.add_certificate(10000)
    token = client.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    for code in (spent, kept):
        assert client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code}).status_code == 200
    instagift.spend_elsewhere(spent_id, 2000)  # used up in store between the checkout and the payment
    refused = client.post(f"/v1/carts/{token}/verify", headers=SHOP)
    assert refused.status_code == 409 and refused.get_json()["code"] == "gift_cards_changed"
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200
    raw, headers = signed_webhook(order_completed("9003", cart_token=token, total_cents=5000, gift_card_cents=5000))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202

    body = client.get("/v1/orders/9003", headers=ADMIN).get_json()
    spent_last4, kept_last4 = normalise_claim_code(spent)[-4:], normalise_claim_code(kept)[-4:]
    [verify] = body["verifies"]
    assert [(r["code"], r["reason"]) for r in verify["refused"]] == [(f"••••{spent_last4}", "verify: redeemed")]
    [entry] = [e for e in body["entries"] if e["type"] == "verify"]
    assert entry["summary"] == f"The shop verified the gift cards before payment; refused ••••{spent_last4}."
    assert kept_last4 not in entry["summary"]
