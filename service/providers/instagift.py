"""Instagift v2 merchant API client: the only module that knows Instagift's vocabulary.

Endpoints used (see docs/instagift.md): `GET claim_codes/{code}`, `POST claim_codes/{code}/redemptions`,
`GET certificates/{id}`, `POST certificates/{id}/redemptions`, `GET certificates?page=n`,
`GET redemptions?page=n`. Merchant auth headers on every call, timeouts from settings, every response
parsed in one place (`_records`), every error body mapped in one place (`_describe_error`).

Claim codes are bearer secrets. The code is never part of an exception message, a log line or anything
returned: requests are built with a `{claim_code}` placeholder in the path and the real code is put into
the URL by `_ClaimCodeSession` just before the request leaves, so the shared HTTP helper's messages and
logs only ever see the placeholder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from service.config import InstagiftSettings
from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderResponseInvalid,
)
from service.logs import mask
from service.providers.http import ProviderHttp, ProviderResponse

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
_CODE_PLACEHOLDER = "{claim_code}"
_CODE_HEADER = "X-Service-Claim-Code"  # consumed by _ClaimCodeSession, never sent on the wire


def normalise_claim_code(raw: str) -> str:
    """Upper-case and drop spaces, hyphens and any other separators: ' 62dd-cv4t r2ntm2 ' → '62DDCV4TR2NTM2'."""
    if not isinstance(raw, str):
        return ""
    return _NOT_ALPHANUMERIC.sub("", raw).upper()


def looks_like_claim_code(normalised: str) -> bool:
    """True when a normalised code has the shape of an Instagift claim code (8–20 ASCII letters/digits)."""
    return bool(normalised) and _CLAIM_CODE_SHAPE.fullmatch(normalised) is not None


def claim_code_for_url(normalised: str) -> str:
    """The form of a normalised claim code put into Instagift URLs (the one place to change it)."""
    # Instagift prints codes with hyphens but their position varies ("MNK-QPF27E-EHJ3", "U4KR-9CLT-3KNPU4"),
    # so the shopper's hyphenation cannot be rebuilt; we send the bare code, which the sandbox also accepts.
    return quote(normalised, safe="")


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


class _ClaimCodeSession(requests.Session):
    """Puts the claim code into the URL at the last moment, so no message or log line upstream holds it."""

    def request(self, method, url, *args, headers=None, **kwargs):
        headers = dict(headers or {})
        code = headers.pop(_CODE_HEADER, None)
        if code is not None:
            url = url.replace(_CODE_PLACEHOLDER, code)
        return super().request(method, url, *args, headers=headers, **kwargs)


def _scrubbed(exc: ProviderError, code: str) -> ProviderError:
    """Drop the transport error chain (requests puts the full URL, code included, in its messages)."""
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
    if code and code in exc.message:  # belt and braces: the message should only hold the placeholder
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
                 connect_timeout_seconds: float = 3.05, session: requests.Session | None = None):
        self.location_id = location_id
        self.http = ProviderHttp(
            PROVIDER, base_url,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=min(connect_timeout_seconds, timeout_seconds),
            default_headers={"X-Merchant-Key": merchant_key, "X-Merchant-Secret": merchant_secret},
            describe_error=self._describe_error,
            session=session or _ClaimCodeSession(),
        )

    @classmethod
    def from_settings(cls, s: InstagiftSettings) -> InstagiftClient:
        """A client for the configured Instagift API (or the sandbox in development)."""
        return cls(s.api_url, s.merchant_key, s.merchant_secret, location_id=s.location_id,
                   timeout_seconds=s.timeout_seconds)

    # --- claim codes -------------------------------------------------------------------------------------

    def fetch_by_claim_code(self, claim_code: str) -> Certificate:
        """Look a certificate up by claim code; malformed codes raise ProviderNotFound without a call."""
        code = self._url_code(claim_code)
        response = self._with_code(code, "GET", f"claim_codes/{_CODE_PLACEHOLDER}")
        return self._one_certificate(response)

    def redeem_by_claim_code(self, claim_code: str, amount_cents: int | None,
                             location_id: str | None = None) -> Redemption:
        """Redeem by claim code (whole face value when amount_cents is None)."""
        _check_amount(amount_cents)
        code = self._url_code(claim_code)
        response = self._with_code(code, "POST", f"claim_codes/{_CODE_PLACEHOLDER}/redemptions",
                                   json_body=self._redemption_body(amount_cents, location_id))
        return self._one_redemption(response)

    # --- certificates ------------------------------------------------------------------------------------

    def fetch_certificate(self, certificate_id: str) -> Certificate:
        """Read a certificate back by id (used before any retry of an uncertain redemption)."""
        response = self.http.request("GET", f"certificates/{quote(str(certificate_id), safe='')}")
        return self._one_certificate(response)

    def redeem_certificate(self, certificate_id: str, amount_cents: int | None,
                           location_id: str | None = None) -> Redemption:
        """Redeem by certificate id (whole face value when amount_cents is None)."""
        _check_amount(amount_cents)
        response = self.http.request("POST", f"certificates/{quote(str(certificate_id), safe='')}/redemptions",
                                     json_body=self._redemption_body(amount_cents, location_id))
        return self._one_redemption(response)

    def list_certificates(self, page: int = 1) -> list[Certificate]:
        """One page of the merchant's certificates; an empty list means past the last page."""
        response = self.http.request("GET", "certificates", params={"page": page})
        return [Certificate.from_record(r) for r in self._records(response, "certificates")]

    def count_certificates(self) -> int | None:
        """The merchant's certificate count (`meta.total_count`, None when not given) from a one-item listing.

        A cheap read that needs the merchant key and secret, so it also proves they are accepted. The records
        themselves carry claim codes and are not read."""
        response = self.http.request("GET", "certificates", params={"per_page": 1, "page": 1})
        self._records(response, "certificates")  # the answer must be a listing, even when not parsed further
        meta = response.body.get("meta")
        total = meta.get("total_count") if isinstance(meta, dict) else None
        return total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None

    def find_child_certificate(self, parent_id: str, *, max_pages: int = 200) -> Certificate | None:
        """The certificate a partial redemption split off `parent_id`, or None.

        Instagift has no "children of" query, so this walks the merchant's certificate list page by page:
        one request per page until the child is found or a page is empty (cost grows with the merchant's
        certificate count; call it once per split, from a job, never from a shopper's request).
        """
        for page in range(1, max_pages + 1):
            certificates = self.list_certificates(page)
            if not certificates:
                return None
            for certificate in certificates:
                if certificate.parent_id == parent_id:
                    return certificate
        return None

    # --- redemptions -------------------------------------------------------------------------------------

    def list_redemptions(self, page: int = 1) -> list[Redemption]:
        """One page of the merchant's redemptions; an empty list means past the last page."""
        response = self.http.request("GET", "redemptions", params={"page": page})
        return [Redemption.from_record(r) for r in self._records(response, "redemptions")]

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

    def _redemption_body(self, amount_cents: int | None, location_id: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if amount_cents is not None:
            body["amount_to_redeem_cents"] = int(amount_cents)  # the docs show a string; we send an integer
        location = location_id or self.location_id
        if location:
            body["redemption_location_id"] = location
        return body

    def _url_code(self, claim_code: str) -> str:
        normalised = normalise_claim_code(claim_code)
        if not looks_like_claim_code(normalised):
            # Malformed codes never reach Instagift; callers answer them exactly like unknown codes.
            raise ProviderNotFound(PROVIDER, "no certificate has that claim code", reason="malformed")
        return claim_code_for_url(normalised)

    def _with_code(self, code: str, method: str, path: str, **kwargs: Any) -> ProviderResponse:
        try:
            return self.http.request(method, path, headers={_CODE_HEADER: code}, **kwargs)
        except ProviderError as exc:
            raise _scrubbed(exc, code) from None

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
