"""InstantCard v2 client: bearer-token auth (the token kept by a TokenStore; providers.tokens keeps it in the
database), cards, print jobs and the balance.

InstantCard's own document lost every sample response, so everything we read from it goes through the
`parse_*` functions at the end of this module (the one place that knows the answer shapes). Each is
defensive: it accepts the shapes other references show (a bare object, or one wrapped in `{"card": …}` or
`{"data": …}`) and raises `ProviderResponseInvalid` naming what was missing.

Requests are form-data with bracketed keys (`card[card_template_id]`, `print_job[card_ids]`, …), in exactly the
forms InstantCard's document shows (docs/providers.md lists each call and the section it follows).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

import requests

from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderPaymentRequired,
    ProviderRejected,
    ProviderResponseInvalid,
)
from service.providers.http import ProviderHttp, ProviderResponse
from service.providers.settings import InstantCardSettings

log = logging.getLogger("service.providers.instantcard")

PROVIDER = "instantcard"
# Refresh a token this long before the expiry it announces, so a call never starts with a dying token.
REFRESH_MARGIN = timedelta(seconds=60)
SEARCH_MAX_PAGES = 20  # search pages one lookup reads (a member number matches a card or two)
_FUNDS_WORDS = re.compile(r"insufficient|not enough|funds|balance", re.I)


# -- values the client returns ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CachedToken:
    token: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Card:
    """A card as InstantCard describes it: no draft/finalized state (the document shows none)."""

    id: str
    template_id: int | None
    data: dict[str, str]
    last_submitted_at: datetime | None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class PrintJob:
    """A print job as InstantCard describes it: its cards are not listed (the document shows none)."""

    id: str
    submitted: bool | None  # from `status` (0 created, 1 submitted); None when the answer does not say
    created_at: datetime | None
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ChargeDetails:
    has_balance: bool | None
    job_total_cost_cents: int | None
    shipping_cost_cents: int | None
    items: list[Any]


@dataclass(frozen=True)
class Preview:
    front: str
    back: str


@dataclass(frozen=True)
class Organization:
    id: str | None
    name: str | None


@dataclass(frozen=True)
class CardTemplate:
    id: str
    name: str | None


@dataclass(frozen=True)
class ShippingProvider:
    id: str
    name: str | None


# -- the token cache ---------------------------------------------------------------------------------------
class TokenStore(Protocol):
    def load(self) -> CachedToken | None: ...
    def save(self, token: CachedToken) -> None: ...
    def discard(self, token: str) -> None: ...


class MemoryTokenStore:
    """A per-process token cache (client unit tests; never used by the app)."""

    def __init__(self) -> None:
        self._token: CachedToken | None = None
        self._lock = threading.Lock()

    def load(self) -> CachedToken | None:
        with self._lock:
            return self._token

    def save(self, token: CachedToken) -> None:
        with self._lock:
            self._token = token

    def discard(self, token: str) -> None:
        with self._lock:
            if self._token and self._token.token == token:
                self._token = None


# -- the client --------------------------------------------------------------------------------------------
class InstantCardClient:
    """Every InstantCard call the service makes; translates InstantCard's vocabulary and nothing else does."""

    provider = PROVIDER

    def __init__(self, settings: InstantCardSettings, *, token_store: TokenStore | None = None,
                 session_factory: Callable[[], requests.Session] = requests.Session,
                 clock: Callable[[], datetime] | None = None):
        self.settings = settings
        self.organization_id = settings.organization_id or ""
        self.shipping_provider_id = settings.shipping_provider_id
        self.tokens = token_store or MemoryTokenStore()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.http = ProviderHttp(PROVIDER, settings.api_url, timeout_seconds=settings.timeout_seconds,
                                 describe_error=describe_error,
                                 session_factory=session_factory)

    # authentication ---------------------------------------------------------------------------------------
    def authenticate(self) -> CachedToken:
        """Log in with the configured email and password; returns the token and when it expires."""
        response = self.http.request("POST", "authenticate", operation="authenticate",
                                     data={"email": self.settings.email, "password": self.settings.password})
        token = parse_token(response.body, now=self.clock())
        self.tokens.save(token)
        return token

    def _current_token(self) -> str:
        cached = self.tokens.load()
        if cached is not None and (cached.expires_at is None or cached.expires_at - REFRESH_MARGIN > self.clock()):
            return cached.token
        return self.authenticate().token

    def _call(self, operation: str, method: str, path: str, **kwargs: Any) -> ProviderResponse:
        """One authenticated request (`operation` names it in the metrics); on a 401 log in again once and repeat
        the request once."""
        token = self._current_token()
        try:
            return self.http.request(method, path, operation=operation, headers=_auth(token), **kwargs)
        except ProviderAuthError as exc:
            if exc.http_status != 401:
                raise
            log.info("instantcard refused a cached token; authenticating again")
            self.tokens.discard(token)
            return self.http.request(method, path, operation=operation, headers=_auth(self.authenticate().token),
                                     **kwargs)

    def _org(self, path: str = "") -> str:
        return f"organizations/{self.organization_id}{'/' + path if path else ''}"

    # cards ------------------------------------------------------------------------------------------------
    def create_card(self, template_id: int, data: dict[str, str]) -> Card:
        """Create a draft card from a template with its variable fields filled."""
        form = {"card[card_template_id]": str(template_id), "card[data]": encode_card_data(data)}
        return parse_card(self._call("create_card", "POST", self._org("cards"), data=form).body)

    def update_card(self, card_id: str, data: dict[str, str]) -> Card:
        """Change a card's variable fields (drafts, or finalized cards e.g. a new expiry)."""
        form = {"card[data]": encode_card_data(data)}
        return parse_card(self._call("update_card", "PATCH", self._org(f"cards/{card_id}"), data=form).body)

    def preview_card(self, card_id: str) -> Preview:
        """Front and back images of a card (base64 strings or URLs, as InstantCard sends them)."""
        return parse_preview(self._call("preview_card", "GET", self._org(f"cards/{card_id}/preview")).body)

    def finalize_card(self, card_id: str) -> None:
        """Finalize a draft so it can join a print job.

        The answer is not read: InstantCard describes it only as possibly carrying the card's images, and a
        finalized card looks like a draft anyway (a card has no state field), so a 2xx is the whole answer."""
        self._call("finalize_card", "PATCH", self._org(f"cards/{card_id}/finalize"))

    def fetch_card(self, card_id: str) -> Card:
        """One card by id."""
        return parse_card(self._call("fetch_card", "GET", self._org(f"cards/{card_id}")).body)

    def delete_card(self, card_id: str) -> None:
        """Delete a card (used for unprinted drafts only)."""
        self._call("delete_card", "DELETE", self._org(f"cards/{card_id}"))

    def search_cards(self, term: str, *, page_size: int = 50, max_pages: int = SEARCH_MAX_PAGES) -> list[Card]:
        """Every card matching a search term (InstantCard searches card data as text), page after page.

        Search for a Card takes `page_size` and `page` but says nothing of the last page, and InstantCard may
        answer fewer cards than asked: pages are read until one is empty or brings no card not seen before."""
        found: dict[str, Card] = {}
        for page in range(1, max_pages + 1):
            response = self._call("search_cards", "GET", self._org("cards/search"),
                                  params={"term": term, "page_size": page_size, "page": page})
            cards = [parse_card(item) for item in parse_list(response.body, "cards")]
            new = [card for card in cards if card.id not in found]
            if not new:
                return list(found.values())
            found.update((card.id, card) for card in new)
        raise ProviderResponseInvalid(PROVIDER, f"the card search did not end within {max_pages} pages")

    def find_card_by_field(self, field_name: str, value: str) -> Card | None:
        """The card whose `field_name` equals `value` exactly (search is by text, so results are filtered)."""
        matches = [c for c in self.search_cards(value) if c.data.get(field_name) == value]
        if len(matches) > 1:
            raise ProviderRejected(PROVIDER, f"{len(matches)} cards carry the same {field_name!r}; "
                                             "a person must decide which one to keep")
        return matches[0] if matches else None

    # print jobs -------------------------------------------------------------------------------------------
    def create_print_job(self, card_ids: Iterable[str] = (), *, address: dict[str, Any] | None = None,
                         copies: int = 1) -> PrintJob:
        """Create a print job (with finalized cards, or none: cards may be added later), a one-off address and
        the configured shipping provider."""
        form = self._print_job_form(card_ids, address, copies)
        return parse_print_job(self._call("create_print_job", "POST", self._org("print_jobs"), data=form).body)

    def update_print_job(self, print_job_id: str, *, address: dict[str, Any] | None = None,
                         copies: int | None = None) -> PrintJob:
        """Change a print job; InstantCard resets the shipping provider on PATCH, so it is always resent.

        Its parameters go in the URL: Update a Print Job's table gives every one the type "URL parameter"
        (Create a Print Job's says "body form-data")."""
        params = self._print_job_form((), address, copies)
        return parse_print_job(
            self._call("update_print_job", "PATCH", self._org(f"print_jobs/{print_job_id}"), params=params).body)

    def _print_job_form(self, card_ids: Iterable[str], address: dict[str, Any] | None,
                        copies: int | None) -> list[tuple[str, str]]:
        ids = list(card_ids)
        form: list[tuple[str, str]] = [(CARD_IDS_KEY, encode_card_ids(ids))] if ids else []
        if self.shipping_provider_id:
            form.append(("print_job[shipping_provider_id]", str(self.shipping_provider_id)))
        if copies is not None:
            form.append(("print_job[number_of_copies]", str(copies)))
        for key, value in encode_address(address).items():
            form.append((key, value))
        return form

    def add_cards(self, print_job_id: str, card_ids: Iterable[str]) -> PrintJob | None:
        """Add finalized cards to an existing print job."""
        form = {CARD_IDS_KEY: encode_card_ids(card_ids)}
        body = self._call("add_cards", "POST", self._org(f"print_jobs/{print_job_id}/add_cards"), data=form).body
        return parse_print_job(body) if _is_print_job(body) else None

    def remove_card(self, print_job_id: str, card_id: str) -> None:
        """Take one card out of a print job that is not submitted yet; ProviderNotFound when it is not on it."""
        self._call("remove_card", "DELETE", self._org(f"print_jobs/{print_job_id}/remove_cards/{card_id}"))

    def fetch_print_job(self, print_job_id: str) -> PrintJob:
        """One print job by id."""
        return parse_print_job(self._call("fetch_print_job", "GET", self._org(f"print_jobs/{print_job_id}")).body)

    def list_print_jobs(self, *, submitted: bool | None = None, page: int = 1, page_size: int = 100) -> list[PrintJob]:
        """Print jobs, optionally only created (not submitted) or only submitted ones."""
        params: dict[str, Any] = {"page": page, "page_size": page_size}
        if submitted is not None:
            params["status"] = 1 if submitted else 0
        body = self._call("list_print_jobs", "GET", self._org("print_jobs"), params=params).body
        return [parse_print_job(item) for item in parse_list(body, "print_jobs")]

    def check_balance(self, print_job_id: str) -> bool:
        """Whether the organization's funds cover this print job."""
        body = self._call("check_balance", "GET", self._org(f"print_jobs/{print_job_id}/check_balance")).body
        return parse_bool_answer(body, ("has_balance", "balance", "result", "success"), "check_balance")

    def charge_details(self, print_job_id: str) -> ChargeDetails:
        """What the print job costs and whether the balance covers it."""
        return parse_charge_details(
            self._call("charge_details", "GET", self._org(f"print_jobs/{print_job_id}/charge_details")).body)

    def submit_print_job(self, print_job_id: str) -> PrintJob | None:
        """Send a print job to production (same-day shipping before 4 PM US Eastern)."""
        body = self._call("submit_print_job", "POST", self._org(f"print_jobs/{print_job_id}/print")).body
        return parse_print_job(body) if _is_print_job(body) else None

    # organization and setup -------------------------------------------------------------------------------
    def fetch_organization(self) -> Organization:
        """The configured organization (its id and name); ProviderNotFound when InstantCard has no such one."""
        return parse_organization(self._call("fetch_organization", "GET", self._org()).body)

    def organization_balance_cents(self) -> int:
        """The organization's balance in integer cents (negative when overdrawn)."""
        return parse_balance(self._call("organization_balance", "GET", self._org("balance")).body)

    def shipping_providers(self) -> list[ShippingProvider]:
        """Shipping providers to choose INSTANTCARD_SHIPPING_PROVIDER_ID from."""
        body = self._call("shipping_providers", "GET", self._org("shipping_providers")).body
        return [parse_shipping_provider(item) for item in parse_list(body, "shipping_providers")]

    def card_templates(self) -> list[CardTemplate]:
        """The organization's card templates (for setting up INSTANTCARD_PRODUCTS)."""
        body = self._call("card_templates", "GET", self._org("card_templates")).body
        return [parse_card_template(item) for item in parse_list(body, "card_templates")]

    def card_template_fields(self, template_id: int) -> list[str]:
        """The names of a template's variable fields (the keys INSTANTCARD_PRODUCTS' `fields` must use);
        ProviderNotFound when the organization has no such template."""
        body = self._call("card_template_fields", "GET", self._org(f"card_templates/{template_id}/fields")).body
        return [parse_template_field(item) for item in parse_list(body, "fields", "card_template_fields")]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"bearer {token}"}


