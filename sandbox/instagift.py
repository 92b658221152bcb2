"""Sandbox Instagift v2 merchant API: an in-memory fake that follows the provider doc.

Served at `/instagift/v2`. Merchant auth (`X-Merchant-Key` / `X-Merchant-Secret`, the sandbox credentials
of config.py), claim codes in URLs matched exactly as printed (the docs' only form; a setting also takes them
without hyphens), lists paged with `per_page`/`page` and the docs' `meta`, certificates filtered by `status`,
whole-dollar round-down of `amount_to_redeem_cents`; requests only in the documented forms (redemption bodies in
JSON, 406 otherwise; only the fields each endpoint documents, the amount as the samples write it, "4000"; list
queries with the documented parameters), 400 in the doc's error shape otherwise; partial redemption of a splittable certificate splits
it (the original drops to the redeemed amount and becomes `redeemed`, a new child certificate with a new
claim code holds the rest), non-splittable certificates are redeemed whole, the doc's error bodies.

Tests and the demo drive it through its state (in process: `app.extensions["sandbox"]["instagift"]`, an
`InstagiftSandboxState`) or `/instagift/v2/_control/…` (HTTP):
seeding certificates, spending in store, injecting faults. docs/instagift.md lists the demo claim codes,
the decisions taken where the doc is silent, and the fault-injection API.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
import secrets
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.documented import undocumented

MERCHANT_KEY = "sandbox-merchant-key"
MERCHANT_SECRET = "sandbox-merchant-secret"
MERCHANT_ID = "sandboxMerchant0000001"
USER_ID = "sandboxUser00000000001"
DEFAULT_LOCATION_ID = "sandboxLocation0000001"
DEFAULT_PER_PAGE = 10  # the docs' sample meta
MAX_PER_PAGE = 50  # the sandbox's own cap (the docs give none); the client asks for more, so it copes with less
LIST_ORDERS = ("oldest_first", "newest_first")  # the docs do not say; the sandbox can serve either
BARE_CODES_ENV = "SANDBOX_INSTAGIFT_BARE_CODES"  # "true": claim-code URLs may also hold the code without hyphens

# Endpoint kinds for fault injection; "redeem", "fetch", "list" and "any" match several.
ENDPOINT_KINDS = ("fetch_claim_code", "redeem_claim_code", "fetch_certificate", "redeem_certificate",
                  "list_certificates", "list_redemptions", "fetch_redemption")
KIND_GROUPS = {
    "redeem": ("redeem_claim_code", "redeem_certificate"),
    "fetch": ("fetch_claim_code", "fetch_certificate"),
    "list": ("list_certificates", "list_redemptions"),
    "any": ENDPOINT_KINDS,
}
FAULT_MODES = ("error_500", "apply_then_500", "apply_then_drop", "timeout", "rate_limit", "reject_400")
DEFAULT_TIMEOUT_DELAY_SECONDS = 15.0  # longer than the client's default 10 s timeout

NOT_AVAILABLE = "That item is not available for redemption"
PREVIOUSLY_REDEEMED = "This item has previously been redeemed"
LOCATION_REQUIRED = "You must select a redemption location"
AMOUNT_TOO_LARGE = "The amount to redeem is more than the certificate's face value"
AMOUNT_INVALID = "amount_to_redeem_cents must be a whole number of cents, at least 100"
UNABLE = "Unable to create redemption"

_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I, as printed codes avoid them


def _now() -> datetime:
    return datetime.now(UTC)


def _when(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value


_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def normalise_claim_code(raw: str) -> str:
    """A claim code's letters and digits, upper-cased: the key the sandbox files its certificates under."""
    return _NOT_ALPHANUMERIC.sub("", raw).upper() if isinstance(raw, str) else ""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _new_id() -> str:
    return secrets.token_urlsafe(16)  # 22 characters, like Instagift's ids


def _new_claim_code() -> str:
    def group(n: int) -> str:
        return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(n))
    return f"{group(4)}-{group(4)}-{group(6)}"


