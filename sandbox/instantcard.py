"""Sandbox InstantCard v2, following InstantCard's API v2 documentation and its known gaps.

Bearer tokens from `POST /authenticate` (JWT-shaped, with an `exp` claim) that expire; cards drafted then
finalized (only finalized cards can join a print job: 422 otherwise; a second finalize is refused with 400 unless
`repeat_finalize_accepted`); print jobs taking only the documented parameters in the documented form (one
`print_job[card_ids]` field as "[264561]" or "[264561,264562]", Create's as form-data, Update's as URL parameters;
anything else is refused with 400), a PATCH resetting the shipping provider to null, as the doc warns; check
balance; charge details of submitted print jobs only (400 before the submit, the doc's order); submit refused when the balance is short; the organization balance as "$5.50" / "($5.50)". Seeded with
shipping provider 1 and card template 101.

Answers carry only what InstantCard's document and the public references describe: a card is `id`,
`card_template_id`, `organization_id`, `data`, `images`, `last_printed_at`, `last_submitted_at` (no draft or
finalized state); a print job is `id`, `address_id`, `address`, `status`, `created_at` (no card ids). What the
sandbox knows besides (a card's state, a print job's cards, shipping provider, copies, submit time) stays in its
state, for tests and the controls.

Controls for tests and the demo, on the state object and over HTTP under `/_control/…`:
set_balance, add_funds, expire_tokens, expire_tokens_before(step), token_lifetime,
inject_fault(step, mode, times), counts (state); on the state object only, `hold(step, act=...)`.
Fault modes: "error_500" (answer 500 without acting), "apply_then_500" (act, then answer 500),
"timeout" (act, then answer only after `timeout_delay_seconds`, longer than a test client waits), "refuse_400"
(answer 400 "Bad Request" without acting).
A held call (`hold`) acts (or not), signals that it arrived, and answers only when the test releases it: a
test orders "the call is in flight" against its own steps with events, not sleeps.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, make_response, request

from sandbox.documented import undocumented

SANDBOX_EMAIL = "sandbox@example.com"
SANDBOX_PASSWORD = "sandbox-password"
ORGANIZATION_ID = "1"
CARD_PRICE_CENTS = 250
SHIPPING_PROVIDERS = {1: {"id": 1, "name": "USPS First Class", "cost_cents": 100},
                      2: {"id": 2, "name": "UPS Ground", "cost_cents": 900}}
TEMPLATES = {101: {"id": 101, "name": "Gold membership",
                   "fields": ["Name", "Member Number", "Expires", "Email", "Order"]},
             102: {"id": 102, "name": "Silver membership", "fields": ["Name", "Member Number", "Expires"]}}
FAULT_MODES = ("error_500", "apply_then_500", "timeout", "refuse_400")
HOLD_LIMIT_SECONDS = 30  # a held call answers by itself after this long, so a failing test cannot hang the sandbox
# A 1x1 PNG stands in for InstantCard's rendered card images.
_PIXEL = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000" "1f15c4890000000d49444154789c6360000002000100"
    "05fe02fea7d5c5900000000049454e44ae426082")).decode()


def _now() -> datetime:
    return datetime.now(UTC)


def format_money(cents: int) -> str:
    """Cents in InstantCard's balance notation: 550 → "$5.50", -550 → "($5.50)"."""
    dollars, rest = divmod(abs(cents), 100)
    text = f"${dollars:,}.{rest:02d}"
    return f"({text})" if cents < 0 else text


class Hold:
    """One held call of a step: `reached` is set once the call has arrived (after InstantCard acted, when `act`);
    the answer waits until the test sets `release` (a call that did not act then answers 504)."""

    def __init__(self, step: str, act: bool) -> None:
        self.step, self.act = step, act
        self.reached, self.release = threading.Event(), threading.Event()


