"""Widget endpoints (carts, gift cards, balance) and the shop backend's verify: parse → rule → render."""

from __future__ import annotations

from flask import Blueprint, current_app

from service.api.openapi import document
from service.api.parsing import load, require_bearer
from service.api.ratelimit import client_address, limiter
from service.checkout import rules
from service.checkout.limits import LookupLimiter
from service.checkout.schemas import (
    ApplyGiftCardSchema,
    BalanceRequestSchema,
    BalanceSchema,
    CartSchema,
    CreateCartSchema,
    UpdateCartSchema,
)
from service.db import db, utcnow
from service.errors import Conflict

bp = Blueprint("carts", __name__)

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
def create_cart():
    """Open a cart; the token is returned once and is the only way back to it."""
    body = load(CreateCartSchema())
    _token, view = rules.create_cart(db.session, _settings(), body["total_cents"], body["currency"], utcnow())
    return view, 201


@bp.get("/v1/carts/<token>")
def get_cart(token: str):
    """The cart view."""
    return rules.cart_view(rules.find_cart(db.session, token, utcnow()))


@bp.put("/v1/carts/<token>")
def update_cart(token: str):
    """Change the total; applied amounts are recomputed."""
    body = load(UpdateCartSchema())
    return rules.update_cart_total(db.session, _settings(), token, body["total_cents"], body["currency"],
                                   utcnow())


@bp.post("/v1/carts/<token>/gift-cards")
def apply_gift_card(token: str):
    """Apply a claim code to the cart and hold the certificate."""
    body = load(ApplyGiftCardSchema())
    request = rules.ApplyRequest(token=token, claim_code=body["claim_code"], accept_forfeit=body["accept_forfeit"],
                                 client_key=client_address(), accept_forfeit_cents=body["accept_forfeit_cents"])
    return rules.apply_gift_card(db.session, _settings(), _instagift(), _limiter(), request, utcnow())


@bp.delete("/v1/carts/<token>/gift-cards/<id:gift_card_id>")
def remove_gift_card(token: str, gift_card_id: int):
    """Remove a gift card and release its hold."""
    return rules.remove_gift_card(db.session, _settings(), token, gift_card_id, utcnow())


@bp.post("/v1/gift-cards/balance")
def balance():
    """A claim code's balance, without applying it."""
    body = load(BalanceRequestSchema())
    return rules.balance_lookup(_settings(), _instagift(), _limiter(), body["claim_code"], client_address(),
                                utcnow())


@bp.post("/v1/carts/<token>/verify")
def verify(token: str):
    """Shop backend, right before payment: re-check every held certificate."""
    require_bearer(_settings().shop_api_token, "shop")
    view, changes = rules.verify_cart(db.session, _settings(), _instagift(), token, utcnow())
    if changes:
        raise Conflict("A gift card on this cart can no longer cover what it was applied for, or was taken off "
                       "because it would forfeit more than the shopper accepted; the amounts were recomputed. "
                       "Show the shopper the new amount due before taking payment.",
                       code="gift_cards_changed", title="Gift cards changed", changes=changes, cart=view)
    return view


_TOKEN = {"name": "cart_token", "in": "path", "required": True, "schema": {"type": "string"}}
_GIFT_CARD = {"name": "gift_card_id", "in": "path", "required": True, "schema": {"type": "integer"}}

document("/v1/carts", "post", "Open a cart (returns cart_token)", tag="widget", request=CreateCartSchema,
         response=CartSchema, status=201, problems=(422,))
document("/v1/carts/{cart_token}", "get", "The cart view", tag="widget", response=CartSchema, problems=(404,),
         parameters=(_TOKEN,))
document("/v1/carts/{cart_token}", "put", "Update the cart total; applied amounts are recomputed", tag="widget",
         request=UpdateCartSchema, response=CartSchema, problems=(404, 422), parameters=(_TOKEN,))
document("/v1/carts/{cart_token}/gift-cards", "post",
         "Apply a claim code and hold it (404 gift_card_not_found; 409 forfeit_not_accepted, gift_card_in_use, "
         "gift_card_not_redeemable, gift_card_already_applied, gift_card_empty, gift_card_currency_not_supported, "
         "nothing_due; 429 rate_limited)", tag="widget", request=ApplyGiftCardSchema, response=CartSchema,
         problems=(404, 409, 422, 429, 503), parameters=(_TOKEN,))
document("/v1/carts/{cart_token}/gift-cards/{gift_card_id}", "delete", "Remove a gift card and release its hold",
         tag="widget", response=CartSchema, problems=(404,), parameters=(_TOKEN, _GIFT_CARD))
document("/v1/gift-cards/balance", "post", "A claim code's balance without applying it", tag="widget",
         request=BalanceRequestSchema, response=BalanceSchema, problems=(404, 422, 429, 503))
document("/v1/carts/{cart_token}/verify", "post",
         "Re-check every held certificate before payment (409 gift_cards_changed lists what changed)", tag="shop",
         response=CartSchema, auth="shop", problems=(401, 404, 409, 503), parameters=(_TOKEN,))
