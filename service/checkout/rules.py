"""Carts and gift-card holds: create, apply a claim code, remove, recompute, verify, expire, take back.

Every function takes what it needs (session, settings, the Instagift client, the lookup limiter, `now`) so
tests can drive it with their own clock. No database transaction is kept open across an Instagift call
(`service.db.call_provider`): the reads and checks end first, the provider is asked, then the writes happen in a
fresh transaction that re-checks what may have changed meanwhile. The partial unique index on `gift_card_holds.certificate_id`
(status active/redeeming) is what finally guarantees one open cart per certificate.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask_babel import gettext, lazy_gettext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from service import money
from service.checkout.limits import LookupLimiter
from service.checkout.models import Cart, FailedLookup, GiftCardHold
from service.config import Settings
from service.db import call_provider, lock_for_update
from service.errors import (
    Conflict,
    NotFound,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnavailable,
    RateLimited,
    ServiceError,
    ValidationFailed,
)
from service.formats import amount_words, duration_words, iso
from service.hashing import token_hash as hash_token
from service.logs import mask, masked_last4
from service.providers.instagift import ClaimCode, parse_claim_code

log = logging.getLogger("service.checkout")

MAX_CARDS_PER_CART = 20  # the per-cart lookup limit already slows abuse; this bounds a cart's work


# -- tokens and codes ----------------------------------------------------------------------------------

def new_cart_token() -> str:
    """A random, unguessable cart token (192 bits)."""
    return secrets.token_urlsafe(24)


def claim_code_hash(code: ClaimCode, settings: Settings) -> str:
    """HMAC-SHA256 of a claim code's canonical form (letters and digits only, so every spelling of one card is one
    hash), keyed by a server secret so stored hashes can't be brute-forced."""
    key = hashlib.sha256(b"claim-code-hash:" + settings.shop_api_token.encode()).digest()
    return hmac.new(key, code.canonical.encode(), hashlib.sha256).hexdigest()


# -- the cart view -------------------------------------------------------------------------------------

def gift_card_view(hold: GiftCardHold) -> dict[str, Any]:
    """One gift card as the widget sees it: masked code, balance, what the cart takes from it."""
    return {
        "id": hold.id,
        "code": masked_last4(hold.code_last4),
        "balance_cents": hold.balance_cents,
        "applied_cents": hold.applied_cents,
        "covers_cents": hold.covers_cents,
        "redeem_cents": hold.redeem_cents,
        "splittable": hold.splittable,
        "forfeit_cents": hold.forfeit_cents,
        "expires_at": iso(hold.certificate_expires_at),
        "hold_expires_at": iso(hold.expires_at),
        "status": hold.status,
    }


def visible_holds(cart: Cart) -> list[GiftCardHold]:
    return [h for h in cart.holds if h.status in ("active", "redeeming", "redeemed")]


def cart_view(cart: Cart, token: str | None = None) -> dict[str, Any]:
    """The cart as the widget and the shop backend see it."""
    holds = visible_holds(cart)
    applied = sum(h.applied_cents for h in holds)
    covered = sum(h.covers_cents for h in holds)
    view: dict[str, Any] = {}
    if token:
        view["cart_token"] = token
    amount_due = max(0, cart.total_cents - covered)
    view.update({
        "total_cents": cart.total_cents,
        "currency": cart.currency,
        "applied_cents": applied,
        "covered_cents": covered,
        "amount_due_cents": amount_due,
        "whole_dollar_due_cents": money.whole_dollar_due_cents(cart.total_cents, amount_due,
                                                               [h.balance_cents for h in holds]),
        "forfeit_cents": sum(h.forfeit_cents for h in holds),
        "gift_cards": [gift_card_view(h) for h in holds],
        "expires_at": iso(cart.expires_at),
    })
    return view


# -- carts ---------------------------------------------------------------------------------------------

def _require_usd(currency: str | None) -> str:
    currency = (currency or "USD").upper()
    if not money.is_supported_currency(currency):
        raise ValidationFailed({"currency": [f"Only USD is supported today; {currency} is not."]},
                               detail=gettext("Only US dollar carts are supported; %(currency)s is not.",
                                              currency=currency),
                               code="currency_not_supported", title=gettext("Currency not supported"))
    return currency


