"""Sandbox fakes of Instagift, Cardly and InstantCard that follow the provider docs.

`create_sandbox_app()` serves all three from one process (in-memory state, guarded by locks):
`/instagift/v2/…`, `/cardly/v2/…`, `/instantcard/api/v2/…`, plus `/_control/…` endpoints that tests and
the demo use to seed data, add credit or inject failures. It refuses to start in production.
"""

from __future__ import annotations

import os
import time

from flask import Flask, jsonify, request

PRODUCTION = "production"  # the SERVICE_ENV value in which the sandbox refuses to exist


def create_sandbox_app(*, latency_ms: int | None = None) -> Flask:
    """Build the sandbox providers' WSGI app; never available when SERVICE_ENV=production."""
    if os.environ.get("SERVICE_ENV") == PRODUCTION:
        raise RuntimeError("The sandbox providers are never started in production (SERVICE_ENV=production).")
    from sandbox import cardly, instagift, instantcard

    app = Flask("sandbox")
    app.config["LATENCY_MS"] = int(os.environ.get("SANDBOX_LATENCY_MS", "0")) if latency_ms is None else latency_ms
    # Each module's blueprint carries its in-memory state as `blueprint.state`, which has `reset()`.
    blueprints = {
        "instagift": (instagift.create_blueprint(), "/instagift/v2"),
        "cardly": (cardly.create_blueprint(), "/cardly/v2"),
        "instantcard": (instantcard.create_blueprint(), "/instantcard/api/v2"),
    }
    for blueprint, prefix in blueprints.values():
        app.register_blueprint(blueprint, url_prefix=prefix)
    app.extensions["sandbox"] = {name: bp.state for name, (bp, _) in blueprints.items()}

    @app.before_request
    def simulated_latency():
        if app.config["LATENCY_MS"] and not request.path.startswith("/_control"):
            time.sleep(app.config["LATENCY_MS"] / 1000)

    @app.post("/_control/latency")
    def set_latency():
        app.config["LATENCY_MS"] = int((request.get_json(force=True) or {}).get("ms", 0))
        return jsonify(latency_ms=app.config["LATENCY_MS"])

    @app.post("/_control/reset")
    def reset():
        for state in app.extensions["sandbox"].values():
            state.reset()
        app.config["LATENCY_MS"] = 0
        return jsonify(status="reset")

    @app.get("/_health")
    def health():
        return jsonify(status="ok")

    return app