class InstantCardSandboxState:
    """In-memory InstantCard: one organization, its cards, print jobs, balance, tokens and faults."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget everything and reseed the demo data (a call still held from an earlier test is let go)."""
        with self.lock:
            for held in (h for holds in getattr(self, "holds", {}).values() for h in holds):
                held.release.set()
            self.holds: dict[str, list[Hold]] = {}
            self.tokens: dict[str, float] = {}  # token → expiry (epoch seconds)
            self.token_lifetime_seconds = 3600
            self.balance_cents = 100_00
            self.cards: dict[int, dict[str, Any]] = {}
            self.print_jobs: dict[int, dict[str, Any]] = {}
            self.next_card_id = 264561
            self.next_print_job_id = 7001
            self.faults: dict[str, list[str]] = {}
            self.timeout_delay_seconds = 1.0
            self.calls: dict[str, int] = {}
            self.auth_count = 0
            self.expire_before: set[str] = set()
            # InstantCard's document does not say what a second finalize of a card answers: refused by default
            # (the stricter reading), accepted when a test says so.
            self.repeat_finalize_accepted = False

    # controls -------------------------------------------------------------------------------------------
    def set_balance(self, cents: int) -> None:
        with self.lock:
            self.balance_cents = int(cents)

    def add_funds(self, cents: int) -> None:
        with self.lock:
            self.balance_cents += int(cents)

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (401)."""
        with self.lock:
            self.tokens.clear()

    def expire_tokens_before(self, step: str) -> None:
        """Expire every token just before the next call of `step` (a token dying mid-flow)."""
        with self.lock:
            self.expire_before.add(step)

    def set_token_lifetime(self, seconds: int) -> None:
        with self.lock:
            self.token_lifetime_seconds = int(seconds)

    def inject_fault(self, step: str, mode: str, times: int = 1) -> None:
        """Make the next `times` calls of `step` (e.g. "create_card") fail in `mode`."""
        if mode not in FAULT_MODES:
            raise ValueError(f"mode must be one of {FAULT_MODES}")
        with self.lock:
            self.faults.setdefault(step, []).extend([mode] * int(times))

    def hold(self, step: str, *, act: bool = True) -> Hold:
        """Hold the next call of `step`: InstantCard acts on it (unless `act` is False) and answers on release."""
        held = Hold(step, act)
        with self.lock:
            self.holds.setdefault(step, []).append(held)
        return held

    def take_hold(self, step: str) -> Hold | None:
        with self.lock:
            queue = self.holds.get(step)
            return queue.pop(0) if queue else None

    def take_fault(self, step: str) -> str | None:
        with self.lock:
            self.calls[step] = self.calls.get(step, 0) + 1
            queue = self.faults.get(step)
            return queue.pop(0) if queue else None

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {"cards": len(self.cards), "print_jobs": len(self.print_jobs),
                    "submitted_print_jobs": sum(1 for j in self.print_jobs.values() if j["status"] == 1),
                    "balance_cents": self.balance_cents, "authentications": self.auth_count}

    # tokens ---------------------------------------------------------------------------------------------
    def issue_token(self) -> tuple[str, int]:
        with self.lock:
            exp = int(time.time()) + self.token_lifetime_seconds
            header = base64.urlsafe_b64encode(b'{"typ":"JWT","alg":"HS256"}').rstrip(b"=").decode()
            claims = base64.urlsafe_b64encode(json.dumps({"user_id": 13420, "exp": exp}).encode()).rstrip(b"=").decode()
            token = f"{header}.{claims}.{secrets.token_urlsafe(24)}"
            self.tokens[token] = exp
            self.auth_count += 1
            return token, exp

    def token_valid(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        with self.lock:
            exp = self.tokens.get(token.strip())
            return scheme.lower() == "bearer" and exp is not None and exp > time.time()

    # rendering ------------------------------------------------------------------------------------------
    def card_json(self, card: dict[str, Any], *, images: bool = False) -> dict[str, Any]:
        """A card as InstantCard describes it: no draft/finalized state (kept in `card["status"]`)."""
        return {"id": card["id"], "card_template_id": card["card_template_id"], "organization_id": int(ORGANIZATION_ID),
                "data": [{"name": k, "value": v} for k, v in card["data"].items()],
                "images": [_PIXEL if images else "image"],
                "last_printed_at": card.get("last_printed_at"), "last_submitted_at": card.get("last_submitted_at")}

    def job_cost(self, job: dict[str, Any]) -> tuple[int, int]:
        shipping = SHIPPING_PROVIDERS.get(job.get("shipping_provider_id") or 0, {}).get("cost_cents", 0)
        return CARD_PRICE_CENTS * len(job["card_ids"]) * job["number_of_copies"], shipping

    def job_json(self, job: dict[str, Any]) -> dict[str, Any]:
        """A print job as InstantCard describes it: no card ids (kept in `job["card_ids"]`)."""
        return {"id": job["id"], "address_id": None, "address": job["address"], "status": job["status"],
                "created_at": job["created_at"]}


def _error(status: int, message: str):
    return jsonify(error=message), status


CARD_IDS = "print_job[card_ids]"
# InstantCard API v2, Print Jobs › Create a Print Job, NOTEs: the ids in brackets, "[264561]" even for one card.
_CARD_IDS_FORM = re.compile(r"\[\d+(?:,\d+)*\]")


def _card_ids(source) -> tuple[list[str] | None, str | None]:
    """`print_job[card_ids]` exactly as the document gives it: ([ids], None), ([], None) when absent, or
    (None, why) for any other form (repeated or `[]`-suffixed keys, quoted or spaced ids, a bare id)."""
    if any(key.startswith(CARD_IDS + "[") for key in source):
        return None, f"{CARD_IDS} must be one field holding the card ids in brackets, e.g. [264561]"
    values = source.getlist(CARD_IDS)
    if not values:
        return [], None
    if len(values) > 1 or not _CARD_IDS_FORM.fullmatch(values[0]):
        return None, f"{CARD_IDS} must be one field holding the card ids in brackets, e.g. [264561]"
    return values[0][1:-1].split(","), None


_ADDRESS_KEYS = {"full_name": "print_job[address][contact][full_name]",
                 "organization_name": "print_job[address][organization_name]",
                 "address_1": "print_job[address][address_1]", "address_2": "print_job[address][address_2]",
                 "city": "print_job[address][city]", "state": "print_job[address][state]",
                 "zip_code": "print_job[address][zip_code]", "country": "print_job[address][country]"}
# The parameters Create / Update a Print Job document (Add Card(s) takes only the card ids).
PRINT_JOB_KEYS = frozenset({"print_job[address_id]", "print_job[shipping_provider_id]",
                            "print_job[number_of_copies]", CARD_IDS, *_ADDRESS_KEYS.values()})


class PrintJobFields:
    """A print job request's documented parameters, read from the form (POST) or the URL (PATCH)."""

    def __init__(self, source, allowed: frozenset[str] = PRINT_JOB_KEYS) -> None:
        self.problem: str | None = None
        unknown = undocumented(source, allowed)
        if unknown:
            self.problem = f"undocumented parameter {unknown[0]}"
        self.card_ids, why = _card_ids(source)
        self.problem = self.problem or why
        self.address = {k: source.get(v) for k, v in _ADDRESS_KEYS.items() if source.get(v) is not None} or None
        self.shipping_provider_id = self._integer(source, "print_job[shipping_provider_id]")
        self.number_of_copies = self._integer(source, "print_job[number_of_copies]")
        if self.shipping_provider_id is not None and self.shipping_provider_id not in SHIPPING_PROVIDERS:
            self.problem = self.problem or "unknown shipping provider"

    def _integer(self, source, key: str) -> int | None:
        raw = source.get(key)
        if raw is None:
            return None
        if not raw.isdigit() or int(raw) < 1:
            self.problem = self.problem or f"{key} must be an integer"
            return None
        return int(raw)