def create_cart(session: Session, settings: Settings, total_cents: int, currency: str | None,
                now: datetime) -> tuple[str, dict[str, Any]]:
    """Open a cart; returns the token (shown once to the caller) and the cart view."""
    currency = _require_usd(currency)
    token = new_cart_token()
    cart = Cart(token_hash=hash_token(token), total_cents=total_cents, currency=currency,
                expires_at=now + timedelta(minutes=settings.hold_minutes), failed_lookups=0,
                created_at=now, updated_at=now, holds=[])  # a new cart has no holds: don't query for them
    session.add(cart)
    session.flush()
    view = cart_view(cart, token)
    session.commit()
    return token, view


def _commit_with_view(session: Session, cart: Cart) -> dict[str, Any]:
    """Flush, render the view from memory, commit: saves reloading everything the commit expired."""
    session.flush()
    view = cart_view(cart)
    session.commit()
    return view


def find_cart(session: Session, token: str, now: datetime, *, for_update: bool = False) -> Cart:
    """The open cart for a token; 404 cart_not_found when unknown or expired (one answer for both)."""
    # One round trip for the cart and its holds; FOR UPDATE OF carts locks the cart row only.
    stmt = (sa.select(Cart).where(Cart.token_hash == hash_token(token or ""))
            .options(joinedload(Cart.holds)))
    if for_update:
        # Locked reads must see the latest rows, not what the session already holds.
        stmt = stmt.execution_options(populate_existing=True)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=Cart)
    cart = session.scalars(stmt).unique().first()
    if cart is None or cart.expires_at <= now:
        raise NotFound(gettext("Your checkout session has expired or does not exist. Please start again."),
                       code="cart_not_found", title=gettext("Cart not found"))
    return cart


def _touch(cart: Cart, settings: Settings, now: datetime) -> None:
    """Activity keeps a cart and its holds alive for another HOLD_MINUTES."""
    cart.expires_at = now + timedelta(minutes=settings.hold_minutes)
    cart.updated_at = now
    for hold in cart.holds:
        if hold.status == "active":
            hold.expires_at = cart.expires_at


def _take_off(hold: GiftCardHold, status: str, reason: str, now: datetime) -> None:
    """Take a hold off its cart: the row stays, with why, and it pays nothing any more."""
    hold.status, hold.status_reason, hold.updated_at = status, reason, now
    hold.applied_cents = hold.covers_cents = hold.redeem_cents = hold.forfeit_cents = 0


def allocate_cart(cart: Cart, settings: Settings, extra: money.CardInput | None = None) -> money.CartAllocation:
    """Allocate the cart total across its active holds in entry order (and `extra` last), changing nothing."""
    cards = [money.CardInput(h.id, h.balance_cents, h.splittable) for h in cart.holds if h.status == "active"]
    if extra is not None:
        cards.append(extra)
    return money.allocate(cart.total_cents, cards, settings.gift_card_rounding)


def recompute(cart: Cart, settings: Settings, extra: money.CardInput | None = None) -> money.CartAllocation:
    """Allocate the cart total across its active holds in entry order and store the result on each hold."""
    holds = [h for h in cart.holds if h.status == "active"]
    allocation = allocate_cart(cart, settings, extra)
    for hold in holds:
        part = allocation.get(hold.id)
        hold.applied_cents, hold.covers_cents = part.applied_cents, part.covers_cents
        hold.redeem_cents, hold.forfeit_cents = part.redeem_cents, part.forfeit_cents
    return allocation


def update_cart_total(session: Session, settings: Settings, token: str, total_cents: int,
                      currency: str | None, now: datetime) -> dict[str, Any]:
    """Change the cart total; applied amounts are recomputed (the card applied last shrinks first)."""
    cart = find_cart(session, token, now, for_update=True)
    if currency is not None and currency.upper() != cart.currency:
        _require_usd(currency)
        raise ValidationFailed({"currency": ["A cart's currency cannot change."]}, code="currency_not_supported",
                               title=gettext("Currency not supported"),
                               detail=gettext("The currency of a checkout cannot change."))
    cart.total_cents = total_cents
    _touch(cart, settings, now)
    recompute(cart, settings)
    release_unaccepted_forfeits(cart, settings, now)
    return _commit_with_view(session, cart)


