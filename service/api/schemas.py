"""Marshmallow schemas shared by every endpoint (problem details) and of the operations endpoints (health,
readiness); the OpenAPI document is generated from these."""

from __future__ import annotations

from marshmallow import Schema, fields


class HealthSchema(Schema):
    status = fields.String()


class ReadinessSchema(Schema):
    status = fields.String(metadata={"description": "ok, degraded (rate limits unreachable: not enforced) or unavailable"})
    database = fields.String()
    rate_limits = fields.String(metadata={"description": "ok or unreachable"})
    providers = fields.Dict(keys=fields.String(), values=fields.String())
    environment = fields.String()


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    code = fields.String()
    detail = fields.String()
    instance = fields.String()
    request_id = fields.String()
    errors = fields.Dict()