def describe_error(response: ProviderResponse) -> ProviderError | None:
    """InstantCard 4xx answers other than 401/403/404 → typed errors carrying InstantCard's reason."""
    if response.status in (401, 403, 404):
        return None
    reason = error_reason(response.body)
    common = dict(http_status=response.status, body=response.body, request_id=response.request_id, reason=reason)
    if response.status == 402 or (reason and _FUNDS_WORDS.search(reason)):
        return ProviderPaymentRequired(PROVIDER, f"insufficient funds: {reason or response.status}", **common)
    return ProviderRejected(PROVIDER, f"refused ({response.status}): {reason or 'no reason given'}", **common)


# -- wire encoding -----------------------------------------------------------------------------------------
def encode_card_data(data: dict[str, str]) -> str:
    """`card[data]`: a JSON array with one object per template variable field."""
    return json.dumps([{"name": name, "value": value} for name, value in data.items()])


CARD_IDS_KEY = "print_job[card_ids]"


def encode_card_ids(card_ids: Iterable[str]) -> str:
    """`print_job[card_ids]`: one form field holding the ids in brackets, the form InstantCard's document gives.

    InstantCard API v2, Print Jobs › Create a Print Job, NOTEs: "an array of strings—each string being a card ID
    number. Even if you are ordering a single card, it must be in the form “[264561]”". So one card is `[264561]`
    and several are `[264561,264562]` (no quotes, no spaces), never repeated `print_job[card_ids][]` keys."""
    ids = [str(card_id).strip() for card_id in card_ids]
    if not ids or not all(card_id.isdigit() for card_id in ids):
        raise ValueError("InstantCard card ids are card ID numbers, at least one")
    return "[" + ",".join(ids) + "]"


