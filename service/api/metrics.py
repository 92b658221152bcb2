"""GET /metrics: the service's metrics in the Prometheus text format, for operators (Bearer: an admin or staff token)."""

from __future__ import annotations

from flask import Response

from service import metrics
from service.api.openapi import Blueprint
from service.api.parsing import require_admin
from service.jobs.metrics import JobStatesCollector

bp = Blueprint("metrics", __name__, description="Metrics for operators (Bearer: an admin or staff token)")

PROMETHEUS_TEXT = {200: {
    "description": "Every metric in the Prometheus text format, version 0.0.4 (docs/metrics.md lists them)",
    "content": {"text/plain": {"schema": {"type": "string"}}},
}}


bp.before_request(require_admin)


@bp.get("/metrics")
@bp.doc(security=[{"admin": []}], responses=PROMETHEUS_TEXT)
@bp.problems(400, 401)
def get_metrics():
    """The counts of every process of this host (multiprocess mode) and the jobs in each state, for Prometheus."""
    return Response(metrics.render([JobStatesCollector()]), content_type=metrics.CONTENT_TYPE)
