"""Shared HTTP plumbing: problem details and their language, request parsing, the OpenAPI document, rate limits and the operations
endpoints (/healthz, /readyz; /openapi.json is generated from the routes). Nothing here imports a feature."""

from __future__ import annotations

from flask import Flask

from service.api.languages import init_languages
from service.api.openapi import init_openapi
from service.api.parsing import DatabaseIdConverter, refuse_nul_in_url
from service.api.problems import register_error_handlers
from service.api.ratelimit import limiter

API_KEY = "service_api"


def init_api(app: Flask) -> None:
    """The shopper's language (Flask-Babel), the rate limiter, the problem-details error handlers, the `id` URL converter, the NUL-in-URL guard and the
    OpenAPI document (before any blueprint is registered: blueprints go through `app.extensions[API_KEY]`)."""
    init_languages(app)
    limiter.init_app(app)
    register_error_handlers(app)
    app.url_map.converters["id"] = DatabaseIdConverter
    app.before_request(refuse_nul_in_url)
    app.extensions[API_KEY] = init_openapi(app)