_ADDRESS_KEYS = {
    "full_name": "print_job[address][contact][full_name]",
    "organization_name": "print_job[address][organization_name]",
    "address_1": "print_job[address][address_1]",
    "address_2": "print_job[address][address_2]",
    "city": "print_job[address][city]",
    "state": "print_job[address][state]",
    "zip_code": "print_job[address][zip_code]",
    "country": "print_job[address][country]",
}


def one_off_address(address: dict[str, Any] | None) -> dict[str, str] | None:
    """An order-style address (name, address1, region, postcode, …) in InstantCard's one-off address terms."""
    if not address or not address.get("address1"):
        return None
    mapped = {"full_name": address.get("name"), "organization_name": address.get("company"),
              "address_1": address.get("address1"), "address_2": address.get("address2"),
              "city": address.get("city"), "state": address.get("region"), "zip_code": address.get("postcode"),
              "country": address.get("country")}
    return {k: str(v) for k, v in mapped.items() if v}


def encode_address(address: dict[str, Any] | None) -> dict[str, str]:
    """A one-off address (InstantCard's names: full_name, address_1, state, zip_code, …) as form keys."""
    if not address:
        return {}
    return {form_key: str(address[key]) for key, form_key in _ADDRESS_KEYS.items() if address.get(key)}


