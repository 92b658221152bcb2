"""Preflight: read-only calls with the configured credentials, so a wrong key, artwork, template field or
shipping provider shows up before a real order fails.

`check_providers(settings)` runs every check of every enabled provider and returns a `Report`; the CLI
(`flask --app service providers check`) and `GET /v1/providers/check` both print it. The checks speak only
in the clients' terms (each provider's vocabulary stays in its client). Nothing here changes anything at a
provider: balances, listings and one InstantCard login (kept in memory, not in the shared token cache, so a
cached token cannot hide a wrong password).

Rules:
- a check that cannot run because an earlier one failed is reported as failed with "skipped: <why>"
  (authentication failed, the provider did not answer, …); checks that can still say something still run
  (a wrong artwork does not hide a template problem);
- a provider that is down or times out is a failed check naming what happened, never an exception;
- no detail ever contains a configured secret: every detail is scrubbed of them before it is returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from service.config import Settings
from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderResponseInvalid,
    ProviderUnavailable,
)
from service.money import format_usd
from service.providers.cardly import CardlyClient
from service.providers.instagift import InstagiftClient
from service.providers.instantcard import InstantCardClient, MemoryTokenStore
from service.providers.settings import (
    CardlySettings,
    InstagiftSettings,
    InstantCardSettings,
    provider_address,
)

log = logging.getLogger("service.providers.preflight")

HIDDEN = "[hidden]"
# Secrets shorter than this are not searched for in details: replacing a two-letter string everywhere would
# garble every message, and no provider accepts a key that short.
_MIN_SCRUBBED_LENGTH = 4


@dataclass(frozen=True)
class Check:
    provider: str
    check: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True only when every check passed (and at least one ran)."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        """`{"ok": …, "checks": [{"provider", "check", "ok", "detail"}, …]}` (the route's and --json's body)."""
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


class _Blocked(Exception):
    """Raised inside a provider's checks to stop the rest of them with a reason."""


class _Checks:
    """Collects one provider's checks; once `block` is called, later checks are reported as skipped."""

    def __init__(self, provider: str, where: str):
        self.provider = provider
        self.where = where
        self.checks: list[Check] = []
        self.blocked: str | None = None

    def add(self, check: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(self.provider, check, ok, detail))

    def run(self, check: str, action: Callable[[], tuple[bool, str]], *, skip_reason: str | None = None) -> bool:
        """Run one check unless an earlier failure blocks it; a provider error becomes a failed check."""
        if self.blocked or skip_reason:
            self.add(check, False, f"skipped: {self.blocked or skip_reason}")
            return False
        try:
            ok, detail = action()
        except ProviderError as exc:
            ok, detail = False, self.describe(exc)
            if _no_answer(exc):
                self.blocked = f"{self.provider} did not answer"
        except Exception as exc:  # a check must never take the report down with it
            log.exception("preflight check %s/%s failed unexpectedly", self.provider, check)
            ok, detail = False, f"unexpected error ({type(exc).__name__}); see the service log"
        self.add(check, ok, detail)
        return ok

    def describe(self, exc: ProviderError) -> str:
        """A provider error in words a merchant can act on (the error's own text never carries secrets)."""
        if isinstance(exc, ProviderUnavailable) and exc.http_status is None:
            return f"no answer from {self.where}: {exc.message}"
        if isinstance(exc, ProviderRateLimited):
            return f"rate limited by {self.provider} (HTTP 429); try again in a minute"
        if isinstance(exc, ProviderUnavailable):
            return f"{self.provider} answered HTTP {exc.http_status} (its side failed); try again later"
        if isinstance(exc, ProviderResponseInvalid):
            return f"{self.provider}'s answer could not be read: {exc.message}"
        status = f" (HTTP {exc.http_status})" if exc.http_status else ""
        return f"{exc.message}{status}"


def _no_answer(exc: ProviderError) -> bool:
    """A timeout or a connection that failed: later calls would wait just as long for nothing."""
    return isinstance(exc, ProviderUnavailable) and exc.http_status is None


# -- Instagift ------------------------------------------------------------------------------------------------
def check_instagift(settings: InstagiftSettings, client: InstagiftClient) -> list[Check]:
    """The merchant key and secret are accepted (a one-item certificate listing)."""
    checks = _Checks("instagift", provider_address(settings.api_url, settings.sandbox))

    def credentials() -> tuple[bool, str]:
        try:
            count = client.count_certificates()
        except ProviderAuthError as exc:
            return False, (f"INSTAGIFT_MERCHANT_KEY / INSTAGIFT_MERCHANT_SECRET were refused "
                           f"(HTTP {exc.http_status}); copy both again from the Merchant Dashboard")
        except ProviderNotFound:
            return False, f"{checks.where} has no certificate listing (HTTP 404); check INSTAGIFT_API_URL"
        counted = f"; {count} certificate(s) on the account" if count is not None else ""
        sandbox = " (sandbox)" if settings.sandbox else ""
        return True, f"merchant key and secret accepted{sandbox}{counted}"

    checks.run("credentials", credentials)
    return checks.checks


