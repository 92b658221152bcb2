"""Operations endpoints: liveness and readiness (the OpenAPI document itself is served by service.api.openapi)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from service.api.openapi import Blueprint
from service.api.parsing import bearer_token, staff_name_for
from service.api.schemas import HealthSchema, ReadinessSchema
from service.db import db

bp = Blueprint("ops", __name__, description="Liveness and readiness")


@bp.get("/healthz")
@bp.response(200, HealthSchema)
@bp.problems(400)
def healthz():
    """The process is up."""
    return {"status": "ok"}


@bp.get("/readyz")
@bp.response(200, ReadinessSchema)
@bp.alt_response(503, schema=ReadinessSchema, description="The database does not answer")
@bp.problems(400)
@bp.doc(security=[{}, {"admin": []}])
def readyz():
    """The database answers (status only); with the admin token also the detail: the database, the rate limits,
    whether each provider is live or the sandbox, and the environment."""
    settings = current_app.extensions["settings"]
    providers = {
        "instagift": "sandbox" if settings.instagift.sandbox else "live",
        "cardly": ("disabled" if not settings.cardly.enabled
                   else "sandbox" if settings.cardly.sandbox
                   else "test" if settings.cardly.api_key.startswith("test_") else "live"),
        # InstantCard is used only for a SKU that INSTANTCARD_PRODUCTS maps (as `providers check` decides).
        "instantcard": ("disabled" if not settings.membership.products
                        else "sandbox" if settings.instantcard.sandbox else "live"),
    }
    try:
        db.session.execute(sa.text("SELECT 1"))
        database = "ok"
    except Exception:
        db.session.rollback()
        database = "unreachable"
    # Without the rate-limit storage the limits fail open (checkout keeps working): say so, but stay ready,
    # or an outage of Redis would take every web process out of rotation.
    rate_limits = "ok" if current_app.extensions["checkout_limiter"].reachable() else "unreachable"
    status = "unavailable" if database != "ok" else "ok" if rate_limits == "ok" else "degraded"
    body = {"status": status}
    if staff_name_for(bearer_token(), settings.staff_tokens) is not None:  # any staff token sees the detail
        body.update(database=database, rate_limits=rate_limits, providers=providers, environment=settings.env)
    return body, (200 if database == "ok" else 503)
