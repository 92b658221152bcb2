"""Request parsing shared by all handlers: the webargs parser behind `@bp.arguments` (JSON bodies, query strings,
headers), strict booleans, row ids in URLs, bearer tokens."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import request
from flask_babel import gettext, lazy_gettext
from marshmallow import Schema, ValidationError, fields
from webargs.flaskparser import FlaskParser
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
        raise UnsupportedMediaType(gettext("Send the body as JSON with Content-Type: application/json."))
    data = request.get_json(silent=True)
    if data is None:
        raise BadRequest(gettext("The request body is not valid JSON."), code="malformed_json")
    return data


class DatabaseIdConverter(IntegerConverter):
    """`<id:…>` in routes: a positive 64-bit row id. Anything larger cannot name a row, so the route does not match
    (404) instead of reaching the database and failing there."""

    def __init__(self, url_map, **kwargs):
        super().__init__(url_map, min=1, max=2**63 - 1, **kwargs)


def refuse_nul_in_url() -> None:
    """before_request: a NUL character in the path or query can name nothing we store (PostgreSQL text refuses it)."""
    if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.args.items(multi=True)):
        raise BadRequest(gettext("The address contains a NUL character."))


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def json_object(data: Any) -> dict:
    """`data` if it is a JSON object without NUL characters; else 422 (PostgreSQL text cannot hold NUL, so it is
    refused the same way on every database)."""
    if not isinstance(data, dict):
        raise ValidationFailed({"_schema": ["The body must be a JSON object."]})
    if _has_nul(data):
        raise ValidationFailed({"_schema": ["Text must not contain NUL characters."]})
    return data


# What a validation problem says, by where the invalid value was.
_DETAIL_BY_LOCATION = {"query": lazy_gettext("One or more query parameters are invalid.")}


class RequestParser(FlaskParser):
    """webargs' parser with the service's rules: JSON bodies only as JSON (415, 400 malformed_json), objects
    without NUL, query strings refused on unknown names as the schemas say, and every error a ServiceError."""

    # None: the schema's own `unknown` (request bodies ignore extra members; query strings refuse unknown names).
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def load_json(self, req, schema) -> Any:
        """The JSON body as an object ({} when empty)."""
        return json_object(json_body())

    def handle_error(self, error, req, schema, *, error_status_code, error_headers):
        """422 validation_failed with the field errors of the one location that failed."""
        ((location, messages),) = error.messages.items()
        raise ValidationFailed(messages, detail=_DETAIL_BY_LOCATION.get(location))


class RawJsonParser(RequestParser):
    """For senders that sign their bytes (webhooks): the body is JSON whatever its Content-Type; anything else is
    a 422 on the body, never a 400 or 415."""

    def load_json(self, req, schema) -> Any:
        """The raw body parsed as a JSON object."""
        try:
            data = json.loads(req.get_data(cache=True))
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed({"_schema": ["The body is not valid JSON."]}) from None
        return json_object(data)


class OneOfNested(fields.Field):
    """A member whose shape depends on the rest of the object: `choose(whole_object)` gives the schema instance
    that loads it. Documented as anyOf `schemas` (service.api.openapi)."""

    def __init__(self, schemas: tuple[type[Schema], ...], choose, **kwargs):
        super().__init__(**kwargs)
        self.schemas = schemas
        self.choose = choose

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ValidationError("Not a valid object.")
        return self.choose(data).load(value)


def require_bearer(expected: str, realm: str) -> None:
    """Refuse the request with 401 unless it carries `Authorization: Bearer <expected>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token or not expected or not hmac.compare_digest(
            token.strip().encode(), expected.encode()):
        raise Unauthorized(f"A valid {realm} token is required in the Authorization header.",
                           headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})
