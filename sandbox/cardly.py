"""Sandbox Cardly v2, following the Cardly v2 API documentation closely enough to test against.

What it does as Cardly documents: `API-Key` authentication (`test_…` keys answer `testMode: true`; keys
without a `test_`/`live_` prefix or revoked ones → 401), a card credit balance, `orders/place` with field
validation (422), 402 when the balance does not cover the cost (the body states cost and balance),
idempotency (same key + same body → the stored status and body are replayed, a stored 402 included; same
key + different body → 400; a request refused for credentials or missing parameters does not consume the
key), `orders/preview`, `orders/{id}`, `account/balance`, `art` and `templates` with limit/offset paging,
`art/{id}` (by id; unknown → 404).

Sandbox-only deviations (documented in docs/thank-you-cards.md): test-mode orders are recorded so tests can
inspect them, but like Cardly's test mode they do not spend credit; live-prefixed keys do.

Control (tests and the demo), on the state object or over HTTP under `/cardly/v2/_control/…`:
`set_credit(n)`, `inject_fault(mode, times, endpoint, delay_seconds)` with mode `error_500`,
`place_then_500`, `timeout` (processes, then answers late) or `rate_limit`; `placed_orders()`,
`place_requests()`, `revoke_key(key)`. On the state object only (tests in the same process):
`hold(endpoint, act=True)` holds the next call of `orders/place` or `account/balance`: Cardly acts on it (or, with
`act=False`, does not and answers 504), sets `held.reached`, and answers only once the test sets `held.release`
(or after 30 s), so a test orders "the call is in flight" against its own steps with events, not sleeps.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, g, request

from sandbox.documented import undocumented

SEEDED_CREDIT = 25.0
CARD_COST = {"standard": 1.0, "priority": 1.5, "express": 2.5}
SHIP_TO_ME_COST = 0.03
REGION_REQUIRED = {"US", "AU", "CA"}
SHIPPING_BY_COUNTRY = {"AU": ("standard", "priority", "express")}
FAULT_MODES = ("error_500", "place_then_500", "timeout", "rate_limit")
HOLDABLE = ("orders/place", "account/balance")
HOLD_LIMIT_SECONDS = 30  # a held call answers by itself after this long, so a failing test cannot hang the sandbox
ART_SLUGS = ["sandbox-thank-you-art"] + [f"sandbox-art-{n:02d}" for n in range(1, 30)]
TEMPLATE_SLUGS = ["sandbox-thank-you-template", "sandbox-plain-template"]
# Kept on stored orders for tests and the demo (`placed_orders()`), never sent in Cardly's answers.
_CONTROL_ONLY = ("request", "idempotencyKey", "testMode", "purchaseOrderNumber")


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _envelope(data: Any, *, status: str = "OK", messages: list | None = None, test_mode: bool = False) -> dict:
    body: dict[str, Any] = {"state": {"status": status, "messages": messages or []}, "data": data}
    if test_mode:
        body["testMode"] = True
    return body


@dataclass
class _Fault:
    mode: str
    remaining: int
    endpoint: str
    delay_seconds: float


class Hold:
    """One held call: `reached` is set once it has arrived (after Cardly acted, when `act`); the answer waits until
    the test sets `release` (a call that did not act then answers 504, as a gateway that gave up would)."""

    def __init__(self, endpoint: str, act: bool) -> None:
        self.endpoint, self.act = endpoint, act
        self.reached, self.release = threading.Event(), threading.Event()

    def wait(self) -> None:
        self.reached.set()
        self.release.wait(HOLD_LIMIT_SECONDS)


@dataclass
class CardlySandboxState:
    """In-memory Cardly: credit, placed orders, idempotency keys, requests seen, faults, artwork, templates."""

    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything and reseed the demo data (credit, artwork, templates)."""
        with self.lock:
            wake = getattr(self, "_wake", None)
            if wake is not None:
                wake.set()  # let any answer held back by a "timeout" fault go now
            for held in getattr(self, "holds", []):
                held.release.set()  # and any call still held by an earlier test
            self.holds: list[Hold] = []
            self._wake = threading.Event()
            self.credit = SEEDED_CREDIT
            self.orders: dict[str, dict[str, Any]] = {}
            self.idempotency: dict[tuple[str, str], tuple[str, int, dict[str, Any]]] = {}
            self.requests: list[dict[str, Any]] = []
            self.faults: deque[_Fault] = deque()
            self.revoked: set[str] = set()
            self.art = [self._art(slug, n) for n, slug in enumerate(ART_SLUGS)]
            self.templates = [self._template(slug, n) for n, slug in enumerate(TEMPLATE_SLUGS)]

    @staticmethod
    def _art(slug: str, n: int) -> dict[str, Any]:
        art_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cardly-sandbox-art/{slug}"))
        return {"id": art_id, "revision": 1, "name": slug.replace("-", " ").title(), "slug": slug,
                "description": "Sandbox artwork", "artwork": [f"https://sandbox.invalid/art/{art_id}/1.png", None,
                                                             None, None],
                "media": {"id": "sandbox-media-a6", "name": "A6 folded card"},
                "createdAt": "2026-01-01T00:00:00+00:00", "updatedAt": "2026-01-01T00:00:00+00:00"}

    @staticmethod
    def _template(slug: str, n: int) -> dict[str, Any]:
        template_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"cardly-sandbox-template/{slug}"))
        variables = {"firstName": {"description": "Recipient's first name", "example": "Ada"},
                     "message": {"description": "The thank-you message", "example": "Thank you!"}}
        return {"id": template_id, "name": slug.replace("-", " ").title(), "slug": slug,
                "media": {"id": "sandbox-media-a6"},
                "definition": {"version": 2, "style": {}, "pages": [], "variables": variables}}

    # -- control -------------------------------------------------------------------------------------------
    def set_credit(self, amount: float) -> None:
        """Set the organisation's card credit balance."""
        with self.lock:
            self.credit = float(amount)

    def inject_fault(self, mode: str, times: int = 1, *, endpoint: str = "orders/place",
                     delay_seconds: float = 2.0) -> None:
        """Make the next `times` calls to `endpoint` fail as `mode` says."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; use one of {', '.join(FAULT_MODES)}")
        with self.lock:
            self.faults.append(_Fault(mode, int(times), endpoint, float(delay_seconds)))

    def hold(self, endpoint: str = "orders/place", *, act: bool = True) -> Hold:
        """Hold the next call to `endpoint`: Cardly acts on it (unless `act` is False) and answers on release."""
        if endpoint not in HOLDABLE:
            raise ValueError(f"only {', '.join(HOLDABLE)} can be held")
        held = Hold(endpoint, act)
        with self.lock:
            self.holds.append(held)
        return held

    def _take_hold(self, endpoint: str) -> Hold | None:
        with self.lock:
            held = next((h for h in self.holds if h.endpoint == endpoint), None)
            if held is not None:
                self.holds.remove(held)
            return held

    def revoke_key(self, api_key: str) -> None:
        """From now on `api_key` is refused with 401."""
        with self.lock:
            self.revoked.add(api_key)

    def placed_orders(self) -> list[dict[str, Any]]:
        """Every order the sandbox placed (test mode included), oldest first, with the request that made it."""
        with self.lock:
            return [json.loads(json.dumps(o)) for o in self.orders.values()]

    def place_requests(self) -> list[dict[str, Any]]:
        """Every orders/place request received: idempotency key, HTTP status answered, whether replayed."""
        with self.lock:
            return [dict(r) for r in self.requests if r["path"] == "orders/place"]

    def _take_fault(self, endpoint: str) -> _Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.endpoint == endpoint and fault.remaining > 0:
                    fault.remaining -= 1
                    return fault
            return None


# -- validation ---------------------------------------------------------------------------------------------
# The fields Place Order documents for an order line (Order Item; `quantity` from its sample request), those Generate
# Preview documents (the same but `quantity`, plus `purchaseOrderNumber`), and the recipient's and sender's.
LINE_FIELDS = frozenset({"artwork", "template", "style", "messages", "variables", "recipient", "sender",
                         "shippingMethod", "shipToMe", "requestedArrival", "quantity"})
PREVIEW_FIELDS = (LINE_FIELDS - {"quantity"}) | {"purchaseOrderNumber"}
ORDER_FIELDS = frozenset({"purchaseOrderNumber", "lines"})
RECIPIENT_FIELDS = frozenset({"firstName", "lastName", "company", "address", "address2", "city", "region", "postcode",
                              "country"})
SENDER_FIELDS = frozenset({"firstName", "lastName", "address", "address2", "city", "region", "postcode", "country",
                           "omitAddress"})
JSON_TYPES = ("application/json", "text/json")  # the text asks for text/json, the echo sample shows application/json
# Listing query parameters: Pagination's limit, offset and page; the Artwork Listing's ownOnly.
LISTING_PARAMETERS = frozenset({"limit", "offset", "page"})


def _unknown_fields(where: str, given: dict[str, Any], known: frozenset[str], errors: dict[str, list[str]]) -> None:
    for name in undocumented(given, known):
        errors.setdefault(f"{where}{name}", []).append("is not a field Cardly documents here")


def _validate_address(where: str, address: Any, errors: dict[str, list[str]], *, sender: bool = False) -> None:
    if not isinstance(address, dict):
        errors.setdefault(where, []).append("must be an object")
        return
    _unknown_fields(f"{where}.", address, SENDER_FIELDS if sender else RECIPIENT_FIELDS, errors)
    for name, value in address.items():
        if name != "omitAddress" and value is not None and not isinstance(value, str):
            errors.setdefault(f"{where}.{name}", []).append("must be a string")
    for name in ("firstName", "address", "city", "postcode", "country"):
        value = address.get(name)
        if not isinstance(value, str) or not value.strip():
            errors.setdefault(f"{where}.{name}", []).append("is required")
    country = address.get("country")
    if isinstance(country, str) and country.strip():
        if len(country) != 2 or not country.isalpha():
            errors.setdefault(f"{where}.country", []).append("must be a 2-character ISO country code")
        elif country.upper() in REGION_REQUIRED and not (address.get("region") or "").strip():
            errors.setdefault(f"{where}.region", []).append(f"is required for {country.upper()} addresses")


def _validate_card(where: str, card: Any, state: CardlySandboxState, errors: dict[str, list[str]]) -> None:
    if not isinstance(card, dict):
        errors.setdefault(where or "body", []).append("must be an object")
        return
    prefix = f"{where}." if where else ""
    _unknown_fields(prefix, card, LINE_FIELDS if where else PREVIEW_FIELDS, errors)
    messages = card.get("messages")
    pages = messages.get("pages") if isinstance(messages, dict) else None
    if messages is not None and not (isinstance(pages, list) and all(
            isinstance(p, dict) and type(p.get("page")) is int and isinstance(p.get("text", ""), str) for p in pages)):
        errors.setdefault(f"{prefix}messages.pages", []).append("must be a list of {page: integer, text: string}")
    variables = card.get("variables")
    if variables is not None and not (isinstance(variables, dict)
                                      and all(isinstance(v, str) for v in variables.values())):
        errors.setdefault(f"{prefix}variables", []).append("must map each variable to a string")
    artwork = card.get("artwork")
    if not isinstance(artwork, str) or not artwork:
        errors.setdefault(f"{prefix}artwork", []).append("is required")
    elif not any(artwork in (a["id"], a["slug"]) for a in state.art):
        errors.setdefault(f"{prefix}artwork", []).append(f"artwork {artwork!r} does not exist or is not available")
    template = card.get("template")
    if template is not None and not any(template in (t["id"], t["slug"]) for t in state.templates):
        errors.setdefault(f"{prefix}template", []).append(f"template {template!r} does not exist")
    _validate_address(f"{prefix}recipient", card.get("recipient"), errors)
    if card.get("sender") is not None:
        _validate_address(f"{prefix}sender", card.get("sender"), errors, sender=True)
    method = card.get("shippingMethod", "standard")
    country = ((card.get("recipient") or {}).get("country") or "").upper() if isinstance(card.get("recipient"), dict) else ""
    if method not in CARD_COST:
        errors.setdefault(f"{prefix}shippingMethod", []).append(f"unknown shipping method {method!r}")
    elif method != "standard" and method not in SHIPPING_BY_COUNTRY.get(country, ("standard",)):
        errors.setdefault(f"{prefix}shippingMethod", []).append(f"{method} is not available for {country or 'this country'}")
    requested = card.get("requestedArrival")
    if requested is not None:
        try:
            if date.fromisoformat(str(requested)) <= datetime.now(UTC).date():
                errors.setdefault(f"{prefix}requestedArrival", []).append("must be a future date")
        except ValueError:
            errors.setdefault(f"{prefix}requestedArrival", []).append("must be a date as YYYY-MM-DD")
    quantity = card.get("quantity", 1)
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        errors.setdefault(f"{prefix}quantity", []).append("must be a whole number of at least 1")


def _card_cost(card: dict[str, Any]) -> float:
    quantity = card.get("quantity", 1)
    cost = CARD_COST.get(card.get("shippingMethod", "standard"), 1.0) + (SHIP_TO_ME_COST if card.get("shipToMe") else 0)
    return round(cost * quantity, 2)


def _delivery(card: dict[str, Any]) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    requested = card.get("requestedArrival")
    dispatch = today
    if requested:
        dispatch = max(today, date.fromisoformat(requested) - timedelta(days=8))
    return {"requested": requested, "dispatch": dispatch.isoformat(),
            "estimatedMinArrival": (dispatch + timedelta(days=3)).isoformat(),
            "estimatedMaxArrival": (dispatch + timedelta(days=8)).isoformat()}


def _as_answered(order: dict[str, Any]) -> dict[str, Any]:
    """A stored order as Get Order and the Order Listing answer it (without what only the controls show)."""
    return {k: v for k, v in order.items() if k not in _CONTROL_ONLY}


def _address_out(address: dict[str, Any]) -> dict[str, Any]:
    name = " ".join(p for p in (address.get("firstName"), address.get("lastName")) if p)
    return {"name": name, "address": address.get("address"), "address2": address.get("address2"),
            "city": address.get("city"), "region": address.get("region") or "", "postcode": address.get("postcode"),
            "country": (address.get("country") or "").upper()}


blueprint = Blueprint("sandbox_cardly", __name__)


def _state() -> CardlySandboxState:
    """The sandbox Cardly of the app serving this request (`create_sandbox_app` puts it there)."""
    return current_app.extensions["sandbox"]["cardly"]


def _answer(body: dict, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer with a fresh `Request-Id`, as Cardly sends one on every answer."""
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    response.headers["Request-Id"] = f"req_{uuid.uuid4().hex[:20]}"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _authenticate() -> tuple[bool, Response | None]:
    """(test mode, None) for a usable `API-Key`, else (False, the 401 answer)."""
    key = request.headers.get("API-Key", "")
    if not key or not key.startswith(("test_", "live_")) or key in _state().revoked:
        return False, _answer(_envelope(None, status="ERROR", messages=["No valid API key was supplied."]), 401)
    return key.startswith("test_"), None


