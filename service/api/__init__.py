"""Shared HTTP plumbing: problem details, request parsing, the OpenAPI document, rate limits and the operations
endpoints (/healthz, /readyz, /openapi.json). Nothing here imports a feature."""

from __future__ import annotations

from flask import Flask

from service.api.parsing import DatabaseIdConverter, refuse_nul_in_url
from service.api.problems import register_error_handlers
from service.api.ratelimit import limiter


def init_api(app: Flask) -> None:
    """The rate limiter, the problem-details error handlers, the `id` URL converter and the NUL-in-URL guard
    (before any blueprint is registered)."""
    limiter.init_app(app)
    register_error_handlers(app)
    app.url_map.converters["id"] = DatabaseIdConverter
    app.before_request(refuse_nul_in_url)