def release_unaccepted_forfeits(cart: Cart, settings: Settings, now: datetime) -> list[tuple[GiftCardHold, int]]:
    """Release every active non-splittable hold that would now forfeit more than the shopper accepted.

    Call it right after `recompute`. The shopper agreed to lose a stated amount (0 when the card was applied
    without `accept_forfeit`); a total that dropped, or a balance that grew, may make the card forfeit more, and
    that was never agreed. Such a hold is released (like a removal) and the cart recomputed; the first offender
    in entry order goes each pass, because releasing a card only leaves more due for the cards after it (their
    forfeits can only shrink). Returns the released holds, each with the forfeit it would have had.
    """
    released: list[tuple[GiftCardHold, int]] = []
    while True:
        offender = next((h for h in cart.holds if h.status == "active" and not h.splittable
                         and h.forfeit_cents > h.accepted_forfeit_cents), None)
        if offender is None:
            return released
        forfeit = offender.forfeit_cents
        _take_off(offender, "released", f"forfeit not accepted: it would forfeit {money.format_usd(forfeit)}, the "
                  f"shopper accepted {money.format_usd(offender.accepted_forfeit_cents)}", now)
        log.info("cart %s: gift card %s released: it would forfeit %s, more than the %s accepted", cart.id,
                 masked_last4(offender.code_last4), money.format_usd(forfeit),
                 money.format_usd(offender.accepted_forfeit_cents))
        released.append((offender, forfeit))
        recompute(cart, settings)


# -- lookups -------------------------------------------------------------------------------------------

def _not_found() -> NotFound:
    return NotFound(gettext("We couldn't find a gift card with that claim code. Check it and try again."),
                    code="gift_card_not_found", title=gettext("Gift card not found"))


# Why a real card can't pay, for the shopper (the problem's `reason` says it for programs); written in the
# answer's language when the problem is (service.api.problems).
NOT_REDEEMABLE_DETAIL = {
    "redeemed": lazy_gettext("This gift card has already been used."),
    "expired": lazy_gettext("This gift card has expired."),
    "cancelled": lazy_gettext("This gift card has been cancelled."),
    "returned": lazy_gettext("This gift card has been returned."),
    "pending": lazy_gettext("This gift card is not active yet. Please try again later, or pay another way."),
}
NOT_REDEEMABLE_OTHERWISE = lazy_gettext("This gift card can't be used right now. Please pay another way.")


def check_redeemable(certificate, now: datetime) -> None:
    """Refuse certificates that cannot pay: other currencies, not redeemable, nothing to redeem."""
    if not money.is_supported_currency(certificate.currency):
        raise Conflict(gettext("This gift card is in %(currency)s; only US dollar gift cards can be used here.",
                               currency=certificate.currency),
                       code="gift_card_currency_not_supported", title=gettext("Gift card currency not supported"),
                       currency=certificate.currency)
    reason = certificate.unredeemable_reason(now)
    if reason:
        raise Conflict(NOT_REDEEMABLE_DETAIL.get(reason, NOT_REDEEMABLE_OTHERWISE), code="gift_card_not_redeemable",
                       title=gettext("Gift card not redeemable"), reason=reason)
    if money.redeemable_cents(certificate.face_value_cents) <= 0:
        raise Conflict(gettext("This gift card has no balance left: less than %(minimum)s can't be used.",
                               minimum=amount_words(money.CENTS_PER_DOLLAR)),
                       code="gift_card_empty", title=gettext("Gift card has no balance"),
                       balance_cents=certificate.face_value_cents)


def _lookup(client, code: ClaimCode):
    """One lookup attempt (the client may send the code in two forms, see ClaimCode.lookup_forms); None if unknown.

    Any other trouble with Instagift becomes a problem worded for the shopper, with the same `code`; the
    technical words are logged under the request id (service.api.problems)."""
    try:
        return client.fetch_by_claim_code(code)
    except ProviderNotFound:
        return None
    except ProviderError as exc:
        raise lookup_trouble(exc) from exc


# When Instagift asks us to slow down without saying for how long: the shopper is told to wait a minute.
PROVIDER_BUSY_SECONDS = 60