def _json_object() -> dict[str, Any] | None:
    """The POST body when it is a JSON object sent as JSON (Content-type text/json or application/json), else None:
    "Other content types will likely fail as the request body will not be interpreted correctly"."""
    if request.mimetype not in JSON_TYPES:
        return None
    body = request.get_json(silent=True, force=True)
    return body if isinstance(body, dict) else None


def _refused_query(known: frozenset[str], test_mode: bool) -> Response | None:
    unknown = undocumented(request.args, known)
    if not unknown:
        return None
    return _answer(_envelope({"errors": {name: ["is not a parameter of this listing"] for name in unknown}},
                             status="ERROR", messages=["Validation failed."], test_mode=test_mode), 422)


def _faulted(endpoint: str) -> tuple[_Fault | None, Response | None]:
    """The fault injected for this endpoint, if any, and the answer it gives instead of acting (if it does)."""
    fault = _state()._take_fault(endpoint)
    if fault is None:
        return None, None
    if fault.mode == "error_500":
        return fault, _answer(_envelope(None, status="ERROR", messages=["Internal server error."]), 500)
    if fault.mode == "rate_limit":
        return fault, _answer(_envelope(None, status="ERROR", messages=["Too many requests."]), 429,
                              {"Retry-After": "1"})
    return fault, None  # place_then_500 and timeout act after processing