blueprint = Blueprint("sandbox_instantcard", __name__)


def _state() -> InstantCardSandboxState:
    """The sandbox InstantCard of the app serving this request (`create_sandbox_app` puts it there)."""
    return current_app.extensions["sandbox"]["instantcard"]


def _with_faults(step: str, action: Callable[[], Any]):
    """Run `action` (under the state lock) with any fault or hold injected for `step`."""
    state = _state()
    mode = state.take_fault(step)
    held = state.take_hold(step)
    if held is not None:
        return _answer_when_released(state, held, action)
    if mode == "error_500":
        return _error(500, "Internal Server Error")
    if mode == "refuse_400":
        return _error(400, "Bad Request")
    with state.lock:
        result = action()
    if mode == "apply_then_500":
        return _error(500, "Internal Server Error")
    if mode == "timeout":
        time.sleep(state.timeout_delay_seconds)  # the provider acted but answers too late
        return _error(504, "Gateway Timeout")
    return result


def _answer_when_released(state: InstantCardSandboxState, held: Hold, action: Callable[[], Any]):
    """Act (unless the hold says not to), signal that the call arrived, answer once the test releases it."""
    result = None
    try:
        if held.act:
            with state.lock:
                result = action()
    finally:
        held.reached.set()
    held.release.wait(HOLD_LIMIT_SECONDS)
    return result if held.act else _error(504, "Gateway Timeout")


