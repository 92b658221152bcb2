"""Request parsing shared by all handlers: the webargs parser behind `@bp.arguments` (JSON bodies, query strings,
headers), strict booleans, row ids in URLs, bearer tokens."""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import current_app, g, request
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
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the JSON decoder goes: refused like any too-deep body
        raise _too_deep() from None
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


# No body the service reads nests deeper than 4 levels (an order's line items); a bound well above that keeps
# every later step (schemas, storing the payload, logging) clear of Python's recursion limit.
MAX_JSON_DEPTH = 32


def _too_deep() -> BadRequest:
    return BadRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} levels deep.", code="json_too_deep")


def _depth_and_nul(value: Any) -> tuple[int, bool]:
    """How deep `value` nests (a scalar is 0) and whether any text in it holds a NUL; walked without recursion
    and stopping as soon as it is too deep."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return deepest, True
        elif isinstance(item, dict | list):
            depth += 1
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                return deepest, False
            members = item.items() if isinstance(item, dict) else ((None, v) for v in item)
            for key, member in members:
                stack.append((member, depth))
                if key is not None:
                    stack.append((key, depth))
    return deepest, False


def json_object(data: Any) -> dict:
    """`data` if it is a JSON object nested at most MAX_JSON_DEPTH levels (else 400 json_too_deep) without NUL
    characters (else 422: PostgreSQL text cannot hold NUL, so it is refused the same way on every database)."""
    depth, has_nul = _depth_and_nul(data)
    if depth > MAX_JSON_DEPTH:
        raise _too_deep()
    if not isinstance(data, dict):
        raise ValidationFailed({"_schema": ["The body must be a JSON object."]})
    if has_nul:
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
    """For senders that sign their bytes (webhooks): the signed bytes are parsed as they are. They must be sent as
    JSON (415 otherwise); a body that is not valid JSON is a 422 on the body, one nested too deeply a 400."""

    def load_json(self, req, schema) -> Any:
        """The raw body parsed as a JSON object."""
        if not req.is_json:
            raise UnsupportedMediaType("Send webhooks as JSON with Content-Type: application/json.")
        try:
            data = json.loads(req.get_data(cache=True))
        except (ValueError, UnicodeDecodeError):
            raise ValidationFailed({"_schema": ["The body is not valid JSON."]}) from None
        except RecursionError:
            raise _too_deep() from None
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


def bearer_token() -> str:
    """The token of `Authorization: Bearer <token>` ("" without one)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def staff_name_for(token: str, staff_tokens: tuple[tuple[str, str], ...]) -> str | None:
    """The name whose admin token `token` is (None if nobody's); every token is compared, in constant time."""
    found = None
    for name, expected in staff_tokens:
        if token and expected and hmac.compare_digest(token.encode(), expected.encode()) and found is None:
            found = name
    return found


def require_staff(staff_tokens: tuple[tuple[str, str], ...]) -> str:
    """The staff name of the request's admin bearer token; 401 unless it carries one (realm "admin")."""
    name = staff_name_for(bearer_token(), staff_tokens)
    if name is None:
        raise Unauthorized("A valid admin token is required in the Authorization header.",
                           headers={"WWW-Authenticate": 'Bearer realm="admin"'})
    return name


def require_admin() -> None:
    """before_request of the merchant's API: 401 without a valid admin bearer token; the token's staff name is kept
    as `g.staff`, so what the request does is attributed to that person. Returns nothing, as a before_request hook
    must (a value would become the answer)."""
    g.staff = require_staff(current_app.extensions["settings"].staff_tokens)


def require_bearer(expected: str, realm: str) -> None:
    """Refuse the request with 401 unless it carries `Authorization: Bearer <expected>` (compared in constant time)."""
    token = bearer_token()
    if not (token and expected and hmac.compare_digest(token.encode(), expected.encode())):
        raise Unauthorized(f"A valid {realm} token is required in the Authorization header.",
                           headers={"WWW-Authenticate": f'Bearer realm="{realm}"'})
