"""Merchant endpoints (Bearer ADMIN_API_TOKEN): order timelines, the redemption ledger, reconciliation totals,
the comparison with Instagift, the job queue, and the providers' preflight check."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, stream_with_context

from service.api.openapi import document
from service.api.parsing import load_query, require_bearer
from service.db import db, utcnow
from service.jobs.queue import retry_by_person
from service.providers.preflight import check_providers
from service.reports.failures import job_view, list_jobs
from service.reports.ledger import LEDGER_CSV_COLUMNS, iter_ledger, ledger_csv_record, ledger_page
from service.reports.listing import MAX_PER_PAGE, DateRange, csv_lines
from service.reports.reconciliation import (
    compare_with_instagift,
    reconciliation_report,
    totals_csv_header,
    totals_csv_records,
)
from service.reports.schemas import (
    ComparisonSchema,
    JobSchema,
    JobsQuery,
    LedgerQuery,
    PageSchema,
    ProvidersCheckSchema,
    RangeQuery,
    ReportSchema,
    TimelineSchema,
)
from service.reports.timeline import order_timeline

bp = Blueprint("admin", __name__)


@bp.before_request
def require_admin_token():
    require_bearer(current_app.extensions["settings"].admin_api_token, "admin")


def _param(name: str, description: str, schema: dict | None = None, where: str = "query") -> dict:
    return {"name": name, "in": where, "required": where == "path", "description": description,
            "schema": schema or {"type": "string"}}


RANGE_PARAMS = (
    _param("from", "First UTC day (YYYY-MM-DD, included) or a timestamp with a zone (included)."),
    _param("to", "Last UTC day (YYYY-MM-DD, included) or a timestamp with a zone (excluded)."),
)
PAGE_PARAMS = (_param("page", "Page number, from 1.", {"type": "integer", "minimum": 1}),
               _param("per_page", f"Items a page (at most {MAX_PER_PAGE}).",
                      {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}))


# -- routes --------------------------------------------------------------------------------------------------


@bp.get("/v1/orders/<order_id>")
def get_order(order_id: str):
    """One order's full timeline."""
    return order_timeline(db.session, order_id)


document("/v1/orders/{order_id}", "get", "One order's timeline: holds, redemptions, cards, every job attempt",
         tag="merchant", response=TimelineSchema, auth="admin", problems=(401, 404),
         parameters=(_param("order_id", "The shop's order id (data.id).", where="path"),))


@bp.get("/v1/jobs")
def get_jobs():
    """The job queue, newest first."""
    query = load_query(JobsQuery())
    return list_jobs(db.session, **query).as_dict()


document("/v1/jobs", "get", "The job queue with every attempt, newest first", tag="merchant", response=PageSchema,
         auth="admin", problems=(401, 422),
         parameters=(_param("state", "queued, running, succeeded, parked or dead."),
                     _param("kind", "A job kind, e.g. redeem_gift_card (periodic kinds are listed when asked for)."),
                     _param("include_periodic", "true to list periodic housekeeping runs too (left out by default).",
                            {"type": "boolean"}),
                     *PAGE_PARAMS))


@bp.post("/v1/jobs/<id:job_id>/retry")
def retry_job(job_id: int):
    """Queue a dead or parked job again now, with a fresh failure budget."""
    job = retry_by_person(db.session, job_id)
    return job_view(db.session, job), 202


document("/v1/jobs/{job_id}/retry", "post", "Retry a dead or parked job now", tag="merchant", response=JobSchema,
         status=202, auth="admin", problems=(401, 404, 409),
         parameters=(_param("job_id", "The job's id.", {"type": "integer"}, where="path"),))


def _wants_csv() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


def _csv_response(lines, filename: str) -> Response:
    return Response(stream_with_context(lines), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _span(window: DateRange | None) -> str:
    if window is None:
        return "all"
    return f"{window.days[0].isoformat()}_{window.days[-1].isoformat()}"


@bp.get("/v1/redemptions")
def get_redemptions():
    """The redemption ledger: JSON pages, or every matching row as CSV with `Accept: text/csv`."""
    query = load_query(LedgerQuery())
    if _wants_csv():
        rows = iter_ledger(db.session, query["range"], state=query["state"])
        lines = csv_lines(LEDGER_CSV_COLUMNS, (ledger_csv_record(row) for row in rows))
        return _csv_response(lines, f"redemptions_{_span(query['range'])}.csv")
    page = ledger_page(db.session, query["range"], state=query["state"], page=query["page"],
                       per_page=query["per_page"])
    return {"range": query["range"].as_dict() if query["range"] else None, **page.as_dict()}


document("/v1/redemptions", "get", "The redemption ledger (JSON pages, or CSV with Accept: text/csv)",
         tag="merchant", response=PageSchema, auth="admin", problems=(401, 422),
         content_types=("application/json", "text/csv"),
         parameters=(*RANGE_PARAMS, _param("state", "pending, uncertain, succeeded, shortfall, failed or cancelled."),
                     *PAGE_PARAMS))


@bp.get("/v1/reconciliation")
def get_reconciliation():
    """Totals per UTC day and overall; CSV (one row a day and a total row) with `Accept: text/csv`."""
    query = load_query(RangeQuery())
    report = reconciliation_report(db.session, query["range"], now=utcnow())
    if _wants_csv():
        lines = csv_lines(totals_csv_header(report), totals_csv_records(report))
        return _csv_response(lines, f"reconciliation_{_span(query['range'])}.csv")
    return report


document("/v1/reconciliation", "get", "Totals per day: applied vs redeemed vs shortfall, provider costs, failures",
         tag="merchant", response=ReportSchema, auth="admin", problems=(401, 422),
         content_types=("application/json", "text/csv"), parameters=RANGE_PARAMS)


@bp.get("/v1/reconciliation/instagift")
def get_instagift_comparison():
    """The local ledger compared with Instagift's own redemption list (all of its pages)."""
    query = load_query(RangeQuery())
    client = current_app.extensions["providers"].instagift
    return compare_with_instagift(db.session, client.iter_redemptions(), query["range"])


document("/v1/reconciliation/instagift", "get", "The local ledger compared with Instagift's redemption list",
         tag="merchant", response=ComparisonSchema, auth="admin", problems=(401, 422, 502),
         parameters=RANGE_PARAMS)


@bp.get("/v1/providers/check")
def get_providers_check():
    """Read-only calls with the configured credentials (the same checks as `flask providers check`)."""
    return check_providers(current_app.extensions["settings"]).as_dict()


document("/v1/providers/check", "get", "Preflight: credentials, artwork, templates, shipping provider and balances "
         "checked with read-only provider calls (200 whether or not every check passed)",
         tag="merchant", response=ProvidersCheckSchema, auth="admin", problems=(401,))
