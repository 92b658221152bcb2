"""Claim codes as shoppers type them, against the sandbox in its strict default (printed form only, exactly as
stored): which forms reach Instagift and in what order, at most two look-ups per attempt, one attempt for the
rate limits and the cart's failure count, hostile characters refused before any call, one card whatever the
spelling."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from service.checkout.models import Cart, GiftCardHold
from service.checkout.rules import claim_code_hash
from service.db import db
from service.providers.instagift import parse_claim_code

GROUPED_4_4_6 = "E69W-CDQ2-WTWH6Y"  # how the docs print 14-character codes
GROUPED_3_6_4 = "MNK-QPF27E-EHJ3"  # and 13-character ones
STORED_BARE = "ABCD2345EFGH67"  # a certificate whose code is stored without hyphens (only the fallback finds it)


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "1000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "1000/minute"
    return environ


@pytest.fixture
def cards(app, instagift):
    """Three certificates, keyed by their stored code; the sandbox is strict (its default)."""
    assert not instagift.accept_bare_codes
    return {code: instagift.add_certificate(5000, claim_code=code)[0]
            for code in (GROUPED_4_4_6, GROUPED_3_6_4, STORED_BARE)}


def sent(instagift) -> list[str]:
    """The claim-code forms that reached the sandbox, in order, and forget them."""
    with instagift.lock:
        forms, instagift.claim_code_requests = instagift.claim_code_requests, []
    return forms


def scalar(app, statement):
    with app.app_context():
        return db.session.scalar(statement)


def balance(client, code):
    return client.post("/v1/gift-cards/balance", json={"claim_code": code})


def new_cart(client, total_cents: int = 10000) -> str:
    return client.post("/v1/carts", json={"total_cents": total_cents}).get_json()["cart_token"]


def apply(client, token: str, code):
    return client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code})


@pytest.mark.parametrize(("typed", "stored", "forms"), [
    # Typed with groups: the shopper's grouping first (the docs' form), upper-cased, one hyphen between groups.
    (" e69w cdq2 wtwh6y ", GROUPED_4_4_6, [GROUPED_4_4_6]),
    ("E69W-CDQ2-WTWH6Y", GROUPED_4_4_6, [GROUPED_4_4_6]),
    ("e69w--cdq2 - wtwh6y", GROUPED_4_4_6, [GROUPED_4_4_6]),
    ("MNK–QPF27E—EHJ3", GROUPED_3_6_4, [GROUPED_3_6_4]),
    ("demo-100s-plit", "DEMO-100S-PLIT", ["DEMO-100S-PLIT"]),  # the demo codes, as printed on the demo page
    # Typed with groups Instagift does not know: the bare code once (fallback 1).
    ("abcd 2345 efgh67", STORED_BARE, ["ABCD-2345-EFGH67", STORED_BARE]),
    # Typed bare, of a length Instagift prints in groups: grouped that way (the docs' form), then bare (fallback 2).
    ("e69wcdq2wtwh6y", GROUPED_4_4_6, [GROUPED_4_4_6]),
    ("mnkqpf27eehj3", GROUPED_3_6_4, [GROUPED_3_6_4]),
    (STORED_BARE.lower(), STORED_BARE, ["ABCD-2345-EFGH67", STORED_BARE]),
])
def test_each_typed_form_finds_its_card_with_the_forms_sent_in_order(app, client, instagift, cards, typed, stored,
                                                                     forms):
    instagift.claim_code_requests.clear()
    answer = balance(client, typed)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["code"] == "••••" + stored.replace("-", "")[-4:]
    assert sent(instagift) == forms

    token = new_cart(client)
    view = apply(client, token, typed)
    assert view.status_code == 200, view.get_json()
    assert sent(instagift) == forms
    held = scalar(app, sa.select(GiftCardHold.certificate_id))
    assert held == cards.get(stored, instagift.certificate_by_code(stored)["id"])


@pytest.mark.parametrize(("typed", "forms"), [
    ("ZZZZ ZZZZ ZZZZZZ", ["ZZZZ-ZZZZ-ZZZZZZ", "ZZZZZZZZZZZZZZ"]),
    ("zzz-zzzzzz-zzzz", ["ZZZ-ZZZZZZ-ZZZZ", "ZZZZZZZZZZZZZ"]),
    ("ZZZZZZZZ-ZZZZZZZ", ["ZZZZZZZZ-ZZZZZZZ", "ZZZZZZZZZZZZZZZ"]),
    ("zzzzzzzzzzzzzz", ["ZZZZ-ZZZZ-ZZZZZZ", "ZZZZZZZZZZZZZZ"]),
    ("ZZZZZZZZZZZZZZZ", ["ZZZZZZZZZZZZZZZ"]),  # 15 characters: no documented grouping, one look-up
    ("ZZZZZZZZZZZZ", ["ZZZZZZZZZZZZ"]),
])
def test_an_unknown_code_costs_at_most_two_look_ups_and_never_bare_first_when_typed_with_hyphens(
        client, instagift, cards, typed, forms):
    instagift.claim_code_requests.clear()
    answer = balance(client, typed)
    assert answer.status_code == 404 and answer.get_json()["code"] == "gift_card_not_found"
    got = sent(instagift)
    assert got == forms and len(got) <= 2
    if "-" in typed or " " in typed.strip():
        assert "-" in got[0]


def test_one_attempt_counts_once_for_the_rate_limit_and_the_cart_lock(environ, request):
    environ["LOOKUP_RATE_LIMIT"] = "2/minute"
    environ["CART_FAILURE_LIMIT"] = "2"
    app, client, instagift = (request.getfixturevalue(name) for name in ("app", "client", "instagift"))
    token = new_cart(client)
    assert apply(client, token, "ZZZZ-ZZZZ-ZZZZZZ").status_code == 404
    assert len(sent(instagift)) == 2  # two look-ups at Instagift ...
    assert scalar(app, sa.select(Cart.failed_lookups)) == 1  # ... one failed attempt
    assert scalar(app, sa.select(Cart.locked_until)) is None
    # Had each look-up counted, the limit of two a minute would already refuse this one.
    assert apply(client, token, "zzzzzzzzzzzzzz").status_code == 404
    assert len(sent(instagift)) == 2
    assert scalar(app, sa.select(Cart.locked_until)) is not None  # the second failed attempt locks it
    assert apply(client, token, GROUPED_4_4_6).status_code == 429
    assert sent(instagift) == []

    other_client = {"environ_base": {"REMOTE_ADDR": "198.51.100.7"}}
    for _ in range(2):
        answer = client.post("/v1/gift-cards/balance", json={"claim_code": "zzzzzzzzzzzzzz"}, **other_client)
        assert answer.status_code == 404
    assert len(sent(instagift)) == 4
    third = client.post("/v1/gift-cards/balance", json={"claim_code": "DEMO-100S-PLIT"}, **other_client)
    assert third.status_code == 429 and sent(instagift) == []


@pytest.mark.parametrize("typed", [
    "E69W.CDQ2.WTWH6Y", "E69W/CDQ2/WTWH6Y", "E69W_CDQ2_WTWH6Y", "E69W-CDQ2-WTWH6Y'; DROP TABLE carts; --",
    "<script>E69WCDQ2WTWH6Y</script>", "E69W%2DCDQ2%2DWTWH6Y", "E69W-CDQ2-WTWH6Y?x=1", "../claim_codes/E69WCDQ2WTWH6Y",
    "E69W+CDQ2+WTWH6Y", "É69W-CDQ2-WTWH6Y", "E69W-CDQ2-WTWH6Y\u200b",
])
def test_hostile_characters_are_refused_without_a_provider_call(app, client, instagift, cards, typed):
    token = new_cart(client)
    before = client.get(f"/v1/carts/{token}").get_json()
    for answer in (balance(client, typed), apply(client, token, typed)):
        assert answer.status_code == 404 and answer.mimetype == "application/problem+json"
        assert answer.get_json()["code"] == "gift_card_not_found"
        assert "E69W" not in answer.get_data(as_text=True)
    assert instagift.calls["fetch_claim_code"] == 0 and instagift.claim_code_requests == []
    assert client.get(f"/v1/carts/{token}").get_json() == before
    assert scalar(app, sa.select(Cart.failed_lookups)) == 1  # a malformed code is a failed lookup


def test_every_spelling_of_one_card_is_one_card(app, client, instagift, cards):
    token = new_cart(client)
    assert apply(client, token, GROUPED_4_4_6).status_code == 200
    sent(instagift)
    for spelling in ("e69wcdq2wtwh6y", " e69w cdq2 wtwh6y", "E69W-CDQ2WTWH6Y"):
        answer = apply(client, token, spelling)
        assert answer.status_code == 409 and answer.get_json()["code"] == "gift_card_already_applied"
    assert sent(instagift) == []  # recognised from the stored hash, before asking Instagift
    with app.app_context():
        hold = db.session.scalar(sa.select(GiftCardHold))
        settings = app.extensions["settings"]
        assert hold.claim_code_hash == claim_code_hash(parse_claim_code("e69wcdq2wtwh6y"), settings)
        assert hold.code_last4 == "WH6Y"
        row = db.session.execute(sa.select(GiftCardHold.__table__)).one()
        assert not any(isinstance(v, str) and ("E69W" in v or "CDQ2" in v) for v in row)


def test_the_fallback_leaves_no_claim_code_in_the_logs(client, instagift, cards, caplog):
    caplog.set_level(logging.DEBUG)
    for typed in ("abcd 2345 efgh67", "e69wcdq2wtwh6y", "ZZZZ-ZZZZ-ZZZZZZ"):
        balance(client, typed)
    assert sent(instagift)  # the fallbacks ran
    for record in caplog.records:
        message = record.getMessage()
        for secret in ("ABCD2345", "ABCD-2345", "E69WCDQ2", "E69W-CDQ2", "ZZZZZZZZ", "ZZZZ-ZZZZ"):
            assert secret not in message.upper(), message
