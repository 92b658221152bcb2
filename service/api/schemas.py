"""Marshmallow schemas shared by every endpoint (problem details) and of the operations endpoints (health,
readiness). Features extend ProblemSchema with the extension members of their own problem codes."""

from __future__ import annotations

from marshmallow import Schema, fields, validate


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok"]))


class ReadinessSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(["ok", "degraded", "unavailable"]),
                           metadata={"description": "ok, degraded (rate limits unreachable: not enforced) or "
                                                    "unavailable (the database does not answer: 503)"})
    # The detail below only with the admin token: who may read it learns, e.g., that rate limits are off.
    database = fields.String(validate=validate.OneOf(["ok", "unreachable"]),
                             metadata={"description": "Only with the admin token"})
    rate_limits = fields.String(validate=validate.OneOf(["ok", "unreachable"]),
                                metadata={"description": "Only with the admin token"})
    providers = fields.Dict(keys=fields.String(), values=fields.String(),
                            metadata={"description": "Only with the admin token. instagift, cardly, instantcard: "
                                                     "live, test, sandbox or disabled"})
    environment = fields.String(metadata={"description": "Only with the admin token"})


class ProblemSchema(Schema):
    """An RFC 9457 problem: `code` is the stable machine-readable reason (docs/api.md lists them)."""

    type = fields.String(required=True, metadata={"description": "A URI naming the problem code"})
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    code = fields.String(required=True)
    detail = fields.String(metadata={"description": "What happened, for a person; never contains a secret"})
    instance = fields.String(required=True, metadata={"description": "The request path, cart token masked"})
    request_id = fields.String(metadata={"description": "Also in the X-Request-Id header; names the request in "
                                                        "our logs"})


def problem_code(*codes: str) -> fields.String:
    """The `code` member of a problem schema that carries only these codes."""
    return fields.String(required=True, validate=validate.OneOf(codes))


class ValidationProblemSchema(ProblemSchema):
    """422: `errors` maps each invalid field (or `_schema` for the whole body) to its messages; nested objects
    nest."""

    errors = fields.Dict(required=True, keys=fields.String())