def lookup_trouble(exc: ProviderError) -> ServiceError:
    """Instagift's trouble during a shopper's lookup, in the shopper's words: Instagift busy (its own 429),
    unreachable (timeout, 5xx), or any other failure. None of it is the shopper's doing."""
    if isinstance(exc, ProviderRateLimited):
        wait = max(1, math.ceil(exc.retry_after_seconds or PROVIDER_BUSY_SECONDS))
        return ServiceError(
            gettext("The gift card service is busy right now; this is not a problem with your card. Please try "
                    "again in %(wait)s, or pay another way.", wait=duration_words(wait)),
            status=exc.status, code=exc.code, title=exc.title, headers={"Retry-After": str(wait)}, retry_after=wait)
    if isinstance(exc, ProviderUnavailable):
        detail = gettext("We couldn't reach the gift card service to check your card. Please try again in a "
                         "minute, or pay another way.")
    else:
        detail = gettext("The gift card service couldn't check your card just now. Please try again later, or "
                         "pay another way.")
    return ServiceError(detail, status=exc.status, code=exc.code, title=exc.title)


def _record_failed_lookup(session: Session, settings: Settings, cart_id: int, now: datetime) -> None:
    """Record a failed lookup on the cart; the CART_FAILURE_LIMIT-th within the last CART_FAILURE_WINDOW_MINUTES
    (a moving window) locks it for CART_LOCK_MINUTES, and the failures start again from none after that."""
    cart = session.scalar(lock_for_update(session, sa.select(Cart).where(Cart.id == cart_id)))
    window_start = now - timedelta(minutes=settings.cart_failure_window_minutes)
    session.execute(sa.delete(FailedLookup).where(FailedLookup.cart_id == cart_id,
                                                  FailedLookup.failed_at <= window_start))
    session.add(FailedLookup(cart_id=cart_id, failed_at=now))
    session.flush()
    cart.failed_lookups = session.scalar(sa.select(sa.func.count()).select_from(FailedLookup)
                                         .where(FailedLookup.cart_id == cart_id))
    if cart.failed_lookups >= settings.cart_failure_limit:
        cart.locked_until = now + timedelta(minutes=settings.cart_lock_minutes)
        cart.failed_lookups = 0
        session.execute(sa.delete(FailedLookup).where(FailedLookup.cart_id == cart_id))
        log.warning("cart %s locked for %d minutes after %d failed gift card lookups within %d minutes",
                    cart.id, settings.cart_lock_minutes, settings.cart_failure_limit,
                    settings.cart_failure_window_minutes)
    session.commit()


def _check_cart_lock(cart: Cart, now: datetime) -> None:
    if cart.locked_until and cart.locked_until > now:
        wait = math.ceil((cart.locked_until - now).total_seconds())
        raise RateLimited(wait, reason="cart_locked", detail=gettext(
            "Too many claim codes entered here were not recognised, so gift cards are locked on this checkout for "
            "%(wait)s. You can pay another way now, or try your code again after that.",
            wait=duration_words(wait)))


def balance_lookup(settings: Settings, client, limiter: LookupLimiter, raw_code: str, client_key: str,
                   now: datetime) -> dict[str, Any]:
    """A certificate's balance without applying it (rate-limited per client)."""
    limiter.hit(f"client:{client_key}")
    code = parse_claim_code(raw_code)
    if code is None:  # characters a claim code never has, or the wrong length: never sent to Instagift
        raise _not_found()
    certificate = _lookup(client, code)
    if certificate is None:
        raise _not_found()
    reason = certificate.unredeemable_reason(now)
    return {
        "code": mask(code.canonical),
        "balance_cents": certificate.face_value_cents,
        "redeemable_cents": 0 if reason else money.redeemable_cents(certificate.face_value_cents),
        "currency": certificate.currency,
        "splittable": certificate.splittable,
        "status": reason or "redeemable",
        "expires_at": iso(certificate.expires_at),
    }


@dataclass(frozen=True)
class ApplyRequest:
    token: str
    claim_code: str
    accept_forfeit: bool
    client_key: str
    # The forfeit the shopper was shown and agreed to; None: any forfeit (the contract's plain accept_forfeit).
    accept_forfeit_cents: int | None = None


