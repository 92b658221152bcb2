"""Merchant endpoint: preview the thank-you card a sample order would get, before going live."""

from __future__ import annotations

from flask import current_app
from marshmallow import Schema, fields

from service.api.openapi import Blueprint
from service.api.parsing import require_admin
from service.api.schemas import ProblemSchema, problem_code
from service.db import utcnow
from service.orders.schemas import OrderDataSchema
from service.thank_you.rules import preview_card

bp = Blueprint("thank_you", __name__, description="Thank-you cards (Cardly): the merchant's preview")


bp.before_request(require_admin)


class DeliveryEstimateSchema(Schema):
    requested = fields.String(allow_none=True)
    dispatch = fields.String(allow_none=True)
    estimated_min_arrival = fields.String(allow_none=True)
    estimated_max_arrival = fields.String(allow_none=True)


class CardPreviewSchema(Schema):
    card_url = fields.String(metadata={"description": "Cardly's watermarked preview of the card (PDF)"})
    envelope_url = fields.String(allow_none=True)
    format = fields.String(allow_none=True)
    expires = fields.String(allow_none=True, metadata={"description": "when Cardly removes the preview"})
    cost_credits = fields.String(allow_none=True, metadata={"description": "Cardly credits one card costs"})
    balance_credits = fields.String(allow_none=True)
    delivery = fields.Nested(DeliveryEstimateSchema)
    test_mode = fields.Boolean()
    warnings = fields.List(fields.String())
    message = fields.String(metadata={"description": "CARDLY_MESSAGE filled in for the sample order"})
    artwork = fields.String()
    template = fields.String(allow_none=True)
    would_send = fields.Boolean(metadata={"description": "whether the rules would send a card for this order"})
    skip_reason = fields.String(allow_none=True)
    skip_detail = fields.String(allow_none=True)


class CardlyCreditProblemSchema(ProblemSchema):
    """502 when Cardly says the account lacks credit for the card (the figures when Cardly gave them)."""

    code = problem_code("provider_payment_required")
    cost_credits = fields.String(metadata={"description": "Cardly credits the card would cost"})
    balance_credits = fields.String(metadata={"description": "Cardly credits left on the account"})


@bp.post("/v1/thank-you-cards/preview")
@bp.arguments(OrderDataSchema())
@bp.response(200, CardPreviewSchema)
@bp.problems(400, 401, 409, 413, 415, 422, (502, [CardlyCreditProblemSchema, ProblemSchema]), 503)
@bp.doc(security=[{"admin": []}])
def preview(sample):
    """Preview the thank-you card a sample order (webhook `data` shape) would get: Cardly's preview URL, cost and
    what the rules decide."""
    settings = current_app.extensions["settings"]
    return preview_card(sample, settings, current_app.extensions["providers"].cardly, utcnow().date())
