"""Cardly v2 client: place, preview and read card orders; account balance; artwork and templates.

Every Cardly answer is `{"state": {"status": "OK"|"WARN"|"ERROR", "messages": [...]}, "data": …,
"testMode"?}`. `_unwrap` is the one place that reads it: a 2xx whose `state.status` is ERROR is still a
refusal, WARN is a success whose messages are kept as warnings. Errors are translated here into the
service's provider errors (402 → ProviderPaymentRequired with cost and balance, 400/422 → ProviderRejected
with "field: reason" text, 401/403 → ProviderAuthError); transport failures, 5xx and 429 are mapped by
ProviderHttp. The API key never appears in a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderPaymentRequired,
    ProviderRejected,
    ProviderResponseInvalid,
)
from service.logs import redact
from service.providers.http import ProviderHttp, ProviderResponse

PROVIDER = "cardly"
# Cardly's text asks for "text/json" while its own echo sample shows application/json; one constant to change. Sent
# with POST bodies only: the GETs have "(No body required)".
JSON_CONTENT_TYPE = "application/json"
MAX_IDEMPOTENCY_KEY_LENGTH = 64
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")
# Cardly's ids are UUIDs; an artwork or template may also be named by its slug (Place Order, `artwork`).
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
IDEMPOTENCY_CONFLICT_CODE = "cardly_idempotency_conflict"


# -- requests: the service's words in, Cardly's out ----------------------------------------------------------

@dataclass(frozen=True)
class CardRecipient:
    first_name: str
    last_name: str
    address1: str
    address2: str
    city: str
    region: str
    postcode: str
    country: str
    company: str | None = None


@dataclass(frozen=True)
class CardRequest:
    """One thank-you card in the service's own words; `order_body` and `preview_body` put it in Cardly's."""

    purchase_order_number: str
    artwork: str
    recipient: CardRecipient
    message: str
    template: str | None = None
    # The merchant's Cardly template variables: first_name, message, order_number, shop_name.
    template_variables: dict[str, str] | None = None
    sender: dict[str, Any] | None = None  # CARDLY_SENDER is configured in Cardly's own field names
    shipping_method: str | None = None
    requested_arrival: date | None = None


# A sender (CARDLY_SENDER, in Cardly's own field names) needs all of these or none.
SENDER_FIELDS = ("firstName", "address", "city", "postcode", "country")
# Every sender field Place Order documents (`sender.…`); any other name is not Cardly's.
SENDER_DOCUMENTED_FIELDS = ("firstName", "lastName", "address", "address2", "city", "region", "postcode", "country",
                            "omitAddress")

_TEMPLATE_VARIABLE_NAMES = {"first_name": "firstName", "message": "message", "order_number": "orderNumber",
                            "shop_name": "shopName"}


def card_line(request: CardRequest) -> dict[str, Any]:
    """The request as one Cardly order line."""
    r = request.recipient
    recipient = {"firstName": r.first_name, "lastName": r.last_name, "address": r.address1, "address2": r.address2,
                 "city": r.city, "region": r.region, "postcode": r.postcode, "country": r.country}
    if r.company:
        recipient["company"] = r.company
    line: dict[str, Any] = {"artwork": request.artwork, "quantity": 1, "recipient": recipient}
    if request.template:
        # With a template Cardly ignores `messages` and fills the template's variables instead.
        line["template"] = request.template
        line["variables"] = {_TEMPLATE_VARIABLE_NAMES[k]: v for k, v in (request.template_variables or {}).items()}
    else:
        line["messages"] = {"pages": [{"page": 3, "text": request.message}]}
    if request.sender:
        line["sender"] = dict(request.sender)
    if request.shipping_method:
        line["shippingMethod"] = request.shipping_method
    if request.requested_arrival:
        line["requestedArrival"] = request.requested_arrival.isoformat()
    return line


def order_body(request: CardRequest) -> dict[str, Any]:
    """The orders/place body for one card."""
    return {"purchaseOrderNumber": request.purchase_order_number, "lines": [card_line(request)]}


def preview_body(request: CardRequest) -> dict[str, Any]:
    """The orders/preview body for one card: the line's fields at the top with the purchase order number, and no
    `quantity` (Generate Preview documents none: a preview is of a single card)."""
    line = {k: v for k, v in card_line(request).items() if k != "quantity"}
    return {**line, "purchaseOrderNumber": request.purchase_order_number}


def is_test_key(api_key: str) -> bool:
    """Cardly test-mode keys start with `test_`; they validate but never place a real card."""
    return api_key.startswith("test_")


def credits(value: Any) -> Decimal | None:
    """A Cardly credit amount (a JSON float) as an exact Decimal; None when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