@blueprint.before_request
def authenticate_request():
    """Every route but login and the controls wants a live bearer token and the sandbox's organization."""
    if request.endpoint and (request.endpoint.endswith(".authenticate") or "._control" in request.endpoint):
        return None
    state = _state()
    step = (request.endpoint or "").rsplit(".", 1)[-1]  # a step is named by its view function
    with state.lock:
        if step in state.expire_before:
            state.expire_before.discard(step)
            state.expire_tokens()
    if not state.token_valid(request.headers.get("Authorization", "")):
        return _error(401, "Unauthorized")
    org = (request.view_args or {}).get("org")
    if org is not None and org != ORGANIZATION_ID:
        return _error(404, "Organization not found")
    return None


@blueprint.post("/authenticate")
def authenticate():
    """Log in with email and password (form, JSON or query) → a JWT-shaped token with `exp`."""
    state = _state()
    body = request.get_json(silent=True) if request.is_json else None
    source = body if isinstance(body, dict) else {}
    email = request.form.get("email") or request.args.get("email") or source.get("email")
    password = request.form.get("password") or request.args.get("password") or source.get("password")

    def act():
        if email != SANDBOX_EMAIL or password != SANDBOX_PASSWORD:
            return _error(401, "Invalid email or password")
        token, exp = state.issue_token()
        return jsonify(token=token, exp=exp)

    return _with_faults("authenticate", act)


@blueprint.get("/profile/me")
def profile():
    """The logged-in user."""
    return jsonify(id=13420, email=SANDBOX_EMAIL, organization_id=int(ORGANIZATION_ID))


# cards ----------------------------------------------------------------------------------------------------


def _card_data(template_id: int) -> tuple[dict[str, str] | None, str | None]:
    """`card[data]` (a JSON array of {name, value}) checked against the template: (data, None) or (None, why)."""
    raw = request.form.get("card[data]")
    try:
        items = json.loads(raw) if raw else None
    except ValueError:
        items = None
    if not isinstance(items, list):
        return None, "card[data] must be a JSON array"
    data = {}
    for item in items:
        if not isinstance(item, dict) or "name" not in item:
            return None, "each card[data] item needs a name and a value"
        if item["name"] not in TEMPLATES[template_id]["fields"]:
            return None, f"template {template_id} has no field {item['name']!r}"
        data[item["name"]] = "" if item.get("value") is None else str(item["value"])
    return data, None


