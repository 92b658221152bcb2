"""Configuration: the environment reader and the service-wide settings (docs/configuration.md lists every variable).

`Environment` reads typed values with environs and collects every problem instead of stopping at the first.
Each room with settings reads and checks its own section with it: the providers' connections in
service/providers/settings.py, the thank-you card rules in service/thank_you/settings.py, the membership card
rules in service/membership/settings.py. `read_settings` runs them and raises one ConfigurationError listing
everything wrong; the app composes the sections (`service.features.load_settings`), so this module imports no
feature. In development every secret has a documented local default and a provider without credentials uses
the sandbox; in production nothing is defaulted.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import marshmallow as ma
from environs import Env, EnvValidationError

DEVELOPMENT = "development"
PRODUCTION = "production"
# Variables other tools use to say "production"; the service reads only SERVICE_ENV and refuses a conflict.
OTHER_ENVIRONMENT_SWITCHES = ("FLASK_ENV", "APP_ENV", "ENV")

# Local defaults for development only; production refuses to start without real values.
DEV_WEBHOOK_SECRET = "whsec_ZGV2LXdlYmhvb2stc2VjcmV0LW5vdC1mb3ItcHJvZHVjdGlvbg=="
DEV_SHOP_API_TOKEN = "dev-shop-token"
DEV_ADMIN_API_TOKEN = "dev-admin-token"
DEV_SECRET_KEY = "dev-secret-key-not-for-production-0123456789"
MIN_SECRET_KEY_LENGTH = 32
# Who ADMIN_API_TOKEN (the single shared token) stands for in the audit trail.
SHARED_ADMIN_NAME = "admin"
_STAFF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
DEV_SANDBOX_URL = "http://127.0.0.1:5001"
DEV_SERVICE_URL = "http://127.0.0.1:5000"
MIN_TOKEN_LENGTH = 16
DEV_ALLOWED_ORIGINS = ("http://127.0.0.1:5000", "http://localhost:5000")

_HTTP_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?\Z")
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")

Problems = Callable[[Any], Iterable[str]]
"""A check of one setting's value: the sentences saying what is wrong with it (none when it is fine)."""


class ConfigurationError(RuntimeError):
    """The environment cannot run the service; the message lists every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            "The service cannot start; fix these settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )


class _Flag(ma.fields.Boolean):
    """true/false, yes/no, on/off, 1/0 in any letter case (what the service has always accepted)."""

    truthy = {"1", "true", "yes", "on"}
    falsy = {"0", "false", "no", "off"}

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value.lower() if isinstance(value, str) else value, attr, data, **kwargs)


def _parse_entries(raw: Any, *, problems: Problems | None = None) -> tuple[str, ...]:
    """A comma-separated list; blank entries are dropped. (environs hands a default over unparsed.)"""
    if not isinstance(raw, str):
        return raw
    entries = tuple(part.strip() for part in raw.split(",") if part.strip())
    _raise_problems(problems, entries)
    return entries


def _parse_json(raw: Any, *, setting: str, problems: Problems | None = None) -> Any:
    """A JSON document. (environs hands a default over unparsed.)"""
    if not isinstance(raw, str):
        return raw
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ma.ValidationError(f"{setting} is not valid JSON ({exc.msg} at position {exc.pos})") from None
    _raise_problems(problems, value)
    return value


def _raise_problems(problems: Problems | None, value: Any) -> None:
    found = list(problems(value)) if problems else []
    if found:
        raise ma.ValidationError(found)


def _validator(problems: Problems | None) -> Callable[[Any], None] | None:
    return None if problems is None else lambda value: _raise_problems(problems, value)


class _MappingEnv(Env):
    """environs' reader over a given mapping (not os.environ), collecting errors until `seal()`.

    A blank value counts as unset and values are stripped: `FOO=` in a deployment's environment file means
    "not set", as it always has here.
    """

    def __init__(self, source: Mapping[str, str]):
        super().__init__(eager=False)
        self._source = source
        self.add_parser("entries", _parse_entries)
        self.add_parser("json_value", _parse_json)
        self.add_parser_from_field("flag", _Flag)

    def _get_value(self, env_key: str, default: Any) -> Any:
        value = self._source.get(env_key)
        if value is None or not value.strip():
            return default
        return value.strip()

    def is_set(self, name: str) -> bool:
        """Whether the variable has a non-blank value."""
        return self._get_value(name, None) is not None

    def raw(self, name: str) -> str | None:
        """The variable's stripped text, None when unset or blank."""
        return self._get_value(name, None)


