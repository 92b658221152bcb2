"""Request parsing shared by all handlers: JSON bodies through marshmallow, query strings, bearer tokens."""

from __future__ import annotations

import hmac
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError

from service.errors import BadRequest, Unauthorized, ValidationFailed


def json_body() -> Any:
    """The request's JSON body; 400 `malformed_json` when it is not JSON at all."""
    data = request.get_json(silent=True, force=True)
    if data is None:
        raw = request.get_data(cache=True)
        if raw.strip() in (b"", b"null"):
            return {}
        raise BadRequest("The request body is not valid JSON.", code="malformed_json")
    return data


def load(schema: Schema, data: Any = None) -> Any:
    """Validate `data` (default: the JSON body) with `schema`; 422 with field errors when invalid."""
    if data is None:
        data = json_body()
    if not isinstance(data, dict) and not schema.many:
        raise ValidationFailed({"_schema": ["The body must be a JSON object."]})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise ValidationFailed(exc.messages_dict if hasattr(exc, "messages_dict") else exc.messages) from None


def load_query(schema: Schema) -> Any:
    """Validate the query string with `schema`; 422 with field errors when invalid."""
    try:
        return schema.load(request.args.to_dict())
    except ValidationError as exc:
        raise ValidationFailed(exc.messages, detail="One or more query parameters are invalid.") from None


def require_bearer(expected: str, realm: str) -> None:
    """Refuse the request with 401 unless it carries `Authorization: Bearer <expected>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or not expected or not hmac.compare_digest(
            token.strip().encode(), expected.encode()):
        raise Unauthorized(f"A valid {realm} token is required in the Authorization header.",
                           headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})