# The demo certificates (documented in docs/instagift.md): claim code, face value, splittable, status, expiry.
_PAST = datetime(2024, 1, 1, tzinfo=UTC)
_FUTURE = datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC)
DEMO_CERTIFICATES: tuple[dict[str, Any], ...] = (
    dict(claim_code="DEMO-100S-PLIT", face_value_cents=10000, splittable=True),
    dict(claim_code="DEMO-050S-PLIT", face_value_cents=5000, splittable=True),
    dict(claim_code="DEMO-025N-OSPL", face_value_cents=2500, splittable=False),
    dict(claim_code="DEMO-080N-OSPL", face_value_cents=8000, splittable=False),
    dict(claim_code="DEMO-7550-CENT", face_value_cents=7550, splittable=True),
    dict(claim_code="DEMO-0050-CENT", face_value_cents=50, splittable=True),
    dict(claim_code="DEMO-GIFT-0001", face_value_cents=6000, splittable=True, status="gifted"),
    dict(claim_code="DEMO-EXPS-2031", face_value_cents=4000, splittable=True, expires_at=_FUTURE),
    dict(claim_code="DEMO-USED-0001", face_value_cents=3000, splittable=True, status="redeemed"),
    dict(claim_code="DEMO-EXPD-0001", face_value_cents=10000, splittable=True, expires_at=_PAST),
    dict(claim_code="DEMO-CANC-0001", face_value_cents=5000, splittable=True, status="cancelled"),
    dict(claim_code="DEMO-PEND-0001", face_value_cents=5000, splittable=True, status="pending"),
    dict(claim_code="DEMO-RETN-0001", face_value_cents=5000, splittable=True, status="returned"),
    dict(claim_code="DEMO-CAD0-0050", face_value_cents=5000, splittable=True, currency="CAD"),
    dict(claim_code="DEMO-100S-PLT2", face_value_cents=10000, splittable=True),
    dict(claim_code="DEMO-100S-PLT3", face_value_cents=10000, splittable=True),
    dict(claim_code="DEMO-100S-PLT4", face_value_cents=10000, splittable=True),
    dict(claim_code="DEMO-200S-PLIT", face_value_cents=20000, splittable=True),
    dict(claim_code="DEMO-200S-PLT2", face_value_cents=20000, splittable=True),
    dict(claim_code="DEMO-100N-OSPL", face_value_cents=10000, splittable=False),
)


def demo_certificate_id(claim_code: str) -> str:
    """Demo certificates get stable ids so docs and tests can name them (derived from the code, not showing it)."""
    # Certificate ids appear in timelines and reports, which must never reveal a claim code.
    return "demo-" + hashlib.sha256(normalise_claim_code(claim_code).encode()).hexdigest()[:16]


@dataclass
class SandboxCertificate:
    id: str
    claim_code: str
    face_value_cents: int
    splittable: bool
    status: str = "assigned"
    currency: str = "USD"
    expires_at: datetime | None = None
    parent_id: str | None = None
    product_title: str | None = None
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    def as_json(self) -> dict[str, Any]:
        code = self.claim_code
        return {
            "id": self.id,
            "parent_id": self.parent_id,
            "href": f"/v2/certificates/{self.id}",
            "product_type": "GiftCertificate",
            "claim_code": code,
            "merchant_code": normalise_claim_code(code)[-6:],
            "status": self.status,
            "marked_as_printed": False,
            "can_split_value": self.splittable,
            "qrcode_image": f"/system/qrcodes/{self.id}.png",
            "currency": self.currency,
            "face_value_cents": self.face_value_cents,
            "price_cents": self.face_value_cents,
            "product_redemption_locations_count": 1,
            "product_is_print_only": False,
            "product_is_giveaway": False,
            "product_seller_name": "Sandbox Shop",
            "product_merchant_name": "Sandbox Shop",
            "product_title": self.product_title,
            "thumb": None,
            "links": {"user": USER_ID, "parent": self.parent_id, "merchant": MERCHANT_ID,
                      "product": "sandboxProduct00000001"},
            "expires_at": _iso(self.expires_at),
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


@dataclass
class SandboxRedemption:
    id: str
    certificate_id: str
    amount_cents: int
    source: str
    location_id: str | None
    created_at: datetime = field(default_factory=_now)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "href": f"/v2/redemptions/{self.id}",
            "amount_cents": self.amount_cents,
            "amount_paid_cents": self.amount_cents,
            "source": self.source,
            "links": {"certificate": self.certificate_id, "user": USER_ID, "merchant": MERCHANT_ID,
                      "location": self.location_id},
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.created_at),
        }


@dataclass
class Fault:
    kind: str
    mode: str
    times: int
    delay_seconds: float = DEFAULT_TIMEOUT_DELAY_SECONDS
    details: str = NOT_AVAILABLE
    retry_after_seconds: int = 1


class RedemptionRefused(Exception):
    """A redemption the doc says Instagift refuses with 400 (`details` is the doc's text)."""

    def __init__(self, details: str):
        super().__init__(details)
        self.details = details


