"""A non-splittable card never forfeits more than the shopper agreed to (docs/money.md, consent to a forfeit).

The agreement is to the amount shown when the card was applied: 0 without `accept_forfeit`, else the
`forfeit_cents` of that answer. When a lower total (PUT) or a re-fetched balance (verify) would make a card forfeit
more, the card is taken off the cart; verify reports it as `forfeit_not_accepted`.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service import money
from service.checkout import rules as checkout
from service.checkout.limits import LookupLimiter
from service.checkout.models import Cart, GiftCardHold
from service.db import db, utcnow
from service.errors import Conflict
from service.providers.instagift import Certificate, ClaimCode
from tests.support import SHOP

NON_SPLITTABLE_25 = "DEMO-025N-OSPL"
NON_SPLITTABLE_80 = "DEMO-080N-OSPL"


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "10000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "10000/minute"
    return environ


def new_cart(client, total_cents: int) -> str:
    r = client.post("/v1/carts", json={"total_cents": total_cents})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["cart_token"]


def apply(client, token: str, code: str, **extra) -> dict:
    r = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code, **extra})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def put_total(client, token: str, total_cents: int) -> dict:
    r = client.put(f"/v1/carts/{token}", json={"total_cents": total_cents})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def hold_row(app, hold_id: int) -> GiftCardHold:
    with app.app_context():
        hold = db.session.get(GiftCardHold, hold_id)
        db.session.expunge(hold)
        return hold


# --- over HTTP ----------------------------------------------------------------------------------------


def test_a_card_applied_without_forfeit_is_taken_off_when_a_lower_total_would_forfeit_part_of_it(app, client,
                                                                                                   instagift):
    token = new_cart(client, 3000)
    view = apply(client, token, NON_SPLITTABLE_25)  # $25 on $30: covers $25, nothing forfeited, nothing asked
    [card] = view["gift_cards"]
    assert (card["covers_cents"], card["forfeit_cents"]) == (2500, 0)

    view = put_total(client, token, 1000)  # at $10 it would forfeit $15: never agreed
    assert view["gift_cards"] == [] and view["amount_due_cents"] == 1000 and view["forfeit_cents"] == 0
    hold = hold_row(app, card["id"])
    assert (hold.status, hold.applied_cents, hold.redeem_cents, hold.forfeit_cents) == ("released", 0, 0, 0)
    assert "forfeit not accepted" in hold.status_reason
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200  # nothing left to redeem

    # The same answer as applying it at $10 in the first place: asked first, and then it is held as agreed.
    refused = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": NON_SPLITTABLE_25})
    assert refused.status_code == 409 and refused.get_json()["code"] == "forfeit_not_accepted"
    assert refused.get_json()["forfeit_cents"] == 1500
    [again] = apply(client, token, NON_SPLITTABLE_25, accept_forfeit=True)["gift_cards"]
    assert (again["covers_cents"], again["forfeit_cents"]) == (1000, 1500)


def test_an_accepted_forfeit_that_grows_with_a_lower_total_takes_the_card_off(app, client, instagift):
    token = new_cart(client, 7450)
    [card] = apply(client, token, NON_SPLITTABLE_80, accept_forfeit=True)["gift_cards"]
    assert card["forfeit_cents"] == 550
    assert hold_row(app, card["id"]).accepted_forfeit_cents == 550

    view = put_total(client, token, 5000)  # $30.00 would be forfeited; $5.50 was agreed
    assert view["gift_cards"] == [] and view["amount_due_cents"] == 5000
    assert hold_row(app, card["id"]).status == "released"


def test_a_rising_total_or_a_forfeit_within_what_was_accepted_keeps_the_card(app, client, instagift):
    token = new_cart(client, 7450)
    [card] = apply(client, token, NON_SPLITTABLE_80, accept_forfeit=True)["gift_cards"]

    [kept] = put_total(client, token, 9900)["gift_cards"]  # rises: all $80 pays, nothing forfeited
    assert (kept["id"], kept["covers_cents"], kept["forfeit_cents"]) == (card["id"], 8000, 0)
    [kept] = put_total(client, token, 7450)["gift_cards"]  # back to exactly the $5.50 agreed
    assert (kept["covers_cents"], kept["forfeit_cents"]) == (7450, 550)
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200

    view = put_total(client, token, 7400)  # $6.00 would be forfeited, 50 cents more than agreed: off
    assert view["gift_cards"] == []


def test_releasing_the_first_offender_can_leave_a_later_card_within_its_agreement(app, client, instagift):
    token = new_cart(client, 3000)
    first = apply(client, token, NON_SPLITTABLE_25)["gift_cards"][0]  # covers $25, no forfeit agreed
    view = apply(client, token, NON_SPLITTABLE_80, accept_forfeit=True)  # $5 due: $75 forfeit agreed
    second = view["gift_cards"][1]
    assert second["forfeit_cents"] == 7500

    view = put_total(client, token, 2000)  # the $25 card would forfeit $5; once it is off the $80 forfeits $60
    assert [c["id"] for c in view["gift_cards"]] == [second["id"]]
    assert (view["gift_cards"][0]["covers_cents"], view["gift_cards"][0]["forfeit_cents"]) == (2000, 6000)
    assert hold_row(app, first["id"]).status == "released"


def test_verify_takes_off_a_card_left_forfeiting_more_than_agreed_and_says_so(app, client, instagift):
    """A cart whose total was lowered before this rule existed (the hold was kept, forfeiting $15 unasked)."""
    token = new_cart(client, 3000)
    [card] = apply(client, token, NON_SPLITTABLE_25)["gift_cards"]
    with app.app_context():
        cart = db.session.scalar(sa.select(Cart).where(Cart.token_hash == checkout.hash_token(token)))
        cart.total_cents = 1000
        checkout.recompute(cart, app.extensions["settings"])  # what the PUT used to do, and nothing more
        db.session.commit()
    assert client.get(f"/v1/carts/{token}").get_json()["gift_cards"][0]["forfeit_cents"] == 1500

    r = client.post(f"/v1/carts/{token}/verify", headers=SHOP)
    assert r.status_code == 409 and r.get_json()["code"] == "gift_cards_changed"
    assert r.get_json()["changes"] == [{
        "id": card["id"], "code": "••••OSPL", "reason": "forfeit_not_accepted", "balance_cents": 2500,
        "applied_cents_before": 1000, "applied_cents": 0, "forfeit_cents": 1500, "accepted_forfeit_cents": 0}]
    assert r.get_json()["cart"]["gift_cards"] == [] and r.get_json()["cart"]["amount_due_cents"] == 1000
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200


def test_verify_reports_a_balance_that_grew_into_an_unagreed_forfeit_once(app, client, instagift):
    certificate_id, code = instagift.add_certificate(2500, splittable=False)
    token = new_cart(client, 3000)
    [card] = apply(client, token, code)["gift_cards"]
    with instagift.lock:
        instagift.certificates[certificate_id].face_value_cents = 4000  # now it would forfeit $10 of $40

    r = client.post(f"/v1/carts/{token}/verify", headers=SHOP)
    assert r.status_code == 409
    [change] = r.get_json()["changes"]
    assert (change["id"], change["reason"], change["balance_cents"]) == (card["id"], "forfeit_not_accepted", 4000)
    assert (change["applied_cents_before"], change["applied_cents"], change["forfeit_cents"]) == (2500, 0, 1000)
    assert r.get_json()["cart"]["amount_due_cents"] == 3000


# --- property: whatever the totals and balances, no active hold forfeits more than was accepted ---------


class FakeInstagift:
    """Certificates by claim code and id; a test may change a balance before verify re-fetches it."""

    def __init__(self):
        self.by_code: dict[str, Certificate] = {}

    def set_balance(self, certificate_id: str, balance_cents: int) -> None:
        code = next(code for code, c in self.by_code.items() if c.id == certificate_id)
        self.by_code[code] = dataclasses.replace(self.by_code[code], face_value_cents=balance_cents)

    def add(self, balance_cents: int, splittable: bool) -> str:
        code = uuid.uuid4().hex[:12].upper()
        self.by_code[code] = Certificate(id=f"prop-{code}", status="assigned", splittable=splittable, currency="USD",
                                         face_value_cents=balance_cents, expires_at=None, parent_id=None,
                                         claim_code_last4=code[-4:], product_title=None)
        return code

    def fetch_by_claim_code(self, code: ClaimCode) -> Certificate:
        return self.by_code[code.canonical]  # checkout hands over the parsed code

    def fetch_certificate(self, certificate_id: str) -> Certificate:
        return next(c for c in self.by_code.values() if c.id == certificate_id)


def expected_survivors(total: int, holds: list[tuple[int, int, bool, int]], rounding: str) -> list[int]:
    """The rule, stated plainly: release the first card forfeiting more than it accepted, allocate again, repeat."""
    holds = list(holds)
    while True:
        allocation = money.allocate(total, [money.CardInput(i, b, s) for i, b, s, _ in holds], rounding)
        offender = next((h for h in holds if allocation.get(h[0]).forfeit_cents > h[3]), None)
        if offender is None:
            return [h[0] for h in holds]
        holds.remove(offender)


cards = st.lists(st.tuples(st.integers(100, 15_000), st.booleans(), st.booleans()), min_size=1, max_size=4)
# A step is a new cart total, or a verify after one certificate's balance changed at Instagift (card index, balance).
steps = st.lists(st.one_of(st.integers(0, 20_000), st.tuples(st.integers(0, 3), st.integers(100, 15_000))),
                 min_size=1, max_size=6)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first_total=st.integers(100, 20_000), cards=cards, steps=steps, rounding=st.sampled_from(["down", "up"]))
def test_after_any_total_changes_and_verifies_no_active_hold_forfeits_more_than_accepted(app, first_total, cards,
                                                                                         steps, rounding):
    provider = FakeInstagift()
    limiter = LookupLimiter("memory://", "100000/minute", key_prefix=f"prop-{uuid.uuid4().hex}")
    with app.app_context():
        config = dataclasses.replace(app.extensions["settings"], gift_card_rounding=rounding)
        session, now = db.session, utcnow()
        token, _ = checkout.create_cart(session, config, first_total, "USD", now)
        for balance, splittable, accept in cards:
            request = checkout.ApplyRequest(token, provider.add(balance, splittable), accept, "10.0.0.1")
            try:
                checkout.apply_gift_card(session, config, provider, limiter, request, now)
            except Conflict as refused:  # forfeit_not_accepted, nothing_due: the cart is unchanged
                assert refused.code in ("forfeit_not_accepted", "nothing_due")
                session.rollback()
        total = first_total
        for step in steps:
            now += timedelta(seconds=1)
            active_before = _active(session, token)
            if isinstance(step, tuple):
                index, balance = step
                if index < len(active_before):
                    provider.set_balance(active_before[index]["certificate_id"], balance)
                    active_before[index]["balance_cents"] = balance
                view, changes = checkout.verify_cart(session, config, provider, token, now)
                assert {c["reason"] for c in changes} <= {"forfeit_not_accepted", "balance_changed"}
            else:
                total = step
                view = checkout.update_cart_total(session, config, token, total, None, now)
            survivors = expected_survivors(total, [(h["id"], h["balance_cents"], h["splittable"],
                                                    h["accepted_forfeit_cents"]) for h in active_before], rounding)
            active = _active(session, token)
            assert [h["id"] for h in active] == survivors
            assert [c["id"] for c in view["gift_cards"]] == survivors
            for hold in active:
                assert hold["forfeit_cents"] <= hold["accepted_forfeit_cents"]
            # The amounts shown are those of the cards that are left, allocated again.
            allocation = money.allocate(total, [money.CardInput(h["id"], h["balance_cents"], h["splittable"])
                                                for h in active], rounding)
            assert view["covered_cents"] == allocation.covered_cents
            assert view["forfeit_cents"] == allocation.forfeit_cents


def _active(session, token: str) -> list[dict]:
    """The cart's active holds in entry order, as read from the database now."""
    session.expire_all()
    cart = session.scalar(sa.select(Cart).where(Cart.token_hash == checkout.hash_token(token)))
    fields = ("id", "certificate_id", "balance_cents", "splittable", "forfeit_cents", "accepted_forfeit_cents")
    holds = [{f: getattr(h, f) for f in fields} for h in cart.holds if h.status == "active"]
    session.rollback()
    return holds