@blueprint.post("/organizations/<org>/cards")
def create_card(org: str):
    """Create a draft card from a template and its field values."""
    state = _state()
    try:
        template_id = int(request.form.get("card[card_template_id]", ""))
    except ValueError:
        return _error(400, "card[card_template_id] is required")
    if template_id not in TEMPLATES:
        return _error(400, f"card template {template_id} does not exist")
    data, problem = _card_data(template_id)
    if problem:
        return _error(400, problem)

    def act():
        card = {"id": state.next_card_id, "card_template_id": template_id, "data": data, "status": "draft"}
        state.next_card_id += 1
        state.cards[card["id"]] = card
        return jsonify(state.card_json(card)), 201

    return _with_faults("create_card", act)


@blueprint.get("/organizations/<org>/cards")
def list_cards(org: str):
    """Every card of the organization."""
    state = _state()
    with state.lock:
        return jsonify([state.card_json(c) for c in state.cards.values()])


@blueprint.get("/organizations/<org>/cards/search")
def search_cards(org: str):
    """Cards with any field value containing `term` (case-insensitive)."""
    state = _state()
    term = (request.args.get("term") or "").strip().lower()
    if not term:
        return _error(400, "term is required")

    page, page_size = _page_arguments()
    if page is None:
        return _error(400, "page and page_size must be whole numbers from 1")

    def act():
        found = [state.card_json(c) for c in state.cards.values()
                 if any(term in str(v).lower() for v in c["data"].values())]
        return jsonify(found[(page - 1) * page_size: page * page_size])

    return _with_faults("search_cards", act)


@blueprint.get("/organizations/<org>/cards/<int:card_id>")
def fetch_card(org: str, card_id: int):
    """One card (404 when unknown)."""
    state = _state()
    with state.lock:
        card = state.cards.get(card_id)
        return jsonify(state.card_json(card)) if card else _error(404, "Card not found")


@blueprint.patch("/organizations/<org>/cards/<int:card_id>")
def update_card(org: str, card_id: int):
    """Change some of a card's field values."""
    state = _state()
    with state.lock:
        card = state.cards.get(card_id)
        if not card:
            return _error(404, "Card not found")
        data, problem = _card_data(card["card_template_id"])
        if problem:
            return _error(400, problem)
        card["data"].update(data)
        return jsonify(state.card_json(card))


@blueprint.delete("/organizations/<org>/cards/<int:card_id>")
def delete_card(org: str, card_id: int):
    """Delete a card."""
    state = _state()
    with state.lock:
        if state.cards.pop(card_id, None) is None:
            return _error(404, "Card not found")
        return jsonify(success=True)


@blueprint.get("/organizations/<org>/cards/<int:card_id>/preview")
def preview_card(org: str, card_id: int):
    """The card's front and back images as base64 strings."""
    state = _state()
    with state.lock:
        if not state.cards.get(card_id):
            return _error(404, "Card not found")
    return _with_faults("preview_card", lambda: jsonify(front=_PIXEL, back=_PIXEL))


@blueprint.patch("/organizations/<org>/cards/<int:card_id>/finalize")
def finalize_card(org: str, card_id: int):
    """Finalize a card: only finalized cards can join a print job."""
    state = _state()

    def act():
        card = state.cards.get(card_id)
        if not card:
            return _error(404, "Card not found")
        if card["status"] == "finalized" and not state.repeat_finalize_accepted:
            return _error(400, "Card has already been finalized")
        card["status"] = "finalized"
        return jsonify(state.card_json(card))

    return _with_faults("finalize_card", act)


# print jobs -----------------------------------------------------------------------------------------------


def _finalized_cards(state: InstantCardSandboxState, card_ids: list[str]):
    """(the cards' ids, None), or (None, the 404/422 answer) when one is unknown or not finalized."""
    ids = []
    for raw in card_ids:
        try:
            card = state.cards.get(int(raw))
        except ValueError:
            card = None
        if card is None:
            return None, _error(404, f"Card {raw} not found")
        if card["status"] != "finalized":
            return None, _error(422, f"Card {raw} is not finalized; only finalized cards can be printed")
        ids.append(card["id"])
    return ids, None


