"""The console's pages (HTML, not in /openapi.json): parse the query or form → a rule → a template.

Every page but the sign-in form needs a staff session (docs/console.md); a visit without one is sent to the
sign-in form, never answered with a JSON 401. Every POST carries the form's CSRF token. Pages send a strict
Content-Security-Policy: styles and scripts only from this site, no frames, forms only to this site.
"""

from __future__ import annotations

import base64
from datetime import date, timedelta

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError

from service.api.ratelimit import limiter
from service.audit.rules import audit_lines, record
from service.console import auth
from service.console.order_page import find_order, order_page
from service.console.overview import LastCheck, overview
from service.db import call_provider, db, utcnow
from service.errors import ProviderError, ServiceError
from service.logs import redact
from service.membership.rules import card_preview
from service.money import format_usd
from service.orders.models import Order
from service.providers.instagift import ClaimCode, parse_claim_code
from service.providers.preflight import check_providers
from service.redemption.models import REDEMPTION_STATES
from service.reports.cards import cards_page
from service.reports.failures import list_jobs
from service.reports.ledger import ledger_csv, ledger_page, ledger_totals
from service.reports.listing import DateRange
from service.reports.order_list import ORDER_STATES, list_orders
from service.reports.reconciliation import compare_with_instagift, reconciliation_report
from service.reports.schemas import LedgerQuery, OrdersQuery
from service.reports.staff_actions import resolve_for_staff, retry_for_staff
from service.thank_you.rules import preview_card

bp = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates", static_folder="static",
               static_url_path="/static")

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'; "
                           "form-action 'self'; base-uri 'none'")
PUBLIC_ENDPOINTS = ("console.login", "console.static")
PER_PAGE = 50


def init_app(app) -> None:
    """Sessions and CSRF for the console, and its blueprint (registered with the app alone, not the Api)."""
    auth.init_sessions(app)
    # Each app keeps its own last providers check (a module-level one would be shared by every app in the process).
    app.extensions["console_last_check"] = LastCheck()
    app.jinja_env.filters["dollars"] = money
    app.register_blueprint(bp)


def money(cents: int | None) -> str:
    """Cents as the pages write them, as the timeline's sentences do: "$52.50", "-$5.00", "$1,234.00" ("" when
    unknown)."""
    return "" if cents is None else format_usd(cents)


# -- every page -----------------------------------------------------------------------------------------------


@bp.before_request
def require_staff_session():
    """Check every form's CSRF token; send a visit without a live staff session to sign-in."""
    if request.method == "POST":
        auth.csrf.protect()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if auth.session_staff() is None:
        expired = auth.had_session()
        auth.sign_out()
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.login", next=target, expired=1 if expired else None))
    return None


@bp.after_request
def page_headers(response: Response) -> Response:
    """The pages' security headers: the CSP, no sniffing, no referrer off-site, no caching."""
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        # Pages show ledgers and customers' orders: no shared or browser cache keeps them.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(CSRFError)
def csrf_refused(exc: CSRFError):
    """A form without a valid CSRF token: refused with a page saying what to do."""
    return render_template("console/error.html", title="The form could not be accepted",
                           message="This form expired or did not come from this console. Go back, reload the "
                                   "page and try again."), 400


@bp.errorhandler(ServiceError)
def service_error(exc: ServiceError):
    """A rule's refusal (404, 409, a provider's failure) as a page, with the rule's own words."""
    return render_template("console/error.html", title=exc.title, message=exc.detail or exc.title), exc.status


@bp.errorhandler(429)
def too_many(exc):
    """Too many sign-in attempts: the form again, saying to wait."""
    return render_template("console/login.html", error="Too many sign-in attempts from this address; wait a "
                           "minute and try again.", next=None), 429


@bp.context_processor
def console_context():
    """What every console template may use: the signed-in name."""
    return {"staff": g.get("staff")}


# -- sign-in ----------------------------------------------------------------------------------------------------


def _login_limit() -> str:
    """ADMIN_LOGIN_RATE_LIMIT (read when a sign-in is attempted)."""
    return current_app.extensions["settings"].admin_login_rate_limit


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """The sign-in form (GET) and the exchange of an admin token for a session (POST)."""
    next_page = auth.safe_next(request.values.get("next"))
    if request.method == "GET":
        if auth.session_staff() is not None:
            return redirect(next_page or url_for("console.overview_page"))
        notice = "Your session has ended; sign in again." if request.args.get("expired") else None
        return render_template("console/login.html", next=next_page, notice=notice)
    name = auth.sign_in(request.form.get("token", ""))
    if name is None:
        record(db.session, "sign_in_failed", staff=None, address=request.remote_addr or "unknown",
               detail="the token given belongs to no one")
        db.session.commit()
        return render_template("console/login.html", next=next_page,
                               error="That token is not valid. Check it and try again."), 401
    record(db.session, "sign_in", staff=name, address=request.remote_addr or "unknown")
    db.session.commit()
    return redirect(next_page or url_for("console.overview_page"))


