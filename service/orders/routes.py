"""Order webhooks from the shop: verify the Standard Webhooks signature over the raw body, then record."""

from __future__ import annotations

import binascii
import json

from flask import Blueprint, current_app, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.api.openapi import document
from service.api.parsing import load
from service.db import db
from service.errors import Unauthorized, ValidationFailed
from service.orders.intake import record_order_event
from service.orders.models import WEBHOOK_ID_MAX_LENGTH
from service.orders.schemas import (
    OrderCancelledDataSchema,
    OrderDataSchema,
    OrderEventSchema,
    WebhookAcceptedSchema,
)

bp = Blueprint("webhooks", __name__)

# Schemas hold no per-request state; building them once keeps their setup off every request.
EVENT_SCHEMA = OrderEventSchema()
COMPLETED_DATA_SCHEMA = OrderDataSchema()
CANCELLED_DATA_SCHEMA = OrderCancelledDataSchema()


def verify_signature(raw_body: bytes, headers, secrets: tuple[str, ...]) -> None:
    """Accept the delivery if any active secret signed it within the 5-minute tolerance; else 401."""
    wanted = {name: headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    if not all(wanted.values()):
        raise Unauthorized("The webhook-id, webhook-timestamp and webhook-signature headers are required.",
                           code="webhook_signature_missing")
    for secret in secrets:
        try:
            Webhook(secret).verify(raw_body, wanted, json_parse=False)
            return
        except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError):
            continue
    raise Unauthorized("The webhook signature is invalid or its timestamp is outside the 5-minute tolerance.",
                       code="webhook_signature_invalid")


@bp.post("/v1/webhooks/orders")
def receive_order_event():
    """Verify, validate and record an order event: 202 when new, 200 for a duplicate."""
    settings = current_app.extensions["settings"]
    raw = request.get_data(cache=True)
    verify_signature(raw, request.headers, settings.webhook_secrets)
    if len(request.headers["webhook-id"]) > WEBHOOK_ID_MAX_LENGTH:
        raise ValidationFailed({"webhook-id": [f"At most {WEBHOOK_ID_MAX_LENGTH} characters."]})
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed({"_schema": ["The body is not valid JSON."]}) from None
    event = load(EVENT_SCHEMA, body)
    data_schema = COMPLETED_DATA_SCHEMA if event["type"] == "order.completed" else CANCELLED_DATA_SCHEMA
    try:
        data = load(data_schema, event["data"])
    except ValidationFailed as exc:
        raise ValidationFailed({"data": exc.extra["errors"]}) from None
    result = record_order_event(db.session, settings, webhook_id=request.headers["webhook-id"],
                                event_type=event["type"], occurred_at=event.get("timestamp"), data=data)
    body = {"status": "accepted" if result.new else "duplicate", "order_id": result.shop_order_id,
            "event_type": result.event_type}
    return body, (202 if result.new else 200)



document("/v1/webhooks/orders", "post", "Receive an order event (order.completed, order.cancelled)",
         tag="shop", request=OrderEventSchema, response=WebhookAcceptedSchema, status=202, auth="webhook",
         problems=(401, 413, 422))
