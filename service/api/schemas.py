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
    detail = fields.String(metadata={"description": "What happened and what to do, for a person, in the language of "
                                                    "Content-Language; never contains a secret"})
    instance = fields.String(required=True, metadata={"description": "The request path, cart token masked"})
    request_id = fields.String(metadata={"description": "Also in the X-Request-Id header; names the request in "
                                                        "our logs, where any technical detail is kept"})


def problem_code(*codes: str) -> fields.String:
    """The `code` member of a problem schema that carries only these codes."""
    return fields.String(required=True, validate=validate.OneOf(codes))


class ValidationProblemSchema(ProblemSchema):
    """422: `errors` maps each invalid field (or `_schema` for the whole body) to its messages; nested objects
    nest."""

    errors = fields.Dict(required=True, keys=fields.String())


RATE_LIMIT_REASONS = ("too_many_lookups", "too_many_lookups_on_cart", "cart_locked", "too_many_carts",
                      "too_many_requests")


class RateLimitedProblemSchema(ProblemSchema):
    """429 rate_limited: `reason` says which limit (docs/api.md), `retry_after` when to try again."""

    code = problem_code("rate_limited")
    reason = fields.String(required=True, validate=validate.OneOf(RATE_LIMIT_REASONS), metadata={
        "description": "too_many_lookups (claim-code look-ups from this address), too_many_lookups_on_cart (on "
                       "this cart), cart_locked (too many unrecognised claim codes on this cart: it is locked; the "
                       "shopper can pay another way), too_many_carts (new carts from this address), "
                       "too_many_requests (any other)"})
    retry_after = fields.Integer(required=True, validate=validate.Range(min=1), metadata={
        "description": "Seconds until another attempt may succeed (the Retry-After header says the same)"})


class ProviderTroubleProblemSchema(ProblemSchema):
    """503: a provider timed out, answered 5xx or rate limited us; none of it is the caller's doing."""

    code = problem_code("provider_unavailable", "provider_rate_limited")
    retry_after = fields.Integer(validate=validate.Range(min=1), metadata={
        "description": "provider_rate_limited on a shopper's look-up: seconds until trying again may succeed "
                       "(also the Retry-After header)"})