class Environment:
    """Typed settings from an environment mapping; every problem is collected and `finish()` reports them all.

    A setting read with `required=True` has no default in production: unset, it is reported as required there
    (`why` completes the sentence). An invalid value is reported and its default returned, so that reading goes
    on and every problem is found in one pass.
    """

    def __init__(self, environ: Mapping[str, str]):
        self._env = _MappingEnv(environ)
        self._required: dict[str, str] = {}
        self._missing: list[str] = []
        self._problems: list[str] = []
        self.name = self.choice("SERVICE_ENV", DEVELOPMENT, (DEVELOPMENT, PRODUCTION))
        self.production = self.name == PRODUCTION
        self._refuse_other_production_switches()
        self.sandbox_url = None if self.production else self.text("SANDBOX_URL", DEV_SANDBOX_URL).rstrip("/")

    def _refuse_other_production_switches(self) -> None:
        """A deployment that says production in a variable the service does not read (FLASK_ENV, APP_ENV, ENV)
        would quietly run as development, with its default tokens and the sandbox: refuse it instead."""
        if self.production:
            return
        for name in OTHER_ENVIRONMENT_SWITCHES:
            said = self._env.raw(name)
            if said is not None and said.lower() == PRODUCTION:
                self.problem(f"{name}=production is not read; set SERVICE_ENV=production (only SERVICE_ENV "
                             f"selects production; SERVICE_ENV is {self.name!r} now)")

    def is_set(self, name: str) -> bool:
        """Whether the variable has a non-blank value."""
        return self._env.is_set(name)

    def _default(self, name: str, default: Any, required: bool, why: str) -> Any:
        """What to read with: environs' "no default" when required in production, else the default."""
        if required and self.production:
            self._required[name] = why
            return ...
        return default

    def text(self, name: str, default: str | None = None, *, required: bool = False, why: str = "",
             problems: Problems | None = None) -> str | None:
        """A string; "" when it is required in production and missing."""
        value = self._env.str(name, self._default(name, default, required, why), validate=_validator(problems))
        if value is None:
            return "" if required and self.production else default
        return value

    def whole(self, name: str, default: int, *, minimum: int | None = None,
              problems: Problems | None = None) -> int:
        """A whole number, at least `minimum` when given."""
        checks = []
        if minimum is not None:
            checks.append(ma.validate.Range(min=minimum, error=f"{name} must be at least {{min}} (got {{input}})"))
        if problems is not None:
            checks.append(_validator(problems))
        value = self._env.int(name, default, validate=checks,
                              error_messages={"invalid": f"{name} must be a whole number (got {{input!r}})"})
        return default if value is None else value

    def flag(self, name: str, default: bool) -> bool:
        """true/yes/on/1 or false/no/off/0."""
        value = self._env.flag(name, default, error_messages={"invalid": f"{name} must be true or false (got {{input!r}})"})
        return default if value is None else value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of `choices`, exactly."""
        value = self._env.str(name, default, validate=ma.validate.OneOf(
            choices, error=f"{name} must be one of {{choices}} (got {{input!r}})"))
        return default if value is None else value

    def url(self, name: str, default: str) -> str:
        """An http(s) URL."""
        value = self._env.str(name, default, validate=ma.validate.Regexp(
            _HTTP_URL, error=f"{name} must be an http(s) URL (got {{input!r}})"))
        return default if value is None else value

    def entries(self, name: str, default: tuple[str, ...] = (), *, required: bool = False, why: str = "",
                problems: Problems | None = None) -> tuple[str, ...]:
        """A comma-separated list (blank entries dropped; none at all counts as unset); () when it is required in
        production and missing."""
        value = self._env.entries(name, self._default(name, default, required, why), problems=problems)
        if value is None:
            return () if required and self.production else default
        if not value:  # nothing but commas and spaces: as good as unset
            if required and self.production:
                self._missing.append(f"{name} is required in production{why}")
                return ()
            return default
        return value

    def json(self, name: str, default: Any, *, problems: Problems | None = None) -> Any:
        """A JSON document."""
        value = self._env.json_value(name, default, setting=name, problems=problems)
        return default if value is None else value

    def problem(self, message: str) -> None:
        """Report a problem no single value shows (one setting conflicting with another)."""
        self._problems.append(message)

    def finish(self) -> None:
        """Stop reading; raise ConfigurationError listing every problem: the missing settings first."""
        try:
            self._env.seal()
            errors: Mapping[str, Any] = {}
        except EnvValidationError as exc:
            errors = exc.error_messages if isinstance(exc.error_messages, Mapping) else {}
        missing, invalid = [], []
        for name, messages in errors.items():
            if name in self._required and not self.is_set(name):
                missing.append(f"{name} is required in production{self._required[name]}")
            else:
                invalid.extend(m if name in m else f"{name}: {m}" for m in _flatten(messages))
        problems = missing + self._missing + invalid + self._problems
        if problems:
            raise ConfigurationError(problems)


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, Mapping):
        return [m for value in messages.values() for m in _flatten(value)]
    return [m for value in messages for m in _flatten(value)]


@dataclass(frozen=True)
class Settings:
    """The service-wide settings.

    The settings object the app runs with (`service.features.AppSettings`) adds one section per provider and
    feature: `instagift`, `cardly`, `instantcard` (service.providers.settings), `thank_you` and `membership`.
    """

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
    cart_failure_window_minutes: int
    cart_lock_minutes: int
    gift_card_rounding: str
    hold_minutes: int
    shop_name: str
    sandbox_url: str | None
    # Where the demo's shop backend reaches this service (development only; never taken from a request header).
    demo_service_url: str | None = None
    max_request_bytes: int = 64 * 1024
    # Proxies in front of the service whose X-Forwarded-For/-Proto are believed (0: none, the socket's address).
    trusted_proxies: int = 0
    # The address gunicorn listens on (the Procfile's --bind); with trusted proxies it should be one only they reach.
    bind_address: str = "0.0.0.0"
    job_lease_seconds: int = 30
    job_max_attempts: int = 8
    job_backoff_base_seconds: float = 2.0
    job_backoff_cap_seconds: float = 900.0
    log_format: str = "text"
    # ADMIN_API_TOKENS: (staff name, token) pairs, each person's own admin token.
    admin_api_tokens: tuple[tuple[str, str], ...] = ()
    # Signs the console's session cookie (and its CSRF tokens).
    secret_key: str = DEV_SECRET_KEY
    admin_session_hours: int = 9
    admin_login_rate_limit: str = "10/minute;50/hour"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == PRODUCTION

    @property
    def staff_tokens(self) -> tuple[tuple[str, str], ...]:
        """Every admin token with the name it acts for: ADMIN_API_TOKEN as "admin", then ADMIN_API_TOKENS."""
        shared = ((SHARED_ADMIN_NAME, self.admin_api_token),) if self.admin_api_token else ()
        return shared + self.admin_api_tokens


def _is_base64(text: str) -> bool:
    try:
        return bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False


def _webhook_secret_problems(secrets: tuple[str, ...]) -> list[str]:
    problems = []
    for secret in secrets:
        if not secret.startswith("whsec_"):
            problems.append("WEBHOOK_SECRETS entries must start with whsec_ (one entry does not)")
        elif not _is_base64(secret.removeprefix("whsec_")):
            # A secret no shop can sign with would make every order webhook fail: refuse it at start-up.
            problems.append("WEBHOOK_SECRETS entries must be whsec_ followed by base64 (one entry is not)")
    return problems


def _origin_problems(origins: tuple[str, ...]) -> list[str]:
    return [f"ALLOWED_ORIGINS entries must be origins like https://shop.example (got {origin!r})"
            for origin in origins if not _ORIGIN.fullmatch(origin)]


def staff_token_pairs(entries: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """ADMIN_API_TOKENS entries `name:token` as (name, token) pairs (an entry without a name gives "")."""
    pairs = []
    for entry in entries:
        name, _, token = entry.partition(":")
        pairs.append((name.strip(), token.strip()) if token else ("", name.strip()))
    return tuple(pairs)


def _staff_token_problems(entries: tuple[str, ...]) -> list[str]:
    # Problems name the entry by its position or its name, never by its token.
    problems = []
    seen: set[str] = set()
    tokens: set[str] = set()
    for position, (name, token) in enumerate(staff_token_pairs(entries), start=1):
        if not name or not _STAFF_NAME.fullmatch(name):
            problems.append(f"ADMIN_API_TOKENS entries must be name:token with a name of letters, digits and ._@- "
                            f"(entry {position} is not)")
            continue
        if name in seen:
            problems.append(f"ADMIN_API_TOKENS names must be unique ({name!r} appears twice)")
        seen.add(name)
        if len(token) < MIN_TOKEN_LENGTH:
            problems.append(f"ADMIN_API_TOKENS: the token of {name!r} must be at least {MIN_TOKEN_LENGTH} characters "
                            "(a random secret)")
        elif token in tokens:
            problems.append(f"ADMIN_API_TOKENS: the token of {name!r} is also another person's (each needs their own)")
        tokens.add(token)
    return problems


def _staff_conflicts(env: Environment, values: dict[str, Any]) -> None:
    """Problems between ADMIN_API_TOKENS and the other tokens (each alone is checked as it is read)."""
    shop, admin = values["shop_api_token"], values["admin_api_token"]
    for name, token in values["admin_api_tokens"]:
        if token and token == shop:
            env.problem(f"ADMIN_API_TOKENS: the token of {name!r} must differ from SHOP_API_TOKEN "
                        "(the shop must not read the ledger)")
        if admin and token == admin:
            env.problem(f"ADMIN_API_TOKENS: the token of {name!r} must differ from ADMIN_API_TOKEN")
        if admin and name == SHARED_ADMIN_NAME:
            env.problem(f"ADMIN_API_TOKENS: the name {SHARED_ADMIN_NAME!r} is ADMIN_API_TOKEN's; choose another")


ALL_INTERFACES = ("0.0.0.0", "[::]")


def _bind_address_problems(address: str) -> list[str]:
    host = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return [f"BIND_ADDRESS must be an IP address such as 127.0.0.1, 10.0.0.5 or [::1] (got {address!r})"]
    if ip.version == 6 and host == address:
        return [f"BIND_ADDRESS must write an IPv6 address in brackets, as gunicorn takes it: [{address}]"]
    return []


def normalise_database_url(url: str) -> str:
    """Accept postgres:// and postgresql:// and always drive PostgreSQL through psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def default_database_url(instance_path: str) -> str:
    """The development database: an SQLite file in the app's instance folder."""
    return "sqlite:///" + str(Path(instance_path) / "service.sqlite3")


