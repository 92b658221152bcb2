"""The Instagift checkout service: `create_app()` builds the Flask app for web processes and workers."""

from __future__ import annotations

import dataclasses
import logging
import re
import time
import uuid
from pathlib import Path

import click
from flask import Flask, g, request
from flask_cors import CORS
from flask_migrate import Migrate
from werkzeug.middleware.proxy_fix import ProxyFix

from service import models  # noqa: F401  (every table: create_all and migrations see the whole schema)
from service.api.headers import register_security_headers
from service.api.languages import WIDGET_PATHS
from service.api.problems import masked_request_path
from service.config import ALL_INTERFACES, ConfigurationError
from service.db import db
from service.logs import configure_logging

log = logging.getLogger("service.web")
migrate = Migrate()

MIGRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "migrations")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def create_app(environ: dict[str, str] | None = None, **overrides) -> Flask:
    """Build the app from the environment (or `environ`); keyword overrides replace AppSettings fields."""
    from service import features  # the composition: settings, blueprints, job handlers, order effects

    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    try:
        settings = features.load_settings(environ, app.instance_path)
    except ConfigurationError as exc:
        if click.get_current_context(silent=True) is not None:
            # The flask command (db upgrade, worker, …) is building the app: the list of settings to fix is the
            # whole message, printed as click prints an error, with no traceback burying it.
            raise click.ClickException(str(exc)) from None
        raise
    if overrides:
        settings = dataclasses.replace(settings, **overrides)
    app.extensions["settings"] = settings
    app.config.update(
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=settings.max_request_bytes,
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_uri,
        RATELIMIT_HEADERS_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,  # an unreachable Redis must not break checkout (see /readyz)
        JSON_SORT_KEYS=False,
    )
    configure_logging(settings.log_format)

    if settings.trusted_proxies:
        # Rate limits key on the shopper's address: behind N proxies, the Nth address from the right in
        # X-Forwarded-For is the one no client can forge.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
        if settings.bind_address in ALL_INTERFACES:
            # Whoever reaches gunicorn directly writes X-Forwarded-For themselves and dodges every rate limit.
            log.warning("TRUSTED_PROXIES=%d but BIND_ADDRESS=%s listens on every interface: a client that reaches "
                        "this service directly can forge X-Forwarded-For and dodge the rate limits. Bind to an "
                        "address only the proxy reaches (e.g. BIND_ADDRESS=127.0.0.1), or firewall the port.",
                        settings.trusted_proxies, settings.bind_address)

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR, compare_type=True, render_as_batch=True)

    from service.providers.registry import build_providers
    app.extensions["providers"] = build_providers(settings)

    from service.api import init_api

    _register_request_ids(app)  # first: every answer, even one refused before its view (limits, NUL), has an id
    init_api(app)
    features.register(app)
    # The widget's endpoints only: verify is for the shop's backend and gets no CORS headers.
    CORS(app, resources={WIDGET_PATHS.pattern: {"origins": list(settings.allowed_origins)}},
         expose_headers=["X-Request-Id", "Retry-After", "Content-Language"], max_age=600)
    register_security_headers(app)

    from service import cli
    cli.register(app)
    return app


def _register_request_ids(app: Flask) -> None:
    @app.before_request
    def take_request_id():
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def give_request_id(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        if request.path.startswith("/v1/"):
            # API answers carry cart tokens and ledgers: no shared or browser cache may keep them.
            response.headers.setdefault("Cache-Control", "no-store")
        elapsed = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        log.info("%s %s %s %.1fms", request.method, masked_request_path(), response.status_code, elapsed)
        return response