@blueprint.before_request
def log_request():
    """Note every API request (not the controls) so tests can see keys, statuses and replays."""
    if "/_control/" not in request.path:
        g.cardly_request = {"path": request.path.split("/cardly/v2/", 1)[-1], "method": request.method,
                            "idempotency_key": request.headers.get("Idempotency-Key"),
                            "status": None, "replayed": False}
        state = _state()
        with state.lock:
            state.requests.append(g.cardly_request)


def _note(status: int, replayed: bool = False) -> None:
    """Record the status this request was answered with (and whether it was a replay)."""
    with _state().lock:
        if g.get("cardly_request") is not None:
            g.cardly_request.update(status=status, replayed=replayed)


@blueprint.post("/orders/place")
def place_order():
    """Place Order, with Idempotent Requests: a key replays the stored answer of its first request."""
    state = _state()
    test_mode, refused = _authenticate()
    if refused:
        _note(401)
        return refused
    body = _json_object()
    if body is None:
        _note(400)  # not JSON: Cardly cannot read the parameters, so the idempotency key is not consumed
        return _answer(_envelope(None, status="ERROR", messages=[
            "The body must be a JSON object sent with Content-type: text/json (or application/json)."],
            test_mode=test_mode), 400)
    lines = body.get("lines")
    if not isinstance(lines, list) or not lines:
        _note(400)  # missing parameters: the idempotency key is not consumed
        return _answer(_envelope(None, status="ERROR", messages=["lines: at least one order line is required"],
                                 test_mode=test_mode), 400)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not 1 <= len(key) <= 64:
        _note(400)
        return _answer(_envelope(None, status="ERROR", messages=["Idempotency-Key: must be at most 64 characters"],
                                 test_mode=test_mode), 400)
    signature = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    scope = request.headers.get("API-Key", "")
    held = state._take_hold("orders/place")
    if held is not None and not held.act:  # lost on the way: Cardly never saw it, so the key is not consumed
        held.wait()
        _note(504)
        return _answer(_envelope(None, status="ERROR", messages=["Gateway timeout."]), 504)
    # Lookup, processing and storing happen under one lock so two racing requests with one key place
    # one order (the second gets the replay), as Cardly's idempotency promises.
    with state.lock:
        stored = state.idempotency.get((scope, key)) if key is not None else None
        if stored is not None:
            stored_signature, stored_status, stored_body = stored
            if stored_signature != signature:
                _note(400)
                return _answer(_envelope(None, status="ERROR", messages=[
                    "Idempotency key reuse: this key was used with a different request; the request was "
                    "changed but an idempotency key was being reused."], test_mode=test_mode), 400)
            _note(stored_status, replayed=True)
            return _answer(stored_body, stored_status, {"Idempotent-Replayed": "true"})
        fault, failed = _faulted("orders/place")
        if failed is not None:
            _note(failed.status_code)
            return failed
        status, result = _place(state, body, test_mode)
        if key is not None:
            state.idempotency[(scope, key)] = (signature, status, result)
    if fault is not None and fault.mode == "place_then_500":
        _note(500)
        return _answer(_envelope(None, status="ERROR", messages=["Internal server error."]), 500)
    if fault is not None and fault.mode == "timeout":
        state._wake.wait(fault.delay_seconds)  # the answer comes after the client gave up
    if held is not None:
        held.wait()  # placed and stored; the answer waits for the test (after the client's timeout: lost)
    _note(status)
    return _answer(result, status)


