"""Money rules for gift cards at checkout: pure functions on integer cents (USD only), no I/O.

Instagift redeems whole dollars only and rounds `amount_to_redeem_cents` down, so every amount this module
asks Instagift to redeem is a whole dollar. Applying cards to a cart follows docs/money.md:

- cards are applied in the order given, each against what is still due;
- a splittable card takes `min(redeemable, due)` made whole dollars by the rounding policy
  (`down`: leftover cents stay due; `up`: round up when the card can cover it, so the order is fully paid);
- a non-splittable card is always redeemed whole. Because its whole value goes anyway, it covers what is
  due to the cent whatever the policy (rounding it down would make the shopper pay cents elsewhere while
  forfeiting more); what it does not cover is forfeited;
- when the cart total changes, the allocation is recomputed from scratch in entry order, so the card
  applied last shrinks first.

Field meanings (per card): `applied_cents` whole dollars the order takes from the card; `covers_cents` what
it pays of the order (`min(applied, due)`, may have cents); `redeem_cents` what Instagift will be asked to
redeem (= applied for splittable, the whole redeemable value for non-splittable); `forfeit_cents`
= redeem − covers for non-splittable cards, always 0 for splittable ones.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

CURRENCY = "USD"
CENTS_PER_DOLLAR = 100
# The largest amount any request may state ($1,000,000): far above any cart, low enough to catch unit mistakes
# and to keep every sum inside a 64-bit column.
MAX_AMOUNT_CENTS = 100_000_000

Rounding = Literal["down", "up"]
ROUNDINGS: tuple[str, ...] = ("down", "up")


def is_supported_currency(currency: str | None) -> bool:
    """True for the one currency the service handles today (USD)."""
    return (currency or "").upper() == CURRENCY


def floor_to_dollar(cents: int) -> int:
    """Round cents down to a whole dollar (never below zero)."""
    if cents <= 0:
        return 0
    return cents - cents % CENTS_PER_DOLLAR


def ceil_to_dollar(cents: int) -> int:
    """Round cents up to a whole dollar (never below zero)."""
    if cents <= 0:
        return 0
    return -(-cents // CENTS_PER_DOLLAR) * CENTS_PER_DOLLAR


def redeemable_cents(balance_cents: int) -> int:
    """What Instagift can redeem from a balance: the balance floored to whole dollars."""
    return floor_to_dollar(balance_cents)


def round_to_dollar(cents: int, rounding: Rounding) -> int:
    """Make an amount whole dollars by the merchant's rounding policy."""
    if rounding == "down":
        return floor_to_dollar(cents)
    if rounding == "up":
        return ceil_to_dollar(cents)
    raise ValueError(f"unknown rounding policy {rounding!r} (expected 'down' or 'up')")


@dataclass(frozen=True)
class CardInput:
    key: Hashable
    balance_cents: int
    splittable: bool


@dataclass(frozen=True)
class Allocation:
    key: Hashable
    applied_cents: int
    redeem_cents: int
    forfeit_cents: int
    covers_cents: int
    splittable: bool = True
    balance_cents: int = 0

    @property
    def unused(self) -> bool:
        """The card pays nothing of the order (nothing left due, or under a dollar to take): flag it."""
        return self.covers_cents == 0

    @property
    def rounded_up_cents(self) -> int:
        """Cents taken from a splittable card beyond what it pays (only under the `up` policy)."""
        return self.applied_cents - self.covers_cents if self.splittable else 0


@dataclass(frozen=True)
class CartAllocation:
    total_cents: int
    rounding: Rounding
    allocations: tuple[Allocation, ...]
    cards: tuple[CardInput, ...] = field(default=(), repr=False)

    @property
    def applied_cents(self) -> int:
        return sum(a.applied_cents for a in self.allocations)

    @property
    def covered_cents(self) -> int:
        return sum(a.covers_cents for a in self.allocations)

    @property
    def amount_due_cents(self) -> int:
        return self.total_cents - self.covered_cents

    @property
    def forfeit_cents(self) -> int:
        return sum(a.forfeit_cents for a in self.allocations)

    @property
    def redeem_cents(self) -> int:
        return sum(a.redeem_cents for a in self.allocations)

    def get(self, key: Hashable) -> Allocation | None:
        """The allocation for one card key, if the card is in this cart."""
        return next((a for a in self.allocations if a.key == key), None)

    def with_total(self, total_cents: int) -> CartAllocation:
        """Recompute for a new cart total: allocate again from scratch in entry order."""
        return allocate(total_cents, self.cards, self.rounding)


