"""Merchant endpoints (Bearer ADMIN_API_TOKEN): order timelines, the redemption ledger, reconciliation totals,
the comparison with Instagift, the job queue, and the providers' preflight check."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask import Blueprint, Response, current_app, request, stream_with_context
from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.api.openapi import document
from service.api.parsing import load_query, require_bearer
from service.db import db, utcnow
from service.jobs.models import JOB_STATES
from service.jobs.queue import retry_by_person
from service.providers.preflight import check_providers
from service.redemption.models import REDEMPTION_STATES
from service.reports.failures import job_view, list_jobs
from service.reports.ledger import LEDGER_CSV_COLUMNS, iter_ledger, ledger_csv_record, ledger_page
from service.reports.listing import DEFAULT_PER_PAGE, MAX_PER_PAGE, MAX_RANGE_DAYS, DateRange, csv_lines
from service.reports.reconciliation import (
    compare_with_instagift,
    reconciliation_report,
    totals_csv_header,
    totals_csv_records,
)
from service.reports.timeline import order_timeline

bp = Blueprint("admin", __name__)


@bp.before_request
def require_admin_token():
    require_bearer(current_app.extensions["settings"].admin_api_token, "admin")


# -- query strings --------------------------------------------------------------------------------------------


class DayOrInstant(fields.Field):
    """`YYYY-MM-DD` (a UTC day) or an ISO 8601 timestamp with a time zone; loads to (datetime, is_whole_day)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("Give a date as YYYY-MM-DD or a timestamp like 2026-11-21T10:00:00Z.")
        text = value.strip()
        if len(text) == 10:
            try:
                day = datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
            except ValueError:
                raise ValidationError(f"{text!r} is not a valid date (YYYY-MM-DD).") from None
            return self._within_years(day), True
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValidationError("Give a date as YYYY-MM-DD or a timestamp like 2026-11-21T10:00:00Z.") from None
        if moment.tzinfo is None:
            raise ValidationError("A timestamp needs a time zone, e.g. 2026-11-21T10:00:00Z.")
        return self._within_years(moment), False

    @staticmethod
    def _within_years(moment: datetime) -> datetime:
        # Ranges add a day to `to` and convert time zones: the calendar's ends would overflow, so they are refused.
        if not 1970 <= moment.year <= 9998:
            raise ValidationError("Give a date between 1970 and 9998.")
        return moment.astimezone(UTC)


class RangeQuery(Schema):
    """`from`/`to`: whole UTC days (both included) or timestamps (`to` excluded). Loads to `range`."""

    from_ = DayOrInstant(data_key="from", load_default=None)
    to = DayOrInstant(load_default=None)
    # Listing endpoints may go without a range (everything); reports default to today (UTC).
    range_required = True
    max_days: int | None = MAX_RANGE_DAYS

    @validates_schema
    def check_order(self, data, **kwargs):
        start, end = self._bounds(data)
        if start is not None and end is not None:
            if end <= start:
                raise ValidationError("`to` must not be before `from`.", "to")
            if self.max_days and end - start > timedelta(days=self.max_days):
                raise ValidationError(f"A report covers at most {self.max_days} days.", "to")

    @staticmethod
    def _bounds(data):
        start = data.get("from_")
        end = data.get("to")
        start_at = start[0] if start else None
        end_at = None
        if end:
            end_at = end[0] + timedelta(days=1) if end[1] else end[0]
        return start_at, end_at

    @post_load
    def to_range(self, data, **kwargs):
        start, end = self._bounds(data)
        rest = {k: v for k, v in data.items() if k not in ("from_", "to")}
        if start is None and end is None and not self.range_required:
            return {**rest, "range": None}
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if start is None:
            start = (end - timedelta(microseconds=1)).replace(hour=0, minute=0, second=0, microsecond=0) \
                if end else today
        if end is None:
            end = start.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        return {**rest, "range": DateRange(start, end)}


class Paging(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    per_page = fields.Integer(load_default=DEFAULT_PER_PAGE,
                              validate=validate.Range(min=1, max=MAX_PER_PAGE))


class LedgerQuery(RangeQuery, Paging):
    """The ledger may be read without a range (everything) and over any span."""

    range_required = False
    max_days = None
    state = fields.String(load_default=None, validate=validate.OneOf(REDEMPTION_STATES))


class JobsQuery(Paging):
    state = fields.String(load_default=None, validate=validate.OneOf(JOB_STATES))
    kind = fields.String(load_default=None, validate=validate.Length(min=1, max=64))
    include_periodic = fields.Boolean(load_default=False)


class PageSchema(Schema):
    items = fields.List(fields.Dict())
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer()
    next_page = fields.Integer(allow_none=True)


class ReportSchema(Schema):
    range = fields.Dict()
    generated_at = fields.String()
    currency = fields.String()
    days = fields.List(fields.Dict())
    overall = fields.Dict()
    open_holds_now = fields.Dict()


class ComparisonSchema(Schema):
    range = fields.Dict()
    instagift_redemptions_read = fields.Integer()
    summary = fields.Dict()
    matched = fields.List(fields.Dict())
    amount_mismatches = fields.List(fields.Dict())
    unknown_here = fields.List(fields.Dict())
    missing_at_instagift = fields.List(fields.Dict())
    unsettled_here = fields.List(fields.Dict())


class TimelineSchema(Schema):
    order = fields.Dict()
    events = fields.List(fields.Dict())
    holds = fields.List(fields.Dict())
    verifies = fields.List(fields.Dict())
    redemptions = fields.List(fields.Dict())
    thank_you_card = fields.Dict(allow_none=True)
    membership_cards = fields.List(fields.Dict())
    jobs = fields.List(fields.Dict())


class JobSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    state = fields.String()
    attempts = fields.Integer()
    failures = fields.Integer()
    last_error = fields.String(allow_none=True)
    run_at = fields.String()
    shop_order_id = fields.String(allow_none=True)
    periodic = fields.Boolean(metadata={"description": "a periodic housekeeping run, not an order's effect"})


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


class ProviderCheckSchema(Schema):
    provider = fields.String(metadata={"description": "instagift, cardly or instantcard"})
    check = fields.String(metadata={"description": "what was checked, e.g. api key, artwork, template MEMBER-GOLD"})
    ok = fields.Boolean()
    detail = fields.String(metadata={"description": "what was found; 'skipped: …' when an earlier failure "
                                                    "kept the check from running. Never contains a secret."})


class ProvidersCheckSchema(Schema):
    ok = fields.Boolean(metadata={"description": "true only when every check passed"})
    checks = fields.List(fields.Nested(ProviderCheckSchema))


@bp.get("/v1/providers/check")
def get_providers_check():
    """Read-only calls with the configured credentials (the same checks as `flask providers check`)."""
    return check_providers(current_app.extensions["settings"]).as_dict()


document("/v1/providers/check", "get", "Preflight: credentials, artwork, templates, shipping provider and balances "
         "checked with read-only provider calls (200 whether or not every check passed)",
         tag="merchant", response=ProvidersCheckSchema, auth="admin", problems=(401,))
