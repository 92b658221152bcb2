"""Marshmallow schemas of the cart, gift-card and verify endpoints (requests, and responses for OpenAPI)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from service.api.parsing import StrictBoolean
from service.money import MAX_AMOUNT_CENTS


class _Request(Schema):
    class Meta:
        unknown = EXCLUDE


class CreateCartSchema(_Request):
    total_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_AMOUNT_CENTS))
    currency = fields.String(load_default="USD", validate=validate.Length(equal=3))


class UpdateCartSchema(_Request):
    total_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_AMOUNT_CENTS))
    currency = fields.String(load_default=None, allow_none=True, validate=validate.Length(equal=3))


class ApplyGiftCardSchema(_Request):
    claim_code = fields.String(required=True, validate=validate.Length(min=1, max=100),
                               metadata={"description": "The Instagift claim code as typed: letters, digits, spaces and "
                                                        "hyphens (case and how the groups are separated do not "
                                                        "matter); anything else is gift_card_not_found"})
    accept_forfeit_cents = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(min=0, max=MAX_AMOUNT_CENTS),
        metadata={"description": "The forfeit the shopper was shown (forfeit_cents of the 409); a larger one is "
                                 "refused again with the new figures"})
    accept_forfeit = StrictBoolean(load_default=False,
                                    metadata={"description": "Use a non-splittable card worth more than what is due"})


class BalanceRequestSchema(_Request):
    claim_code = fields.String(required=True, validate=validate.Length(min=1, max=100))


class GiftCardSchema(Schema):
    id = fields.Integer()
    code = fields.String(metadata={"description": "Masked claim code (last 4 characters)"})
    balance_cents = fields.Integer()
    applied_cents = fields.Integer(metadata={"description": "Whole dollars the order takes from this card"})
    covers_cents = fields.Integer(metadata={"description": "What this card pays of the cart total"})
    redeem_cents = fields.Integer(metadata={"description": "What will be redeemed at Instagift after the order"})
    splittable = fields.Boolean()
    forfeit_cents = fields.Integer()
    expires_at = fields.String(allow_none=True, metadata={"description": "The certificate's own expiry"})
    hold_expires_at = fields.String(metadata={"description": "When this cart's hold on the card ends"})
    status = fields.String(metadata={"description": "active, redeeming or redeemed"})


class CartSchema(Schema):
    cart_token = fields.String(metadata={"description": "Only in the answer to POST /v1/carts"})
    total_cents = fields.Integer()
    currency = fields.String()
    applied_cents = fields.Integer()
    covered_cents = fields.Integer()
    amount_due_cents = fields.Integer()
    forfeit_cents = fields.Integer()
    gift_cards = fields.List(fields.Nested(GiftCardSchema))
    expires_at = fields.String()


class BalanceSchema(Schema):
    code = fields.String()
    balance_cents = fields.Integer()
    redeemable_cents = fields.Integer()
    currency = fields.String()
    splittable = fields.Boolean()
    status = fields.String(metadata={"description": "redeemable, or why not: redeemed, expired, cancelled, …"})
    expires_at = fields.String(allow_none=True)