SEARCH_MAX_PAGE_SIZE = 25  # the sandbox's own cap (the document gives none): a client asking for more gets fewer


def _page_arguments() -> tuple[int | None, int]:
    """(page, page_size) from the query (defaults 1 and 25, page_size capped); (None, 0) when not whole numbers."""
    page, size = request.args.get("page", "1"), request.args.get("page_size", str(SEARCH_MAX_PAGE_SIZE))
    if not (page.isdigit() and size.isdigit() and int(page) >= 1 and int(size) >= 1):
        return None, 0
    return int(page), min(int(size), SEARCH_MAX_PAGE_SIZE)


def _print_job_or_abort(state: InstantCardSandboxState, job_id: int, *, unsubmitted: bool = False) -> dict:
    """The print job, or the documented 404 (and 400 for a submitted job when `unsubmitted`)."""
    job = state.print_jobs.get(job_id)
    if not job:
        abort(make_response(*_error(404, "Print job not found")))
    if unsubmitted and job["status"] == 1:
        abort(make_response(*_error(400, "Print job was already submitted")))
    return job


@blueprint.post("/organizations/<org>/print_jobs")
def create_print_job(org: str):
    """Create a print job of finalized cards, with a one-off address and a shipping provider (form-data)."""
    state = _state()
    fields = PrintJobFields(request.form)
    if fields.problem:
        return _error(400, fields.problem)

    def act():
        ids, problem = _finalized_cards(state, fields.card_ids)
        if problem:
            return problem
        job = {"id": state.next_print_job_id, "card_ids": ids, "address": fields.address,
               "shipping_provider_id": fields.shipping_provider_id, "status": 0, "created_at": _now().isoformat(),
               "number_of_copies": fields.number_of_copies or 1}
        state.next_print_job_id += 1
        state.print_jobs[job["id"]] = job
        return jsonify(state.job_json(job)), 201

    return _with_faults("create_print_job", act)


@blueprint.get("/organizations/<org>/print_jobs")
def list_print_jobs(org: str):
    """The organization's print jobs, filtered by `status` (0 created, 1 submitted)."""
    state = _state()
    status = request.args.get("status")

    def act():
        jobs = [state.job_json(j) for j in state.print_jobs.values()
                if status in (None, "") or str(j["status"]) == status]
        return jsonify(jobs)

    return _with_faults("list_print_jobs", act)


@blueprint.get("/organizations/<org>/print_jobs/<int:job_id>")
def fetch_print_job(org: str, job_id: int):
    """One print job."""
    state = _state()

    def act():
        return jsonify(state.job_json(_print_job_or_abort(state, job_id)))

    return _with_faults("fetch_print_job", act)


@blueprint.patch("/organizations/<org>/print_jobs/<int:job_id>")
def update_print_job(org: str, job_id: int):
    """Change a print job; its parameters are URL parameters (Update a Print Job's table says so), and, as
    documented, a PATCH without a shipping provider resets it to null."""
    state = _state()
    if request.form:
        return _error(400, "Update a Print Job takes its parameters in the URL, not in the body")
    fields = PrintJobFields(request.args)
    if fields.problem:
        return _error(400, fields.problem)
    with state.lock:
        job = _print_job_or_abort(state, job_id, unsubmitted=True)
        ids, problem = _finalized_cards(state, fields.card_ids)
        if problem:
            return problem
        job["card_ids"].extend(i for i in ids if i not in job["card_ids"])
        job["address"] = fields.address or job["address"]
        job["number_of_copies"] = fields.number_of_copies or job["number_of_copies"]
        job["shipping_provider_id"] = fields.shipping_provider_id  # as documented: reset to null when not sent
        return jsonify(state.job_json(job))