def _place(state: CardlySandboxState, body: dict[str, Any], test_mode: bool) -> tuple[int, dict[str, Any]]:
    """Validate and place an order: (422, errors), (402, cost and balance) or (200, the placed order)."""
    errors: dict[str, list[str]] = {}
    _unknown_fields("", body, ORDER_FIELDS, errors)
    for n, line in enumerate(body["lines"]):
        _validate_card(f"lines.{n}", line, state, errors)
    if body.get("purchaseOrderNumber") is not None and not isinstance(body.get("purchaseOrderNumber"), str):
        errors.setdefault("purchaseOrderNumber", []).append("must be a string")
    if errors:
        return 422, _envelope({"errors": errors}, status="ERROR", messages=["Validation failed."],
                              test_mode=test_mode)
    cost = round(sum(_card_cost(line) for line in body["lines"]), 2)
    with state.lock:
        if state.credit + 1e-9 < cost:
            return 402, _envelope(
                {"cost": cost, "balance": state.credit, "giftCredit": {"balance": 0, "currency": "USD"}},
                status="ERROR", test_mode=test_mode,
                messages=[f"Insufficient credit: this order costs {cost:.2f} credits and your balance is "
                          f"{state.credit:.2f} credits."])
        if not test_mode:
            state.credit = round(state.credit - cost, 2)
        order_id = str(uuid.uuid4())
        now = _now_text()
        items = []
        for line in body["lines"]:
            art = next(a for a in state.art if line["artwork"] in (a["id"], a["slug"]))
            template = next((t for t in state.templates if line.get("template") in (t["id"], t["slug"])), None)
            items.append({
                "id": str(uuid.uuid4()), "type": "card", "label": f"Cardly - {art['name']}",
                "quantity": line.get("quantity", 1), "costs": {"credits": _card_cost(line), "giftCredit": 0},
                "shipTo": "D", "shipMethod": line.get("shippingMethod", "standard"),
                "scheduledDate": f"{line['requestedArrival']} 00:00:00" if line.get("requestedArrival") else None,
                "recipient": _address_out(line["recipient"]),
                "sender": _address_out(line["sender"]) if line.get("sender") else {"name": "Sandbox Shop"},
                "timings": {"lodgeAfter": now, "shipped": None, "lodged": None, "held": None},
                "delivery": _delivery(line), "media": art["media"]["id"], "artwork": art["id"],
                "template": template["id"] if template else None, "related": [],
            })
        # The purchase order number is the customer's `purchaseOrderNo`, as Get Order and the Order Listing
        # show it; the Order Object has no field of its own for it.
        head = {"id": order_id, "status": "paid", "origin": "api", "description": None,
                "customer": {"firstName": "Sandbox Shop", "purchaseOrderNo": body.get("purchaseOrderNumber")}}
        tail = {"timings": {"paid": now, "created": now, "updated": now}, "items": items}
        state.orders[order_id] = {**head, "costs": {"credits": cost, "giftCredit": 0, "currency": "USD"}, **tail,
                                  "purchaseOrderNumber": body.get("purchaseOrderNumber"), "testMode": test_mode,
                                  "idempotencyKey": request.headers.get("Idempotency-Key"), "request": body}
        # Each answer in its documented sample's fields: Get Order and the Order Listing keep the currency
        # in `costs`; the Place Order sample has `currency` and calls the credits `pricing`.
        data = {"balance": state.credit, "giftCredit": {"balance": 0, "currency": "USD"},
                "order": {**head, "currency": "USD", "pricing": {"credits": cost, "giftCredit": 0}, **tail}}
    return 200, _envelope(data, test_mode=test_mode)


