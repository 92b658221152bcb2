"""Merchant endpoint for membership cards: the front and back images InstantCard renders for a card."""

from __future__ import annotations

from flask import Blueprint, current_app
from marshmallow import Schema, fields

from service.api.openapi import document
from service.api.parsing import require_bearer
from service.db import db
from service.membership.rules import card_preview

bp = Blueprint("membership", __name__)


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
def preview(card_id: int):
    """Front and back images of one membership card, fetched from InstantCard."""
    require_bearer(current_app.extensions["settings"].admin_api_token, "admin")
    body = card_preview(db.session, current_app.extensions["providers"].instantcard, card_id)
    return MembershipCardPreviewSchema().dump(body)


document("/v1/membership-cards/{card_id}/preview", "get", "Preview a membership card (front and back images)",
         tag="merchant", response=MembershipCardPreviewSchema, auth="admin", problems=(401, 404, 409, 502, 503),
         parameters=({"name": "card_id", "in": "path", "required": True, "schema": {"type": "integer"}},))
