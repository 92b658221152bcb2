"""Instagift v2 merchant API client: the only module that knows Instagift's vocabulary.

Endpoints used (see docs/instagift.md): `GET claim_codes/{code}`, `POST claim_codes/{code}/redemptions`,
`GET certificates/{id}`, `POST certificates/{id}/redemptions`, `GET certificates?per_page=&page=&status=`,
`GET redemptions?per_page=&page=`. Merchant auth headers on every call, timeouts from settings, every response
parsed in one place (`_records`, `_page`), every error body mapped in one place (`_describe_error`).

Claim codes are bearer secrets. The code is never part of an exception message, a log line or anything
returned: requests are built with a `{claim_code}` placeholder in the path and the real code is put into
the URL by `_ClaimCodeSession` just before the request leaves, so the shared HTTP helper's messages and
logs only ever see the placeholder. `ClaimCode` (what `parse_claim_code` makes of the shopper's text) shows
only its last four characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import requests

from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderResponseInvalid,
)
from service.logs import mask
from service.providers.http import ProviderHttp, ProviderResponse
from service.providers.settings import InstagiftSettings

log = logging.getLogger("service.providers.instagift")

PROVIDER = "instagift"

# Statuses the docs list; only assigned and gifted certificates can still be redeemed.
REDEEMABLE_STATUSES = frozenset({"assigned", "gifted"})
UNREDEEMABLE_STATUSES = frozenset({"redeemed", "cancelled", "returned", "pending"})

# 400 "details" texts of the redemption endpoints → our stable reasons (matched case-insensitively).
REJECTION_REASONS = (
    ("previously been redeemed", "previously_redeemed"),
    ("not available for redemption", "not_available"),
    ("refunded", "refunded"),
    ("select a redemption location", "location_required"),
)

_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")
_CLAIM_CODE_SHAPE = re.compile(r"[A-Z0-9]{8,20}")
# Hyphen-minus and the Unicode hyphens and dashes a copy from a PDF or an e-mail brings ("MNK–QPF27E—EHJ3").
_HYPHENS = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_TYPED_CLAIM_CODE = re.compile(rf"[A-Za-z0-9\s{re.escape(_HYPHENS)}]*")
_SEPARATOR_RUN = re.compile(rf"[\s{re.escape(_HYPHENS)}]+")
# How Instagift prints bare codes of these lengths (Ecommerce Integration › Integration Steps, the examples
# "U4KR-9CLT-3KNPU4" and "MNK-QPF27E-EHJ3"; the certificate samples print 14-character codes 4-4-6 too).
DOCUMENTED_GROUPINGS: dict[int, tuple[int, ...]] = {14: (4, 4, 6), 13: (3, 6, 4)}
_CODE_PLACEHOLDER = "{claim_code}"
_CODE_HEADER = "X-Service-Claim-Code"  # consumed by _ClaimCodeSession, never sent on the wire


def normalise_claim_code(raw: str) -> str:
    """The canonical form of a claim code: upper-case letters and digits only ('62dd-cv4t r2ntm2' → '62DDCV4TR2NTM2').

    Two spellings of one card have the same canonical form, so it is what "already applied" compares (as an
    HMAC). It is not a check: `parse_claim_code` refuses text with other characters before this matters.
    """
    if not isinstance(raw, str):
        return ""
    return _NOT_ALPHANUMERIC.sub("", raw).upper()


def looks_like_claim_code(normalised: str) -> bool:
    """True when a normalised code has the shape of an Instagift claim code (8–20 ASCII letters/digits)."""
    return bool(normalised) and _CLAIM_CODE_SHAPE.fullmatch(normalised) is not None


def documented_grouping(canonical: str) -> str | None:
    """A bare code of a length Instagift prints in groups, hyphenated that way ('U4KR9CLT3KNPU4' → 'U4KR-9CLT-3KNPU4')."""
    sizes = DOCUMENTED_GROUPINGS.get(len(canonical))
    if sizes is None:
        return None
    groups, start = [], 0
    for size in sizes:
        groups.append(canonical[start:start + size])
        start += size
    return "-".join(groups)


@dataclass(frozen=True)
class ClaimCode:
    """A claim code as the shopper typed it, in the forms Instagift may know it by; shows only its last four.

    `printed` keeps the shopper's grouping: upper-case, trimmed, each run of spaces and/or hyphens between two
    groups made one hyphen (" e69w cdq2 wtwh6y " → "E69W-CDQ2-WTWH6Y", "E69W--CDQ2 - WTWH6Y" → the same).
    `canonical` is letters and digits only ("E69WCDQ2WTWH6Y").
    """

    printed: str = field(repr=False)
    canonical: str = field(repr=False)

    def __repr__(self) -> str:
        return f"ClaimCode({mask(self.canonical)})"

    @property
    def typed_with_separators(self) -> bool:
        """True when the shopper split the code into groups (spaces or hyphens)."""
        return self.printed != self.canonical

    @property
    def last4(self) -> str:
        return self.canonical[-4:]

    def lookup_forms(self) -> tuple[str, ...]:
        """The forms to send, in order; the second is tried only when Instagift answers 404 to the first.

        The docs put the printed form in every URL (Claim Codes' sample requests), so a documented form goes
        first: the shopper's grouping, or, for a code typed bare whose length Instagift prints in groups, that
        grouping; the bare code is the fallback. Other bare codes are sent as typed. At most two forms.
        """
        if self.typed_with_separators:
            return (self.printed, self.canonical)
        grouped = documented_grouping(self.canonical)
        return (grouped, self.canonical) if grouped else (self.canonical,)


def parse_claim_code(raw: object) -> ClaimCode | None:
    """What the shopper typed as a ClaimCode, or None when it cannot be one (checked before any provider call).

    Allowed: ASCII letters, digits, white space and hyphens (Unicode hyphens and dashes count as hyphens), and
    8–20 letters and digits in all. Anything else (dots, slashes, quotes, other letters…) is refused.
    """
    if not isinstance(raw, str) or _TYPED_CLAIM_CODE.fullmatch(raw) is None:
        return None
    groups = [group for group in _SEPARATOR_RUN.split(raw.upper()) if group]
    canonical = "".join(groups)
    if not looks_like_claim_code(canonical):
        return None
    return ClaimCode(printed="-".join(groups), canonical=canonical)


def claim_code_for_url(form: str) -> str:
    """One form of a claim code made safe for an Instagift URL path (hyphens stay as they are)."""
    return quote(form, safe="-")


def _parse_time(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ProviderResponseInvalid(PROVIDER, f"{field} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProviderResponseInvalid(PROVIDER, f"{field} is not a timestamp") from exc
    if parsed.tzinfo is None:
        raise ProviderResponseInvalid(PROVIDER, f"{field} has no time zone")
    return parsed


def _time_or_none(value: Any) -> datetime | None:
    # Only the read-backs use a certificate's created_at (to tell a list's order): a lookup must not fail on it.
    try:
        return _parse_time(value, "created_at")
    except ProviderResponseInvalid:
        return None


def _parse_cents(value: Any, field: str) -> int:
    # The docs show amounts both as integers and as strings ("4000"); accept either.
    if isinstance(value, bool):
        raise ProviderResponseInvalid(PROVIDER, f"{field} is not an amount in cents")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ProviderResponseInvalid(PROVIDER, f"{field} is not an amount in cents")


def _require(record: dict[str, Any], key: str, kind: str) -> Any:
    if key not in record or record[key] is None:
        raise ProviderResponseInvalid(PROVIDER, f"{kind} is missing {key!r}")
    return record[key]


def _links(record: dict[str, Any]) -> dict[str, Any]:
    links = record.get("links")
    return links if isinstance(links, dict) else {}


@dataclass(frozen=True)
class Certificate:
    id: str
    status: str
    splittable: bool
    currency: str
    face_value_cents: int
    expires_at: datetime | None
    parent_id: str | None
    claim_code_last4: str
    product_title: str | None
    created_at: datetime | None = None

    @property
    def balance_cents(self) -> int:
        """What the certificate is worth now (Instagift's face_value_cents)."""
        return self.face_value_cents

    def unredeemable_reason(self, now: datetime) -> str | None:
        """None when the certificate can be redeemed now, else why not (its status, or 'expired')."""
        if self.status in UNREDEEMABLE_STATUSES:
            return self.status
        if self.status not in REDEEMABLE_STATUSES:
            return self.status or "unknown"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Certificate:
        """Read one certificate object of the Instagift API, failing clearly on what is missing."""
        kind = "certificate"
        splittable = _require(record, "can_split_value", kind)
        if not isinstance(splittable, bool):
            raise ProviderResponseInvalid(PROVIDER, "certificate can_split_value is not true/false")
        parent = record.get("parent_id") or _links(record).get("parent")
        code = normalise_claim_code(record.get("claim_code") or "")
        return cls(
            id=str(_require(record, "id", kind)),
            status=str(_require(record, "status", kind)).lower(),
            splittable=splittable,
            currency=str(_require(record, "currency", kind)).upper(),
            face_value_cents=_parse_cents(_require(record, "face_value_cents", kind), "face_value_cents"),
            expires_at=_parse_time(record.get("expires_at"), "expires_at"),
            parent_id=str(parent) if parent else None,
            claim_code_last4=code[-4:] if code else "",
            product_title=record.get("product_title") or record.get("title"),
            created_at=_time_or_none(record.get("created_at")),
        )


@dataclass(frozen=True)
class Redemption:
    id: str
    amount_cents: int
    certificate_id: str | None
    created_at: datetime | None
    source: str | None
    location_id: str | None
    amount_paid_cents: int | None = None

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Redemption:
        """Read one redemption object of the Instagift API, failing clearly on what is missing."""
        links = _links(record)
        paid = record.get("amount_paid_cents")
        certificate = links.get("certificate") or record.get("certificate_id")
        location = links.get("location") or record.get("location_id")
        return cls(
            id=str(_require(record, "id", "redemption")),
            amount_cents=_parse_cents(_require(record, "amount_cents", "redemption"), "amount_cents"),
            certificate_id=str(certificate) if certificate else None,
            created_at=_parse_time(record.get("created_at"), "created_at"),
            source=record.get("source"),
            location_id=str(location) if location else None,
            amount_paid_cents=None if paid is None else _parse_cents(paid, "amount_paid_cents"),
        )


# --- reading lists newest first --------------------------------------------------------------------------
#
# The docs show list pages with `meta` (page, per_page, page_count, total_count, links.first/previous/next/last)
# but do not say in which order records come. The read-backs (a split's child, an uncertain redemption) look
# for something that happened at most minutes ago, so they read the newest records first and stop at records
# older than that; what they cost depends on what happened since, not on the merchant's history.

LIST_PER_PAGE = 100  # asked for; a smaller page than asked is fine (page numbers are the server's)
READ_BACK_MAX_PAGES = 20  # list calls one read-back may make when `meta` says where the last page is
FORWARD_WALK_MAX_PAGES = 100  # ... and when it says nothing (oldest first and no `meta`: read forward)
# Records this much older than our attempt are still read: Instagift's clock and ours may disagree.
READ_BACK_CLOCK_SKEW = timedelta(minutes=10)
AVAILABLE = "available"  # the `status` filter of the docs' sample request (List all Certificates)
_NEWEST_FIRST, _OLDEST_FIRST = "newest_first", "oldest_first"
_EARLIEST = datetime.min.replace(tzinfo=UTC)

_Listed = TypeVar("_Listed", Certificate, Redemption)


@dataclass(frozen=True)
class ListPage(Generic[_Listed]):
    """One page of a list endpoint; `last_page` is what its `meta` says (None when it says nothing usable)."""

    number: int
    records: list[_Listed]
    last_page: int | None = None


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _last_page(meta: Any) -> int | None:
    """The last page number `meta` implies, or None; liberal, since only the docs' sample describes it.

    The largest of `page_count`, the `page` of `links.last` and ceil(total_count / per_page): the docs' own sample
    says page_count 1 with total_count 13 at 10 a page, and reading one page past the end only costs an empty page.
    """
    if not isinstance(meta, dict):
        return None
    estimates = [_whole_number(meta.get("page_count"))]
    links = meta.get("links")
    last = links.get("last") if isinstance(links, dict) else None
    if isinstance(last, str):
        estimates.append(_whole_number((parse_qs(urlsplit(last).query).get("page") or [None])[-1]))
    total, per_page = _whole_number(meta.get("total_count")), _whole_number(meta.get("per_page"))
    if total is not None and per_page:
        estimates.append(-(-total // per_page))
    known = [n for n in estimates if n is not None]
    return max(1, *known) if known else None


def _not_before(since: datetime | None) -> datetime | None:
    return None if since is None else since - READ_BACK_CLOCK_SKEW


def _order(records: list[_Listed]) -> str | None:
    """Which way a page runs, from its first and last `created_at` (None when it cannot tell)."""
    times = [r.created_at for r in records if r.created_at is not None]
    if len(times) < 2 or times[0] == times[-1]:
        return None
    return _NEWEST_FIRST if times[0] > times[-1] else _OLDEST_FIRST


def _newest_match(records: list[_Listed], wanted: Callable[[_Listed], bool], order: str | None) -> _Listed | None:
    newest_first = records if order == _NEWEST_FIRST else list(reversed(records))
    matches = [r for r in newest_first if wanted(r)]
    # By created_at; among equal (or missing) times the one nearer the newest end of the page.
    return max(matches, key=lambda r: r.created_at or _EARLIEST) if matches else None


def _older_than(records: list[_Listed], not_before: datetime | None) -> bool:
    return not_before is not None and any(r.created_at is not None and r.created_at < not_before for r in records)


def _newest_first(read: Callable[[int], ListPage[_Listed]], wanted: Callable[[_Listed], bool],
                  not_before: datetime | None, max_pages: int) -> _Listed | None:
    """The newest record `wanted` picks, reading a paged list from its newest end; None when not found.

    Page 1 (asked with LIST_PER_PAGE) tells the order (its `created_at`s) and, in `meta`, where the last page is.
    Newest first: read forward from page 1. Oldest first, or no way to tell: jump to the last page and read
    backwards. Either way stop at the first page holding a match, or a record older than `not_before`, or after
    `max_pages` calls. Without `meta` and not newest first, walk forward (at most FORWARD_WALK_MAX_PAGES pages)
    keeping the newest match: the only way to reach the end of a list that does not say where it ends.
    """
    first = read(1)
    order = _order(first.records)
    found = _newest_match(first.records, wanted, order)
    if order == _NEWEST_FIRST:
        page, number = first, 1
        while found is None and page.records and not _older_than(page.records, not_before):
            number += 1
            if number > max_pages or (first.last_page is not None and number > first.last_page):
                break
            page = read(number)
            found = _newest_match(page.records, wanted, order)
        return found
    if found is not None and order is None:
        return found  # a page that cannot say which way it runs: its match is as good as any
    if first.last_page is None:
        number, seen = 1, {r.id for r in first.records}
        while first.records and number < FORWARD_WALK_MAX_PAGES:
            number += 1
            page = read(number)
            ids = {r.id for r in page.records}
            if not ids or ids <= seen:  # the end, or a provider ignoring `page`
                break
            seen |= ids
            found = _newest_match(page.records, wanted, order) or found  # later pages hold newer records
            if len(page.records) < len(first.records):  # a short page is the last
                break
        return found
    calls = 1
    for number in range(first.last_page, 1, -1):
        if calls >= max_pages:
            log.warning("instagift: read-back gave up after %d list calls without reaching its start", calls)
            return None
        page = read(number)
        calls += 1
        match = _newest_match(page.records, wanted, _order(page.records) or order)
        if match is not None:
            return match
        if _older_than(page.records, not_before):
            return None
    return found  # read every page down to page 1


class _ClaimCodeSession(requests.Session):
    """Puts the claim code into the URL at the last moment, so no message or log line upstream holds it."""

    def request(self, method, url, *args, headers=None, **kwargs):
        headers = dict(headers or {})
        code = headers.pop(_CODE_HEADER, None)
        if code is not None:
            url = url.replace(_CODE_PLACEHOLDER, code)
        return super().request(method, url, *args, headers=headers, **kwargs)


def _scrubbed(exc: ProviderError, forms: tuple[str, ...]) -> ProviderError:
    """Drop the transport error chain (requests puts the full URL, code included, in its messages)."""
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
    for code in forms:  # belt and braces: the message should only hold the placeholder
        if code and code in exc.message:
            exc.message = exc.message.replace(code, mask(code))
            exc.detail = f"{exc.provider}: {exc.message}"
            exc.args = (exc.detail,)
    return exc


def _check_amount(amount_cents: int | None) -> None:
    if amount_cents is None:
        return
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise ValueError("amount_cents must be a positive integer number of cents")
    if amount_cents % 100:
        # Instagift would silently round down; the money module never asks for cents, so this is a bug.
        raise ValueError("Instagift redeems whole dollars only; amount_cents must be a multiple of 100")


class InstagiftClient:
    """Talks to Instagift's merchant API (or the sandbox) with merchant key and secret."""

    provider = PROVIDER

    def __init__(self, base_url: str, merchant_key: str, merchant_secret: str, *,
                 location_id: str | None = None, timeout_seconds: float = 10.0,
                 connect_timeout_seconds: float = 3.05,
                 session_factory: Callable[[], requests.Session] = _ClaimCodeSession):
        self.location_id = location_id
        self.http = ProviderHttp(
            PROVIDER, base_url,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=min(connect_timeout_seconds, timeout_seconds),
            default_headers={"X-Merchant-Key": merchant_key, "X-Merchant-Secret": merchant_secret},
            describe_error=self._describe_error,
            session_factory=session_factory,
        )

    @classmethod
    def from_settings(cls, s: InstagiftSettings) -> InstagiftClient:
        """A client for the configured Instagift API (or the sandbox in development)."""
        return cls(s.api_url, s.merchant_key, s.merchant_secret, location_id=s.location_id,
                   timeout_seconds=s.timeout_seconds)

    # --- claim codes -------------------------------------------------------------------------------------

    def fetch_by_claim_code(self, claim_code: str | ClaimCode) -> Certificate:
        """Look a certificate up by claim code (see `ClaimCode.lookup_forms`); malformed codes raise
        ProviderNotFound without a call."""
        response = self._by_claim_code(self._claim_code(claim_code), "GET", f"claim_codes/{_CODE_PLACEHOLDER}",
                                       operation="fetch_by_claim_code")
        return self._one_certificate(response)

    def redeem_by_claim_code(self, claim_code: str | ClaimCode, amount_cents: int | None) -> Redemption:
        """Redeem by claim code (whole face value when amount_cents is None), in the form Instagift knows.

        The service itself redeems by certificate id; this exists for the sandbox and for completeness. A 404
        redeems nothing, so trying the other form after one is safe. Claim Codes › Redeem a Certificate by Claim
        Code documents `amount_to_redeem_cents` only, so no location is sent (Redeem a Certificate takes one).
        """
        _check_amount(amount_cents)
        response = self._by_claim_code(self._claim_code(claim_code), "POST",
                                       f"claim_codes/{_CODE_PLACEHOLDER}/redemptions",
                                       operation="redeem_by_claim_code",
                                       json_body=self._redemption_body(amount_cents, None))
        return self._one_redemption(response)

    # --- certificates ------------------------------------------------------------------------------------

    def fetch_certificate(self, certificate_id: str) -> Certificate:
        """Read a certificate back by id (used before any retry of an uncertain redemption)."""
        response = self.http.request("GET", f"certificates/{quote(str(certificate_id), safe='')}",
                                     operation="fetch_certificate")
        return self._one_certificate(response)

    def redeem_certificate(self, certificate_id: str, amount_cents: int | None,
                           location_id: str | None = None) -> Redemption:
        """Redeem by certificate id (whole face value when amount_cents is None)."""
        _check_amount(amount_cents)
        response = self.http.request("POST", f"certificates/{quote(str(certificate_id), safe='')}/redemptions",
                                     operation="redeem_certificate",
                                     json_body=self._redemption_body(amount_cents, location_id or self.location_id))
        return self._one_redemption(response)

    def certificate_page(self, page: int = 1, *, per_page: int = LIST_PER_PAGE,
                         status: str | None = None) -> ListPage[Certificate]:
        """One page of the merchant's certificates (optionally only those with `status`, e.g. "available")."""
        params: dict[str, Any] = {"per_page": per_page, "page": page}
        if status:
            params["status"] = status
        response = self.http.request("GET", "certificates", operation="list_certificates", params=params)
        return self._page(response, page, "certificates", Certificate.from_record)

    def list_certificates(self, page: int = 1, *, status: str | None = None) -> list[Certificate]:
        """One page of the merchant's certificates; an empty list means past the last page."""
        return self.certificate_page(page, status=status).records

    def count_certificates(self) -> int | None:
        """The merchant's certificate count (`meta.total_count`, None when not given) from a one-item listing.

        A cheap read that needs the merchant key and secret, so it also proves they are accepted. The records
        themselves carry claim codes and are not read."""
        response = self.http.request("GET", "certificates", operation="count_certificates",
                                     params={"per_page": 1, "page": 1})
        self._records(response, "certificates")  # the answer must be a listing, even when not parsed further
        meta = response.body.get("meta")
        total = meta.get("total_count") if isinstance(meta, dict) else None
        return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None

    def find_child_certificate(self, parent_id: str, *, since: datetime | None = None,
                               max_pages: int = READ_BACK_MAX_PAGES) -> Certificate | None:
        """The certificate a partial redemption made at or after `since` split off `parent_id`, or None.

        Instagift has no "children of" query, so this reads the available certificates newest first (see
        `_newest_first`): usually two calls, whatever the merchant's history. None when not found within
        `max_pages` pages or before records older than `since` (less the clock skew allowance).
        """
        return _newest_first(lambda page: self.certificate_page(page, status=AVAILABLE),
                             lambda certificate: certificate.parent_id == parent_id, _not_before(since), max_pages)

    # --- redemptions -------------------------------------------------------------------------------------

    def redemption_page(self, page: int = 1, *, per_page: int = LIST_PER_PAGE) -> ListPage[Redemption]:
        """One page of the merchant's redemptions."""
        response = self.http.request("GET", "redemptions", operation="list_redemptions",
                                     params={"per_page": per_page, "page": page})
        return self._page(response, page, "redemptions", Redemption.from_record)

    def list_redemptions(self, page: int = 1) -> list[Redemption]:
        """One page of the merchant's redemptions; an empty list means past the last page."""
        return self.redemption_page(page).records

    def find_redemption(self, certificate_id: str, amount_cents: int, *, since: datetime | None = None,
                        max_pages: int = READ_BACK_MAX_PAGES) -> Redemption | None:
        """The newest redemption of `amount_cents` from `certificate_id` made at or after `since`, or None.

        Reads the redemption list newest first (see `_newest_first`); without `meta` (the docs' sample of this
        list shows none) it falls back to a forward walk of at most FORWARD_WALK_MAX_PAGES pages.
        """
        return _newest_first(self.redemption_page,
                             lambda r: r.certificate_id == certificate_id and r.amount_cents == amount_cents,
                             _not_before(since), max_pages)

    def iter_redemptions(self, *, max_pages: int = 10_000) -> Iterator[Redemption]:
        """Every redemption, page after page until an empty page."""
        seen_first_ids: set[str] = set()
        for page in range(1, max_pages + 1):
            redemptions = self.list_redemptions(page)
            if not redemptions:
                return
            # A provider that ignores `page` would make this loop forever; stop loudly instead.
            if redemptions[0].id in seen_first_ids:
                raise ProviderResponseInvalid(PROVIDER, f"redemptions page {page} repeats an earlier page")
            seen_first_ids.add(redemptions[0].id)
            yield from redemptions
        raise ProviderResponseInvalid(PROVIDER, f"redemptions did not end within {max_pages} pages")

    # --- one place for parsing and errors ----------------------------------------------------------------

    @staticmethod
    def _redemption_body(amount_cents: int | None, location_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if amount_cents is not None:
            # Every sample request writes the amount as a string of digits ('{"amount_to_redeem_cents":"4000"}'):
            # that is the form sent.
            body["amount_to_redeem_cents"] = str(int(amount_cents))
        if location_id:
            body["redemption_location_id"] = location_id
        return body

    @staticmethod
    def _claim_code(claim_code: str | ClaimCode) -> ClaimCode:
        code = claim_code if isinstance(claim_code, ClaimCode) else parse_claim_code(claim_code)
        if code is None:
            # Malformed codes never reach Instagift; callers answer them exactly like unknown codes.
            raise ProviderNotFound(PROVIDER, "no certificate has that claim code", reason="malformed")
        return code

    def _by_claim_code(self, code: ClaimCode, method: str, path: str, **kwargs: Any) -> ProviderResponse:
        """One attempt: the first form, then (only after a 404) the second; at most two calls."""
        forms = code.lookup_forms()
        for number, form in enumerate(forms, start=1):
            try:
                return self._with_code(form, forms, method, path, **kwargs)
            except ProviderNotFound:
                if number == len(forms):
                    raise
                # The first form is grouped (as typed, or as Instagift prints it); the second is the bare code.
                log.info("instagift: claim code %s not found grouped %s; trying it without hyphens",
                         mask(code.canonical), "as typed" if code.typed_with_separators else "as Instagift prints it")
        raise AssertionError("unreachable: lookup_forms is never empty")

    def _with_code(self, form: str, every_form: tuple[str, ...], method: str, path: str,
                   **kwargs: Any) -> ProviderResponse:
        try:
            return self.http.request(method, path, headers={_CODE_HEADER: claim_code_for_url(form)}, **kwargs)
        except ProviderError as exc:
            raise _scrubbed(exc, every_form) from None

    @staticmethod
    def _records(response: ProviderResponse, key: str) -> list[dict[str, Any]]:
        body = response.body
        if not isinstance(body, dict):
            raise ProviderResponseInvalid(PROVIDER, f"the answer is not a JSON object with {key!r}",
                                          http_status=response.status, request_id=response.request_id)
        if key not in body:
            raise ProviderResponseInvalid(PROVIDER, f"the answer is missing {key!r}",
                                          http_status=response.status, request_id=response.request_id)
        records = body[key]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ProviderResponseInvalid(PROVIDER, f"{key!r} is not a list of objects",
                                          http_status=response.status, request_id=response.request_id)
        return records

    def _page(self, response: ProviderResponse, number: int, key: str,
              parse: Callable[[dict[str, Any]], _Listed]) -> ListPage[_Listed]:
        records = [parse(record) for record in self._records(response, key)]
        meta = response.body.get("meta")
        return ListPage(number=number, records=records, last_page=_last_page(meta))

    def _one_certificate(self, response: ProviderResponse) -> Certificate:
        records = self._records(response, "certificates")
        if not records:
            raise ProviderResponseInvalid(PROVIDER, "'certificates' is empty", http_status=response.status,
                                          request_id=response.request_id)
        return Certificate.from_record(records[0])

    def _one_redemption(self, response: ProviderResponse) -> Redemption:
        records = self._records(response, "redemptions")
        if not records:
            raise ProviderResponseInvalid(PROVIDER, "'redemptions' is empty", http_status=response.status,
                                          request_id=response.request_id)
        return Redemption.from_record(records[0])

    @staticmethod
    def _error_text(response: ProviderResponse) -> tuple[str, str]:
        body = response.body if isinstance(response.body, dict) else {}
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        return str(first.get("title") or ""), str(first.get("details") or first.get("detail") or "")

    def _describe_error(self, response: ProviderResponse) -> ProviderError | None:
        title, details = self._error_text(response)
        said = "; ".join(part for part in (title, details) if part) or f"HTTP {response.status}"
        common = dict(http_status=response.status, body=response.body, request_id=response.request_id)
        if response.status in (401, 403):
            return ProviderAuthError(PROVIDER, f"merchant credentials were refused ({said})", **common)
        if response.status == 404:
            return ProviderNotFound(PROVIDER, "no such certificate, claim code or redemption", **common,
                                    reason="not_found")
        if response.status == 400:
            text = details.lower() or title.lower()
            reason = next((r for needle, r in REJECTION_REASONS if needle in text), "rejected")
            return ProviderRejected(PROVIDER, said, reason=reason, **common)
        return ProviderRejected(PROVIDER, said, reason="rejected", **common)
