"""The providers' connection settings: where each API is, the credentials, the account's own objects the service
names (Cardly's artwork and template, InstantCard's organization and shipping provider) and the timeouts.

In development a provider without credentials is the sandbox (at SANDBOX_URL); in production every credential
of a provider the service uses is required. What the features do with the providers (which orders get a card,
what it says, which SKU is a membership) is read by the features themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from service.config import Environment

INSTAGIFT_DEFAULT_URL = "https://api.instagift.com/v2"
CARDLY_DEFAULT_URL = "https://api.card.ly/v2"
INSTANTCARD_DEFAULT_URL = "https://core.instantcard.net/api/v2"
CARDLY_KEY_PREFIXES = ("test_", "live_")  # Cardly's two kinds of key


@dataclass(frozen=True)
class InstagiftSettings:
    api_url: str
    merchant_key: str
    merchant_secret: str
    location_id: str | None
    sandbox: bool
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class CardlySettings:
    api_url: str
    api_key: str
    sandbox: bool
    enabled: bool  # CARDLY_ENABLED: thank-you cards on, so Cardly is used at all
    artwork: str | None
    template: str | None
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class InstantCardSettings:
    api_url: str
    email: str
    password: str
    organization_id: str | None
    shipping_provider_id: str | None
    sandbox: bool
    timeout_seconds: float = 15.0


def read_instagift(env: Environment) -> InstagiftSettings:
    """Instagift: required in production; the sandbox in development when no credentials are set."""
    key = env.text("INSTAGIFT_MERCHANT_KEY", required=True)
    secret = env.text("INSTAGIFT_MERCHANT_SECRET", required=True)
    sandbox = not env.production and not (key and secret)
    api_url = f"{env.sandbox_url}/instagift/v2" if sandbox else env.url("INSTAGIFT_API_URL", INSTAGIFT_DEFAULT_URL)
    return InstagiftSettings(
        api_url=api_url.rstrip("/"),
        merchant_key=key or ("sandbox-merchant-key" if sandbox else ""),
        merchant_secret=secret or ("sandbox-merchant-secret" if sandbox else ""),
        location_id=env.text("INSTAGIFT_LOCATION_ID"),
        sandbox=sandbox,
        timeout_seconds=float(env.whole("INSTAGIFT_TIMEOUT_SECONDS", 10)),
    )


def _cardly_key_problems(key: str) -> list[str]:
    if not key.startswith(CARDLY_KEY_PREFIXES):
        return ["CARDLY_API_KEY must start with test_ or live_ (Cardly's two kinds of key)"]
    return []


def read_cardly(env: Environment) -> CardlySettings:
    """Cardly: its key and artwork are required in production while CARDLY_ENABLED; the sandbox in development
    when no key is set."""
    enabled = env.flag("CARDLY_ENABLED", True)
    while_enabled = " while CARDLY_ENABLED is true"
    key = env.text("CARDLY_API_KEY", required=enabled, why=while_enabled, problems=_cardly_key_problems)
    sandbox = not env.production and not env.is_set("CARDLY_API_KEY")  # a wrong key is reported, not replaced
    api_url = f"{env.sandbox_url}/cardly/v2" if sandbox else env.url("CARDLY_API_URL", CARDLY_DEFAULT_URL)
    return CardlySettings(
        api_url=api_url.rstrip("/"),
        api_key=key or ("test_sandbox_key" if sandbox else ""),
        sandbox=sandbox,
        enabled=enabled,
        artwork=env.text("CARDLY_ARTWORK", "sandbox-thank-you-art" if sandbox else None, required=enabled,
                         why=while_enabled),
        template=env.text("CARDLY_TEMPLATE", "sandbox-thank-you-template" if sandbox else None),
        timeout_seconds=float(max(1, env.whole("CARDLY_TIMEOUT_SECONDS", 15))),
    )


def read_instantcard(env: Environment, *, needed: bool) -> InstantCardSettings:
    """InstantCard: every credential is required in production when `needed` (INSTANTCARD_PRODUCTS maps a SKU);
    the sandbox in development when no email and password are set."""
    why = " while INSTANTCARD_PRODUCTS maps a SKU"
    email = env.text("INSTANTCARD_EMAIL", required=needed, why=why)
    password = env.text("INSTANTCARD_PASSWORD", required=needed, why=why)
    sandbox = not env.production and not (email and password)
    api_url = (f"{env.sandbox_url}/instantcard/api/v2" if sandbox
               else env.url("INSTANTCARD_API_URL", INSTANTCARD_DEFAULT_URL))
    return InstantCardSettings(
        api_url=api_url.rstrip("/"),
        email=email or ("sandbox@example.com" if sandbox else ""),
        password=password or ("sandbox-password" if sandbox else ""),
        organization_id=env.text("INSTANTCARD_ORGANIZATION_ID", "1" if sandbox else None, required=needed, why=why),
        shipping_provider_id=env.text("INSTANTCARD_SHIPPING_PROVIDER_ID", "1" if sandbox else None,
                                      required=needed, why=why),
        sandbox=sandbox,
    )


def provider_address(api_url: str, sandbox: bool) -> str:
    """A provider's base URL as messages name it: without any user:password part, and saying so when it is the
    sandbox (development without credentials: the address comes from SANDBOX_URL)."""
    parts = urlsplit(api_url)
    address = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return f"{address} (the sandbox, SANDBOX_URL)" if sandbox else address