def apply_gift_card(session: Session, settings: Settings, client, limiter: LookupLimiter, request: ApplyRequest,
                    now: datetime) -> dict[str, Any]:
    """Look a claim code up, check it can pay, and hold it on the cart; returns the recomputed cart view."""
    cart = find_cart(session, request.token, now)
    cart_id = cart.id
    _check_cart_lock(cart, now)
    limiter.hit(f"client:{request.client_key}", f"cart:{cart_id}")
    code = parse_claim_code(request.claim_code)
    if code is None:  # characters a claim code never has, or the wrong length: never sent to Instagift
        session.rollback()
        _record_failed_lookup(session, settings, cart_id, now)
        raise _not_found()
    code_hash = claim_code_hash(code, settings)
    _refuse_duplicate(cart, code_hash=code_hash)
    if len([h for h in cart.holds if h.status == "active"]) >= MAX_CARDS_PER_CART:
        raise Conflict(gettext("An order can use at most %(count)d gift cards.", count=MAX_CARDS_PER_CART),
                       code="too_many_gift_cards", title=gettext("Too many gift cards"))
    _refuse_nothing_due(cart, settings)

    certificate = call_provider(session, _lookup, client, code)  # the checks above only read
    if certificate is None:  # one failed lookup, however many forms of the code were tried
        _record_failed_lookup(session, settings, cart_id, now)
        raise _not_found()
    check_redeemable(certificate, now)

    try:
        return _hold(session, settings, request, certificate, code, code_hash, now)
    except IntegrityError:
        # The partial unique index says another hold has this certificate. If that hold's time ran out and the
        # periodic job has not marked it yet, take the certificate over (once); otherwise it is in use.
        session.rollback()
        if not release_expired_hold(session, certificate.id, now):
            raise _in_use() from None
        session.commit()
    try:
        return _hold(session, settings, request, certificate, code, code_hash, now)
    except IntegrityError:
        session.rollback()
        raise _in_use() from None


def _hold(session: Session, settings: Settings, request: ApplyRequest, certificate, code: ClaimCode,
          code_hash: str, now: datetime) -> dict[str, Any]:
    """In one transaction: re-check the locked cart, insert the hold, recompute, commit; IntegrityError if taken."""
    cart = find_cart(session, request.token, now, for_update=True)
    _refuse_duplicate(cart, code_hash=code_hash, certificate_id=certificate.id)
    _refuse_nothing_due(cart, settings)
    card = money.CardInput("new", certificate.face_value_cents, certificate.splittable)
    part = recompute(cart, settings, extra=card).get("new")
    if part.covers_cents <= 0:
        raise _nothing_due(cart, settings)
    agreed = request.accept_forfeit and (request.accept_forfeit_cents is None
                                         or part.forfeit_cents <= request.accept_forfeit_cents)
    if part.forfeit_cents > 0 and not agreed:
        # Asked again with the current figures when the cart changed since the shopper saw the question.
        raise Conflict(
            gettext("This gift card can't be split: all %(redeem)s will be used and %(forfeit)s more than what is "
                    "due will be lost. Confirm to use it anyway.", redeem=amount_words(part.redeem_cents),
                    forfeit=amount_words(part.forfeit_cents)),
            code="forfeit_not_accepted", title=gettext("Gift card would be used in full"),
            forfeit_cents=part.forfeit_cents, balance_cents=certificate.face_value_cents,
            applied_cents=part.applied_cents, redeem_cents=part.redeem_cents)
    position = max([h.position for h in cart.holds] or [0]) + 1
    hold = GiftCardHold(
        cart=cart, certificate_id=certificate.id, claim_code_hash=code_hash, code_last4=code.last4,
        currency=certificate.currency.upper(), balance_cents=certificate.face_value_cents,
        certificate_expires_at=certificate.expires_at, splittable=certificate.splittable,
        applied_cents=part.applied_cents, covers_cents=part.covers_cents, redeem_cents=part.redeem_cents,
        forfeit_cents=part.forfeit_cents, accept_forfeit=request.accept_forfeit,
        accepted_forfeit_cents=part.forfeit_cents if request.accept_forfeit else 0, position=position,
        status="active", expires_at=now + timedelta(minutes=settings.hold_minutes), created_at=now, updated_at=now)
    session.add(hold)
    _touch(cart, settings, now)
    recompute(cart, settings)
    cart_id, applied_cents = cart.id, hold.applied_cents  # read before the commit expires them
    view = _commit_with_view(session, cart)  # the insert meets the unique index here
    log.info("cart %s: gift card %s held (%s applied)", cart_id, mask(code.canonical), money.format_usd(applied_cents))
    return view


