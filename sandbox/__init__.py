"""Sandbox fakes of Instagift, Cardly and InstantCard that follow the providers' public documentation.

`create_sandbox_app()` serves all three from one process: `/instagift/v2/…`, `/cardly/v2/…`,
`/instantcard/api/v2/…`, plus `/_control/…` endpoints that tests and the demo use to seed data, add credit or
inject failures. Each provider is a module with a module-level Blueprint whose routes are plain functions; the
in-memory state (guarded by locks) belongs to the app, in `app.extensions["sandbox"][<provider>]`, so every
app built here starts from its own fresh state. It refuses to start in production.
"""

from __future__ import annotations

import os
import time

from flask import Blueprint, Flask, current_app, jsonify, request

PRODUCTION = "production"  # the SERVICE_ENV value in which the sandbox refuses to exist

blueprint = Blueprint("sandbox", __name__)


def create_sandbox_app(*, latency_ms: int | None = None) -> Flask:
    """Build the sandbox providers' WSGI app; never available when SERVICE_ENV=production."""
    if os.environ.get("SERVICE_ENV") == PRODUCTION:
        raise RuntimeError("The sandbox providers are never started in production (SERVICE_ENV=production).")
    from sandbox import cardly, instagift, instantcard

    app = Flask("sandbox")
    app.config["LATENCY_MS"] = int(os.environ.get("SANDBOX_LATENCY_MS", "0")) if latency_ms is None else latency_ms
    # Each provider's state has `reset()`; its routes find it here through `current_app`.
    app.extensions["sandbox"] = {
        "instagift": instagift.InstagiftSandboxState(),
        "cardly": cardly.CardlySandboxState(),
        "instantcard": instantcard.InstantCardSandboxState(),
    }
    app.register_blueprint(blueprint)
    app.register_blueprint(instagift.blueprint, url_prefix="/instagift/v2")
    app.register_blueprint(cardly.blueprint, url_prefix="/cardly/v2")
    app.register_blueprint(instantcard.blueprint, url_prefix="/instantcard/api/v2")
    return app


@blueprint.before_app_request
def simulated_latency():
    """Every provider call (not the controls) waits `LATENCY_MS`, like a provider across the internet."""
    latency_ms = current_app.config["LATENCY_MS"]
    if latency_ms and not request.path.startswith("/_control"):
        time.sleep(latency_ms / 1000)


@blueprint.post("/_control/latency")
def set_latency():
    """Set the simulated latency: {"ms"}."""
    current_app.config["LATENCY_MS"] = int((request.get_json(force=True) or {}).get("ms", 0))
    return jsonify(latency_ms=current_app.config["LATENCY_MS"])


@blueprint.post("/_control/reset")
def reset():
    """Reset every provider to its seeded state and the latency to 0."""
    for state in current_app.extensions["sandbox"].values():
        state.reset()
    current_app.config["LATENCY_MS"] = 0
    return jsonify(status="reset")


@blueprint.get("/_health")
def health():
    """The sandbox is up."""
    return jsonify(status="ok")
