"""Widget endpoints (carts, gift cards, balance) and the shop backend's verify: parse → rule → render."""

from __future__ import annotations

from flask import current_app

from service.api.openapi import Blueprint
from service.api.parsing import require_bearer
from service.api.ratelimit import client_address, limiter
from service.checkout import rules
from service.checkout.limits import LookupLimiter
from service.checkout.schemas import (
    APPLY_CONFLICTS,
    ApplyGiftCardSchema,
    BalanceRequestSchema,
    BalanceSchema,
    CartSchema,
    CreateCartSchema,
    GiftCardsChangedProblemSchema,
    UpdateCartSchema,
)
from service.db import db, utcnow
from service.errors import Conflict

bp = Blueprint("carts", __name__, description="The widget's carts and gift cards, and the shop backend's verify")

LIMITER_KEY = "checkout_limiter"


@bp.record_once
def _install_limiter(state) -> None:
    state.app.extensions[LIMITER_KEY] = LookupLimiter.from_settings(state.app.extensions["settings"])


def _settings():
    return current_app.extensions["settings"]


def _instagift():
    return current_app.extensions["providers"].instagift


def _limiter() -> LookupLimiter:
    return current_app.extensions[LIMITER_KEY]


@bp.post("/v1/carts")
@limiter.limit(lambda: current_app.extensions["settings"].cart_create_rate_limit)
@bp.arguments(CreateCartSchema())
@bp.response(201, CartSchema)
@bp.problems(400, 413, 415, 422, 429)
def create_cart(body):
    """Open a cart; the token is returned once (cart_token) and is the only way back to it."""
    _token, view = rules.create_cart(db.session, _settings(), body["total_cents"], body["currency"], utcnow())
    return view


@bp.get("/v1/carts/<cart_token>")
@bp.response(200, CartSchema)
@bp.problems(400, 404)
def get_cart(cart_token: str):
    """The cart view."""
    return rules.cart_view(rules.find_cart(db.session, cart_token, utcnow()))


@bp.put("/v1/carts/<cart_token>")
@bp.arguments(UpdateCartSchema())
@bp.response(200, CartSchema)
@bp.problems(400, 404, 413, 415, 422)
def update_cart(body, cart_token: str):
    """Change the total; applied amounts are recomputed."""
    return rules.update_cart_total(db.session, _settings(), cart_token, body["total_cents"], body["currency"],
                                   utcnow())


@bp.post("/v1/carts/<cart_token>/gift-cards")
@bp.arguments(ApplyGiftCardSchema())
@bp.response(200, CartSchema)
@bp.problems(400, 404, (409, APPLY_CONFLICTS), 413, 415, 422, 429, 502, 503)
def apply_gift_card(body, cart_token: str):
    """Apply a claim code to the cart and hold the certificate."""
    request = rules.ApplyRequest(token=cart_token, claim_code=body["claim_code"],
                                 accept_forfeit=body["accept_forfeit"], client_key=client_address(),
                                 accept_forfeit_cents=body["accept_forfeit_cents"])
    return rules.apply_gift_card(db.session, _settings(), _instagift(), _limiter(), request, utcnow())


@bp.delete("/v1/carts/<cart_token>/gift-cards/<id:gift_card_id>")
@bp.response(200, CartSchema)
@bp.problems(400, 404)
def remove_gift_card(cart_token: str, gift_card_id: int):
    """Remove a gift card and release its hold."""
    return rules.remove_gift_card(db.session, _settings(), cart_token, gift_card_id, utcnow())


@bp.post("/v1/gift-cards/balance")
@bp.arguments(BalanceRequestSchema())
@bp.response(200, BalanceSchema)
@bp.problems(400, 404, 413, 415, 422, 429, 502, 503)
def balance(body):
    """A claim code's balance, without applying it."""
    return rules.balance_lookup(_settings(), _instagift(), _limiter(), body["claim_code"], client_address(),
                                utcnow())


@bp.post("/v1/carts/<cart_token>/verify")
@bp.response(200, CartSchema)
@bp.problems(400, 401, 404, (409, [GiftCardsChangedProblemSchema]), 502, 503)
@bp.doc(security=[{"shop": []}])
def verify(cart_token: str):
    """Shop backend, right before payment: re-check every held certificate."""
    require_bearer(_settings().shop_api_token, "shop")
    view, changes = rules.verify_cart(db.session, _settings(), _instagift(), cart_token, utcnow())
    if changes:
        raise Conflict("A gift card on this cart can no longer cover what it was applied for, or was taken off "
                       "because it would forfeit more than the shopper accepted; the amounts were recomputed. "
                       "Show the shopper the new amount due before taking payment.",
                       code="gift_cards_changed", title="Gift cards changed", changes=changes, cart=view)
    return view