@blueprint.post("/organizations/<org>/print_jobs/<int:job_id>/add_cards")
def add_cards(org: str, job_id: int):
    """Add finalized cards to a print job not yet submitted (`print_job[card_ids]`, the only parameter)."""
    state = _state()
    fields = PrintJobFields(request.form, frozenset({CARD_IDS}))
    if not fields.problem and not fields.card_ids:
        fields.problem = f"{CARD_IDS} is required"
    if fields.problem:
        return _error(400, fields.problem)
    card_ids = fields.card_ids

    def act():
        job = _print_job_or_abort(state, job_id, unsubmitted=True)
        ids, problem = _finalized_cards(state, card_ids)
        if problem:
            return problem
        # The document does not say that adding a card already on the job is harmless: here it is then on it
        # twice, and printed twice (the stricter reading).
        job["card_ids"].extend(ids)
        return jsonify(state.job_json(job))

    return _with_faults("add_cards", act)


@blueprint.delete("/organizations/<org>/print_jobs/<int:job_id>/remove_cards/<int:card_id>")
def remove_card(org: str, job_id: int, card_id: int):
    """Take a card off a print job not yet submitted."""
    state = _state()
    with state.lock:
        job = state.print_jobs.get(job_id)
        if not job or card_id not in job["card_ids"]:
            return _error(404, "Not found")
        if job["status"] == 1:
            return _error(400, "Print job was already submitted")
        job["card_ids"].remove(card_id)  # one of it, should it be on the job twice
        return jsonify(state.job_json(job))


@blueprint.get("/organizations/<org>/print_jobs/<int:job_id>/check_balance")
def check_balance(org: str, job_id: int):
    """true when the organization's balance covers the print job."""
    state = _state()

    def act():
        job = _print_job_or_abort(state, job_id)
        return jsonify(sum(state.job_cost(job)) <= state.balance_cents)

    return _with_faults("check_balance", act)


@blueprint.get("/organizations/<org>/print_jobs/<int:job_id>/charge_details")
def charge_details(org: str, job_id: int):
    """What a submitted print job cost (cards and shipping). The document: "fetch charge detail for an already
    submitted print job"; an unsubmitted one is refused with 400 (Check Balance is the call before submitting)."""
    state = _state()

    def act():
        job = _print_job_or_abort(state, job_id)
        if job["status"] != 1:
            return _error(400, "Charge details are available for submitted print jobs only")
        cards_cost, shipping = state.job_cost(job)
        items = [{"card_id": str(c), "quantity": job["number_of_copies"],
                  "cost": format_money(CARD_PRICE_CENTS * job["number_of_copies"])} for c in job["card_ids"]]
        return jsonify(has_balance=cards_cost + shipping <= state.balance_cents, items=items,
                       job_total_cost=format_money(cards_cost + shipping), shipping_cost=format_money(shipping))

    return _with_faults("charge_details", act)


@blueprint.post("/organizations/<org>/print_jobs/<int:job_id>/print")
def submit_print_job(org: str, job_id: int):
    """Submit a print job: refused when it lacks cards, a shipping provider or an address, or funds."""
    state = _state()

    def act():
        job = _print_job_or_abort(state, job_id, unsubmitted=True)
        if not job["card_ids"]:
            return _error(400, "Print job has no cards")
        if job["shipping_provider_id"] is None:
            return _error(400, "Print job has no shipping provider")
        if job["address"] is None:
            return _error(400, "Print job has no address")
        total = sum(state.job_cost(job))
        if total > state.balance_cents:
            return _error(400, f"Insufficient funds: the job costs {format_money(total)}, "
                               f"the balance is {format_money(state.balance_cents)}")
        state.balance_cents -= total
        job["status"], job["submitted_at"] = 1, _now().isoformat()
        for card_id in job["card_ids"]:
            state.cards[card_id]["last_submitted_at"] = job["submitted_at"]
            state.cards[card_id]["last_printed_at"] = job["submitted_at"]  # printed at once, in the sandbox
        return jsonify(state.job_json(job))

    return _with_faults("submit_print_job", act)