# -- answer parsing: the one place that knows InstantCard's response shapes -------------------------------
def _invalid(what: str, body: Any) -> ProviderResponseInvalid:
    return ProviderResponseInvalid(PROVIDER, f"the answer has no {what}", body=body)


def _is_print_job(body: Any) -> bool:
    """Whether an answer InstantCard does not describe (add cards, submit) is a print job we can read.

    Anything else (`{"success": true}`, a message, nothing) is an acknowledgement, not a broken answer: the
    call worked and the service does not need what it returns."""
    obj = _unwrap(body, "print_job")
    return isinstance(obj, dict) and _id(obj.get("id")) is not None


def _unwrap(body: Any, *names: str) -> Any:
    """`{"card": {...}}`, `{"data": {...}}` or the object itself."""
    if isinstance(body, dict):
        for name in (*names, "data"):
            inner = body.get(name)
            if isinstance(inner, dict):
                return inner
    return body


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str) and str(value).strip():
        return str(value).strip()
    return None


def _datetime(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def parse_token(body: Any, *, now: datetime) -> CachedToken:
    """The login answer: a token under `token`/`auth_token`/`access_token`/`jwt`, and its expiry if told."""
    inner = _unwrap(body, "user", "session")
    token = None
    for source in (body, inner):
        if isinstance(source, dict):
            token = next((source[k] for k in ("token", "auth_token", "access_token", "jwt")
                          if isinstance(source.get(k), str) and source[k]), None)
            if token:
                break
    if isinstance(body, str) and body:
        token = body
    if not token:
        raise _invalid("token", "<redacted>")
    expires_at = None
    for source in (body, inner):
        if not isinstance(source, dict) or expires_at:
            continue
        if source.get("expires_at") is not None:
            expires_at = _datetime(source["expires_at"])
        elif isinstance(source.get("expires_in"), int | float):
            expires_at = now + timedelta(seconds=float(source["expires_in"]))
        elif isinstance(source.get("exp"), int | float):
            expires_at = _datetime(source["exp"])
    return CachedToken(token=token, expires_at=expires_at or jwt_expiry(token))


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` claim of a JWT (read, not verified: it only tells us when to refresh), else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def parse_card_data(value: Any) -> dict[str, str]:
    """Card data as a dict: InstantCard sends a list of field objects (or a JSON string of one)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if isinstance(value, dict):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    result: dict[str, str] = {}
    if isinstance(value, list):
        for item in value:
            if not isinstance(item, dict):
                continue
            name = next((item[k] for k in ("name", "field_name", "label", "key") if item.get(k)), None)
            if name is not None:
                result[str(name)] = "" if item.get("value") is None else str(item.get("value"))
    return result


def parse_card(body: Any) -> Card:
    """A card object: `id` is required; template, data and `last_submitted_at` are read when present."""
    obj = _unwrap(body, "card")
    card_id = _id(obj.get("id")) if isinstance(obj, dict) else None
    if card_id is None:
        raise _invalid("card id", body)
    template = obj.get("card_template_id")
    return Card(id=card_id, template_id=int(template) if _id(template) and str(template).isdigit() else None,
                data=parse_card_data(obj.get("data")), last_submitted_at=_datetime(obj.get("last_submitted_at")),
                raw=body)


def parse_print_job(body: Any) -> PrintJob:
    """A print job object: `id` is required; `status` 0/1 (the codes Fetch All Print Jobs filters by) or words."""
    obj = _unwrap(body, "print_job")
    job_id = _id(obj.get("id")) if isinstance(obj, dict) else None
    if job_id is None:
        raise _invalid("print job id", body)
    status = obj.get("status")
    submitted: bool | None = None
    if status in (1, "1") or (isinstance(status, str) and status.lower() in ("submitted", "printed", "shipped")):
        submitted = True
    elif status in (0, "0") or (isinstance(status, str) and status.lower() in ("created", "open", "draft")):
        submitted = False
    return PrintJob(id=job_id, submitted=submitted, created_at=_datetime(obj.get("created_at")), raw=body)


def parse_list(body: Any, name: str, *other_names: str) -> list[Any]:
    """A listing: a bare array, or one under `name` (or `other_names`), `data`, `results` or `items`."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in (name, *other_names, "data", "results", "items"):
            if isinstance(body.get(key), list):
                return body[key]
    raise _invalid(f"list of {name}", body)


def _name(obj: dict[str, Any], *keys: str) -> str | None:
    return next((str(obj[k]).strip() for k in keys if isinstance(obj.get(k), str) and obj[k].strip()), None)


def parse_organization(body: Any) -> Organization:
    """An organization: `id` and `name` (or `organization_name`/`title`), bare or wrapped; one of them is needed."""
    obj = _unwrap(body, "organization")
    if not isinstance(obj, dict):
        raise _invalid("organization", body)
    organization = Organization(id=_id(obj.get("id")), name=_name(obj, "name", "organization_name", "title"))
    if organization.id is None and organization.name is None:
        raise _invalid("organization id or name", body)
    return organization


def parse_card_template(item: Any) -> CardTemplate:
    """One card template of a listing: `id` is required, `name` (or `title`/`description`) read when present."""
    obj = _unwrap(item, "card_template")
    template_id = _id(obj.get("id")) if isinstance(obj, dict) else None
    if template_id is None:
        raise _invalid("card template id", item)
    return CardTemplate(id=template_id, name=_name(obj, "name", "title", "description"))


def parse_template_field(item: Any) -> str:
    """One template field's name: a bare string, or an object's `name` (or `field_name`/`label`/`key`)."""
    if isinstance(item, str) and item.strip():
        return item.strip()
    obj = _unwrap(item, "field", "card_template_field")
    name = _name(obj, "name", "field_name", "label", "key") if isinstance(obj, dict) else None
    if name is None:
        raise _invalid("template field name", item)
    return name


def parse_shipping_provider(item: Any) -> ShippingProvider:
    """One shipping provider of a listing: `id` is required, `name` (or `title`/`description`) read when present."""
    obj = _unwrap(item, "shipping_provider")
    provider_id = _id(obj.get("id")) if isinstance(obj, dict) else None
    if provider_id is None:
        raise _invalid("shipping provider id", item)
    return ShippingProvider(id=provider_id, name=_name(obj, "name", "title", "description"))


def parse_bool_answer(body: Any, keys: tuple[str, ...], what: str) -> bool:
    """`true`/`false` bare, as a string, or under one of `keys`."""
    candidates = [body] + ([body.get(k) for k in keys] if isinstance(body, dict) else [])
    for value in candidates:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    raise _invalid(f"true/false answer for {what}", body)


def parse_charge_details(body: Any) -> ChargeDetails:
    """`has_balance`, `items`, `job_total_cost`, `shipping_cost`; at least a cost or has_balance is needed."""
    obj = _unwrap(body, "charge_details")
    if not isinstance(obj, dict):
        raise _invalid("charge details", body)
    has_balance = obj.get("has_balance")
    if isinstance(has_balance, str):
        has_balance = has_balance.strip().lower() == "true"
    total = obj.get("job_total_cost", obj.get("total_cost"))
    if not isinstance(has_balance, bool) and total is None:
        raise _invalid("has_balance or job_total_cost in charge details", body)
    shipping = obj.get("shipping_cost")
    return ChargeDetails(
        has_balance=has_balance if isinstance(has_balance, bool) else None,
        job_total_cost_cents=parse_money_cents(total) if total is not None else None,
        shipping_cost_cents=parse_money_cents(shipping) if shipping is not None else None,
        items=obj.get("items") if isinstance(obj.get("items"), list) else [],
    )


def parse_balance(body: Any) -> int:
    """The organization balance answer: "$5.50", "($5.50)", or that string under `balance`."""
    value = body
    if isinstance(body, dict):
        inner = _unwrap(body, "organization")
        value = next((src["balance"] for src in (body, inner) if isinstance(src, dict) and "balance" in src), None)
    if value is None:
        raise _invalid("balance", body)
    return parse_money_cents(value)


_MONEY = re.compile(r"^(?P<neg>-)?\$?(?P<num>\d[\d,]*(?:\.\d+)?|\.\d+)$")


def parse_money_cents(value: Any) -> int:
    """Dollars as InstantCard writes them → integer cents: "$5.50" → 550, "($5.50)" → -550, 5.5 → 550."""
    if isinstance(value, bool):
        raise _invalid("amount of money", value)
    if isinstance(value, int | float | Decimal):
        amount = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip().replace(" ", "").upper().removeprefix("USD")
        negative = False
        if text.startswith("(") and text.endswith(")"):
            negative, text = True, text[1:-1]
        if text.startswith("-$"):
            text = "-" + text[2:]
        match = _MONEY.match(text)
        if not match:
            raise ProviderResponseInvalid(PROVIDER, f"cannot read the amount {value!r}", body=value)
        try:
            amount = Decimal(match.group("num").replace(",", ""))
        except InvalidOperation:
            raise ProviderResponseInvalid(PROVIDER, f"cannot read the amount {value!r}", body=value) from None
        if negative or match.group("neg"):
            amount = -amount
    else:
        raise _invalid("amount of money", value)
    if not amount.is_finite():
        raise ProviderResponseInvalid(PROVIDER, f"cannot read the amount {value!r}", body=value)
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def parse_preview(body: Any) -> Preview:
    """Front and back images: `front`/`back` (or `front_image`/`back_image`, or a two-item list)."""
    obj = _unwrap(body, "preview", "images")
    front = back = None
    if isinstance(obj, dict):
        front = next((obj[k] for k in ("front", "front_image", "front_url") if isinstance(obj.get(k), str)), None)
        back = next((obj[k] for k in ("back", "back_image", "back_url") if isinstance(obj.get(k), str)), None)
        images = obj.get("images")
        if (front is None or back is None) and isinstance(images, list) and len(images) >= 2:
            front, back = str(images[0]), str(images[1])
    elif isinstance(obj, list) and len(obj) >= 2:
        front, back = str(obj[0]), str(obj[1])
    if not front or not back:
        raise _invalid("front and back images", "<images>")
    return Preview(front=front, back=back)


def error_reason(body: Any) -> str | None:
    """InstantCard's error text: `error`, `message`, `errors` (list or dict)."""
    if isinstance(body, str):
        return body[:300]
    if not isinstance(body, dict):
        return None
    for key in ("error", "message", "errors", "detail"):
        value = body.get(key)
        if isinstance(value, str):
            return value[:300]
        if isinstance(value, list) and value:
            return "; ".join(str(v) for v in value)[:300]
        if isinstance(value, dict) and value:
            return "; ".join(f"{k}: {v}" for k, v in value.items())[:300]
    return None
