"""Seeding helpers for the reconciliation tests: rows written straight through the models (no test functions)."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from service.checkout.models import Cart, GiftCardHold
from service.db import db
from service.jobs.models import Job
from service.membership.models import MembershipCard, MembershipPrintJob
from service.orders.models import Order
from service.redemption.models import GiftCardRedemption
from service.thank_you.models import ThankYouCard

_ids = itertools.count(1)


def at(day: int, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """A moment on 2026-11-<day> (UTC)."""
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def order(shop_order_id: str, *, completed_at: datetime, gift_card_cents: int = 0, total_cents: int = 10000,
          cancelled_at: datetime | None = None) -> Order:
    row = Order(shop_order_id=shop_order_id, number=f"#{shop_order_id}", currency="USD", total_cents=total_cents,
                gift_card_cents=gift_card_cents, customer_email="ada@example.com", payload={"id": shop_order_id},
                completed_at=completed_at, cancelled_at=cancelled_at, created_at=completed_at)
    db.session.add(row)
    db.session.flush()
    return row


def hold(*, applied_cents: int, status: str = "redeemed", created_at: datetime, splittable: bool = True,
         certificate_id: str | None = None, code_last4: str = "WXYZ") -> GiftCardHold:
    n = next(_ids)
    cart = Cart(token_hash=hashlib.sha256(f"cart-{n}-{created_at}".encode()).hexdigest(), total_cents=10000,
                currency="USD", expires_at=created_at + timedelta(minutes=30), created_at=created_at)
    db.session.add(cart)
    db.session.flush()
    row = GiftCardHold(cart_id=cart.id, certificate_id=certificate_id or f"cert-{n}",
                       claim_code_hash=hashlib.sha256(f"code-{n}".encode()).hexdigest(), code_last4=code_last4,
                       currency="USD", balance_cents=10000, splittable=splittable, applied_cents=applied_cents,
                       covers_cents=applied_cents, redeem_cents=applied_cents, position=1, status=status,
                       expires_at=created_at + timedelta(minutes=30), created_at=created_at)
    db.session.add(row)
    db.session.flush()
    return row


def redemption(of: Order, *, created_at: datetime, state: str, applied: int, taken: int, intended: int,
               redeemed: int = 0, shortfall: int = 0, forfeit: int = 0, splittable: bool = True,
               provider_redemption_id: str | None = None, certificate_id: str | None = None,
               child_certificate_id: str | None = None, child_balance_cents: int | None = None,
               error: str | None = None) -> GiftCardRedemption:
    held = hold(applied_cents=applied, created_at=created_at, splittable=splittable, certificate_id=certificate_id)
    row = GiftCardRedemption(
        order_id=of.id, hold_id=held.id, certificate_id=held.certificate_id, code_last4="WXYZ", currency="USD",
        splittable=splittable, applied_cents=applied, taken_cents=taken, intended_cents=intended,
        requested_cents=intended, redeemed_cents=redeemed, shortfall_cents=shortfall, forfeit_cents=forfeit,
        state=state, provider_redemption_id=provider_redemption_id, child_certificate_id=child_certificate_id,
        child_balance_cents=child_balance_cents, error=error, attempts=1, created_at=created_at,
        redeemed_at=created_at + timedelta(seconds=5) if state in ("succeeded", "shortfall") else None)
    db.session.add(row)
    db.session.flush()
    return row


def thank_you(of: Order, *, status: str, created_at: datetime, placed_at: datetime | None = None,
              cost: str | None = None, test_mode: bool = False) -> ThankYouCard:
    row = ThankYouCard(order_id=of.id, status=status, generation=1, cost_credits=Decimal(cost) if cost else None,
                       test_mode=test_mode, cardly_order_id=f"cardly-{of.shop_order_id}" if placed_at else None,
                       created_at=created_at, placed_at=placed_at)
    db.session.add(row)
    db.session.flush()
    return row


def print_job(*, submitted_at: datetime | None, cost_cents: int, shipping_cents: int,
              status: str = "submitted") -> MembershipPrintJob:
    row = MembershipPrintJob(mode="member", status=status, instantcard_print_job_id=f"pj-{next(_ids)}",
                             card_count=1, cost_cents=cost_cents, shipping_cost_cents=shipping_cents,
                             submitted_at=submitted_at, created_at=submitted_at or at(1))
    db.session.add(row)
    db.session.flush()
    return row


def membership_card(of: Order, *, status: str, created_at: datetime, job: MembershipPrintJob | None = None,
                    unit: int = 0) -> MembershipCard:
    row = MembershipCard(order_id=of.id, line_index=0, unit_index=unit, sku="MEMBER-GOLD",
                         member_number=f"M{next(_ids):08d}", template_id=101, status=status,
                         instantcard_card_id=f"ic-{next(_ids)}", print_job_id=job.id if job else None,
                         job_cost_cents=job.cost_cents if job else None, created_at=created_at)
    db.session.add(row)
    db.session.flush()
    return row


def job(kind: str, *, state: str, created_at: datetime, failures: int = 0, of: Order | None = None,
        dedupe_key: str | None = None) -> Job:
    row = Job(kind=kind, payload={}, state=state, failures=failures, attempts=failures, max_attempts=8,
              dedupe_key=dedupe_key,
              run_at=created_at, created_at=created_at, updated_at=created_at, order_id=of.id if of else None,
              last_error="boom" if state == "dead" else None)
    db.session.add(row)
    db.session.flush()
    return row


def seed_two_days() -> None:
    """Two UTC days (2026-11-21 and -22) with splits, shortfalls, rounding, forfeits, failures and costs, plus
    rows just outside them. Expected figures are spelled out in test_reconciliation_totals.py."""
    o1 = order("1001", completed_at=at(21, 9), gift_card_cents=5250)
    o2 = order("1002", completed_at=at(21, 10), gift_card_cents=4000)
    o3 = order("1003", completed_at=at(21, 11), gift_card_cents=2950)
    o4 = order("1004", completed_at=at(21, 12), gift_card_cents=2000)
    o5 = order("1005", completed_at=at(21, 23, 59, 59), gift_card_cents=1000)
    o6 = order("1006", completed_at=at(22, 8), gift_card_cents=5200, cancelled_at=at(22, 9))
    o7 = order("1007", completed_at=at(22, 9), gift_card_cents=700)
    o8 = order("1008", completed_at=at(23, 0), gift_card_cents=9900)
    early = order("0999", completed_at=at(20, 23, 59, 59), gift_card_cents=100)

    # Day 1: a split under the `up` policy ($52.50 taken → $53 redeemed, $47 left on the child certificate).
    redemption(o1, created_at=at(21, 9), state="succeeded", applied=5300, taken=5250, intended=5300, redeemed=5300,
               provider_redemption_id="ig-r1", child_certificate_id="cert-child-1", child_balance_cents=4700)
    # Spent in store between verify and redemption: $25 of the $40 intended.
    redemption(o2, created_at=at(21, 10), state="shortfall", applied=4000, taken=4000, intended=4000,
               redeemed=2500, shortfall=1500, provider_redemption_id="ig-r2")
    # A non-splittable $80 card paying $29.50: $30 applied, $50 forfeited.
    redemption(o3, created_at=at(21, 11), state="succeeded", applied=3000, taken=2950, intended=8000,
               redeemed=8000, forfeit=5000, splittable=False, provider_redemption_id="ig-r3")
    redemption(o4, created_at=at(21, 12), state="failed", applied=2000, taken=2000, intended=2000,
               error="instagift: That item is not available for redemption (HTTP 400)")
    redemption(o5, created_at=at(21, 23, 59, 59), state="pending", applied=1000, taken=1000, intended=1000)
    # Day 2.
    redemption(o6, created_at=at(22, 8), state="succeeded", applied=5200, taken=5200, intended=5200, redeemed=5200,
               provider_redemption_id="ig-r6")
    redemption(o7, created_at=at(22, 9), state="uncertain", applied=700, taken=700, intended=700)
    # Outside the two days on both sides.
    redemption(o8, created_at=at(23, 0), state="succeeded", applied=9900, taken=9900, intended=9900,
               redeemed=9900, provider_redemption_id="ig-r8")
    redemption(early, created_at=at(20, 23, 59, 59), state="succeeded", applied=100, taken=100, intended=100,
               redeemed=100, provider_redemption_id="ig-r0")

    # Open holds: one on day 1, one being redeemed on day 2; a released one never counts.
    hold(applied_cents=2500, status="active", created_at=at(21, 14))
    hold(applied_cents=1100, status="redeeming", created_at=at(22, 14))
    hold(applied_cents=9000, status="released", created_at=at(21, 15))

    thank_you(o1, status="placed", created_at=at(21, 9), placed_at=at(21, 9, 1), cost="1.50")
    thank_you(o2, status="placed", created_at=at(21, 10), placed_at=at(21, 10, 1), cost="2.00", test_mode=True)
    thank_you(o3, status="waiting_for_credit", created_at=at(21, 11))
    thank_you(o4, status="placed", created_at=at(21, 12), placed_at=at(22, 6), cost="1.25")  # placed next day
    thank_you(o6, status="failed", created_at=at(22, 8))
    thank_you(o7, status="skipped", created_at=at(22, 9))
    thank_you(o8, status="placed", created_at=at(23, 0), placed_at=at(23, 0, 1), cost="9.00")

    pj1 = print_job(submitted_at=at(21, 13), cost_cents=1250, shipping_cents=400)
    pj2 = print_job(submitted_at=at(22, 13), cost_cents=900, shipping_cents=0)
    print_job(submitted_at=None, cost_cents=5000, shipping_cents=0, status="open")
    membership_card(o1, status="submitted", created_at=at(21, 9), job=pj1)
    membership_card(o2, status="waiting_for_funds", created_at=at(21, 10))
    membership_card(o6, status="submitted", created_at=at(22, 8), job=pj2)
    membership_card(o7, status="failed", created_at=at(22, 9))

    job("redeem_gift_card", state="succeeded", created_at=at(21, 9), of=o1)
    job("send_thank_you_card", state="succeeded", created_at=at(21, 9), of=o1)
    job("send_thank_you_card", state="parked", created_at=at(21, 11), of=o3)
    job("redeem_gift_card", state="dead", created_at=at(21, 12), failures=1, of=o4)
    job("redeem_gift_card", state="queued", created_at=at(21, 23, 59, 59), failures=2, of=o5)
    job("membership_card", state="dead", created_at=at(22, 9), failures=8, of=o7)
    job("redeem_gift_card", state="queued", created_at=at(22, 9), of=o7)
    job("redeem_gift_card", state="dead", created_at=at(23, 0), of=o8)
    # Housekeeping runs are not counted: they come every minute and are purged after a day.
    job("release_expired_holds", state="succeeded", created_at=at(21, 10), dedupe_key="periodic:release:1")
    job("check_cardly_credit", state="dead", created_at=at(22, 10), dedupe_key="periodic:credit:2")
    db.session.commit()
