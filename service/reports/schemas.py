"""Marshmallow schemas of the merchant endpoints: the query strings they read (date ranges, pages, filters) and
the answers they give; the OpenAPI document is generated from these."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from service.api.schemas import ProblemSchema, problem_code
from service.jobs.models import JOB_STATES
from service.orders.attention import RESOLUTION_NOTE_MAX_LENGTH
from service.orders.models import ATTENTION_KINDS
from service.redemption.models import REDEMPTION_STATES
from service.reports.listing import DEFAULT_PER_PAGE, MAX_PER_PAGE, MAX_RANGE_DAYS, DateRange
from service.reports.order_list import ATTENTION_FILTERS, ORDER_STATES
from service.reports.timeline import TIMELINE_ENTRY_TYPES


class DayOrInstant(fields.String):
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


class OrdersQuery(Paging):
    q = fields.String(load_default=None, validate=validate.Length(min=1, max=100),
                      metadata={"description": "The shop's order id (exact or its beginning), or the last 4 "
                                               "characters of a claim code used on the order"})
    state = fields.String(load_default=None, validate=validate.OneOf(ORDER_STATES))
    attention = fields.String(load_default=None, validate=validate.OneOf(ATTENTION_FILTERS),
                              metadata={"description": "open: orders with an open attention item; resolved: with "
                                                       "attention items, all resolved"})


# -- answers ------------------------------------------------------------------------------------------------


class RangeSchema(Schema):
    from_ = fields.String(data_key="from", attribute="from", required=True,
                          metadata={"description": "Start (UTC, included)"})
    to = fields.String(required=True, metadata={"description": "End (UTC, excluded)"})


class _PageSchema(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True, metadata={"description": "Items matching, on every page"})
    next_page = fields.Integer(required=True, allow_none=True)


class LedgerRowSchema(Schema):
    """One redemption: amounts in cents, times in UTC, the claim code masked."""

    id = fields.Integer(required=True)
    order_id = fields.String(required=True, allow_none=True, metadata={"description": "The shop's order id"})
    order_number = fields.String(required=True, allow_none=True)
    state = fields.String(required=True, validate=validate.OneOf(REDEMPTION_STATES))
    certificate_id = fields.String(required=True, allow_none=True)
    code = fields.String(required=True)
    currency = fields.String(required=True)
    splittable = fields.Boolean(required=True, allow_none=True)
    applied_cents = fields.Integer(required=True)
    taken_cents = fields.Integer(required=True, allow_none=True)
    intended_cents = fields.Integer(required=True, allow_none=True)
    redeemed_cents = fields.Integer(required=True, allow_none=True)
    rounding_cents = fields.Integer(required=True, allow_none=True)
    shortfall_cents = fields.Integer(required=True, allow_none=True)
    forfeit_cents = fields.Integer(required=True, allow_none=True)
    provider_redemption_id = fields.String(required=True, allow_none=True)
    child_certificate_id = fields.String(required=True, allow_none=True)
    child_balance_cents = fields.Integer(required=True, allow_none=True)
    attempts = fields.Integer(required=True)
    error = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True, allow_none=True)
    redeemed_at = fields.String(required=True, allow_none=True)


class LedgerPageSchema(_PageSchema):
    range = fields.Nested(RangeSchema, required=True, allow_none=True,
                          metadata={"description": "null when no range was asked for (the whole ledger)"})
    items = fields.List(fields.Nested(LedgerRowSchema), required=True)


class JobAttemptSchema(Schema):
    attempt = fields.Integer(required=True)
    worker = fields.String(required=True, allow_none=True)
    outcome = fields.String(required=True, allow_none=True)
    started_at = fields.String(required=True, allow_none=True)
    finished_at = fields.String(required=True, allow_none=True)
    error = fields.String(required=True, allow_none=True)


class JobSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(JOB_STATES))
    attempts = fields.Integer(required=True)
    failures = fields.Integer(required=True)
    max_attempts = fields.Integer(required=True)
    run_at = fields.String(required=True, allow_none=True)
    created_at = fields.String(required=True, allow_none=True)
    updated_at = fields.String(required=True, allow_none=True)
    finished_at = fields.String(required=True, allow_none=True)
    last_error = fields.String(required=True, allow_none=True)
    parked_reason = fields.String(required=True, allow_none=True)
    shop_order_id = fields.String(allow_none=True, metadata={"description": "Not in an order's own timeline"})
    periodic = fields.Boolean(required=True,
                              metadata={"description": "a periodic housekeeping run, not an order's effect"})
    retried_by = fields.String(required=True, allow_none=True,
                               metadata={"description": "Who last retried it by hand"})
    retried_at = fields.String(required=True, allow_none=True)
    attempt_log = fields.List(fields.Nested(JobAttemptSchema),
                              metadata={"description": "Every attempt (in listings and timelines)"})


class JobsPageSchema(_PageSchema):
    items = fields.List(fields.Nested(JobSchema), required=True)


class ReportSchema(Schema):
    range = fields.Nested(RangeSchema, required=True)
    generated_at = fields.String(required=True)
    currency = fields.String(required=True)
    days = fields.List(fields.Dict(), required=True,
                       metadata={"description": "One entry a UTC day: `date` and the same sections as `overall`"})
    overall = fields.Dict(required=True, metadata={"description": "Sections (orders, gift_cards, open_holds, "
                                                                  "thank_you_cards, membership_cards, jobs) of "
                                                                  "figures"})
    open_holds_now = fields.Dict(required=True)


class ComparisonSchema(Schema):
    range = fields.Nested(RangeSchema, required=True)
    instagift_redemptions_read = fields.Integer(required=True)
    summary = fields.Dict(keys=fields.String(), values=fields.Integer(), required=True)
    matched = fields.List(fields.Dict(), required=True)
    amount_mismatches = fields.List(fields.Dict(), required=True)
    unknown_here = fields.List(fields.Dict(), required=True)
    missing_at_instagift = fields.List(fields.Dict(), required=True)
    unsettled_here = fields.List(fields.Dict(), required=True)


class OrderRowSchema(Schema):
    """One order in the list: amounts in cents, times in UTC, gift cards masked."""

    id = fields.String(required=True, metadata={"description": "The shop's order id"})
    number = fields.String(required=True, allow_none=True)
    state = fields.String(required=True, validate=validate.OneOf(ORDER_STATES))
    currency = fields.String(required=True)
    total_cents = fields.Integer(required=True)
    gift_card_cents = fields.Integer(required=True)
    placed_at = fields.String(required=True, allow_none=True)
    completed_at = fields.String(required=True, allow_none=True)
    cancelled_at = fields.String(required=True, allow_none=True)
    received_at = fields.String(required=True, metadata={"description": "When the service first heard of it"})
    gift_cards = fields.List(fields.String(), required=True,
                             metadata={"description": "The claim codes redeemed for it, masked (••••R2NT)"})
    open_attention = fields.Integer(required=True, metadata={"description": "Attention items still open"})
    resolved_attention = fields.Integer(required=True)


class OrdersPageSchema(_PageSchema):
    items = fields.List(fields.Nested(OrderRowSchema), required=True)


class AttentionItemSchema(Schema):
    """Something on the order that needs a person; resolved by staff (with a note) or by a successful retry."""

    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(ATTENTION_KINDS),
                         metadata={"description": "What needs a person (docs/states.md, Attention items)"})
    message = fields.String(required=True, metadata={"description": "For the merchant's staff: money in dollars, "
                                                                    "gift-card codes masked"})
    created_at = fields.String(required=True)
    job_id = fields.Integer(required=True, allow_none=True,
                            metadata={"description": "The job whose run raised it (none for a webhook)"})
    open = fields.Boolean(required=True, metadata={"description": "true until resolved"})
    resolved_at = fields.String(required=True, allow_none=True)
    resolved_by = fields.String(required=True, allow_none=True,
                                metadata={"description": "A staff name, or 'retry by <name>' when a successful retry "
                                                         "of its job resolved it"})
    resolution_note = fields.String(required=True, allow_none=True)


class ResolveAttentionBody(Schema):
    note = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(max=RESOLUTION_NOTE_MAX_LENGTH),
                         metadata={"description": "What was done, e.g. 'refunded $52.50 by bank transfer'"})


class TimelineEntrySchema(Schema):
    at = fields.String(required=True, metadata={"description": "When it happened (UTC)"})
    type = fields.String(required=True, validate=validate.OneOf(TIMELINE_ENTRY_TYPES))
    summary = fields.String(required=True, metadata={"description": "A sentence for staff: money in dollars, "
                                                                    "gift-card codes masked"})
    ref = fields.Integer(required=True, allow_none=True,
                         metadata={"description": "The id of the row it is about (hold, redemption, job, item, …)"})


class TimelineSchema(Schema):
    order = fields.Dict(required=True)
    attention = fields.List(fields.Nested(AttentionItemSchema), required=True,
                            metadata={"description": "Every attention item, oldest first, open and resolved"})
    events = fields.List(fields.Dict(), required=True)
    holds = fields.List(fields.Dict(), required=True)
    verifies = fields.List(fields.Dict(), required=True)
    redemptions = fields.List(fields.Nested(LedgerRowSchema), required=True)
    thank_you_card = fields.Dict(required=True, allow_none=True)
    membership_cards = fields.List(fields.Dict(), required=True)
    jobs = fields.List(fields.Nested(JobSchema), required=True)
    entries = fields.List(fields.Nested(TimelineEntrySchema), required=True,
                          metadata={"description": "Everything above as one chronological list, oldest first"})


class ProviderCheckSchema(Schema):
    provider = fields.String(required=True, metadata={"description": "instagift, cardly or instantcard"})
    check = fields.String(required=True,
                          metadata={"description": "what was checked, e.g. api key, artwork, template MEMBER-GOLD"})
    ok = fields.Boolean(required=True)
    detail = fields.String(required=True,
                           metadata={"description": "what was found; 'skipped: …' when an earlier failure kept the "
                                                    "check from running. Never contains a secret."})


class ProvidersCheckSchema(Schema):
    ok = fields.Boolean(required=True, metadata={"description": "true only when every check passed"})
    checks = fields.List(fields.Nested(ProviderCheckSchema), required=True)


# -- problems -----------------------------------------------------------------------------------------------


class JobNotRetryableProblemSchema(ProblemSchema):
    code = problem_code("job_not_retryable")
    state = fields.String(validate=validate.OneOf(JOB_STATES),
                          metadata={"description": "The job's state, when that is why (only dead or parked jobs "
                                                   "can be retried)"})
