"""Configuration: every setting comes from an environment variable named as in docs/configuration.md.

`load_settings(environ)` is the only place that reads the environment. In development every secret has a
documented local default and a provider without credentials is pointed at the sandbox; in production
nothing is defaulted and everything missing is reported at once by `ConfigurationError`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEVELOPMENT = "development"
PRODUCTION = "production"

# Local defaults for development only; production refuses to start without real values.
DEV_WEBHOOK_SECRET = "whsec_ZGV2LXdlYmhvb2stc2VjcmV0LW5vdC1mb3ItcHJvZHVjdGlvbg=="
DEV_SHOP_API_TOKEN = "dev-shop-token"
DEV_ADMIN_API_TOKEN = "dev-admin-token"
DEV_SANDBOX_URL = "http://127.0.0.1:5001"
MIN_TOKEN_LENGTH = 16
DEV_ALLOWED_ORIGINS = ("http://127.0.0.1:5000", "http://localhost:5000")

INSTAGIFT_DEFAULT_URL = "https://api.instagift.com/v2"
CARDLY_DEFAULT_URL = "https://api.card.ly/v2"
INSTANTCARD_DEFAULT_URL = "https://core.instantcard.net/api/v2"


class ConfigurationError(RuntimeError):
    """The environment cannot run the service; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "The service cannot start; fix these settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )


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
    enabled: bool
    artwork: str | None
    template: str | None
    message: str
    sender: dict[str, Any] | None
    shipping_method: str | None
    min_order_cents: int
    countries: tuple[str, ...]
    skip_opted_out: bool
    arrival_offset_days: int | None
    credit_recheck_seconds: int
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class InstantCardSettings:
    api_url: str
    email: str
    password: str
    organization_id: str | None
    shipping_provider_id: str | None
    products: dict[str, Any]
    sandbox: bool
    member_number_prefix: str
    membership_term_months: int
    ship_to: str  # "member" (one print job per order line) or "store" (daily batch)
    store_address: dict[str, Any] | None
    batch_cutoff: str  # HH:MM, US Eastern
    batch_max_cards: int
    funds_recheck_seconds: int
    timeout_seconds: float = 15.0


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str
    webhook_secrets: tuple[str, ...]
    shop_api_token: str
    admin_api_token: str
    allowed_origins: tuple[str, ...]
    ratelimit_storage_uri: str
    lookup_rate_limit: str
    cart_create_rate_limit: str
    cart_failure_limit: int
    cart_lock_minutes: int
    gift_card_rounding: str
    hold_minutes: int
    shop_name: str
    sandbox_url: str | None
    instagift: InstagiftSettings
    cardly: CardlySettings
    instantcard: InstantCardSettings
    max_request_bytes: int = 64 * 1024
    # Proxies in front of the service whose X-Forwarded-For/-Proto are believed (0: none, the socket's address).
    trusted_proxies: int = 0
    job_lease_seconds: int = 120
    job_max_attempts: int = 8
    job_backoff_base_seconds: float = 2.0
    job_backoff_cap_seconds: float = 900.0
    log_format: str = "text"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == PRODUCTION

    @property
    def uses_sandbox(self) -> bool:
        return self.instagift.sandbox or self.cardly.sandbox or self.instantcard.sandbox


def _is_base64(text: str) -> bool:
    try:
        return bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False