class InstagiftSandboxState:
    """All sandbox data behind one lock; reset() reseeds the demo certificates."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.require_location = False
        self.accept_bare_codes = _env_flag(BARE_CODES_ENV)
        self.list_order = "oldest_first"
        self.redemptions_meta = True
        self.certificates: dict[str, SandboxCertificate] = {}
        self.redemptions: list[SandboxRedemption] = []
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.claim_code_requests: list[str] = []
        self._by_code: dict[str, str] = {}
        self._release_sleepers = threading.Event()
        self.reset()

    # --- seeding -----------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything and reseed the demo data; settings go back to their defaults."""
        with self.lock:
            self._release_sleepers.set()  # end any simulated timeout still sleeping
            self._release_sleepers = threading.Event()
            self.require_location = False
            self.accept_bare_codes = _env_flag(BARE_CODES_ENV)
            self.list_order = "oldest_first"
            self.redemptions_meta = True
            self.certificates = {}
            self.redemptions = []
            self.faults = []
            self.calls = Counter()
            self.claim_code_requests = []
            self._by_code = {}
            for demo in DEMO_CERTIFICATES:
                self.add_certificate(certificate_id=demo_certificate_id(demo["claim_code"]), **demo)

    def add_certificate(self, face_value_cents: int, *, splittable: bool = True, status: str = "assigned",
                        claim_code: str | None = None, currency: str = "USD",
                        expires_at: datetime | str | None = None, parent_id: str | None = None,
                        product_title: str | None = None, certificate_id: str | None = None,
                        created_at: datetime | str | None = None) -> tuple[str, str]:
        """Create a certificate; returns (id, claim code). A claim code is generated when none is given.

        A given claim code is stored (and matched in URLs) exactly as given: give it the printed form.
        """
        expires_at, created_at = _when(expires_at), _when(created_at) or _now()
        with self.lock:
            code = claim_code or self._unused_claim_code()
            if normalise_claim_code(code) in self._by_code:
                raise ValueError("that claim code is already in use in the sandbox")
            certificate = SandboxCertificate(
                id=certificate_id or _new_id(), claim_code=code, face_value_cents=int(face_value_cents),
                splittable=bool(splittable), status=status, currency=currency, expires_at=expires_at,
                parent_id=parent_id,
                product_title=product_title or f"${face_value_cents / 100:,.2f} Sandbox Shop eGift Card",
                created_at=created_at, updated_at=created_at,
            )
            self.certificates[certificate.id] = certificate
            self._by_code[normalise_claim_code(code)] = certificate.id
            return certificate.id, code

    def seed_history(self, certificates: int, redemptions: int, *, days: int = 365) -> None:
        """A merchant's past, quickly: `certificates` certificates issued over the last `days` days (up to a day
        ago), the oldest `redemptions` of them redeemed whole in store an hour after issue."""
        if not 0 <= redemptions <= certificates:
            raise ValueError("redemptions must be between 0 and certificates")
        with self.lock:
            end = _now() - timedelta(days=1)
            step = timedelta(days=days) / max(1, certificates)
            for n in range(certificates):
                issued = end - step * (certificates - n)
                cert_id, _ = self.add_certificate(2500 + 100 * (n % 40), created_at=issued)
                if n < redemptions:
                    cert = self.certificates[cert_id]
                    cert.status, cert.updated_at = "redeemed", issued + timedelta(hours=1)
                    self.redemptions.append(SandboxRedemption(_new_id(), cert_id, cert.face_value_cents, "in-store",
                                                              DEFAULT_LOCATION_ID, issued + timedelta(hours=1)))

    def _unused_claim_code(self) -> str:
        while True:
            code = _new_claim_code()
            if normalise_claim_code(code) not in self._by_code:
                return code

    def _find_by_code(self, code: str) -> SandboxCertificate | None:
        """The certificate with this claim code in any form (for the test hooks, not the API routes)."""
        certificate_id = self._by_code.get(normalise_claim_code(code))
        return self.certificates.get(certificate_id) if certificate_id else None

    def find_for_url(self, code: str) -> SandboxCertificate | None:
        """The certificate a claim-code URL names: its printed form exactly as stored (the docs' only form), or,
        with `accept_bare_codes`, also that form without its hyphens."""
        cert = self._find_by_code(code)
        if cert is None:
            return None
        if code == cert.claim_code or (self.accept_bare_codes and code == cert.claim_code.replace("-", "")):
            return cert
        return None

    def listed_certificates(self, status: str | None) -> list[SandboxCertificate]:
        """What the certificate list holds, in the list order; `status=available` means redeemable now."""
        now = _now()
        if status == "available":
            chosen = [c for c in self.certificates.values() if c.status in ("assigned", "gifted")
                      and (c.expires_at is None or now < c.expires_at)]
        elif status:
            chosen = [c for c in self.certificates.values() if c.status == status]
        else:
            chosen = list(self.certificates.values())
        return self._in_list_order(chosen)

    def listed_redemptions(self) -> list[SandboxRedemption]:
        """What the redemption list holds, in the list order."""
        return self._in_list_order(list(self.redemptions))

    def _in_list_order(self, records: list) -> list:
        ordered = sorted(records, key=lambda r: r.created_at)  # stable: insertion order among equal times
        return ordered[::-1] if self.list_order == "newest_first" else ordered

    def list_calls(self) -> int:
        """How many list requests (certificates and redemptions) the sandbox has answered since the last reset."""
        with self.lock:
            return self.calls["list_certificates"] + self.calls["list_redemptions"]

    # --- assertions helpers ------------------------------------------------------------------------------

    def certificate(self, certificate_id: str) -> dict[str, Any] | None:
        """A copy of one certificate as the API shows it (for assertions)."""
        with self.lock:
            cert = self.certificates.get(certificate_id)
            return cert.as_json() if cert else None

    def certificate_by_code(self, claim_code: str) -> dict[str, Any] | None:
        """A copy of the certificate with this claim code (any hyphenation/case)."""
        with self.lock:
            cert = self._find_by_code(claim_code)
            return cert.as_json() if cert else None

    def children_of(self, certificate_id: str) -> list[dict[str, Any]]:
        """Certificates split off this one by partial redemptions."""
        with self.lock:
            return [c.as_json() for c in self.certificates.values() if c.parent_id == certificate_id]

    def redemptions_for(self, certificate_id: str) -> list[dict[str, Any]]:
        """Every redemption of one certificate, oldest first."""
        with self.lock:
            return [r.as_json() for r in self.redemptions if r.certificate_id == certificate_id]

    # --- behaviour ---------------------------------------------------------------------------------------

    def spend_elsewhere(self, certificate_id: str, amount_cents: int, *, split: bool = True) -> dict[str, Any]:
        """An in-store redemption (source "in-store"), as a cashier would make it.

        With `split=True` (what the doc describes) it is a normal redemption: a partial one splits the
        certificate. `split=False` lowers the balance in place instead, which tests use to model a certificate
        that is still redeemable but now worth less than a cart holds.
        """
        with self.lock:
            cert = self.certificates.get(certificate_id)
            if cert is None:
                raise KeyError(certificate_id)
            if split:
                return self.redeem(cert, amount_cents, location_id=DEFAULT_LOCATION_ID, source="in-store")
            amount = min(cert.face_value_cents, int(amount_cents))
            cert.face_value_cents -= amount
            cert.updated_at = _now()
            redemption = SandboxRedemption(_new_id(), cert.id, amount, "in-store", DEFAULT_LOCATION_ID)
            self.redemptions.append(redemption)
            return redemption.as_json()

    def redeem(self, cert: SandboxCertificate, amount: Any, *, location_id: str | None,
               source: str = "api-v2-merchant") -> dict[str, Any]:
        """Redeem as the doc says; raises RedemptionRefused with the doc's text when Instagift would refuse."""
        with self.lock:
            if cert.status == "redeemed":
                raise RedemptionRefused(PREVIOUSLY_REDEEMED)
            if cert.status not in ("assigned", "gifted"):
                raise RedemptionRefused(NOT_AVAILABLE)
            if cert.expires_at is not None and _now() >= cert.expires_at:
                raise RedemptionRefused(NOT_AVAILABLE)
            if self.require_location and not location_id:
                raise RedemptionRefused(LOCATION_REQUIRED)
            face = cert.face_value_cents
            if amount is None or not cert.splittable:
                redeemed = face  # no amount, or not splittable: the whole face value
            else:
                asked = _amount_in_cents(amount)
                redeemed = asked - asked % 100  # whole dollars only, rounded down
                if redeemed < 100:
                    raise RedemptionRefused(AMOUNT_INVALID)
                if redeemed > face:
                    raise RedemptionRefused(AMOUNT_TOO_LARGE)
            now = _now()
            rest = face - redeemed
            cert.face_value_cents = redeemed
            cert.status = "redeemed"
            cert.updated_at = now
            if rest > 0:
                self.add_certificate(rest, splittable=True, status="assigned", currency=cert.currency,
                                     expires_at=cert.expires_at, parent_id=cert.id,
                                     product_title=cert.product_title, created_at=now)
            redemption = SandboxRedemption(_new_id(), cert.id, redeemed, source, location_id, now)
            self.redemptions.append(redemption)
            return redemption.as_json()

    # --- faults ------------------------------------------------------------------------------------------

    def inject_fault(self, endpoint_kind: str, mode: str, times: int = 1, *,
                     delay_seconds: float = DEFAULT_TIMEOUT_DELAY_SECONDS, details: str = NOT_AVAILABLE,
                     retry_after_seconds: int = 1) -> None:
        """Make the next `times` calls of an endpoint kind misbehave (see docs/instagift.md)."""
        if endpoint_kind not in ENDPOINT_KINDS and endpoint_kind not in KIND_GROUPS:
            raise ValueError(f"unknown endpoint kind {endpoint_kind!r}; one of {ENDPOINT_KINDS + tuple(KIND_GROUPS)}")
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {FAULT_MODES}")
        if int(times) < 1:
            raise ValueError("times must be at least 1")
        with self.lock:
            self.faults.append(Fault(endpoint_kind, mode, int(times), float(delay_seconds), details,
                                     int(retry_after_seconds)))

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        with self.lock:
            self.faults = []

    def take_fault(self, kind: str) -> Fault | None:
        """The first injected fault matching this endpoint kind, consuming one of its `times`."""
        with self.lock:
            for fault in self.faults:
                if fault.kind == kind or kind in KIND_GROUPS.get(fault.kind, ()):
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return copy.copy(fault)
            return None

    def wait_as_if_hung(self, seconds: float) -> None:
        """Hold a response back (a simulated timeout); reset() ends the wait early."""
        with self.lock:
            release = self._release_sleepers
        release.wait(seconds)


