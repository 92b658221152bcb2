"""Request parsing shared by all handlers: JSON bodies through marshmallow, query strings, bearer tokens."""

from __future__ import annotations

import hmac
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError, fields
from werkzeug.routing import IntegerConverter

from service.errors import BadRequest, Unauthorized, UnsupportedMediaType, ValidationFailed


class StrictBoolean(fields.Boolean):
    """Only JSON `true` and `false`: a consent such as `accept_forfeit` must not be read from "yes" or 1."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def json_body() -> Any:
    """The request's JSON body; 415 unless sent as JSON, 400 `malformed_json` when it is not JSON at all."""
    raw = request.get_data(cache=True)
    if raw.strip() in (b"", b"null"):
        return {}
    # A JSON content type makes browsers ask (CORS preflight) before a page on another origin may send it.
    if not request.is_json:
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json.")
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest("The request body is not valid JSON.", code="malformed_json")
    return data


class DatabaseIdConverter(IntegerConverter):
    """`<id:…>` in routes: a positive 64-bit row id. Anything larger cannot name a row, so the route does not match
    (404) instead of reaching the database and failing there."""

    def __init__(self, url_map, **kwargs):
        super().__init__(url_map, min=1, max=2**63 - 1, **kwargs)


def refuse_nul_in_url() -> None:
    """before_request: a NUL character in the path or query can name nothing we store (PostgreSQL text refuses it)."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        raise BadRequest("The address contains a NUL character.")


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def load(schema: Schema, data: Any = None) -> Any:
    """Validate `data` (default: the JSON body) with `schema`; 422 with field errors when invalid."""
    if data is None:
        data = json_body()
    if not isinstance(data, dict) and not schema.many:
        raise ValidationFailed({"_schema": ["The body must be a JSON object."]})
    if _has_nul(data):  # PostgreSQL text cannot hold NUL; refuse it the same way on every database
        raise ValidationFailed({"_schema": ["Text must not contain NUL characters."]})
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