class _Reader:
    """Reads typed values from an environment mapping and collects every problem instead of stopping."""

    def __init__(self, environ: dict[str, str]):
        self.environ = environ
        self.problems: list[str] = []

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def int(self, name: str, default: int, minimum: int | None = None) -> int:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append(f"{name} must be a whole number (got {raw!r})")
            return default
        if minimum is not None and value < minimum:
            self.problems.append(f"{name} must be at least {minimum} (got {value})")
            return default
        return value

    def url(self, name: str, default: str) -> str:
        value = self.str(name, default)
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
            self.problems.append(f"{name} must be an http(s) URL (got {value!r})")
        return value

    def bool(self, name: str, default: bool) -> bool:
        raw = self.str(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problems.append(f"{name} must be true or false (got {raw!r})")
        return default

    def list(self, name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        raw = self.str(name)
        if raw is None:
            return default
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def json(self, name: str, default: Any) -> Any:
        raw = self.str(name)
        if raw is None:
            return default
        try:
            return json.loads(raw)
        except ValueError as exc:
            self.problems.append(f"{name} is not valid JSON ({exc.msg} at position {exc.pos})")
            return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default)
        if value not in choices:
            self.problems.append(f"{name} must be one of {', '.join(choices)} (got {value!r})")
            return default
        return value


CARDLY_SENDER_FIELDS = ("firstName", "address", "city", "postcode", "country")


def _cardly_problems(cardly: CardlySettings) -> list[str]:
    """What is wrong with the thank-you card settings (a bad message or sender would fail every card)."""
    from service.thank_you.rules import unknown_message_variables  # the one list of message variables

    problems = []
    unknown = unknown_message_variables(cardly.message)
    if unknown:
        problems.append(f"CARDLY_MESSAGE uses unknown variables: {', '.join(unknown)} (see docs/thank-you-cards.md)")
    if cardly.sender is not None:
        if not isinstance(cardly.sender, dict):
            problems.append("CARDLY_SENDER must be a JSON object with Cardly's sender fields")
        else:
            missing = [f for f in CARDLY_SENDER_FIELDS if not str(cardly.sender.get(f) or "").strip()]
            if missing:
                problems.append(f"CARDLY_SENDER lacks {', '.join(missing)} (Cardly needs all sender fields or none)")
    if cardly.arrival_offset_days is not None and cardly.arrival_offset_days < 0:
        problems.append("CARDLY_ARRIVAL_OFFSET_DAYS must not be negative")
    return problems


def normalise_database_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and always drive PostgreSQL through psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def default_database_url(instance_path: str) -> str:
    return "sqlite:///" + str(Path(instance_path) / "service.sqlite3")


def load_settings(environ: dict[str, str] | None = None, instance_path: str = "instance") -> Settings:
    """Build Settings from the environment; raise ConfigurationError listing every problem."""
    env = dict(os.environ if environ is None else environ)
    read = _Reader(env)
    service_env = read.choice("SERVICE_ENV", DEVELOPMENT, (DEVELOPMENT, PRODUCTION))
    production = service_env == PRODUCTION
    missing: list[str] = []

    def secret(name: str, dev_default: str | None) -> str:
        value = read.str(name)
        if value is None:
            if production:
                missing.append(f"{name} is required in production")
                return ""
            return dev_default or ""
        return value

    sandbox_url = None if production else read.str("SANDBOX_URL", DEV_SANDBOX_URL).rstrip("/")

    webhook_secrets = read.list("WEBHOOK_SECRETS")
    if not webhook_secrets:
        if production:
            missing.append("WEBHOOK_SECRETS is required in production (comma-separated whsec_… secrets)")
        else:
            webhook_secrets = (DEV_WEBHOOK_SECRET,)
    for s in webhook_secrets:
        if not s.startswith("whsec_"):
            read.problems.append("WEBHOOK_SECRETS entries must start with whsec_ (one entry does not)")
        elif not _is_base64(s.removeprefix("whsec_")):
            # A secret no shop can sign with would make every order webhook fail: refuse it at start-up.
            read.problems.append("WEBHOOK_SECRETS entries must be whsec_ followed by base64 (one entry is not)")

    # Instagift: required in production; the sandbox in development when no credentials are set.
    ig_key, ig_secret = read.str("INSTAGIFT_MERCHANT_KEY"), read.str("INSTAGIFT_MERCHANT_SECRET")
    ig_sandbox = not production and not (ig_key and ig_secret)
    if production and not ig_key:
        missing.append("INSTAGIFT_MERCHANT_KEY is required in production")
    if production and not ig_secret:
        missing.append("INSTAGIFT_MERCHANT_SECRET is required in production")
    instagift = InstagiftSettings(
        api_url=(f"{sandbox_url}/instagift/v2" if ig_sandbox else read.url("INSTAGIFT_API_URL", INSTAGIFT_DEFAULT_URL)).rstrip("/"),
        merchant_key=ig_key or ("sandbox-merchant-key" if ig_sandbox else ""),
        merchant_secret=ig_secret or ("sandbox-merchant-secret" if ig_sandbox else ""),
        location_id=read.str("INSTAGIFT_LOCATION_ID"),
        sandbox=ig_sandbox,
        timeout_seconds=float(read.int("INSTAGIFT_TIMEOUT_SECONDS", 10)),
    )

    cardly_enabled = read.bool("CARDLY_ENABLED", True)
    cardly_key = read.str("CARDLY_API_KEY")
    cardly_sandbox = not production and not cardly_key
    if production and cardly_enabled and not cardly_key:
        missing.append("CARDLY_API_KEY is required in production while CARDLY_ENABLED is true")
    if cardly_key and not cardly_key.startswith(("test_", "live_")):
        read.problems.append("CARDLY_API_KEY must start with test_ or live_ (Cardly's two kinds of key)")
    if production and cardly_enabled and not read.str("CARDLY_ARTWORK"):
        missing.append("CARDLY_ARTWORK is required in production while CARDLY_ENABLED is true")
    cardly = CardlySettings(
        api_url=(f"{sandbox_url}/cardly/v2" if cardly_sandbox else read.url("CARDLY_API_URL", CARDLY_DEFAULT_URL)).rstrip("/"),
        api_key=cardly_key or ("test_sandbox_key" if cardly_sandbox else ""),
        sandbox=cardly_sandbox,
        enabled=cardly_enabled,
        artwork=read.str("CARDLY_ARTWORK", "sandbox-thank-you-art" if cardly_sandbox else None),
        template=read.str("CARDLY_TEMPLATE", "sandbox-thank-you-template" if cardly_sandbox else None),
        message=read.str(
            "CARDLY_MESSAGE",
            "Dear {customer.first_name},\nThank you for your order {order.number}!\n{shop.name}",
        ),
        sender=read.json("CARDLY_SENDER", None),
        shipping_method=read.str("CARDLY_SHIPPING_METHOD"),
        min_order_cents=read.int("CARDLY_MIN_ORDER_CENTS", 0),
        countries=tuple(c.upper() for c in read.list("CARDLY_COUNTRIES")),
        skip_opted_out=read.bool("CARDLY_SKIP_OPTED_OUT", True),
        arrival_offset_days=read.int("CARDLY_ARRIVAL_OFFSET_DAYS", 0) or None,
        credit_recheck_seconds=read.int("CARDLY_CREDIT_RECHECK_SECONDS", 900),
        timeout_seconds=float(max(1, read.int("CARDLY_TIMEOUT_SECONDS", 15))),
    )
    read.problems.extend(_cardly_problems(cardly))

    products = read.json("INSTANTCARD_PRODUCTS", {})
    if not isinstance(products, dict):
        read.problems.append("INSTANTCARD_PRODUCTS must be a JSON object mapping SKU to a card template")
        products = {}
    ic_email, ic_password = read.str("INSTANTCARD_EMAIL"), read.str("INSTANTCARD_PASSWORD")
    ic_sandbox = not production and not (ic_email and ic_password)
    if production and products:
        for name in ("INSTANTCARD_EMAIL", "INSTANTCARD_PASSWORD", "INSTANTCARD_ORGANIZATION_ID",
                     "INSTANTCARD_SHIPPING_PROVIDER_ID"):
            if not read.str(name):
                missing.append(f"{name} is required in production while INSTANTCARD_PRODUCTS maps a SKU")
    if not production and not products:
        products = {
            "MEMBER-GOLD": {
                "template_id": 101,
                "fields": {
                    "Name": "{customer.first_name} {customer.last_name}",
                    "Member Number": "{member_number}",
                    "Expires": "{expires_on}",
                },
            }
        }
    instantcard = InstantCardSettings(
        api_url=(f"{sandbox_url}/instantcard/api/v2" if ic_sandbox else read.url("INSTANTCARD_API_URL", INSTANTCARD_DEFAULT_URL)).rstrip("/"),
        email=ic_email or ("sandbox@example.com" if ic_sandbox else ""),
        password=ic_password or ("sandbox-password" if ic_sandbox else ""),
        organization_id=read.str("INSTANTCARD_ORGANIZATION_ID", "1" if ic_sandbox else None),
        shipping_provider_id=read.str("INSTANTCARD_SHIPPING_PROVIDER_ID", "1" if ic_sandbox else None),
        products=products,
        sandbox=ic_sandbox,
        member_number_prefix=read.str("INSTANTCARD_MEMBER_NUMBER_PREFIX", "M-"),
        membership_term_months=read.int("INSTANTCARD_MEMBERSHIP_TERM_MONTHS", 12),
        ship_to=read.choice("INSTANTCARD_SHIP_TO", "member", ("member", "store")),
        store_address=read.json("INSTANTCARD_STORE_ADDRESS", None),
        batch_cutoff=read.str("INSTANTCARD_BATCH_CUTOFF", "15:30"),
        batch_max_cards=read.int("INSTANTCARD_BATCH_MAX_CARDS", 50),
        funds_recheck_seconds=read.int("INSTANTCARD_FUNDS_RECHECK_SECONDS", 900),
    )
    from service.membership.rules import instantcard_setting_problems  # late: the feature imports config
    read.problems.extend(instantcard_setting_problems(instantcard))

    settings = Settings(
        env=service_env,
        database_url=normalise_database_url(read.str("DATABASE_URL") or default_database_url(instance_path)),
        webhook_secrets=webhook_secrets,
        shop_api_token=secret("SHOP_API_TOKEN", DEV_SHOP_API_TOKEN),
        admin_api_token=secret("ADMIN_API_TOKEN", DEV_ADMIN_API_TOKEN),
        allowed_origins=read.list("ALLOWED_ORIGINS", () if production else DEV_ALLOWED_ORIGINS),
        ratelimit_storage_uri=read.str("RATELIMIT_STORAGE_URI", "memory://"),
        lookup_rate_limit=read.str("LOOKUP_RATE_LIMIT", "10/minute;30/hour"),
        cart_create_rate_limit=read.str("CART_CREATE_RATE_LIMIT", "30/minute;300/hour"),
        cart_failure_limit=read.int("CART_FAILURE_LIMIT", 5, minimum=1),
        cart_lock_minutes=read.int("CART_LOCK_MINUTES", 15, minimum=0),
        gift_card_rounding=read.choice("GIFT_CARD_ROUNDING", "down", ("down", "up")),
        hold_minutes=read.int("HOLD_MINUTES", 30, minimum=1),
        shop_name=read.str("SHOP_NAME", "Demo Shop"),
        sandbox_url=sandbox_url,
        instagift=instagift,
        cardly=cardly,
        instantcard=instantcard,
        max_request_bytes=read.int("MAX_REQUEST_BYTES", 64 * 1024, minimum=1024),
        trusted_proxies=read.int("TRUSTED_PROXIES", 0, minimum=0),
        job_lease_seconds=read.int("JOB_LEASE_SECONDS", 120, minimum=10),
        job_max_attempts=read.int("JOB_MAX_ATTEMPTS", 8, minimum=1),
        job_backoff_base_seconds=float(read.int("JOB_BACKOFF_BASE_SECONDS", 2, minimum=0)),
        job_backoff_cap_seconds=float(read.int("JOB_BACKOFF_CAP_SECONDS", 900, minimum=1)),
        log_format=read.choice("LOG_FORMAT", "json" if production else "text", ("json", "text")),
    )
    if production and not settings.allowed_origins:
        missing.append("ALLOWED_ORIGINS is required in production (the storefront's origin)")
    for origin in settings.allowed_origins:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin):
            read.problems.append(f"ALLOWED_ORIGINS entries must be origins like https://shop.example (got {origin!r})")
    if production:
        if not read.str("DATABASE_URL"):
            missing.append("DATABASE_URL is required in production (postgresql://…; SQLite only by choice)")
        if not read.str("RATELIMIT_STORAGE_URI"):
            missing.append("RATELIMIT_STORAGE_URI is required in production (redis://… shared by every web "
                           "process; memory:// only for a single process)")
        for name, token in (("SHOP_API_TOKEN", settings.shop_api_token), ("ADMIN_API_TOKEN", settings.admin_api_token)):
            if token and len(token) < MIN_TOKEN_LENGTH:
                read.problems.append(f"{name} must be at least {MIN_TOKEN_LENGTH} characters (a random secret)")
        if settings.shop_api_token and settings.shop_api_token == settings.admin_api_token:
            read.problems.append("ADMIN_API_TOKEN must differ from SHOP_API_TOKEN (the shop must not read the ledger)")
    problems = missing + read.problems
    if problems:
        raise ConfigurationError(problems)
    return settings