@dataclass(frozen=True)
class Delivery:
    requested: str | None = None
    dispatch: str | None = None
    estimated_min_arrival: str | None = None
    estimated_max_arrival: str | None = None

    @classmethod
    def from_cardly(cls, raw: Any) -> Delivery:
        raw = raw if isinstance(raw, dict) else {}
        return cls(requested=raw.get("requested"), dispatch=raw.get("dispatch"),
                   estimated_min_arrival=raw.get("estimatedMinArrival"),
                   estimated_max_arrival=raw.get("estimatedMaxArrival"))


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    status: str | None
    cost_credits: Decimal | None
    balance_credits: Decimal | None
    test_mode: bool
    delivery: Delivery
    request_id: str | None
    warnings: tuple[str, ...] = ()
    replayed: bool = False


@dataclass(frozen=True)
class CardlyOrder:
    order_id: str
    status: str | None
    cost_credits: Decimal | None
    purchase_order_number: str | None
    delivery: Delivery
    test_mode: bool
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


@dataclass(frozen=True)
class Preview:
    card_url: str | None
    envelope_url: str | None
    format: str | None
    expires: str | None
    cost_credits: Decimal | None
    balance_credits: Decimal | None
    delivery: Delivery
    test_mode: bool
    request_id: str | None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Balance:
    credits: Decimal
    test_mode: bool


@dataclass(frozen=True)
class Artwork:
    """A piece of card art the organisation can order."""

    id: str
    slug: str | None
    name: str | None


@dataclass(frozen=True)
class Template:
    """A card template; `variables` are the names it fills from an order line's variables."""

    id: str
    slug: str | None
    name: str | None
    variables: tuple[str, ...]


@dataclass(frozen=True)
class Page:
    results: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
    test_mode: bool = False
    last_record: int | None = None  # meta.lastRecord: the 1-based row number of this page's last record

    @property
    def next_offset(self) -> int | None:
        """Offset of the next page, or None when this page reaches `meta.totalRecords` (or is empty).

        The page's own `meta.lastRecord` says where the next one starts, else the records it holds do; never the
        `limit` asked for, so a page smaller than asked (a provider's own cap) skips nothing."""
        nxt = self.last_record if self.last_record is not None else self.offset + len(self.results)
        return nxt if nxt < self.total and self.results and nxt > self.offset else None


@dataclass(frozen=True)
class _Answer:
    data: Any
    test_mode: bool
    warnings: tuple[str, ...]
    request_id: str | None
    replayed: bool


def _message_text(message: Any) -> str:
    """One Cardly feedback message as "field: reason" when it names a field, else as plain text."""
    if isinstance(message, dict):
        text = message.get("message") or message.get("reason") or message.get("detail") or ""
        where = message.get("field") or message.get("path") or message.get("key")
        return f"{where}: {text}" if where else str(text)
    return str(message)