@blueprint.post("/orders/preview")
def preview_order():
    """Generate Preview: the card's cost and delivery, and links to stand-in PDFs."""
    state = _state()
    test_mode, refused = _authenticate()
    if refused:
        return refused
    card = _json_object()
    if card is None:
        return _answer(_envelope(None, status="ERROR", messages=[
            "The body must be a JSON object sent with Content-type: text/json (or application/json)."],
            test_mode=test_mode), 400)
    fault, failed = _faulted("orders/preview")
    if failed is not None:
        return failed
    errors: dict[str, list[str]] = {}
    _validate_card("", card, state, errors)
    if errors:
        return _answer(_envelope({"errors": errors}, status="ERROR", messages=["Validation failed."],
                                 test_mode=test_mode), 422)
    preview_id = str(uuid.uuid4())
    base = request.host_url.rstrip("/") + "/cardly/v2"
    expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    with state.lock:
        balance = state.credit
    data = {"balance": balance, "giftCredit": {"balance": 0, "currency": "USD"},
            "order": {"creditCost": _card_cost(card), "giftCreditCost": 0, "delivery": [_delivery(card)]},
            "preview": {"expires": expires, "format": "pdf",
                        "urls": {"card": f"{base}/preview/{preview_id}/card/pdf",
                                 "envelope": f"{base}/preview/{preview_id}/envelope/pdf"}}}
    return _answer(_envelope(data, test_mode=test_mode))


