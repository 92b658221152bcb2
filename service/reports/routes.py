"""Merchant endpoints (Bearer ADMIN_API_TOKEN): order timelines, the redemption ledger, reconciliation totals,
the comparison with Instagift, the job queue, and the providers' preflight check."""

from __future__ import annotations

from flask import Response, current_app, g, request, stream_with_context

from service.api.openapi import Blueprint
from service.api.parsing import require_admin
from service.db import db, utcnow
from service.orders.attention import attention_item_view
from service.providers.preflight import check_providers
from service.reports.failures import job_view, list_jobs
from service.reports.ledger import ledger_csv, ledger_page
from service.reports.listing import csv_lines, span_label
from service.reports.order_list import list_orders
from service.reports.reconciliation import (
    compare_with_instagift,
    reconciliation_report,
    totals_csv_header,
    totals_csv_records,
)
from service.reports.schemas import (
    AttentionItemSchema,
    ComparisonSchema,
    JobNotRetryableProblemSchema,
    JobSchema,
    JobsPageSchema,
    JobsQuery,
    LedgerPageSchema,
    LedgerQuery,
    OrdersPageSchema,
    OrdersQuery,
    ProvidersCheckSchema,
    RangeQuery,
    ReportSchema,
    ResolveAttentionBody,
    TimelineSchema,
)
from service.reports.staff_actions import resolve_for_staff, retry_for_staff
from service.reports.timeline import order_timeline

bp = Blueprint("admin", __name__, description="Merchant endpoints (Bearer ADMIN_API_TOKEN)")

ADMIN = [{"admin": []}]
# With Accept: text/csv the same operation answers CSV (RFC 4180, a header line first).
CSV = {200: {"description": "JSON, or CSV with Accept: text/csv", "content": {"text/csv": {"schema": {"type": "string"}}}}}


bp.before_request(require_admin)


# -- routes --------------------------------------------------------------------------------------------------


@bp.get("/v1/orders")
@bp.arguments(OrdersQuery(), location="query")
@bp.response(200, OrdersPageSchema)
@bp.problems(400, 401, 422)
@bp.doc(security=ADMIN)
def get_orders(query):
    """The orders, newest first: search by order id or a claim code's last 4, filter by state and attention."""
    return list_orders(db.session, **query).as_dict()


@bp.get("/v1/orders/<order_id>")
@bp.response(200, TimelineSchema)
@bp.problems(400, 401, 404)
@bp.doc(security=ADMIN)
def get_order(order_id: str):
    """One order's timeline: holds, redemptions, cards, every job attempt."""
    return order_timeline(db.session, order_id)


@bp.post("/v1/orders/<order_id>/attention/<id:item_id>/resolve")
@bp.arguments(ResolveAttentionBody())
@bp.response(200, AttentionItemSchema)
@bp.problems(400, 401, 404, 409, 413, 415, 422)
@bp.doc(security=ADMIN)
def resolve_attention_item(body, order_id: str, item_id: int):
    """Mark one of the order's attention items resolved, with an optional note saying what was done."""
    item = resolve_for_staff(db.session, order_id, item_id, staff=g.staff, address=request.remote_addr or "unknown",
                             note=body["note"], via="api")
    return attention_item_view(item)


@bp.get("/v1/jobs")
@bp.arguments(JobsQuery(), location="query")
@bp.response(200, JobsPageSchema)
@bp.problems(400, 401, 422)
@bp.doc(security=ADMIN)
def get_jobs(query):
    """The job queue with every attempt, newest first (periodic housekeeping runs only when asked for)."""
    return list_jobs(db.session, **query).as_dict()


@bp.post("/v1/jobs/<id:job_id>/retry")
@bp.response(202, JobSchema)
@bp.problems(400, 401, 404, (409, [JobNotRetryableProblemSchema]))
@bp.doc(security=ADMIN)
def retry_job(job_id: int):
    """Queue a dead or parked job again now, with a fresh failure budget."""
    job = retry_for_staff(db.session, job_id, staff=g.staff, address=request.remote_addr or "unknown", via="api")
    return job_view(db.session, job)


def _wants_csv() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _csv_response(lines, filename: str) -> Response:
    return Response(stream_with_context(lines), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/v1/redemptions")
@bp.arguments(LedgerQuery(), location="query")
@bp.response(200, LedgerPageSchema)
@bp.problems(400, 401, 422)
@bp.doc(security=ADMIN, responses=CSV)
def get_redemptions(query):
    """The redemption ledger: JSON pages, or every matching row as CSV with `Accept: text/csv`."""
    if _wants_csv():
        return _csv_response(*ledger_csv(db.session, query["range"], state=query["state"]))
    page = ledger_page(db.session, query["range"], state=query["state"], page=query["page"],
                       per_page=query["per_page"])
    return {"range": query["range"].as_dict() if query["range"] else None, **page.as_dict()}


@bp.get("/v1/reconciliation")
@bp.arguments(RangeQuery(), location="query")
@bp.response(200, ReportSchema)
@bp.problems(400, 401, 422)
@bp.doc(security=ADMIN, responses=CSV)
def get_reconciliation(query):
    """Totals per UTC day and overall; CSV (one row a day and a total row) with `Accept: text/csv`."""
    report = reconciliation_report(db.session, query["range"], now=utcnow())
    if _wants_csv():
        lines = csv_lines(totals_csv_header(report), totals_csv_records(report))
        return _csv_response(lines, f"reconciliation_{span_label(query['range'])}.csv")
    return report


@bp.get("/v1/reconciliation/instagift")
@bp.arguments(RangeQuery(), location="query")
@bp.response(200, ComparisonSchema)
@bp.problems(400, 401, 422, 502, 503)
@bp.doc(security=ADMIN)
def get_instagift_comparison(query):
    """The local ledger compared with Instagift's own redemption list (all of its pages)."""
    client = current_app.extensions["providers"].instagift
    return compare_with_instagift(db.session, client.iter_redemptions(), query["range"])


@bp.get("/v1/providers/check")
@bp.response(200, ProvidersCheckSchema)
@bp.problems(400, 401)
@bp.doc(security=ADMIN)
def get_providers_check():
    """Preflight: credentials, artwork, templates, shipping provider and balances checked with read-only provider
    calls (200 whether or not every check passed; the same checks as `flask providers check`)."""
    return check_providers(current_app.extensions["settings"]).as_dict()
