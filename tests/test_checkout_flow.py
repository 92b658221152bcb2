"""The whole checkout path over real HTTP: balance → cart → apply → verify → signed order.completed →
worker → exactly one redemption at the (sandbox) Instagift, including uncertain provider outcomes."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from service.checkout.models import GiftCardHold
from service.db import db, utcnow
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption
from tests.support import SHOP, order_attention, order_completed, signed_webhook


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "1000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "1000/minute"
    environ["INSTAGIFT_TIMEOUT_SECONDS"] = "1"
    return environ



class Shop:
    """A storefront and shop backend talking to the service over HTTP."""

    def __init__(self, base: str, run_jobs):
        self.base = base
        self._run_jobs = run_jobs
        self.http = requests.Session()

    def run_jobs(self, **options) -> int:
        """Run the jobs due at this moment; a retry backed off into the future waits (the clock is frozen)."""
        now = utcnow()
        return self._run_jobs(**{"clock": lambda: now, **options})

    def cart(self, total_cents: int) -> str:
        r = self.http.post(f"{self.base}/v1/carts", json={"total_cents": total_cents}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["cart_token"]

    def apply(self, token: str, code: str, **extra) -> requests.Response:
        return self.http.post(f"{self.base}/v1/carts/{token}/gift-cards", json={"claim_code": code, **extra},
                              timeout=10)

    def verify(self, token: str) -> requests.Response:
        return self.http.post(f"{self.base}/v1/carts/{token}/verify", headers=SHOP, timeout=10)

    def complete(self, order_id: str, token: str | None, gift_card_cents: int, total_cents: int) -> None:
        raw, headers = signed_webhook(order_completed(order_id, cart_token=token, gift_card_cents=gift_card_cents,
                                                      total_cents=total_cents))
        r = self.http.post(f"{self.base}/v1/webhooks/orders", data=raw, headers=headers, timeout=10)
        assert r.status_code == 202, r.text

    def cancel(self, order_id: str) -> None:
        raw, headers = signed_webhook({"type": "order.cancelled", "timestamp": "2026-11-21T10:05:00Z",
                                       "data": {"id": order_id}})
        r = self.http.post(f"{self.base}/v1/webhooks/orders", data=raw, headers=headers, timeout=10)
        assert r.status_code == 202, r.text

    def drain(self) -> None:
        """Run what is due now, then what a retry backoff scheduled for later."""
        self.run_jobs()
        self.run_jobs(clock=lambda: utcnow() + timedelta(minutes=20))


@pytest.fixture
def shop(live_server, run_jobs, instagift) -> Shop:
    return Shop(live_server.url, run_jobs)


def redemptions(app, order_id: str) -> list[GiftCardRedemption]:
    with app.app_context():
        order = db.session.scalar(sa.select(Order).where(Order.shop_order_id == order_id))
        rows = list(db.session.scalars(sa.select(GiftCardRedemption)
                                       .where(GiftCardRedemption.order_id == order.id)
                                       .order_by(GiftCardRedemption.id)))
        db.session.expunge_all()
        return rows


def order_row(app, order_id: str) -> Order:
    with app.app_context():
        order = db.session.scalar(sa.select(Order).where(Order.shop_order_id == order_id))
        db.session.expunge_all()
        return order


def test_balance_apply_verify_complete_redeems_once_and_splits(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000, splittable=True)
    r = shop.http.post(f"{shop.base}/v1/gift-cards/balance", json={"claim_code": code.lower()}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["balance_cents"] == 10000 and r.json()["redeemable_cents"] == 10000
    assert r.json()["code"] == "••••" + code.replace("-", "")[-4:]

    token = shop.cart(5250)
    r = shop.apply(token, code)
    assert r.status_code == 200, r.text
    view = r.json()
    assert (view["applied_cents"], view["amount_due_cents"]) == (5200, 50)  # $52.50 due → $52 applied, $0.50 due
    [card] = view["gift_cards"]
    assert card["balance_cents"] == 10000 and card["applied_cents"] == 5200 and card["forfeit_cents"] == 0
    assert code not in r.text

    assert shop.verify(token).status_code == 200
    shop.complete("2001", token, gift_card_cents=5200, total_cents=5250)
    shop.drain()

    [redeemed] = instagift.redemptions_for(cert_id)
    assert redeemed["amount_cents"] == 5200
    [child] = instagift.children_of(cert_id)
    [row] = redemptions(app, "2001")
    assert row.state == "succeeded" and row.redeemed_cents == 5200 and row.shortfall_cents == 0
    assert row.provider_redemption_id == redeemed["id"]
    assert (row.child_certificate_id, row.child_balance_cents) == (child["id"], 4800)
    with app.app_context():
        assert db.session.get(GiftCardHold, row.hold_id).status == "redeemed"


def test_rounding_up_takes_a_whole_dollar_more_and_covers_the_order(environ, request):
    environ["GIFT_CARD_ROUNDING"] = "up"
    app = request.getfixturevalue("app")
    shop = request.getfixturevalue("shop")
    instagift = request.getfixturevalue("instagift")
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(5250)
    view = shop.apply(token, code).json()
    assert (view["applied_cents"], view["amount_due_cents"]) == (5300, 0)
    shop.complete("2002", token, gift_card_cents=5250, total_cents=5250)
    shop.drain()
    assert [r["amount_cents"] for r in instagift.redemptions_for(cert_id)] == [5300]
    assert redemptions(app, "2002")[0].state == "succeeded"


def test_non_splittable_is_refused_without_accept_forfeit_then_redeemed_whole(app, shop, instagift):
    cert_id, code = instagift.add_certificate(2500, splittable=False)
    token = shop.cart(2000)
    r = shop.apply(token, code)
    assert r.status_code == 409 and r.headers["Content-Type"] == "application/problem+json"
    assert r.json()["code"] == "forfeit_not_accepted" and r.json()["forfeit_cents"] == 500
    assert shop.http.get(f"{shop.base}/v1/carts/{token}", timeout=5).json()["gift_cards"] == []

    r = shop.apply(token, code, accept_forfeit=True)
    assert r.status_code == 200, r.text
    [card] = r.json()["gift_cards"]
    assert (card["applied_cents"], card["forfeit_cents"], card["splittable"]) == (2000, 500, False)
    assert r.json()["amount_due_cents"] == 0
    shop.complete("2003", token, gift_card_cents=2000, total_cents=2000)
    shop.drain()
    assert [x["amount_cents"] for x in instagift.redemptions_for(cert_id)] == [2500]
    assert instagift.children_of(cert_id) == []
    [row] = redemptions(app, "2003")
    assert (row.state, row.redeemed_cents, row.forfeit_cents, row.shortfall_cents) == ("succeeded", 2500, 500, 0)


def test_two_cards_on_one_cart_each_redeemed_once(app, shop, instagift):
    first_id, first = instagift.add_certificate(5000)
    second_id, second = instagift.add_certificate(10000)
    token = shop.cart(12000)
    assert shop.apply(token, first).status_code == 200
    view = shop.apply(token, second).json()
    assert [c["applied_cents"] for c in view["gift_cards"]] == [5000, 7000]
    assert view["amount_due_cents"] == 0
    shop.complete("2004", token, gift_card_cents=12000, total_cents=12000)
    shop.drain()
    assert [x["amount_cents"] for x in instagift.redemptions_for(first_id)] == [5000]
    assert [x["amount_cents"] for x in instagift.redemptions_for(second_id)] == [7000]
    assert [r.state for r in redemptions(app, "2004")] == ["succeeded", "succeeded"]


def test_cart_total_shrinking_after_apply_recomputes_last_card_first(app, shop, instagift):
    first_id, first = instagift.add_certificate(5000)
    second_id, second = instagift.add_certificate(10000)
    token = shop.cart(12000)
    shop.apply(token, first)
    shop.apply(token, second)
    r = shop.http.put(f"{shop.base}/v1/carts/{token}", json={"total_cents": 8050}, timeout=5)
    assert r.status_code == 200, r.text
    view = r.json()
    assert [c["applied_cents"] for c in view["gift_cards"]] == [5000, 3000]
    assert (view["applied_cents"], view["amount_due_cents"]) == (8000, 50)
    r = shop.http.put(f"{shop.base}/v1/carts/{token}", json={"total_cents": 4000}, timeout=5)
    assert [c["applied_cents"] for c in r.json()["gift_cards"]] == [4000, 0]
    shop.complete("2005", token, gift_card_cents=4000, total_cents=4000)
    shop.drain()
    assert [x["amount_cents"] for x in instagift.redemptions_for(first_id)] == [4000]
    assert instagift.redemptions_for(second_id) == []  # the order took nothing from it: hold released
    assert [r.redeemed_cents for r in redemptions(app, "2005")] == [4000]


@pytest.mark.parametrize("mode", ["apply_then_500", "timeout", "apply_then_drop"])
def test_uncertain_outcome_is_read_back_and_never_redeemed_twice(app, shop, instagift, mode):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(6000)
    shop.apply(token, code)
    shop.complete("2006", token, gift_card_cents=6000, total_cents=6000)
    instagift.inject_fault("redeem_certificate", mode, delay_seconds=3)

    shop.run_jobs()
    [row] = redemptions(app, "2006")
    assert row.state == "uncertain" and row.outcome_unknown
    assert len(instagift.redemptions_for(cert_id)) == 1  # the sandbox did apply it

    shop.drain()
    [row] = redemptions(app, "2006")
    [redeemed] = instagift.redemptions_for(cert_id)
    assert redeemed["amount_cents"] == 6000
    assert (row.state, row.redeemed_cents, row.provider_redemption_id) == ("succeeded", 6000, redeemed["id"])
    assert row.child_balance_cents == 4000
    assert row.attempts == 1


def test_failure_without_acting_is_retried_once_more(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(3000)
    shop.apply(token, code)
    shop.complete("2007", token, gift_card_cents=3000, total_cents=3000)
    instagift.inject_fault("redeem_certificate", "error_500")
    shop.drain()
    [row] = redemptions(app, "2007")
    assert [x["amount_cents"] for x in instagift.redemptions_for(cert_id)] == [3000]
    assert (row.state, row.attempts) == ("succeeded", 2)


def test_worker_killed_after_an_unrecorded_redeem_call_reads_back_instead_of_calling_again(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(3000)
    shop.apply(token, code)
    shop.complete("2008", token, gift_card_cents=3000, total_cents=3000)
    # An earlier, unrecorded call of ours (e.g. a worker killed mid-call) already redeemed it.
    with instagift.lock:
        instagift.redeem(instagift.certificates[cert_id], 3000, location_id=None)
    with app.app_context():
        row = db.session.scalar(sa.select(GiftCardRedemption))
        row.outcome_unknown, row.requested_cents, row.balance_before_cents = True, 3000, 10000
        db.session.commit()
    shop.drain()
    [row] = redemptions(app, "2008")
    assert len(instagift.redemptions_for(cert_id)) == 1
    assert (row.state, row.redeemed_cents) == ("succeeded", 3000)


def test_previously_redeemed_answer_is_read_back_and_an_unchanged_card_redeemed_once(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(3000)
    shop.apply(token, code)
    shop.complete("2010", token, gift_card_cents=3000, total_cents=3000)
    # Instagift refuses with "previously redeemed" but had not acted: never trusted, always read back.
    instagift.inject_fault("redeem_certificate", "reject_400", details="This item has previously been redeemed")
    shop.run_jobs()
    [row] = redemptions(app, "2010")
    assert (row.state, row.outcome_unknown) == ("uncertain", True)
    assert instagift.redemptions_for(cert_id) == []
    shop.drain()
    [row] = redemptions(app, "2010")
    assert [x["amount_cents"] for x in instagift.redemptions_for(cert_id)] == [3000]
    assert (row.state, row.redeemed_cents, row.attempts) == ("succeeded", 3000, 2)


def test_changed_certificate_after_uncertain_outcome_parks_for_a_person(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(3000)
    shop.apply(token, code)
    shop.complete("2009", token, gift_card_cents=3000, total_cents=3000)
    instagift.inject_fault("redeem_certificate", "error_500")
    shop.run_jobs()
    with app.app_context():  # the 500 is treated as uncertain; meanwhile the card is used in store
        assert db.session.scalar(sa.select(GiftCardRedemption)).outcome_unknown
    instagift.spend_elsewhere(cert_id, 2000, split=False)
    shop.drain()
    [row] = redemptions(app, "2009")
    assert row.state == "uncertain" and "a person must check" in row.error
    assert [x["source"] for x in instagift.redemptions_for(cert_id)] == ["in-store"]
    with app.app_context():
        from service.jobs.models import Job
        job = db.session.scalar(sa.select(Job).where(Job.kind == "redeem_gift_card"))
        assert job.state == "parked"


def test_balance_spent_elsewhere_after_verify_records_shortfall(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(8000)
    shop.apply(token, code)
    assert shop.verify(token).status_code == 200
    instagift.spend_elsewhere(cert_id, 5050, split=False)  # $49.50 left
    shop.complete("2010", token, gift_card_cents=8000, total_cents=8000)
    shop.drain()
    [row] = redemptions(app, "2010")
    assert [x["amount_cents"] for x in instagift.redemptions_for(cert_id) if x["source"] != "in-store"] == [4900]
    assert (row.state, row.intended_cents, row.redeemed_cents, row.shortfall_cents) == ("shortfall", 8000, 4900, 3100)
    assert "shortfall" in order_attention(app, "2010")


def test_verify_refuses_when_a_card_was_spent_in_store(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(8000)
    shop.apply(token, code)
    instagift.spend_elsewhere(cert_id, 7000, split=False)
    r = shop.verify(token)
    assert r.status_code == 409 and r.json()["code"] == "gift_cards_changed"
    [change] = r.json()["changes"]
    assert change["reason"] == "balance_changed" and change["balance_cents"] == 3000
    assert (change["applied_cents_before"], change["applied_cents"]) == (8000, 3000)
    assert r.json()["cart"]["amount_due_cents"] == 5000
    assert shop.verify(token).status_code == 200  # the shop has seen the new amount due

    other_id, other = instagift.add_certificate(5000)
    token2 = shop.cart(3000)
    shop.apply(token2, other)
    instagift.spend_elsewhere(other_id, 5000)
    r = shop.verify(token2)
    assert r.status_code == 409 and r.json()["changes"][0]["reason"] == "redeemed"
    assert r.json()["cart"]["gift_cards"] == [] and r.json()["cart"]["amount_due_cents"] == 3000
    assert shop.http.post(f"{shop.base}/v1/carts/{token2}/verify", timeout=5).status_code == 401


def test_cancel_before_redemption_releases_holds_and_redeems_nothing(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(3000)
    shop.apply(token, code)
    shop.complete("2011", token, gift_card_cents=3000, total_cents=3000)
    shop.cancel("2011")
    shop.drain()
    assert instagift.redemptions_for(cert_id) == []
    [row] = redemptions(app, "2011")
    assert row.state == "cancelled"
    assert order_attention(app, "2011") is None
    other = shop.cart(1000)  # the certificate is free again
    assert shop.apply(other, code).status_code == 200


def test_cancel_after_redemption_flags_the_order(app, shop, instagift):
    cert_id, code = instagift.add_certificate(10000)
    token = shop.cart(3000)
    shop.apply(token, code)
    shop.complete("2012", token, gift_card_cents=3000, total_cents=3000)
    shop.drain()
    shop.cancel("2012")
    assert "refund manually" in order_attention(app, "2012")
    assert len(instagift.redemptions_for(cert_id)) == 1


def test_orders_without_cart_or_holds_redeem_nothing(app, shop, instagift):
    shop.complete("2013", None, gift_card_cents=0, total_cents=5250)
    empty = shop.cart(5250)
    shop.complete("2014", empty, gift_card_cents=0, total_cents=5250)
    shop.drain()
    assert redemptions(app, "2013") == [] and redemptions(app, "2014") == []
    assert order_attention(app, "2013") is None and order_attention(app, "2014") is None
    with app.app_context():
        from service.jobs.models import Job
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.state == "dead")) == 0


def test_uncertain_outcome_on_a_non_splittable_card_with_cents_is_recognised(app, shop, instagift):
    # Instagift redeems a non-splittable certificate whole, cents included, whatever amount we ask for: the
    # read-back must recognise its own success by the unchanged face value, not by the amount requested.
    cert_id, code = instagift.add_certificate(2550, splittable=False)
    token = shop.cart(4000)
    assert shop.apply(token, code).status_code == 200
    shop.complete("2090", token, gift_card_cents=2550, total_cents=4000)
    instagift.inject_fault("redeem_certificate", "apply_then_500")
    shop.drain()
    [row] = redemptions(app, "2090")
    [redeemed] = instagift.redemptions_for(cert_id)
    assert redeemed["amount_cents"] == 2550
    assert (row.state, row.redeemed_cents, row.shortfall_cents) == ("succeeded", 2550, 0)