# -- Cardly ---------------------------------------------------------------------------------------------------
def check_cardly(settings: CardlySettings, client: CardlyClient) -> list[Check]:
    """Key accepted, test or live mode, credit, CARDLY_ARTWORK and CARDLY_TEMPLATE exist."""
    checks = _Checks("cardly", provider_address(settings.api_url, settings.sandbox))
    balance: list[Any] = []

    def api_key() -> tuple[bool, str]:
        try:
            balance.append(client.account_balance())
        except ProviderAuthError as exc:
            if exc.http_status == 401:
                checks.blocked = "authentication failed"
                return False, "CARDLY_API_KEY was refused (HTTP 401); copy the key again from the Cardly portal"
            return False, f"CARDLY_API_KEY may not read the account balance (HTTP {exc.http_status})"
        except ProviderNotFound:
            return False, f"{checks.where} has no account balance (HTTP 404); check CARDLY_API_URL"
        return True, "CARDLY_API_KEY accepted"

    def mode() -> tuple[bool, str]:
        test_mode = balance[0].test_mode
        if client.api_key_is_test != test_mode:
            return False, (f"the key is a {'test' if client.api_key_is_test else 'live'} key but Cardly answered "
                           f"in {'test' if test_mode else 'live'} mode")
        if settings.sandbox:
            return True, "sandbox (test mode): nothing is printed"
        if test_mode:
            return True, "test mode: cards are validated but never printed or posted (use a live_ key to send them)"
        return True, "live mode: cards are printed, posted and paid for with credit"

    def credit() -> tuple[bool, str]:
        credits: Decimal = balance[0].credits
        if credits <= 0:
            return False, f"{credits} credits: every card waits (parked) until credit is added"
        return True, f"{credits} credits"

    def artwork() -> tuple[bool, str]:
        if not settings.artwork:
            return False, "CARDLY_ARTWORK is not set: every order is skipped (not_configured)"
        found = client.find_artwork(settings.artwork)
        if found is None:
            return False, f"CARDLY_ARTWORK {settings.artwork!r} is not an artwork of this Cardly account"
        return True, f"{settings.artwork!r} is {_labelled(found.name, found.id)}"

    def template() -> tuple[bool, str]:
        if not settings.template:
            return True, "CARDLY_TEMPLATE is not set: the message is printed on the inside page"
        found = client.find_template(settings.template)
        if found is None:
            return False, f"CARDLY_TEMPLATE {settings.template!r} is not a template of this Cardly account"
        return True, f"{settings.template!r} is {_labelled(found.name, found.id)}"

    checks.run("api key", api_key)
    balance_unread = None if balance else "the account balance could not be read"
    checks.run("mode", mode, skip_reason=balance_unread)
    checks.run("credit", credit, skip_reason=balance_unread)
    checks.run("artwork", artwork)
    checks.run("template", template)
    return checks.checks


# -- InstantCard ----------------------------------------------------------------------------------------------
def check_instantcard(settings: InstantCardSettings, client: InstantCardClient,
                      products: Mapping[str, Any]) -> list[Check]:
    """Login, organization, every mapped template (`products`: INSTANTCARD_PRODUCTS) and its fields, the
    shipping provider, the funds."""
    checks = _Checks("instantcard", provider_address(settings.api_url, settings.sandbox))

    def authentication() -> tuple[bool, str]:
        checks.blocked = "authentication failed"  # until it succeeds: every later call needs its token
        try:
            client.authenticate()
        except ProviderAuthError as exc:
            return False, f"INSTANTCARD_EMAIL / INSTANTCARD_PASSWORD were refused (HTTP {exc.http_status})"
        except ProviderNotFound:
            return False, f"{checks.where} has no authenticate endpoint (HTTP 404); check INSTANTCARD_API_URL"
        checks.blocked = None
        return True, "email and password accepted" + (" (sandbox)" if settings.sandbox else "")

    def organization() -> tuple[bool, str]:
        if not settings.organization_id:
            checks.blocked = "INSTANTCARD_ORGANIZATION_ID is not set"
            return False, "INSTANTCARD_ORGANIZATION_ID is not set"
        try:
            found = client.fetch_organization()
        except (ProviderNotFound, ProviderAuthError) as exc:
            checks.blocked = "the organization did not answer"
            return False, (f"organization {settings.organization_id} (INSTANTCARD_ORGANIZATION_ID) was not found "
                           f"or this login may not use it (HTTP {exc.http_status})")
        return True, f"organization {_labelled(found.name, found.id or settings.organization_id)}"

    checks.run("authentication", authentication)
    checks.run("organization", organization)
    known_templates: dict[str, str | None] = {}
    if not checks.blocked:
        try:
            known_templates = {t.id: t.name for t in client.card_templates()}
        except ProviderError as exc:  # only names the templates; the field listings below tell what matters
            log.info("preflight: InstantCard's template listing could not be read: %s", exc)
            if _no_answer(exc):
                checks.blocked = "instantcard did not answer"
        except Exception:
            log.exception("preflight: InstantCard's template listing could not be read")
    for sku, product in products.items():
        checks.run(f"template {sku}", lambda product=product: _template_check(client, product, known_templates))

    def shipping_provider() -> tuple[bool, str]:
        wanted = settings.shipping_provider_id
        if not wanted:
            return False, "INSTANTCARD_SHIPPING_PROVIDER_ID is not set: print jobs cannot be submitted"
        offered = client.shipping_providers()
        match = next((p for p in offered if p.id == str(wanted).strip()), None)
        if match is None:
            listed = ", ".join(_labelled(p.name, p.id) for p in offered) or "none"
            return False, (f"INSTANTCARD_SHIPPING_PROVIDER_ID {wanted} is not one of the organization's shipping "
                           f"providers ({listed})")
        return True, f"shipping provider {_labelled(match.name, match.id)}"

    def funds() -> tuple[bool, str]:
        cents = client.organization_balance_cents()
        if cents <= 0:
            return False, f"balance {format_usd(cents)}: print jobs wait (parked) until funds are added"
        return True, f"balance {format_usd(cents)}"

    checks.run("shipping provider", shipping_provider)
    checks.run("funds", funds)
    return checks.checks