def readable_reason(body: Any) -> str:
    """Cardly's explanation of a refusal as "field: reason; field: reason" (or its plain messages)."""
    body = body if isinstance(body, dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    parts: list[str] = []
    errors = data.get("errors") if isinstance(data.get("errors"), dict) else None
    if errors:
        for name, reasons in errors.items():
            for reason in reasons if isinstance(reasons, list) else [reasons]:
                parts.append(f"{name}: {reason}")
    state = body.get("state") if isinstance(body.get("state"), dict) else {}
    messages = state.get("messages") if isinstance(state.get("messages"), list) else []
    for message in messages:
        text = _message_text(message).strip()
        # A generic headline ("Validation failed") adds nothing when field reasons follow it.
        if text and not (errors and ":" not in text):
            parts.append(text)
    return redact("; ".join(dict.fromkeys(parts))) or "no reason given"


class CardlyClient:
    """Talks to one Cardly account (live, test-mode or the sandbox) through ProviderHttp."""

    def __init__(self, api_url: str, api_key: str, *, timeout_seconds: float = 15.0,
                 session_factory: Callable[[], requests.Session] = requests.Session):
        self.api_key_is_test = is_test_key(api_key)
        self.http = ProviderHttp(
            PROVIDER, api_url, timeout_seconds=timeout_seconds,
            default_headers={"API-Key": api_key},
            describe_error=self._describe_error, session_factory=session_factory,
        )

    @classmethod
    def from_settings(cls, cardly_settings) -> CardlyClient:
        """The client for `settings.cardly` (live API, test key or sandbox alike)."""
        return cls(cardly_settings.api_url, cardly_settings.api_key,
                   timeout_seconds=cardly_settings.timeout_seconds)

    # -- operations --------------------------------------------------------------------------------------
    def place_order(self, payload: dict[str, Any], idempotency_key: str) -> PlacedOrder:
        """POST orders/place under `idempotency_key`; raises ProviderPaymentRequired on 402."""
        validate_idempotency_key(idempotency_key)
        answer = self._call("place_order", "POST", "orders/place", json_body=payload,
                            headers={"Content-Type": JSON_CONTENT_TYPE, "Idempotency-Key": idempotency_key})
        data = answer.data if isinstance(answer.data, dict) else {}
        order = data.get("order")
        if not isinstance(order, dict) or not order.get("id"):
            raise ProviderResponseInvalid(PROVIDER, "orders/place answered without data.order.id",
                                          request_id=answer.request_id, body=_safe_body(data))
        items = [i for i in order.get("items") or [] if isinstance(i, dict)]
        return PlacedOrder(
            order_id=str(order["id"]), status=order.get("status"),
            cost_credits=_order_credits(order), balance_credits=credits(data.get("balance")),
            test_mode=answer.test_mode, delivery=Delivery.from_cardly(items[0].get("delivery") if items else None),
            request_id=answer.request_id, warnings=answer.warnings, replayed=answer.replayed,
        )

    def preview_order(self, payload: dict[str, Any]) -> Preview:
        """POST orders/preview for one card: watermarked preview URLs, credit cost and delivery window."""
        answer = self._call("preview_order", "POST", "orders/preview", json_body=payload,
                            headers={"Content-Type": JSON_CONTENT_TYPE})
        data = answer.data if isinstance(answer.data, dict) else {}
        preview = data.get("preview") if isinstance(data.get("preview"), dict) else {}
        urls = preview.get("urls") if isinstance(preview.get("urls"), dict) else {}
        order = data.get("order") if isinstance(data.get("order"), dict) else {}
        if not urls.get("card"):
            raise ProviderResponseInvalid(PROVIDER, "orders/preview answered without data.preview.urls.card",
                                          request_id=answer.request_id)
        delivery = order.get("delivery")
        if isinstance(delivery, list):  # the preview gives one delivery estimate per card in a list
            delivery = delivery[0] if delivery else None
        return Preview(card_url=urls.get("card"), envelope_url=urls.get("envelope"),
                       format=preview.get("format"), expires=preview.get("expires"),
                       cost_credits=credits(order.get("creditCost")), balance_credits=credits(data.get("balance")),
                       delivery=Delivery.from_cardly(delivery), test_mode=answer.test_mode,
                       request_id=answer.request_id, warnings=answer.warnings)

    def get_order(self, order_id: str) -> CardlyOrder:
        """GET orders/{id}; ProviderNotFound when Cardly does not know it."""
        answer = self._call("get_order", "GET", f"orders/{requests.utils.quote(str(order_id), safe='')}")
        order = answer.data if isinstance(answer.data, dict) else {}
        if not order.get("id"):
            raise ProviderResponseInvalid(PROVIDER, "orders/{id} answered without data.id",
                                          request_id=answer.request_id)
        return _parse_order(order, answer.test_mode)

    def find_order_by_purchase_order(self, purchase_order_number: str, *, max_pages: int = 50) -> CardlyOrder | None:
        """The newest order carrying this purchase order number in Cardly's order listing, or None.

        Settles a placement whose answer was lost: Cardly has no lookup by idempotency key, but every card we
        place carries the shop's order number as its purchase order number."""
        offset: int | None = 0
        for _ in range(max_pages):
            page = self._page("orders", 100, offset, {})
            for order in page.results:
                customer = order.get("customer") if isinstance(order.get("customer"), dict) else {}
                if order.get("id") and purchase_order_number in (order.get("purchaseOrderNumber"),
                                                                 customer.get("purchaseOrderNo")):
                    return _parse_order(order, page.test_mode)
            offset = page.next_offset
            if offset is None:
                return None
        raise ProviderResponseInvalid(PROVIDER, f"the order listing did not end within {max_pages} pages")

    def account_balance(self) -> Balance:
        """GET account/balance: the organisation's card credit balance."""
        answer = self._call("account_balance", "GET", "account/balance")
        data = answer.data if isinstance(answer.data, dict) else {}
        balance = credits(data.get("balance"))
        if balance is None:
            raise ProviderResponseInvalid(PROVIDER, "account/balance answered without a numeric data.balance",
                                          request_id=answer.request_id)
        return Balance(credits=balance, test_mode=answer.test_mode)

    def list_art(self, *, limit: int = 25, offset: int = 0, own_only: bool = False) -> Page:
        """GET art: one page of the artwork available to the organisation."""
        params: dict[str, Any] = {"ownOnly": 1} if own_only else {}
        return self._page("art", limit, offset, params)

    def list_templates(self, *, limit: int = 25, offset: int = 0) -> Page:
        """GET templates: one page of the organisation's templates."""
        return self._page("templates", limit, offset, {})

    def find_artwork(self, reference: str, *, max_pages: int = 50) -> Artwork | None:
        """The artwork a card's `artwork` field names (its id or its slug), or None when Cardly has none such.

        An id is read with Get Artwork (`GET art/{id}`, 404 → None); Cardly documents no lookup by slug, and
        says a slug names artwork "under your organisation", so a slug is looked for in the organisation's own
        artwork listing (`ownOnly`)."""
        if _UUID.match(reference):
            try:
                answer = self._call("fetch_artwork", "GET", f"art/{requests.utils.quote(reference, safe='')}")
            except ProviderNotFound:
                return None
            artwork = _parse_artwork(answer.data)
            if artwork is None:
                raise ProviderResponseInvalid(PROVIDER, "art/{id} answered without data.id",
                                              request_id=answer.request_id)
            return artwork
        record = self._find_listed("art", {"ownOnly": 1}, lambda r: reference in (r.get("id"), r.get("slug")),
                                   max_pages)
        return _parse_artwork(record) if record else None

    def find_template(self, reference: str, *, max_pages: int = 50) -> Template | None:
        """The template a card's `template` field names (its id or its slug), or None.

        Cardly documents only the Template Listing, so the organisation's templates are read page by page."""
        record = self._find_listed("templates", {}, lambda r: reference in (r.get("id"), r.get("slug")),
                                   max_pages)
        return _parse_template(record) if record else None

    def _find_listed(self, path: str, params: dict[str, Any], matches, max_pages: int) -> dict[str, Any] | None:
        offset: int | None = 0
        for _ in range(max_pages):
            page = self._page(path, 100, offset, params)
            found = next((r for r in page.results if r.get("id") and matches(r)), None)
            if found is not None:
                return found
            offset = page.next_offset
            if offset is None:
                return None
        raise ProviderResponseInvalid(PROVIDER, f"the {path} listing did not end within {max_pages} pages")

    # -- plumbing ----------------------------------------------------------------------------------------
    def _page(self, path: str, limit: int, offset: int, params: dict[str, Any]) -> Page:
        if not 1 <= limit <= 100 or offset < 0:
            raise ValueError("Cardly listings take 1 ≤ limit ≤ 100 and offset ≥ 0")
        # The metrics' operation: list_orders, list_art, list_templates (docs/metrics.md).
        answer = self._call(f"list_{path}", "GET", path, params={**params, "limit": limit, "offset": offset})
        data = answer.data if isinstance(answer.data, dict) else {}
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        results = data.get("results")
        if not isinstance(results, list):
            raise ProviderResponseInvalid(PROVIDER, f"{path} answered without data.results",
                                          request_id=answer.request_id)
        total, last_record = meta.get("totalRecords"), meta.get("lastRecord")
        return Page(results=[r for r in results if isinstance(r, dict)],
                    total=total if isinstance(total, int) else offset + len(results),
                    limit=meta.get("limit") if isinstance(meta.get("limit"), int) else limit,
                    offset=meta.get("offset") if isinstance(meta.get("offset"), int) else offset,
                    test_mode=answer.test_mode,
                    last_record=last_record if _count(last_record) else None)

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> _Answer:
        return self._unwrap(method, path, self.http.request(method, path, operation=operation, **kwargs))

    def _unwrap(self, method: str, path: str, response: ProviderResponse) -> _Answer:
        """Read Cardly's envelope; a 2xx with state ERROR is a refusal, WARN messages become warnings."""
        body = response.body
        state = body.get("state") if isinstance(body, dict) else None
        status = state.get("status") if isinstance(state, dict) else None
        if status not in ("OK", "WARN", "ERROR"):
            raise ProviderResponseInvalid(PROVIDER, f"{method} {path} answered {response.status} without a "
                                          "readable state.status", http_status=response.status,
                                          request_id=response.request_id)
        if status == "ERROR":
            reason = readable_reason(body)
            raise ProviderRejected(PROVIDER, f"{method} {path} failed: {reason}", http_status=response.status,
                                   body=_safe_body(body), request_id=response.request_id, reason=reason)
        messages = state.get("messages") if isinstance(state.get("messages"), list) else []
        warnings = tuple(redact(_message_text(m)) for m in messages) if status == "WARN" else ()
        test_mode = body.get("testMode") is True
        replayed = response.headers.get("Idempotent-Replayed", "").lower() == "true"
        return _Answer(data=body.get("data"), test_mode=test_mode, warnings=warnings,
                       request_id=response.request_id, replayed=replayed)

    @staticmethod
    def _describe_error(response: ProviderResponse) -> ProviderError | None:
        """Cardly's 4xx vocabulary → the service's provider errors (5xx and 429 are ProviderHttp's)."""
        reason = readable_reason(response.body)
        common = dict(http_status=response.status, body=_safe_body(response.body), request_id=response.request_id,
                      reason=reason)
        if response.status == 402:
            data = response.body.get("data") if isinstance(response.body, dict) else None
            data = data if isinstance(data, dict) else {}
            order = data.get("order") if isinstance(data.get("order"), dict) else {}
            cost = credits(data.get("cost", data.get("creditCost", order.get("creditCost"))))
            balance = credits(data.get("balance"))
            return ProviderPaymentRequired(
                PROVIDER, f"not enough credit: {reason}", cost_credits=str(cost) if cost is not None else None,
                balance_credits=str(balance) if balance is not None else None, **common)
        if response.status in (401, 403):
            return ProviderAuthError(PROVIDER, f"the API key was refused ({reason}); check CARDLY_API_KEY",
                                     **common)
        if response.status in (400, 409, 422):
            code = IDEMPOTENCY_CONFLICT_CODE if "idempotency" in reason.lower() else None
            return ProviderRejected(PROVIDER, f"the request was refused: {reason}", code=code, **common)
        return None


def payment_required_amounts(exc: ProviderPaymentRequired) -> tuple[Decimal | None, Decimal | None]:
    """(cost, balance) in credits carried by a Cardly 402, when Cardly stated them."""
    return credits(exc.extra.get("cost_credits")), credits(exc.extra.get("balance_credits"))


def validate_idempotency_key(key: str) -> None:
    """Cardly accepts Idempotency-Key values of up to 64 visible ASCII characters."""
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.match(key):
        raise ValueError(f"an Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY_LENGTH} visible ASCII characters")


def _parse_order(order: dict[str, Any], test_mode: bool) -> CardlyOrder:
    items = [i for i in order.get("items") or [] if isinstance(i, dict)]
    customer = order.get("customer") if isinstance(order.get("customer"), dict) else {}
    return CardlyOrder(order_id=str(order["id"]), status=order.get("status"), cost_credits=_order_credits(order),
                       purchase_order_number=order.get("purchaseOrderNumber") or customer.get("purchaseOrderNo"),
                       delivery=Delivery.from_cardly(items[0].get("delivery") if items else None),
                       test_mode=test_mode, raw=order)


def _text(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def _parse_artwork(record: Any) -> Artwork | None:
    if not isinstance(record, dict) or not _text(record.get("id")):
        return None
    return Artwork(id=str(record["id"]), slug=_text(record.get("slug")), name=_text(record.get("name")))


def _parse_template(record: dict[str, Any]) -> Template:
    definition = record.get("definition") if isinstance(record.get("definition"), dict) else {}
    variables = definition.get("variables")
    return Template(id=str(record["id"]), slug=_text(record.get("slug")), name=_text(record.get("name")),
                    variables=tuple(k for k in variables if k != "...") if isinstance(variables, dict) else ())


def _order_credits(order: dict[str, Any]) -> Decimal | None:
    for holder in ("costs", "pricing"):
        costs = order.get(holder)
        if isinstance(costs, dict) and credits(costs.get("credits")) is not None:
            return credits(costs.get("credits"))
    return None


def _safe_body(body: Any) -> Any:
    """Bodies kept on errors are Cardly's envelope only; they never include our key or the recipient."""
    if isinstance(body, dict):
        return {k: body[k] for k in ("state", "testMode") if k in body}
    return None


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
