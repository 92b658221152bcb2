"""Merchant endpoint for membership cards: the front and back images InstantCard renders for a card."""

from __future__ import annotations

from flask import current_app
from marshmallow import Schema, fields

from service.api.openapi import Blueprint
from service.api.parsing import require_admin
from service.db import db
from service.membership.rules import card_preview

bp = Blueprint("membership", __name__, description="Membership cards (InstantCard): the merchant's preview")


bp.before_request(require_admin)


class MembershipCardPreviewSchema(Schema):
    id = fields.Integer(required=True)
    member_number = fields.String(required=True)
    status = fields.String(required=True)
    sku = fields.String()
    template_id = fields.Integer()
    expires_on = fields.String(allow_none=True)
    instantcard_card_id = fields.String(allow_none=True)
    front = fields.String(required=True, metadata={"description": "an image URL or a data: URL (base64 PNG)"})
    back = fields.String(required=True, metadata={"description": "an image URL or a data: URL (base64 PNG)"})


@bp.get("/v1/membership-cards/<id:card_id>/preview")
@bp.response(200, MembershipCardPreviewSchema)
@bp.problems(400, 401, 404, 409, 502, 503)
@bp.doc(security=[{"admin": []}])
def preview(card_id: int):
    """Front and back images of one membership card, fetched from InstantCard (409 membership_card_not_drafted
    before the card exists there)."""
    return card_preview(db.session, current_app.extensions["providers"].instantcard, card_id)