def _template_check(client: InstantCardClient, product: dict[str, Any],
                    known_templates: dict[str, str | None]) -> tuple[bool, str]:
    template_id = str(product["template_id"])
    label = _labelled(known_templates.get(template_id), template_id, kind="template")
    try:
        fields = client.card_template_fields(int(template_id))
    except ProviderNotFound:
        listed = ", ".join(_labelled(name, tid) for tid, name in known_templates.items())
        return False, f"template {template_id} does not exist" + (f" (the organization has {listed})" if listed else "")
    wanted = list(product["fields"])
    missing = [name for name in wanted if name not in fields]
    if missing:
        return False, (f"{label} has no field {', '.join(repr(m) for m in missing)} "
                       f"(its fields: {', '.join(fields) or 'none'})")
    return True, f"{label} has every mapped field ({', '.join(wanted)})"


def _labelled(name: str | None, identifier: str | None, *, kind: str = "") -> str:
    prefix = f"{kind} " if kind else ""
    if name and identifier:
        return f"{prefix}{identifier} {name!r}"
    return f"{prefix}{identifier or repr(name)}"


# -- running them all ---------------------------------------------------------------------------------------
@dataclass
class CheckClients:
    """Clients built for one preflight run: fresh, so an InstantCard login is really made."""

    instagift: InstagiftClient
    cardly: CardlyClient | None
    instantcard: InstantCardClient | None

    @classmethod
    def from_settings(cls, settings: Settings) -> CheckClients:
        """One client per enabled provider (Cardly only while CARDLY_ENABLED, InstantCard when a SKU is mapped)."""
        return cls(
            instagift=InstagiftClient.from_settings(settings.instagift),
            cardly=CardlyClient.from_settings(settings.cardly) if settings.cardly.enabled else None,
            instantcard=(InstantCardClient(settings.instantcard, token_store=MemoryTokenStore())
                         if settings.membership.products else None),
        )


def check_providers(settings: Settings, clients: CheckClients | None = None) -> Report:
    """Every check of every enabled provider; the providers are checked side by side (one slow provider
    does not add its wait to the others')."""
    clients = clients or CheckClients.from_settings(settings)
    runs: list[Callable[[], list[Check]]] = [lambda: check_instagift(settings.instagift, clients.instagift)]
    if clients.cardly is not None:
        runs.append(lambda: check_cardly(settings.cardly, clients.cardly))
    if clients.instantcard is not None:
        runs.append(lambda: check_instantcard(settings.instantcard, clients.instantcard, settings.membership.products))
    with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="preflight") as pool:
        results = [future.result() for future in [pool.submit(run) for run in runs]]
    secrets = _secrets(settings, clients)
    return Report(tuple(Check(c.provider, c.check, c.ok, scrub(c.detail, secrets)) for r in results for c in r))


def _secrets(settings: Settings, clients: CheckClients) -> list[str]:
    values = [settings.instagift.merchant_key, settings.instagift.merchant_secret, settings.cardly.api_key,
              settings.instantcard.password, settings.admin_api_token, settings.shop_api_token,
              *settings.webhook_secrets, *(token for _, token in settings.staff_tokens), settings.secret_key]
    if clients.instantcard is not None:
        token = clients.instantcard.tokens.load()
        if token is not None:
            values.append(token.token)
    return [v for v in values if v and len(v) >= _MIN_SCRUBBED_LENGTH]


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of a configured secret replaced by [hidden] (longest first)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


def render_lines(report: Report) -> list[str]:
    """One aligned line per check: provider, check, ok/FAILED, detail."""
    width = max((len(c.check) for c in report.checks), default=0)
    return [f"{c.provider:<12} {c.check:<{width}}  {'ok' if c.ok else 'FAILED':<6}  {c.detail}"
            for c in report.checks]