@blueprint.get("/preview/<preview_id>/<kind>/pdf")
def preview_document(preview_id: str, kind: str):
    """A preview link: Cardly's need no authentication; a tiny stand-in PDF."""
    return Response(b"%PDF-1.4\n% sandbox preview\n%%EOF\n", mimetype="application/pdf")


@blueprint.get("/orders")
def list_orders():
    """Order Listing: the organisation's orders, newest first, paginated like the other listings."""
    state = _state()
    test_mode, refused = _authenticate()
    if refused:
        return refused
    with state.lock:
        orders = [_as_answered(o) for o in reversed(list(state.orders.values()))]
    return _listing(orders, test_mode)


@blueprint.get("/orders/<order_id>")
def get_order(order_id: str):
    """Get Order: one placed order (404 when unknown)."""
    state = _state()
    test_mode, refused = _authenticate()
    if refused:
        return refused
    with state.lock:
        order = state.orders.get(order_id)
        order = _as_answered(order) if order else None
    if order is None:
        return _answer(_envelope(None, status="ERROR", messages=[f"Order {order_id} was not found."],
                                 test_mode=test_mode), 404)
    return _answer(_envelope(order, test_mode=test_mode))


@blueprint.get("/account/balance")
def account_balance():
    """Account Balance: the card credit left."""
    state = _state()
    test_mode, refused = _authenticate()
    if refused:
        return refused
    fault, failed = _faulted("account/balance")
    if failed is not None:
        return failed
    with state.lock:
        balance = state.credit
    held = state._take_hold("account/balance")
    if held is not None:
        held.wait()
        if not held.act:
            return _answer(_envelope(None, status="ERROR", messages=["Gateway timeout."]), 504)
    return _answer(_envelope({"balance": balance, "giftCredit": {"balance": 0, "currency": "USD"}},
                             test_mode=test_mode))


