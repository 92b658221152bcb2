"""Marshmallow schemas of the order webhooks (the event, a completed order's data, the answer); the OpenAPI
document is generated from these."""

from __future__ import annotations

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from service.api.parsing import OneOfNested
from service.money import MAX_AMOUNT_CENTS
from service.orders.models import WEBHOOK_ID_MAX_LENGTH

SUPPORTED_CURRENCIES = ("USD",)
currency_field = dict(validate=validate.OneOf(SUPPORTED_CURRENCIES, error="Only USD is supported today."))


class _Tolerant(Schema):
    """Shops may send more than we read; unknown keys are ignored, not refused."""

    class Meta:
        unknown = EXCLUDE


class CustomerSchema(_Tolerant):
    first_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    last_name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    email = fields.Email(load_default=None, allow_none=True)
    accepts_mail = fields.Boolean(load_default=True, allow_none=True)


class AddressSchema(_Tolerant):
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    company = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    address1 = fields.String(required=True, validate=validate.Length(min=1, max=200))
    address2 = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    city = fields.String(required=True, validate=validate.Length(min=1, max=100))
    region = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    postcode = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    country = fields.String(required=True, validate=validate.Length(equal=2))


class LineItemSchema(_Tolerant):
    sku = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    title = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=300))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1000))
    unit_price_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_AMOUNT_CENTS))


class OrderDataSchema(_Tolerant):
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    cart_token = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=100))
    currency = fields.String(required=True, **currency_field)
    total_cents = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_AMOUNT_CENTS))
    gift_card_cents = fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=MAX_AMOUNT_CENTS))
    customer = fields.Nested(CustomerSchema, load_default=dict)
    shipping_address = fields.Nested(AddressSchema, load_default=None, allow_none=True)
    line_items = fields.List(fields.Nested(LineItemSchema), load_default=list)
    placed_at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=None)

    @validates_schema
    def gift_cards_within_total(self, data, **kwargs):
        if data.get("gift_card_cents", 0) > data.get("total_cents", 0):
            raise ValidationError("Gift cards cannot pay more than the order total.", "gift_card_cents")


class OrderCancelledDataSchema(_Tolerant):
    id = fields.String(required=True, validate=validate.Length(min=1, max=100))


ORDER_EVENT_TYPES = ("order.completed", "order.cancelled")


# Schemas hold no per-request state; building them once keeps their setup off every delivery.
_COMPLETED_DATA, _CANCELLED_DATA = OrderDataSchema(), OrderCancelledDataSchema()


def _data_schema(event: dict) -> Schema:
    return _COMPLETED_DATA if event.get("type") == "order.completed" else _CANCELLED_DATA


class OrderEventSchema(_Tolerant):
    type = fields.String(required=True, validate=validate.OneOf(ORDER_EVENT_TYPES))
    timestamp = fields.AwareDateTime(load_default=None, allow_none=True)
    data = OneOfNested((OrderDataSchema, OrderCancelledDataSchema), _data_schema, required=True,
                       metadata={"description": "The order (OrderData) for order.completed; only its id "
                                                "(OrderCancelledData) for order.cancelled"})


class WebhookHeadersSchema(_Tolerant):
    """The Standard Webhooks headers: the signature covers webhook-id, webhook-timestamp and the raw body."""

    webhook_id = fields.String(data_key="webhook-id", required=True,
                               validate=validate.Length(max=WEBHOOK_ID_MAX_LENGTH,
                                                        error="At most {max} characters."),
                               metadata={"description": "The delivery's id (msg_…); a repeated id is a duplicate"})
    webhook_timestamp = fields.String(data_key="webhook-timestamp", required=True,
                                      metadata={"description": "Unix seconds; at most 5 minutes from now"})
    webhook_signature = fields.String(data_key="webhook-signature", required=True,
                                      metadata={"description": "v1,<base64 HMAC-SHA256> (several, space-separated, "
                                                               "while a secret is rotated)"})


class WebhookAcceptedSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["accepted", "duplicate"]))
    order_id = fields.String(required=True, metadata={"description": "The shop's order id (data.id)"})
    event_type = fields.String(required=True, validate=validate.OneOf(ORDER_EVENT_TYPES))