def read_service_settings(env: Environment, instance_path: str) -> dict[str, Any]:
    """The service-wide settings (the fields of Settings), checked."""
    production = env.production
    values: dict[str, Any] = dict(
        env=env.name,
        database_url=normalise_database_url(env.text(
            "DATABASE_URL", default_database_url(instance_path), required=True,
            why=" (postgresql://…; SQLite only by choice)")),
        webhook_secrets=env.entries("WEBHOOK_SECRETS", (DEV_WEBHOOK_SECRET,), required=True,
                                    why=" (comma-separated whsec_… secrets)", problems=_webhook_secret_problems),
        shop_api_token=env.text("SHOP_API_TOKEN", DEV_SHOP_API_TOKEN, required=True),
        # With staff tokens (ADMIN_API_TOKENS) the single shared token is optional in production.
        admin_api_token=env.text("ADMIN_API_TOKEN", "" if production else DEV_ADMIN_API_TOKEN,
                                 required=not env.is_set("ADMIN_API_TOKENS"),
                                 why=" (or ADMIN_API_TOKENS, one name:token per person)"),
        admin_api_tokens=staff_token_pairs(env.entries("ADMIN_API_TOKENS", problems=_staff_token_problems)),
        secret_key=env.text("SECRET_KEY", DEV_SECRET_KEY, required=True,
                            why=" (a random secret: it signs the console's session cookies)"),
        admin_session_hours=env.whole("ADMIN_SESSION_HOURS", 9, minimum=1),
        admin_login_rate_limit=env.text("ADMIN_LOGIN_RATE_LIMIT", "10/minute;50/hour"),
        allowed_origins=env.entries("ALLOWED_ORIGINS", DEV_ALLOWED_ORIGINS, required=True,
                                    why=" (the storefront's origin)", problems=_origin_problems),
        ratelimit_storage_uri=env.text(
            "RATELIMIT_STORAGE_URI", "memory://", required=True,
            why=" (redis://… shared by every web process; memory:// only for a single process)"),
        lookup_rate_limit=env.text("LOOKUP_RATE_LIMIT", "10/minute;30/hour"),
        cart_create_rate_limit=env.text("CART_CREATE_RATE_LIMIT", "30/minute;300/hour"),
        cart_failure_limit=env.whole("CART_FAILURE_LIMIT", 10, minimum=1),
        cart_failure_window_minutes=env.whole("CART_FAILURE_WINDOW_MINUTES", 15, minimum=1),
        cart_lock_minutes=env.whole("CART_LOCK_MINUTES", 10, minimum=0),
        gift_card_rounding=env.choice("GIFT_CARD_ROUNDING", "down", ("down", "up")),
        hold_minutes=env.whole("HOLD_MINUTES", 30, minimum=1),
        shop_name=env.text("SHOP_NAME", "Demo Shop"),
        sandbox_url=env.sandbox_url,
        demo_service_url=None if production else env.url("DEMO_SERVICE_URL", DEV_SERVICE_URL).rstrip("/"),
        max_request_bytes=env.whole("MAX_REQUEST_BYTES", 64 * 1024, minimum=1024),
        trusted_proxies=env.whole("TRUSTED_PROXIES", 0, minimum=0),
        bind_address=env.text("BIND_ADDRESS", "0.0.0.0", problems=_bind_address_problems),
        job_lease_seconds=env.whole("JOB_LEASE_SECONDS", 30, minimum=10),
        job_max_attempts=env.whole("JOB_MAX_ATTEMPTS", 8, minimum=1),
        job_backoff_base_seconds=float(env.whole("JOB_BACKOFF_BASE_SECONDS", 2, minimum=0)),
        job_backoff_cap_seconds=float(env.whole("JOB_BACKOFF_CAP_SECONDS", 900, minimum=1)),
        log_format=env.choice("LOG_FORMAT", "json" if production else "text", ("json", "text")),
    )
    if production:
        shop, admin = values["shop_api_token"], values["admin_api_token"]
        for name, token in (("SHOP_API_TOKEN", shop), ("ADMIN_API_TOKEN", admin)):
            if token and len(token) < MIN_TOKEN_LENGTH:
                env.problem(f"{name} must be at least {MIN_TOKEN_LENGTH} characters (a random secret)")
        if shop and shop == admin:
            env.problem("ADMIN_API_TOKEN must differ from SHOP_API_TOKEN (the shop must not read the ledger)")
        if values["secret_key"] and len(values["secret_key"]) < MIN_SECRET_KEY_LENGTH:
            env.problem(f"SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters (a random secret)")
    _staff_conflicts(env, values)
    return values


S = TypeVar("S", bound=Settings)


def read_settings(environ: Mapping[str, str] | None, instance_path: str, settings_type: type[S],
                  read_sections: Callable[[Environment], Mapping[str, Any]]) -> S:
    """Read the service-wide settings and the sections `read_sections` reads (one per provider and feature)
    from `environ` (os.environ when None); raise ConfigurationError listing every problem of every section."""
    env = Environment(dict(os.environ if environ is None else environ))
    service = read_service_settings(env, instance_path)
    sections = read_sections(env)
    env.finish()
    return settings_type(**service, **sections)