def _in_use() -> Conflict:
    return Conflict(gettext("This gift card is being used in another checkout right now."), code="gift_card_in_use",
                    title=gettext("Gift card in use"))


def _refuse_duplicate(cart: Cart, *, code_hash: str, certificate_id: str | None = None) -> None:
    for hold in cart.holds:
        if hold.status == "active" and (hold.claim_code_hash == code_hash or hold.certificate_id == certificate_id):
            raise Conflict(gettext("This gift card is already applied to your order."),
                           code="gift_card_already_applied", title=gettext("Gift card already applied"),
                           gift_card_id=hold.id)


def _nothing_due(cart: Cart, settings: Settings) -> Conflict:
    due = allocate_cart(cart, settings).amount_due_cents
    if due > 0:
        detail = gettext("Only %(due)s is left to pay; gift cards pay whole dollars only, so please pay the rest "
                         "another way.", due=amount_words(due))
    else:
        detail = gettext("Nothing is left to pay on this order, so no further gift card is needed.")
    return Conflict(detail, code="nothing_due", title=gettext("Nothing left to pay with a gift card"),
                    amount_due_cents=due)


def _refuse_nothing_due(cart: Cart, settings: Settings) -> None:
    if allocate_cart(cart, settings).amount_due_cents <= 0:
        raise _nothing_due(cart, settings)


def remove_gift_card(session: Session, settings: Settings, token: str, gift_card_id: int,
                     now: datetime) -> dict[str, Any]:
    """Release one hold and recompute the cart."""
    cart = find_cart(session, token, now, for_update=True)
    hold = next((h for h in cart.holds if h.id == gift_card_id and h.status == "active"), None)
    if hold is None:
        raise NotFound(gettext("This gift card is no longer applied to your order."), code="gift_card_not_in_cart",
                       title=gettext("Gift card not in cart"))
    _take_off(hold, "released", "removed by the shopper", now)
    _touch(cart, settings, now)
    recompute(cart, settings)
    return _commit_with_view(session, cart)


# -- verify (shop backend, just before payment) -------------------------------------------------------

def verify_cart(session: Session, settings: Settings, client, token: str,
                now: datetime) -> tuple[dict[str, Any], list[dict]]:
    """Re-fetch every held certificate; returns the (recomputed) cart view and what changed, per card."""
    cart = find_cart(session, token, now)
    targets = [(h.id, h.certificate_id) for h in cart.holds if h.status == "active"]
    fetched = call_provider(session, _fetch_certificates, client, targets)

    cart = find_cart(session, token, now, for_update=True)
    before = {h.id: (h.applied_cents, h.covers_cents) for h in cart.holds if h.status == "active"}
    changes: list[dict[str, Any]] = []
    for hold in [h for h in cart.holds if h.status == "active" and h.id in fetched]:
        certificate = fetched[hold.id]
        reason = "not_found" if certificate is None else certificate.unredeemable_reason(now)
        if reason is None and not money.is_supported_currency(certificate.currency):
            reason = "currency_not_supported"
        if reason:
            changes.append({"id": hold.id, "code": masked_last4(hold.code_last4), "reason": reason,
                            "balance_cents": None if certificate is None else certificate.face_value_cents,
                            "applied_cents_before": hold.applied_cents, "applied_cents": 0})
            _take_off(hold, "invalid", f"verify: {reason}", now)
        elif certificate.face_value_cents != hold.balance_cents:
            changes.append({"id": hold.id, "code": masked_last4(hold.code_last4), "reason": "balance_changed",
                            "balance_cents_before": hold.balance_cents,
                            "balance_cents": certificate.face_value_cents,
                            "applied_cents_before": hold.applied_cents})
            hold.balance_cents = certificate.face_value_cents
    recompute(cart, settings)
    released = release_unaccepted_forfeits(cart, settings, now)
    by_id = {h.id: h for h in cart.holds}
    for change in changes:
        change["applied_cents"] = by_id[change["id"]].applied_cents
    # A balance change only matters when the card can no longer cover what it covered before.
    changes = [c for c in changes if c["reason"] != "balance_changed"
               or by_id[c["id"]].covers_cents < before[c["id"]][1]
               or by_id[c["id"]].applied_cents != before[c["id"]][0]]
    # A card released because it would forfeit more than was accepted: one entry saying so (it replaces a
    # balance change of the same card, which is what made the forfeit grow).
    released_ids = {hold.id for hold, _ in released}
    changes = [c for c in changes if c["id"] not in released_ids]
    for hold, forfeit in released:
        changes.append({"id": hold.id, "code": masked_last4(hold.code_last4), "reason": "forfeit_not_accepted",
                        "balance_cents": hold.balance_cents, "applied_cents_before": before[hold.id][0],
                        "applied_cents": 0, "forfeit_cents": forfeit,
                        "accepted_forfeit_cents": hold.accepted_forfeit_cents})
    for hold in cart.holds:  # taken back by a completed order since the last verify: say so once, before payment
        if hold.status == "invalid" and hold.status_reason == TAKEN_BACK_REASON and hold.applied_cents:
            changes.append({"id": hold.id, "code": masked_last4(hold.code_last4), "reason": "taken_by_another_order",
                            "balance_cents": hold.balance_cents, "applied_cents_before": hold.applied_cents,
                            "applied_cents": 0})
            _take_off(hold, "invalid", TAKEN_BACK_REASON, now)
    cart.last_verified_at = now
    _touch(cart, settings, now)
    return _commit_with_view(session, cart), changes


