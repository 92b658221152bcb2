"""The HTTP layer: thin handlers that parse, call a domain function and render."""

from __future__ import annotations

from flask import Flask

from service.config import Settings


def register_http(app: Flask, settings: Settings) -> None:
    """Register every blueprint, the rate limiter and the problem-details error handlers."""
    from service.web import admin, carts, demo, membership, ops, thank_you, webhooks, widget_assets
    from service.web.extensions import limiter
    from service.web.parsing import DatabaseIdConverter, refuse_nul_in_url
    from service.web.problems import register_error_handlers

    limiter.init_app(app)
    register_error_handlers(app)
    app.url_map.converters["id"] = DatabaseIdConverter
    app.before_request(refuse_nul_in_url)
    for module in (ops, webhooks, admin, widget_assets, demo, carts, thank_you, membership):
        app.register_blueprint(module.bp)
