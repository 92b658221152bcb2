"""Order webhooks from the shop: verify the Standard Webhooks signature over the raw body, then record."""

from __future__ import annotations

import binascii
import hashlib

from flask import current_app, g, request
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service import metrics
from service.api.openapi import Blueprint
from service.api.parsing import RawJsonParser
from service.db import db
from service.errors import Unauthorized
from service.orders.intake import record_order_event
from service.orders.schemas import OrderEventSchema, WebhookAcceptedSchema, WebhookHeadersSchema


class WebhookBlueprint(Blueprint):
    """The body is signed as bytes: the signed bytes are what is parsed (sent as JSON; a bad body is a 422)."""

    ARGUMENTS_PARSER = RawJsonParser()


bp = WebhookBlueprint("webhooks", __name__, description="Signed order events from the shop")

# The statuses of a delivery that was taken (docs/metrics.md: webhooks_received_total's `result`).
DELIVERY_RESULTS = {202: "accepted", 200: "duplicate"}


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


@bp.before_request
def require_signature() -> None:
    """Nothing of a delivery is read before its signature is checked."""
    verify_signature(request.get_data(cache=True), request.headers,
                     current_app.extensions["settings"].webhook_secrets)


@bp.post("/v1/webhooks/orders")
@bp.arguments(WebhookHeadersSchema(), location="headers")
@bp.arguments(OrderEventSchema())
@bp.response(202, WebhookAcceptedSchema, description="A new event, recorded with its jobs")
@bp.alt_response(200, schema=WebhookAcceptedSchema, description="A duplicate delivery (same webhook-id): "
                                                                 "nothing changed", success=True)
@bp.problems(400, 401, 409, 413, 415, 422)
def receive_order_event(headers, event):
    """Receive an order event (order.completed, order.cancelled): 202 when new, 200 for a duplicate (the same
    webhook-id and body again, or the order's event again under a new webhook-id); 409 webhook_id_reused when
    the webhook-id came before with another body."""
    body_sha256 = hashlib.sha256(request.get_data(cache=True)).hexdigest()
    result = record_order_event(db.session, current_app.extensions["settings"], webhook_id=headers["webhook_id"],
                                event_type=event["type"], occurred_at=event.get("timestamp"), data=event["data"],
                                body_sha256=body_sha256)
    body = {"status": "accepted" if result.new else "duplicate", "order_id": result.shop_order_id,
            "event_type": result.event_type}
    return body, (202 if result.new else 200)


@bp.after_request
def count_delivery(response):
    """Count every delivery by its result: accepted, duplicate, or the problem code it was refused with."""
    if request.method == "POST":  # not the CORS preflight or HEAD Flask answers on its own
        result = DELIVERY_RESULTS.get(response.status_code) or g.get("problem_code") or f"http_{response.status_code}"
        metrics.WEBHOOKS_RECEIVED.labels(result=result).inc()
    return response