@bp.post("/logout")
def logout():
    """End the session (audited)."""
    record(db.session, "sign_out", staff=g.staff, address=request.remote_addr or "unknown")
    db.session.commit()
    auth.sign_out()
    return redirect(url_for("console.login", signed_out=1))


# -- overview ---------------------------------------------------------------------------------------------------


@bp.get("/")
def overview_page():
    """Today's and the last 30 days' gift-card figures, the chart, what needs a person, the last check."""
    return render_template("console/overview.html", data=overview(db.session, utcnow()),
                           check=current_app.extensions["console_last_check"].get())


@bp.post("/providers/check")
def run_providers_check():
    """Run the providers check now and show it on the overview."""
    report = call_provider(db.session, check_providers, current_app.extensions["settings"])
    current_app.extensions["console_last_check"].put(report, utcnow())
    return redirect(url_for("console.overview_page") + "#providers")


# -- ledger -----------------------------------------------------------------------------------------------------


def _ledger_query():
    """The ledger's filters from the query string (the API's own schema); the last 30 days by default."""
    args = {k: v for k, v in request.args.items() if k in ("from", "to", "state", "page") and v}
    query = LedgerQuery().load(args)
    if query["range"] is None:
        today = utcnow().date()
        query["range"] = DateRange.for_days(today - timedelta(days=29), today)
    return query


@bp.get("/ledger")
def ledger():
    """The ledger for a date range and state, with the totals of every matching row."""
    try:
        query = _ledger_query()
    except ValidationError as exc:
        return render_template("console/ledger.html", errors=exc.messages, query=None, page=None, totals=None,
                               states=REDEMPTION_STATES, args=request.args), 400
    page = ledger_page(db.session, query["range"], state=query["state"], page=query["page"], per_page=PER_PAGE)
    totals = ledger_totals(db.session, query["range"], state=query["state"])
    return render_template("console/ledger.html", errors=None, query=query, page=page, totals=totals,
                           states=REDEMPTION_STATES, args=request.args)


@bp.get("/ledger.csv")
def ledger_download():
    """The ledger's CSV for the same filters (the API's export)."""
    try:
        query = _ledger_query()
    except ValidationError as exc:
        return render_template("console/error.html", title="The filters are invalid",
                               message="; ".join(f"{k}: {' '.join(v)}" for k, v in exc.messages.items())), 400
    lines, filename = ledger_csv(db.session, query["range"], state=query["state"])
    return Response(stream_with_context(lines), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


# -- reconciliation ---------------------------------------------------------------------------------------------


@bp.get("/reconciliation")
def reconciliation():
    """One UTC day: the comparison with Instagift (mismatches first) and the day's totals."""
    raw = request.args.get("date") or (utcnow().date()).isoformat()
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return render_template("console/error.html", title="The date is invalid",
                               message="Give the day as YYYY-MM-DD, for example 2026-12-01."), 400
    window = DateRange.for_day(day)
    report = reconciliation_report(db.session, window, now=utcnow())
    comparison, comparison_error = None, None
    try:
        client = current_app.extensions["providers"].instagift
        comparison = compare_with_instagift(db.session, client.iter_redemptions(), window)
    except ProviderError as exc:
        comparison_error = redact(str(exc))
    return render_template("console/reconciliation.html", day=day, totals=report["overall"],
                           comparison=comparison, comparison_error=comparison_error,
                           previous=day - timedelta(days=1), next_day=day + timedelta(days=1))


# -- failures ---------------------------------------------------------------------------------------------------


@bp.get("/failures")
def failures():
    """Dead and parked jobs, each with a Retry button."""
    dead = list_jobs(db.session, state="dead", per_page=200)
    parked = list_jobs(db.session, state="parked", per_page=200)
    return render_template("console/failures.html", dead=dead, parked=parked)


@bp.post("/jobs/<id:job_id>/retry")
def retry_job(job_id: int):
    """A person's retry of a dead or parked job (audited); the outcome is shown on the next page."""
    try:
        job = retry_for_staff(db.session, job_id, staff=g.staff, address=request.remote_addr or "unknown", via="console")
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.detail or exc.title, "error")
    else:
        flash(f"Job {job.id} ({job.kind}) is queued again; a worker runs it within moments.", "success")
    return redirect(auth.safe_next(request.form.get("next")) or url_for("console.failures"))


# -- orders and cards ---------------------------------------------------------------------------------------------