def _amount_in_cents(value: Any) -> int:
    # The doc's samples send a string ("4000"); integers are accepted too.
    if isinstance(value, bool):
        raise RedemptionRefused(AMOUNT_INVALID)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise RedemptionRefused(AMOUNT_INVALID)


# --- HTTP ----------------------------------------------------------------------------------------------


def _errors(status: int, status_text: str, title: str, details: str | None = None,
            headers: dict[str, str] | None = None) -> Response:
    error: dict[str, Any] = {"code": str(status), "status": status_text, "title": title}
    if details:
        error["details"] = details
    response = jsonify(errors=[error])
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _not_found() -> Response:
    return _errors(404, "Not Found", "Resource with that ID not found")


def _server_error() -> Response:
    return _errors(500, "Internal Server Error", "We had a problem with our server. Try again later.")


def _certificates_body(certs: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "links": {"certificates.user": "/v2/users/{certificates.user}",
                  "certificates.parent": "/v2/certificates/{certificates.parent}",
                  "certificates.merchant": "/v2/merchants/{certificates.merchant}",
                  "certificates.product": "/v2/merchants/{certificates.product}"},
        "certificates": certs,
    }
    if meta is not None:
        body["meta"] = meta
    return body


def _redemptions_body(redemptions: list[dict[str, Any]], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "links": {"redemptions.certificate": "/v2/certificates/{redemptions.certificate}",
                  "redemptions.user": "/v2/users/{redemptions.user}",
                  "redemptions.merchant": "/v2/merchants/{redemptions.merchant}",
                  "redemptions.location": "/v2/locations/{redemptions.location}"},
        "redemptions": redemptions,
    }
    if meta is not None:
        body["meta"] = meta
    return body