def _allocate_one(card: CardInput, due: int, rounding: Rounding) -> Allocation:
    redeemable = redeemable_cents(card.balance_cents)
    if due <= 0 or redeemable <= 0:
        return Allocation(card.key, 0, 0, 0, 0, card.splittable, card.balance_cents)
    if card.splittable:
        applied = min(redeemable, round_to_dollar(min(redeemable, due), rounding))
        covers = min(applied, due)
        return Allocation(card.key, applied, applied, 0, covers, True, card.balance_cents)
    # Non-splittable: redeemed whole, so it covers what is due to the cent; the rest is forfeited.
    covers = min(redeemable, due)
    applied = min(redeemable, ceil_to_dollar(covers))
    return Allocation(card.key, applied, redeemable, redeemable - covers, covers, False, card.balance_cents)


def allocate(total_cents: int, cards: Sequence[CardInput], rounding: Rounding = "down") -> CartAllocation:
    """Apply cards to a cart total in the order given, each against what is still due."""
    if total_cents < 0:
        raise ValueError("a cart total cannot be negative")
    if rounding not in ROUNDINGS:
        raise ValueError(f"unknown rounding policy {rounding!r} (expected 'down' or 'up')")
    due = total_cents
    allocations = []
    for card in cards:
        allocation = _allocate_one(card, due, rounding)
        allocations.append(allocation)
        due -= allocation.covers_cents
    return CartAllocation(total_cents, rounding, tuple(allocations), tuple(cards))


def whole_dollar_due_cents(total_cents: int, amount_due_cents: int, balances_cents: Sequence[int]) -> int:
    """Of what is still due, the part the cards' balances would have paid if gift cards paid cents: left due only
    because Instagift redeems whole dollars (a splittable card's amount rounded down, a balance's odd cents).

    Paying to the cent, cards applied in turn would cover min(total, Σ balances); whatever is due beyond what that
    leaves is the whole-dollar part. At most 99 ¢ a card, never more than what is due; 0 under the `up` policy
    when the cards can cover the total.
    """
    due_paying_to_the_cent = max(0, total_cents - sum(balances_cents))
    return max(0, amount_due_cents - due_paying_to_the_cent)


@dataclass(frozen=True)
class RedemptionAmount:
    amount_cents: int  # what to ask Instagift to redeem now (whole dollars, 0 = do not call)
    intended_cents: int  # what the order says should be redeemed (whole dollars, ≤ held)
    shortfall_cents: int  # intended − possible: recorded, never silently absorbed


def redemption_amount(taken_cents: int, held_cents: int, balance_cents: int, rounding: Rounding = "down",
                      *, splittable: bool = True) -> RedemptionAmount:
    """What to redeem for one card at order completion, never more than held or than the balance allows."""
    if taken_cents <= 0:
        return RedemptionAmount(0, 0, 0)
    held = floor_to_dollar(held_cents)
    # A non-splittable card that the order used at all is redeemed whole (what was held).
    intended = held if not splittable else min(held, round_to_dollar(taken_cents, rounding))
    possible = min(intended, redeemable_cents(balance_cents))
    return RedemptionAmount(possible, intended, intended - possible)


def split_order_gift_card_cents(gift_card_cents: int,
                                held: Sequence[tuple[Hashable, int]]) -> dict[Hashable, int]:
    """Share what the completed order took from gift cards across held cards in entry order."""
    remaining = max(0, gift_card_cents)
    taken: dict[Hashable, int] = {}
    for key, applied_cents in held:
        share = min(max(0, applied_cents), remaining)
        taken[key] = share
        remaining -= share
    return taken


def format_usd(cents: int) -> str:
    """Render cents for people: 5250 → '$52.50', -100 → '-$1.00'."""
    sign = "-" if cents < 0 else ""
    dollars, rest = divmod(abs(cents), CENTS_PER_DOLLAR)
    return f"{sign}${dollars:,}.{rest:02d}"
