"""The money rules of docs/money.md: its examples, then hypothesis properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.money import (
    CardInput,
    allocate,
    ceil_to_dollar,
    floor_to_dollar,
    format_usd,
    is_supported_currency,
    redeemable_cents,
    redemption_amount,
    split_order_gift_card_cents,
    whole_dollar_due_cents,
)

# --- examples from docs/money.md ---------------------------------------------------------------------


def test_whole_dollar_helpers():
    assert floor_to_dollar(2381) == 2300
    assert floor_to_dollar(99) == 0
    assert floor_to_dollar(-5) == 0
    assert ceil_to_dollar(5250) == 5300
    assert ceil_to_dollar(5300) == 5300
    assert redeemable_cents(7550) == 7500


def test_down_leaves_cents_due():
    result = allocate(5250, [CardInput("a", 10000, True)], "down")
    (card,) = result.allocations
    assert (card.applied_cents, card.redeem_cents, card.covers_cents, card.forfeit_cents) == (5200, 5200, 5200, 0)
    assert result.applied_cents == 5200
    assert result.amount_due_cents == 50


def test_up_covers_the_whole_order():
    result = allocate(5250, [CardInput("a", 10000, True)], "up")
    (card,) = result.allocations
    assert card.applied_cents == 5300 and card.redeem_cents == 5300
    assert card.covers_cents == 5250 and card.rounded_up_cents == 50
    assert result.amount_due_cents == 0


def test_up_when_the_card_cannot_cover_takes_its_whole_redeemable_value():
    result = allocate(5250, [CardInput("a", 5299, True)], "up")
    (card,) = result.allocations
    assert card.applied_cents == 5200
    assert result.amount_due_cents == 50


def test_odd_cents_balance_only_whole_dollars_apply():
    result = allocate(10000, [CardInput("a", 7550, True)], "down")
    assert result.allocations[0].applied_cents == 7500
    assert result.amount_due_cents == 2500


def test_several_cards_apply_in_entry_order():
    result = allocate(12000, [CardInput("a", 10000, True), CardInput("b", 5000, True)], "down")
    assert [a.applied_cents for a in result.allocations] == [10000, 2000]
    assert result.amount_due_cents == 0


def test_non_splittable_is_redeemed_whole_and_the_rest_forfeited():
    result = allocate(5250, [CardInput("a", 8000, False)], "down")
    (card,) = result.allocations
    assert card.redeem_cents == 8000
    assert card.covers_cents == 5250  # redeemed whole anyway, so it pays the cents too
    assert card.applied_cents == 5300
    assert card.forfeit_cents == 2750
    assert result.amount_due_cents == 0 and result.forfeit_cents == 2750


def test_non_splittable_smaller_than_due_forfeits_nothing():
    result = allocate(5250, [CardInput("a", 2500, False)], "down")
    (card,) = result.allocations
    assert (card.applied_cents, card.redeem_cents, card.forfeit_cents) == (2500, 2500, 0)
    assert result.amount_due_cents == 2750


def test_card_with_nothing_left_to_pay_is_flagged_unused():
    result = allocate(3000, [CardInput("a", 10000, True), CardInput("b", 2500, False)], "down")
    first, second = result.allocations
    assert first.applied_cents == 3000 and not first.unused
    assert second.unused
    assert (second.applied_cents, second.redeem_cents, second.forfeit_cents) == (0, 0, 0)


def test_shrinking_total_shrinks_the_last_applied_first():
    cart = allocate(12000, [CardInput("a", 10000, True), CardInput("b", 5000, True)], "down")
    smaller = cart.with_total(10500)
    assert [a.applied_cents for a in smaller.allocations] == [10000, 500]
    smallest = smaller.with_total(4000)
    assert [a.applied_cents for a in smallest.allocations] == [4000, 0]


def test_redemption_amount_follows_the_order_and_records_shortfall():
    r = redemption_amount(5200, 5200, 10000)
    assert (r.amount_cents, r.intended_cents, r.shortfall_cents) == (5200, 5200, 0)
    # spent in store meanwhile: only $30.40 left → $30 redeemed, $22 short
    r = redemption_amount(5200, 5200, 3040)
    assert (r.amount_cents, r.intended_cents, r.shortfall_cents) == (3000, 5200, 2200)
    # the order took less than was held
    assert redemption_amount(2000, 5200, 10000).amount_cents == 2000
    # cents taken: made whole by the policy, never more than held
    assert redemption_amount(5250, 5300, 10000, "up").amount_cents == 5300
    assert redemption_amount(5250, 5200, 10000, "up").amount_cents == 5200
    assert redemption_amount(5250, 5300, 10000, "down").amount_cents == 5200
    # nothing taken → nothing to redeem
    assert redemption_amount(0, 5200, 10000).amount_cents == 0


def test_redemption_amount_non_splittable_is_whole():
    r = redemption_amount(5250, 8000, 8000, "down", splittable=False)
    assert (r.amount_cents, r.shortfall_cents) == (8000, 0)
    r = redemption_amount(5250, 8000, 6000, "down", splittable=False)
    assert (r.amount_cents, r.intended_cents, r.shortfall_cents) == (6000, 8000, 2000)


def test_split_order_gift_card_cents_in_entry_order():
    assert split_order_gift_card_cents(5250, [("a", 3000), ("b", 2300)]) == {"a": 3000, "b": 2250}
    assert split_order_gift_card_cents(2000, [("a", 3000), ("b", 2300)]) == {"a": 2000, "b": 0}
    assert split_order_gift_card_cents(9999, [("a", 3000)]) == {"a": 3000}
    assert split_order_gift_card_cents(0, [("a", 3000)]) == {"a": 0}


def test_format_usd():
    assert format_usd(5250) == "$52.50"
    assert format_usd(5) == "$0.05"
    assert format_usd(123456789) == "$1,234,567.89"
    assert format_usd(-100) == "-$1.00"


def test_only_usd_is_supported():
    assert is_supported_currency("USD") and is_supported_currency("usd")
    assert not is_supported_currency("EUR") and not is_supported_currency(None)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        allocate(-1, [], "down")
    with pytest.raises(ValueError):
        allocate(100, [], "sideways")  # type: ignore[arg-type]


def whole_dollar_due(total: int, cards: list[CardInput], rounding: str = "down") -> int:
    allocation = allocate(total, cards, rounding)
    return whole_dollar_due_cents(total, allocation.amount_due_cents, [c.balance_cents for c in cards])


def test_cents_left_due_only_because_cards_pay_whole_dollars():
    # The README's screenshot: a $100 card on a $74.50 cart leaves 50 ¢ that the card could have paid.
    assert whole_dollar_due(7450, [CardInput("a", 10000, True)]) == 50
    assert whole_dollar_due(7450, [CardInput("a", 10000, True)], "up") == 0
    # A card worth less than the cart: what is due is due anyway, not because of whole dollars.
    assert whole_dollar_due(7450, [CardInput("a", 5000, True)]) == 0
    # A balance's odd cents can't be redeemed: $75.50 pays $75 of an $80 cart, 50 ¢ of the $5 due is that.
    assert whole_dollar_due(8000, [CardInput("a", 7550, True)]) == 50
    # Non-splittable cards cover to the cent: nothing is due because of whole dollars.
    assert whole_dollar_due(5050, [CardInput("a", 8000, False)]) == 0
    assert whole_dollar_due(7450, []) == 0


# --- properties ----------------------------------------------------------------------------------------

cents = st.integers(min_value=0, max_value=500_000)
cards_strategy = st.lists(
    st.builds(CardInput, key=st.uuids(), balance_cents=cents, splittable=st.booleans()), max_size=5,
    unique_by=lambda c: c.key,
)
splittable_cards = st.lists(
    st.builds(CardInput, key=st.uuids(), balance_cents=cents, splittable=st.just(True)), max_size=5,
    unique_by=lambda c: c.key,
)
roundings = st.sampled_from(["down", "up"])


@given(total=cents, cards=cards_strategy, rounding=roundings)
def test_every_amount_is_whole_dollars_and_within_the_balance(total, cards, rounding):
    result = allocate(total, cards, rounding)
    for card, a in zip(cards, result.allocations, strict=True):
        assert a.applied_cents % 100 == 0 and a.redeem_cents % 100 == 0
        assert 0 <= a.applied_cents <= redeemable_cents(card.balance_cents)
        assert 0 <= a.redeem_cents <= redeemable_cents(card.balance_cents)
        assert 0 <= a.covers_cents <= a.applied_cents
        assert a.forfeit_cents >= 0
    assert 0 <= result.amount_due_cents <= total
    assert result.covered_cents + result.amount_due_cents == total


@given(total=cents, cards=splittable_cards)
def test_down_never_takes_more_than_due_and_adds_up(total, cards):
    result = allocate(total, cards, "down")
    due = total
    for a in result.allocations:
        assert a.applied_cents <= due
        assert a.redeem_cents == a.applied_cents and a.forfeit_cents == 0
        due -= a.applied_cents
    assert result.applied_cents + result.amount_due_cents == total


@given(total=cents, cards=splittable_cards)
def test_up_pays_everything_the_cards_can(total, cards):
    result = allocate(total, cards, "up")
    total_redeemable = sum(redeemable_cents(c.balance_cents) for c in cards)
    if total_redeemable >= ceil_to_dollar(total):
        assert result.amount_due_cents == 0
    # never takes a dollar more than needed
    assert result.applied_cents - result.covered_cents < 100


@given(total=cents, cards=cards_strategy, rounding=roundings)
def test_non_splittable_is_redeemed_whole_or_not_at_all(total, cards, rounding):
    result = allocate(total, cards, rounding)
    for card, a in zip(cards, result.allocations, strict=True):
        if not card.splittable:
            assert a.redeem_cents in (0, floor_to_dollar(card.balance_cents))
            if not a.unused:
                assert a.redeem_cents == floor_to_dollar(card.balance_cents)
                assert a.redeem_cents == a.covers_cents + a.forfeit_cents
        else:
            assert a.forfeit_cents == 0


@given(cards=cards_strategy, rounding=roundings, totals=st.lists(cents, min_size=1, max_size=8))
def test_recomputing_after_total_changes_equals_allocating_from_scratch(cards, rounding, totals):
    cart = allocate(totals[0], cards, rounding)
    for total in totals[1:]:
        cart = cart.with_total(total)
    assert cart.allocations == allocate(totals[-1], cards, rounding).allocations


@given(cards=splittable_cards, before=cents, after=cents)
def test_when_the_total_shrinks_the_last_applied_shrinks_first(cards, before, after):
    if after > before:
        before, after = after, before
    old = allocate(before, cards, "down").allocations
    new = allocate(after, cards, "down").allocations
    for i, (o, n) in enumerate(zip(old, new, strict=True)):
        assert n.applied_cents <= o.applied_cents
        if n.applied_cents < o.applied_cents:
            assert all(later.applied_cents == 0 for later in new[i + 1:])


@given(taken=cents, held=cents, balance=cents, rounding=roundings, splittable=st.booleans())
def test_redemption_amount_never_exceeds_held_or_balance(taken, held, balance, rounding, splittable):
    r = redemption_amount(taken, held, balance, rounding, splittable=splittable)
    assert r.amount_cents % 100 == 0 and r.intended_cents % 100 == 0
    assert 0 <= r.amount_cents <= min(floor_to_dollar(held), floor_to_dollar(balance))
    assert r.intended_cents <= floor_to_dollar(held)
    assert r.shortfall_cents == r.intended_cents - r.amount_cents >= 0


@given(gift=cents, held=st.lists(st.tuples(st.uuids(), cents), max_size=5, unique_by=lambda h: h[0]))
def test_split_order_never_gives_a_card_more_than_applied(gift, held):
    taken = split_order_gift_card_cents(gift, held)
    assert all(0 <= taken[k] <= applied for k, applied in held)
    assert sum(taken.values()) == min(gift, sum(a for _, a in held))


@given(total=cents, cards=cards_strategy, rounding=roundings)
def test_whole_dollar_due_is_part_of_what_is_due_and_under_a_dollar_a_card(total, cards, rounding):
    allocation = allocate(total, cards, rounding)
    part = whole_dollar_due_cents(total, allocation.amount_due_cents, [c.balance_cents for c in cards])
    assert 0 <= part <= allocation.amount_due_cents
    assert part <= 99 * len(cards)
    if sum(c.balance_cents for c in cards) < total:
        # The balances can't pay the total even to the cent: at least that shortfall is due whatever the dollars.
        assert allocation.amount_due_cents - part >= total - sum(c.balance_cents for c in cards)


whole_dollar_balances = st.integers(min_value=0, max_value=5000).map(lambda dollars: dollars * 100)


@given(total=cents, balances=st.lists(whole_dollar_balances, max_size=5), splittable=st.booleans())
def test_whole_dollar_cards_leave_only_the_totals_cents_and_only_when_rounding_down(total, balances, splittable):
    cards = [CardInput(n, b, splittable) for n, b in enumerate(balances)]
    assert whole_dollar_due(total, cards, "up") == 0
    down = whole_dollar_due(total, cards, "down")
    if not splittable:
        assert down == 0  # redeemed whole, they cover to the cent
    elif sum(balances) >= total:
        assert down == allocate(total, cards, "down").amount_due_cents == total % 100
