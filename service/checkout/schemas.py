"""Marshmallow schemas of the cart, gift-card and verify endpoints: the requests they parse, the answers they
serialise and the problems they carry (the OpenAPI document is generated from these)."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, fields, validate

from service.api.parsing import StrictBoolean
from service.api.schemas import ProblemSchema, problem_code
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
    id = fields.Integer(required=True)
    code = fields.String(required=True, metadata={"description": "Masked claim code (last 4 characters)"})
    balance_cents = fields.Integer(required=True)
    applied_cents = fields.Integer(required=True,
                                   metadata={"description": "Whole dollars the order takes from this card"})
    covers_cents = fields.Integer(required=True, metadata={"description": "What this card pays of the cart total"})
    redeem_cents = fields.Integer(required=True,
                                  metadata={"description": "What will be redeemed at Instagift after the order"})
    splittable = fields.Boolean(required=True)
    forfeit_cents = fields.Integer(required=True)
    expires_at = fields.String(required=True, allow_none=True,
                               metadata={"description": "The certificate's own expiry"})
    hold_expires_at = fields.String(required=True, metadata={"description": "When this cart's hold on the card ends"})
    status = fields.String(required=True, validate=validate.OneOf(["active", "redeeming", "redeemed"]))


class CartSchema(Schema):
    cart_token = fields.String(metadata={"description": "Only in the answer to POST /v1/carts"})
    total_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    applied_cents = fields.Integer(required=True)
    covered_cents = fields.Integer(required=True)
    amount_due_cents = fields.Integer(required=True, metadata={"description": "What the shopper pays another way"})
    whole_dollar_due_cents = fields.Integer(required=True, metadata={
        "description": "Of amount_due_cents, what the applied cards' balances would have paid if gift cards paid "
                       "cents: due only because Instagift redeems whole dollars (0 when there is none). Explain "
                       "it to the shopper when above 0"})
    forfeit_cents = fields.Integer(required=True)
    gift_cards = fields.List(fields.Nested(GiftCardSchema), required=True)
    expires_at = fields.String(required=True)


class BalanceSchema(Schema):
    code = fields.String(required=True, metadata={"description": "Masked claim code (last 4 characters)"})
    balance_cents = fields.Integer(required=True)
    redeemable_cents = fields.Integer(required=True)
    currency = fields.String(required=True)
    splittable = fields.Boolean(required=True)
    status = fields.String(required=True,
                           metadata={"description": "redeemable, or why not: redeemed, expired, cancelled, …"})
    expires_at = fields.String(required=True, allow_none=True)


# -- problems with extension members (docs/api.md lists every code) -----------------------------------------


class ForfeitNotAcceptedProblemSchema(ProblemSchema):
    """409: a non-splittable card worth more than what is due; apply again with accept_forfeit (and
    accept_forfeit_cents: the forfeit_cents shown)."""

    code = problem_code("forfeit_not_accepted")
    forfeit_cents = fields.Integer(required=True)
    balance_cents = fields.Integer(required=True)
    applied_cents = fields.Integer(required=True)
    redeem_cents = fields.Integer(required=True)


class GiftCardNotRedeemableProblemSchema(ProblemSchema):
    code = problem_code("gift_card_not_redeemable")
    reason = fields.String(required=True,
                           metadata={"description": "redeemed, expired, cancelled, returned, pending, …"})


class GiftCardCurrencyProblemSchema(ProblemSchema):
    code = problem_code("gift_card_currency_not_supported")
    currency = fields.String(required=True)


class GiftCardEmptyProblemSchema(ProblemSchema):
    code = problem_code("gift_card_empty")
    balance_cents = fields.Integer(required=True)


class GiftCardAlreadyAppliedProblemSchema(ProblemSchema):
    code = problem_code("gift_card_already_applied")
    gift_card_id = fields.Integer(required=True, metadata={"description": "The hold already on this cart"})


class NothingDueProblemSchema(ProblemSchema):
    code = problem_code("nothing_due")
    amount_due_cents = fields.Integer(required=True)


class GiftCardChangeSchema(Schema):
    """What verify found changed on one card (`reason`), and what the cart now takes from it."""

    id = fields.Integer(required=True)
    code = fields.String(required=True)
    reason = fields.String(required=True, metadata={
        "description": "not_found, currency_not_supported, a not-redeemable reason (redeemed, expired, …), "
                       "balance_changed, forfeit_not_accepted or taken_by_another_order"})
    balance_cents = fields.Integer(allow_none=True)
    balance_cents_before = fields.Integer()
    applied_cents_before = fields.Integer(required=True)
    applied_cents = fields.Integer(required=True)
    forfeit_cents = fields.Integer()
    accepted_forfeit_cents = fields.Integer()


class GiftCardsChangedProblemSchema(ProblemSchema):
    """409 from verify: the amounts were recomputed; show the shopper the new amount due before payment."""

    code = problem_code("gift_cards_changed")
    changes = fields.List(fields.Nested(GiftCardChangeSchema), required=True)
    cart = fields.Nested(CartSchema, required=True)


# 409 answers when applying a claim code; the others (gift_card_in_use, too_many_gift_cards) carry no members.
APPLY_CONFLICTS = [ForfeitNotAcceptedProblemSchema, GiftCardNotRedeemableProblemSchema,
                   GiftCardCurrencyProblemSchema, GiftCardEmptyProblemSchema, GiftCardAlreadyAppliedProblemSchema,
                   NothingDueProblemSchema, ProblemSchema]