def _listing(records: list[dict[str, Any]], test_mode: bool, known: frozenset[str] = LISTING_PARAMETERS) -> Response:
    """One page of `records` as Cardly's Pagination describes it (`limit` with `offset` or `page`); a parameter the
    listing does not document is refused (422)."""
    refused = _refused_query(known, test_mode)
    if refused:
        return refused
    try:
        limit = int(request.args.get("limit", 25))
        offset = int(request.args["offset"]) if "offset" in request.args else None
        page = int(request.args["page"]) if "page" in request.args else None
    except ValueError:
        return _answer(_envelope(None, status="ERROR", messages=["limit, offset and page must be integers"],
                                 test_mode=test_mode), 422)
    if not 1 <= limit <= 100:
        return _answer(_envelope({"errors": {"limit": ["must be between 1 and 100"]}}, status="ERROR",
                                 messages=["Validation failed."], test_mode=test_mode), 422)
    if offset is None:
        offset = (max(1, page) - 1) * limit if page else 0
    chunk = records[offset:offset + limit]
    meta = {"startRecord": offset + 1 if chunk else 0, "lastRecord": offset + len(chunk), "limit": limit,
            "page": offset // limit + 1, "offset": offset, "totalRecords": len(records)}
    return _answer(_envelope({"meta": meta, "results": chunk}, test_mode=test_mode))


@blueprint.get("/art")
def list_art():
    """Artwork Listing."""
    test_mode, refused = _authenticate()
    return refused or _listing(_state().art, test_mode, LISTING_PARAMETERS | {"ownOnly"})


@blueprint.get("/art/<art_id>")
def get_artwork(art_id: str):
    """Get Artwork: by id only, as documented (a slug names artwork in orders, not in this path)."""
    test_mode, refused = _authenticate()
    if refused:
        return refused
    art = next((a for a in _state().art if a["id"] == art_id), None)
    if art is None:
        return _answer(_envelope(None, status="ERROR", messages=[f"Artwork {art_id} was not found."],
                                 test_mode=test_mode), 404)
    return _answer(_envelope(art, test_mode=test_mode))


@blueprint.get("/templates")
def list_templates():
    """Template Listing."""
    test_mode, refused = _authenticate()
    return refused or _listing(_state().templates, test_mode)


# -- control over HTTP (no API key: tests and the demo only; the sandbox never runs in production) -------------


@blueprint.post("/_control/credit")
def control_credit():
    """Set the card credit balance: {"balance"}."""
    state = _state()
    state.set_credit(float((_json_object() or {}).get("balance", 0)))
    return {"balance": state.credit}


@blueprint.post("/_control/faults")
def control_faults():
    """Arm a fault: {"mode", "times"?, "endpoint"?, "delay_seconds"?}."""
    body = _json_object() or {}
    try:
        _state().inject_fault(str(body.get("mode")), int(body.get("times", 1)),
                              endpoint=str(body.get("endpoint", "orders/place")),
                              delay_seconds=float(body.get("delay_seconds", 2.0)))
    except ValueError as exc:
        return {"error": str(exc)}, 400
    return {"status": "armed"}


@blueprint.post("/_control/revoke-key")
def control_revoke():
    """Refuse an API key from now on: {"api_key"}."""
    _state().revoke_key(str((_json_object() or {}).get("api_key", "")))
    return {"status": "revoked"}


@blueprint.get("/_control/orders")
def control_orders():
    """Every placed order (with the request that made it) and every orders/place request."""
    state = _state()
    return {"orders": state.placed_orders(), "place_requests": state.place_requests()}