def _fetch_certificates(client, targets: list[tuple[int, str]]) -> dict[int, Any]:
    """Each hold's certificate as Instagift has it now (None when Instagift no longer knows it), by hold id."""
    fetched: dict[int, Any] = {}
    for hold_id, certificate_id in targets:
        try:
            fetched[hold_id] = client.fetch_certificate(certificate_id)
        except ProviderNotFound:
            fetched[hold_id] = None
    return fetched


# -- hold expiry ---------------------------------------------------------------------------------------

def release_expired_hold(session: Session, certificate_id: str, now: datetime) -> bool:
    """Mark the certificate's active hold `expired` if its time ran out; True when one was released."""
    result = session.execute(
        sa.update(GiftCardHold)
        .where(GiftCardHold.certificate_id == certificate_id, GiftCardHold.status == "active",
               GiftCardHold.expires_at <= now)
        .values(status="expired", status_reason="hold expired", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)


def release_expired_holds(session: Session, now: datetime) -> int:
    """Mark active holds past their time `expired`, which frees their certificates for other carts."""
    result = session.execute(
        sa.update(GiftCardHold)
        .where(GiftCardHold.status == "active", GiftCardHold.expires_at <= now)
        .values(status="expired", status_reason="hold expired", updated_at=now)
    )
    return result.rowcount or 0


def purge_old_failed_lookups(session: Session, settings: Settings, now: datetime) -> int:
    """Delete failed lookups older than CART_FAILURE_WINDOW_MINUTES: they no longer count toward any lock, and a
    cart that fails no more (abandoned, paid) would otherwise keep its rows for good."""
    window_start = now - timedelta(minutes=settings.cart_failure_window_minutes)
    return session.execute(sa.delete(FailedLookup).where(FailedLookup.failed_at <= window_start)).rowcount or 0


TAKEN_BACK_REASON = "taken back by a completed order whose hold had expired"


def take_back(session: Session, settings: Settings, hold: GiftCardHold, now: datetime) -> None:
    """An open cart's hold yields its certificate to a completed order; that cart's next verify reports it."""
    cart = session.scalar(lock_for_update(session, sa.select(Cart).where(Cart.id == hold.cart_id)))
    # Amounts stay as they were (only active holds count anywhere): the cart's next verify reports them, then
    # takes the hold off; nonzero amounts on a taken-back hold mean "not told to the shop yet".
    hold.status, hold.status_reason, hold.updated_at = "invalid", TAKEN_BACK_REASON, now
    cart.updated_at = now
    recompute(cart, settings)