def test_consent_binds_to_the_forfeit_the_shopper_was_shown(client):
    token = new_cart(client, 7450)
    shown = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": NON_SPLITTABLE_80})
    assert shown.status_code == 409 and shown.get_json()["forfeit_cents"] == 550

    # The shopper saw $5.00 (say the cart was $75.00 then): $5.50 is more than they agreed to, so asked again.
    again = client.post(f"/v1/carts/{token}/gift-cards",
                        json={"claim_code": NON_SPLITTABLE_80, "accept_forfeit": True, "accept_forfeit_cents": 500})
    assert again.status_code == 409
    assert (again.get_json()["code"], again.get_json()["forfeit_cents"]) == ("forfeit_not_accepted", 550)

    agreed = client.post(f"/v1/carts/{token}/gift-cards",
                         json={"claim_code": NON_SPLITTABLE_80, "accept_forfeit": True, "accept_forfeit_cents": 550})
    assert agreed.status_code == 200 and agreed.get_json()["forfeit_cents"] == 550


def test_plain_accept_forfeit_still_accepts_any_forfeit(client):
    token = new_cart(client, 7450)
    assert client.post(f"/v1/carts/{token}/gift-cards",
                       json={"claim_code": NON_SPLITTABLE_80, "accept_forfeit": True}).status_code == 200