def _page_number() -> int:
    try:
        return max(1, int(request.args.get("page", "1")))
    except ValueError:
        return 1


@bp.get("/orders")
def orders():
    """The orders list: newest first, searched by order id or a code's last 4, filtered."""
    args = {k: v for k, v in request.args.items() if k in ("q", "state", "attention", "page") and v.strip()}
    whole_code = _whole_claim_code(args.get("q", ""))
    if whole_code is not None:
        # A whole claim code pasted into the search must not stay in the address bar, the history or the page:
        # the search goes on by its last 4, which is all the service keeps of a code anyway.
        return redirect(url_for(".orders", **{**args, "q": whole_code.last4}), 303)
    try:
        query = OrdersQuery().load(args)
    except ValidationError as exc:
        return render_template("console/orders.html", errors=exc.messages, page=None, args=request.args,
                               states=ORDER_STATES), 400
    page = list_orders(db.session, q=query["q"], state=query["state"], attention=query["attention"],
                       page=query["page"], per_page=PER_PAGE)
    return render_template("console/orders.html", errors=None, page=page, args=request.args, states=ORDER_STATES)


# Instagift prints codes of 13 to 15 letters and digits ("MNK-QPF27E-EHJ3"); the sandbox's demo codes have 12. A
# search this long that is no order's id is taken for a code (a prefix of a long order id searches by last 4).
WHOLE_CODE_LENGTH = 12


def _whole_claim_code(q: str) -> ClaimCode | None:
    """The claim code `q` is when it is a whole one (12 letters and digits or more) and no order has it as id."""
    code = parse_claim_code(q)
    if code is None or len(code.canonical) < WHOLE_CODE_LENGTH:
        return None
    if db.session.scalar(sa.select(Order.id).where(Order.shop_order_id == q.strip())) is not None:
        return None
    return code


@bp.get("/orders/<shop_order_id>")
def order(shop_order_id: str):
    """One order: attention items, gift cards, the timeline, cards and staff actions."""
    return render_template("console/order.html", data=order_page(db.session, shop_order_id))


@bp.post("/orders/<shop_order_id>/attention/<id:item_id>/resolve")
def resolve(shop_order_id: str, item_id: int):
    """Mark one attention item resolved with an optional note (audited)."""
    note = request.form.get("note", "")
    try:
        item = resolve_for_staff(db.session, shop_order_id, item_id, staff=g.staff, address=request.remote_addr or "unknown",
                                 note=note, via="console")
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.detail or exc.title, "error")
    else:
        flash(f"Marked resolved: {item.message}", "success")
    return redirect(url_for("console.order", shop_order_id=shop_order_id) + "#attention")


@bp.get("/cards")
def cards():
    """Every order's thank-you card and membership cards, newest order first."""
    return render_template("console/cards.html", page=cards_page(db.session, page=_page_number(), per_page=PER_PAGE))


@bp.get("/orders/<shop_order_id>/thank-you-card/preview")
def thank_you_preview(shop_order_id: str):
    """Cardly's preview of this order's thank-you card (made on demand)."""
    found = find_order(db.session, shop_order_id)
    order_data, today = dict(found.payload), utcnow().date()
    db.session.commit()  # no transaction open across Cardly's call
    settings = current_app.extensions["settings"]
    preview = preview_card(order_data, settings, current_app.extensions["providers"].cardly, today)
    return render_template("console/thank_you_preview.html", order_id=shop_order_id, preview=preview)


@bp.get("/membership-cards/<id:card_id>/preview")
def membership_preview(card_id: int):
    """InstantCard's front and back images of one membership card."""
    preview = card_preview(db.session, current_app.extensions["providers"].instantcard, card_id)
    images = {side: (url_for("console.membership_image", card_id=card_id, side=side)
                     if preview[side].startswith("data:") else preview[side]) for side in ("front", "back")}
    return render_template("console/membership_preview.html", card=preview, images=images)


@bp.get("/membership-cards/<id:card_id>/<any(front, back):side>.png")
def membership_image(card_id: int, side: str):
    """InstantCard's rendered side as an image from this site (the page's CSP allows no data: images)."""
    preview = card_preview(db.session, current_app.extensions["providers"].instantcard, card_id)
    header, _, encoded = preview[side].partition(",")
    if not header.startswith("data:image/") or ";base64" not in header:
        return redirect(preview[side])
    return Response(base64.b64decode(encoded), mimetype=header[5:].split(";")[0])


# -- audit ------------------------------------------------------------------------------------------------------


@bp.get("/audit")
def audit():
    """The audit trail, newest first."""
    page = _page_number()
    lines, total = audit_lines(db.session, page=page, per_page=PER_PAGE)
    return render_template("console/audit.html", lines=lines, total=total, page=page, per_page=PER_PAGE)