def _page_meta(page: int, per_page: int, total: int) -> dict[str, Any]:
    """`meta` exactly as the docs' sample (List all Certificates) shows it."""
    page_count = max(1, -(-total // per_page))

    def at(n: int | None) -> str | None:
        return None if n is None else f"?per_page={per_page}&page={n}"

    return {"href": at(page), "page": page, "per_page": per_page, "page_count": page_count, "total_count": total,
            "links": {"first": at(1), "previous": at(page - 1) if page > 1 else None,
                      "next": at(page + 1) if page < page_count else None, "last": at(page_count)}}


def _drop_connection() -> Response:
    """Cut the TCP connection without an answer, as a crashed proxy would (werkzeug or gunicorn servers)."""
    sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
    if sock is None:
        raise ConnectionAbortedError("sandbox fault apply_then_drop: no socket to drop in this server")
    with contextlib.suppress(OSError):  # the shopper's side may already be gone
        sock.shutdown(socket.SHUT_RDWR)
    # Writing this response now fails; the server treats that as a dropped connection.
    return Response(b"", status=500)


blueprint = Blueprint("sandbox_instagift", __name__)


def _state() -> InstagiftSandboxState:
    """The sandbox Instagift of the app serving this request (`create_sandbox_app` puts it there)."""
    return current_app.extensions["sandbox"]["instagift"]


@blueprint.before_request
def merchant_auth():
    """Every API route wants the merchant key and secret; the `/_control/…` hooks do not."""
    if (request.endpoint or "").rsplit(".", 1)[-1].startswith("control_"):
        return None  # the test/demo hooks; the sandbox never runs in production
    if (request.headers.get("X-Merchant-Key") != MERCHANT_KEY
            or request.headers.get("X-Merchant-Secret") != MERCHANT_SECRET):
        return _errors(401, "Unauthorized", "Permission denied")
    return None


def _run(kind: str, action: Callable[[], tuple[int, Any]]) -> Response:
    """Do `action` (→ (status, body)) unless a fault for this endpoint kind says otherwise."""
    state = _state()
    with state.lock:
        state.calls[kind] += 1
    fault = state.take_fault(kind)
    if fault is not None and fault.mode == "error_500":
        return _server_error()
    if fault is not None and fault.mode == "rate_limit":
        return _errors(429, "Too Many Requests", "You've reached your rate limit",
                       headers={"Retry-After": str(fault.retry_after_seconds)})
    if fault is not None and fault.mode == "reject_400":
        return _errors(400, "Bad Request", UNABLE, fault.details)
    try:
        status, body = action()
    except RedemptionRefused as refused:
        status, body = 400, {"errors": [{"code": "400", "status": "Bad Request", "title": UNABLE,
                                         "details": refused.details}]}
    if fault is not None and fault.mode == "apply_then_500":
        return _server_error()
    if fault is not None and fault.mode == "apply_then_drop":
        return _drop_connection()
    if fault is not None and fault.mode == "timeout":
        state.wait_as_if_hung(fault.delay_seconds)
    response = jsonify(body)
    response.status_code = status
    return response


def _or_404(response: Response) -> Response:
    # Actions answer (404, None) for unknown resources; give those the doc's error body.
    if response.status_code == 404 and response.get_json(silent=True) is None:
        return _not_found()
    return response


# The request parameters each redemption endpoint documents (Redeem a Certificate; by Claim Code: the amount only).
CERTIFICATE_REDEMPTION_FIELDS = frozenset({"amount_to_redeem_cents", "redemption_location_id"})
CLAIM_CODE_REDEMPTION_FIELDS = frozenset({"amount_to_redeem_cents"})
AMOUNT_FORM = 'amount_to_redeem_cents must be a whole number of cents written as a string, as in "4000"'


def _redemption_args(allowed: frozenset[str]) -> tuple[Any, str | None] | Response:
    """`amount_to_redeem_cents` (and `redemption_location_id` where documented) from the JSON body, or the error.

    Instagift "accepts and returns JSON only" (406 "Your request isn't JSON" otherwise); the fields are the ones the
    endpoint documents, the amount in the samples' form, a string of digits ("4000")."""
    if not request.is_json:
        return _errors(406, "Not Acceptable", "Your request isn’t JSON")
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        return _errors(400, "Bad Request", UNABLE, "The request body must be a JSON object")
    unknown = undocumented(payload, allowed)
    if unknown:
        return _errors(400, "Bad Request", UNABLE, f"{unknown[0]} is not a parameter of this endpoint")
    amount = payload.get("amount_to_redeem_cents")
    if amount is not None and not (isinstance(amount, str) and amount.isascii() and amount.isdigit()):
        return _errors(400, "Bad Request", UNABLE, AMOUNT_FORM)
    location = payload.get("redemption_location_id")
    if location is not None and not isinstance(location, str):
        return _errors(400, "Bad Request", UNABLE, "redemption_location_id must be a location id")
    return amount, location


def _whole_number(name: str, default: int) -> int | None:
    raw = request.args.get(name, str(default))
    return int(raw) if raw.isdigit() and int(raw) >= 1 else None


# Query parameters the lists take: List all Certificates' table (list_type, product_type, page), its sample request
# (status) and the `per_page` its `meta` links carry; List all Redemptions documents none, paged the same way.
CERTIFICATE_LIST_PARAMETERS = frozenset({"page", "per_page", "status", "list_type", "product_type"})
REDEMPTION_LIST_PARAMETERS = frozenset({"page", "per_page"})


def _paging(allowed: frozenset[str]) -> tuple[int, int] | Response:
    """(page, per_page) from the query, per_page capped at MAX_PER_PAGE; a 400 answer when they are not numbers or
    the query holds a parameter the list does not document."""
    unknown = undocumented(request.args, allowed)
    if unknown:
        return _errors(400, "Bad Request", "Invalid parameter", f"{unknown[0]} is not a parameter of this list")
    page, per_page = _whole_number("page", 1), _whole_number("per_page", DEFAULT_PER_PAGE)
    if page is None or per_page is None:
        return _errors(400, "Bad Request", "Invalid page", "page and per_page must be whole numbers from 1")
    return page, min(per_page, MAX_PER_PAGE)


def _certificate_in_url(state: InstagiftSandboxState, code: str) -> SandboxCertificate | None:
    """The certificate a claim-code URL names (the code is noted, in the form it arrived, for the tests)."""
    with state.lock:
        state.claim_code_requests.append(code)
        return state.find_for_url(code)


@blueprint.get("/claim_codes/<code>")
def fetch_by_claim_code(code: str):
    """Claim Codes › Fetch a Certificate by Claim Code."""
    state = _state()

    def action():
        with state.lock:
            cert = _certificate_in_url(state, code)
            return (404, None) if cert is None else (200, _certificates_body([cert.as_json()]))
    return _or_404(_run("fetch_claim_code", action))


@blueprint.post("/claim_codes/<code>/redemptions")
def redeem_by_claim_code(code: str):
    """Claim Codes › Redeem a Certificate by Claim Code."""
    state = _state()
    args = _redemption_args(CLAIM_CODE_REDEMPTION_FIELDS)
    if isinstance(args, Response):
        return args
    amount, location = args

    def action():
        with state.lock:
            cert = _certificate_in_url(state, code)
            if cert is None:
                return 404, None
            return 201, _redemptions_body([state.redeem(cert, amount, location_id=location)])
    return _or_404(_run("redeem_claim_code", action))


@blueprint.get("/certificates/<certificate_id>")
def fetch_certificate(certificate_id: str):
    """Certificates › Fetch a Certificate."""
    state = _state()

    def action():
        cert = state.certificate(certificate_id)
        return (404, None) if cert is None else (200, _certificates_body([cert]))
    return _or_404(_run("fetch_certificate", action))


@blueprint.post("/certificates/<certificate_id>/redemptions")
def redeem_certificate(certificate_id: str):
    """Certificates › Redeem a Certificate."""
    state = _state()
    args = _redemption_args(CERTIFICATE_REDEMPTION_FIELDS)
    if isinstance(args, Response):
        return args
    amount, location = args

    def action():
        with state.lock:
            cert = state.certificates.get(certificate_id)
            if cert is None:
                return 404, None
            return 201, _redemptions_body([state.redeem(cert, amount, location_id=location)])
    return _or_404(_run("redeem_certificate", action))


@blueprint.get("/certificates")
def list_certificates():
    """Certificates › List all Certificates: paged, with the docs' `meta`, filtered by `status`."""
    state = _state()
    paged = _paging(CERTIFICATE_LIST_PARAMETERS)
    if isinstance(paged, Response):
        return paged
    page, per_page = paged
    status = request.args.get("status") or None

    def action():
        with state.lock:
            listed = state.listed_certificates(status)
            chunk = listed[(page - 1) * per_page: page * per_page]
            return 200, _certificates_body([c.as_json() for c in chunk], _page_meta(page, per_page, len(listed)))
    return _run("list_certificates", action)


@blueprint.get("/redemptions")
def list_redemptions():
    """Redemptions › List all Redemptions: paged like the certificates (`meta` unless a setting leaves it out)."""
    state = _state()
    paged = _paging(REDEMPTION_LIST_PARAMETERS)
    if isinstance(paged, Response):
        return paged
    page, per_page = paged

    def action():
        with state.lock:
            listed = state.listed_redemptions()
            chunk = listed[(page - 1) * per_page: page * per_page]
            meta = _page_meta(page, per_page, len(listed)) if state.redemptions_meta else None
            return 200, _redemptions_body([r.as_json() for r in chunk], meta)
    return _run("list_redemptions", action)


@blueprint.get("/redemptions/<redemption_id>")
def fetch_redemption(redemption_id: str):
    """Redemptions › Fetch a Redemption."""
    state = _state()

    def action():
        with state.lock:
            found = next((r for r in state.redemptions if r.id == redemption_id), None)
            return (404, None) if found is None else (200, _redemptions_body([found.as_json()]))
    return _or_404(_run("fetch_redemption", action))


# --- `/_control/…`: the state object's hooks over HTTP (no merchant auth; sandbox only) -----------------


def _control_body() -> dict[str, Any]:
    payload = request.get_json(silent=True)
    return payload if isinstance(payload, dict) else {}


def _bad(message: str) -> Response:
    response = jsonify(error=message)
    response.status_code = 400
    return response


@blueprint.post("/_control/reset")
def control_reset():
    """Forget everything and reseed the demo certificates."""
    _state().reset()
    return jsonify(status="reset")


@blueprint.post("/_control/certificates")
def control_add_certificate():
    """Add a certificate (a claim code is generated when none is given) → 201 {id, claim_code, certificate}."""
    state = _state()
    data = _control_body()
    if not isinstance(data.get("face_value_cents"), int) or isinstance(data.get("face_value_cents"), bool):
        return _bad("face_value_cents (integer) is required")
    allowed = {"splittable", "status", "claim_code", "currency", "expires_at", "parent_id", "product_title"}
    try:
        certificate_id, code = state.add_certificate(
            data["face_value_cents"], **{k: v for k, v in data.items() if k in allowed})
    except ValueError as exc:
        return _bad(str(exc))
    response = jsonify(id=certificate_id, claim_code=code, certificate=state.certificate(certificate_id))
    response.status_code = 201
    return response


@blueprint.get("/_control/certificates/<certificate_id>")
def control_certificate(certificate_id: str):
    """One certificate with its children and redemptions (claim codes included: sandbox only)."""
    state = _state()
    cert = state.certificate(certificate_id)
    if cert is None:
        return _not_found()
    return jsonify(certificate=cert, children=state.children_of(certificate_id),
                   redemptions=state.redemptions_for(certificate_id))


@blueprint.get("/_control/certificates/<certificate_id>/redemptions")
def control_redemptions_for(certificate_id: str):
    """One certificate's redemptions, oldest first."""
    return jsonify(redemptions=_state().redemptions_for(certificate_id))


@blueprint.post("/_control/certificates/<certificate_id>/spend")
def control_spend_elsewhere(certificate_id: str):
    """An in-store redemption, as a cashier would make it → 201 {redemption, certificate}."""
    state = _state()
    data = _control_body()
    amount = data.get("amount_cents")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        return _bad("amount_cents (positive integer) is required")
    try:
        redemption = state.spend_elsewhere(certificate_id, amount, split=bool(data.get("split", True)))
    except KeyError:
        return _not_found()
    except RedemptionRefused as refused:
        return _bad(refused.details)
    response = jsonify(redemption=redemption, certificate=state.certificate(certificate_id))
    response.status_code = 201
    return response


@blueprint.post("/_control/faults")
def control_inject_fault():
    """Make the next `times` calls of an endpoint kind misbehave → 201 with the faults waiting."""
    state = _state()
    data = _control_body()
    options = {k: data[k] for k in ("delay_seconds", "details", "retry_after_seconds") if k in data}
    try:
        state.inject_fault(str(data.get("endpoint_kind")), str(data.get("mode")), int(data.get("times", 1)),
                           **options)
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    response = jsonify(faults=[vars(f) for f in state.faults])
    response.status_code = 201
    return response


@blueprint.delete("/_control/faults")
def control_clear_faults():
    """Forget every injected fault."""
    _state().clear_faults()
    return jsonify(faults=[])


@blueprint.put("/_control/settings")
def control_settings():
    """Change any of require_location, accept_bare_codes, list_order, redemptions_meta → the current settings."""
    state = _state()
    data = _control_body()
    if "list_order" in data and data["list_order"] not in LIST_ORDERS:
        return _bad(f"list_order must be one of {LIST_ORDERS}")
    with state.lock:
        for flag in ("require_location", "accept_bare_codes", "redemptions_meta"):
            if flag in data:
                setattr(state, flag, bool(data[flag]))
        if "list_order" in data:
            state.list_order = data["list_order"]
        return jsonify(require_location=state.require_location, accept_bare_codes=state.accept_bare_codes,
                       list_order=state.list_order, redemptions_meta=state.redemptions_meta)


@blueprint.post("/_control/history")
def control_seed_history():
    """A merchant's past, quickly: {"certificates", "redemptions"} → 201 totals."""
    state = _state()
    data = _control_body()
    numbers = [data.get("certificates"), data.get("redemptions", 0)]
    if not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 100_000 for n in numbers):
        return _bad("certificates and redemptions (whole numbers up to 100,000) are required")
    try:
        state.seed_history(*numbers)
    except ValueError as exc:
        return _bad(str(exc))
    response = jsonify(certificates=len(state.certificates), redemptions=len(state.redemptions))
    response.status_code = 201
    return response


@blueprint.get("/_control/calls")
def control_calls():
    """What the API answered since the last reset: calls by endpoint kind, list calls, claim codes as sent."""
    state = _state()
    with state.lock:
        return jsonify(calls=dict(state.calls), list_calls=state.list_calls(),
                       claim_code_requests=list(state.claim_code_requests))