# organization ---------------------------------------------------------------------------------------------


@blueprint.get("/organizations/<org>")
def organization(org: str):
    """The organization."""
    state = _state()
    with state.lock:
        return jsonify(id=int(ORGANIZATION_ID), name="Sandbox Organization", cards_count=len(state.cards),
                       card_templates_count=len(TEMPLATES))


@blueprint.get("/organizations/<org>/balance")
def balance(org: str):
    """The organization's balance as "$5.50", or "($5.50)" when negative."""
    state = _state()
    return _with_faults("balance", lambda: jsonify(balance=format_money(state.balance_cents)))


@blueprint.post("/organizations/<org>/add_funds")
def add_funds_route(org: str):
    """Add funds: {"amount_cents"} as form or JSON."""
    state = _state()
    try:
        cents = int(request.form.get("amount_cents") or (request.get_json(silent=True) or {}).get("amount_cents"))
    except (TypeError, ValueError):
        return _error(400, "amount_cents is required")
    state.add_funds(cents)
    return jsonify(balance=format_money(state.balance_cents))


@blueprint.get("/organizations/<org>/shipping_providers")
def shipping_providers(org: str):
    """The shipping providers a print job may use."""
    return jsonify([{"id": p["id"], "name": p["name"], "cost": format_money(p["cost_cents"])}
                    for p in SHIPPING_PROVIDERS.values()])


@blueprint.get("/organizations/<org>/card_templates")
def card_templates(org: str):
    """The organization's card templates."""
    return jsonify([{"id": t["id"], "name": t["name"]} for t in TEMPLATES.values()])


@blueprint.get("/organizations/<org>/card_templates/<int:template_id>/fields")
def card_template_fields(org: str, template_id: int):
    """A template's variable fields (404 for an unknown template)."""
    template = TEMPLATES.get(template_id)
    if not template:
        return _error(404, "Card template not found")
    return jsonify([{"id": i + 1, "name": name, "field_type": "text"} for i, name in enumerate(template["fields"])])


# controls (no token: tests and the demo only; the sandbox never runs in production) -----------------------


def _control_body() -> dict[str, Any]:
    body = request.get_json(silent=True, force=True)
    return body if isinstance(body, dict) else {}


@blueprint.post("/_control/set_balance")
def _control_set_balance():
    """Set the balance: {"cents"} → the counts."""
    state = _state()
    state.set_balance(int(_control_body().get("cents", 0)))
    return jsonify(state.counts())


@blueprint.post("/_control/add_funds")
def _control_add_funds():
    """Add to the balance: {"cents"} → the counts."""
    state = _state()
    state.add_funds(int(_control_body().get("cents", 0)))
    return jsonify(state.counts())


@blueprint.post("/_control/expire_tokens")
def _control_expire_tokens():
    """Refuse every token issued so far."""
    _state().expire_tokens()
    return jsonify(status="expired")


@blueprint.post("/_control/expire_tokens_before")
def _control_expire_tokens_before():
    """Expire every token just before the next call of {"step"}."""
    _state().expire_tokens_before(str(_control_body().get("step")))
    return jsonify(status="ok")


@blueprint.post("/_control/token_lifetime")
def _control_token_lifetime():
    """How long new tokens live: {"seconds"}."""
    _state().set_token_lifetime(int(_control_body().get("seconds", 3600)))
    return jsonify(status="ok")


@blueprint.post("/_control/inject_fault")
def _control_inject_fault():
    """Make the next calls of a step fail: {"step", "mode", "times"?}."""
    body = _control_body()
    try:
        _state().inject_fault(str(body.get("step")), str(body.get("mode")), int(body.get("times", 1)))
    except ValueError as exc:
        return _error(400, str(exc))
    return jsonify(status="ok")


@blueprint.get("/_control/state")
def _control_state():
    """Counts of cards, print jobs, submitted jobs, the balance and logins."""
    return jsonify(_state().counts())
