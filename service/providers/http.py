"""One HTTP helper for every provider client: timeouts, JSON, request ids and error mapping.

Clients hold a `ProviderHttp` (composition) and translate their provider's vocabulary themselves. This
helper turns transport failures, 5xx and 429 into `ProviderUnavailable` / `ProviderRateLimited`, 401/403
into `ProviderAuthError`, and hands any other non-2xx answer to the client's `describe_error` callback so
the client can raise its own typed error with the provider's reason. Secrets are never put in messages.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from service import metrics
from service.db import transaction_guard
from service.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from service.logs import redact

log = logging.getLogger("service.providers")

REQUEST_ID_HEADERS = ("Request-Id", "X-Request-Id", "X-Request-ID", "CF-Ray")


@dataclass
class ProviderResponse:
    status: int
    body: Any
    headers: dict[str, str]
    request_id: str | None
    elapsed_ms: float = 0.0
    raw: bytes = field(default=b"", repr=False)


# describe_error(response) → an exception to raise for a 4xx the helper does not map itself, or None.
ErrorDescriber = Callable[[ProviderResponse], ProviderError | None]


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def call_outcome(status: int) -> str:
    """The metrics' outcome of a call answered with an HTTP status it did not expect."""
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "server_error"
    if status in (401, 403):
        return "auth_refused"
    if status == 404:
        return "not_found"
    return "refused"


class ProviderHttp:
    """Makes requests to one provider's base URL; all clients share this behaviour.

    Each thread gets its own `requests.Session` from `session_factory` (as stripe-python's RequestsClient does): a
    Session is not guaranteed to be thread-safe, and the worker and the web server run several threads. Sessions
    keep their connections alive, so each thread still reuses its connections.
    """

    def __init__(self, provider: str, base_url: str, *, timeout_seconds: float = 10.0,
                 connect_timeout_seconds: float = 3.05, default_headers: dict[str, str] | None = None,
                 describe_error: ErrorDescriber | None = None,
                 session_factory: Callable[[], requests.Session] = requests.Session):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout_seconds, timeout_seconds)
        self.default_headers = default_headers or {}
        self.describe_error = describe_error
        self._session_factory = session_factory
        self._local = threading.local()
        first = session_factory()
        # requests re-reads proxy variables, .netrc and the CA bundle setting from the environment on every call (a
        # scan of os.environ and file stats, ~0.4 ms): read them once for this base URL; every thread's session
        # gets the result.
        self._environment = (first.merge_environment_settings(self.base_url, {}, None, None, None)
                             if first.trust_env else None)
        self._local.session = self._configured(first)

    def _configured(self, session: requests.Session) -> requests.Session:
        if self._environment is not None and session.trust_env:
            session.proxies.update(self._environment["proxies"])
            session.verify = self._environment["verify"]
            session.trust_env = False
        return session

    @property
    def session(self) -> requests.Session:
        """The calling thread's session (made on its first request)."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._configured(self._session_factory())
        return session

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(self, method: str, path: str, *, operation: str, json_body: Any = None, data: Any = None,
                params: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
                expect: tuple[int, ...] | None = None) -> ProviderResponse:
        """Send one request; return the response for 2xx (or statuses in `expect`), raise otherwise.

        `operation` is the client's name for the call (e.g. "redeem_certificate"): the metrics' label, never the
        path, which holds ids."""
        if transaction_guard.enabled:  # the test suite's check that no database transaction is held across a call
            transaction_guard.check(f"{self.provider} {method} {redact(path)}")
        all_headers = {"Accept": "application/json", **self.default_headers, **(headers or {})}
        started = time.perf_counter()
        outcome = "failed"
        try:
            try:
                raw = self.session.request(method, self.url(path), json=json_body, data=data, params=params,
                                           headers=all_headers, timeout=self.timeout)
            except requests.Timeout as exc:
                outcome = "timeout"
                raise ProviderUnavailable(self.provider, f"{method} {path} timed out") from exc
            except requests.ConnectionError as exc:
                outcome = "connection_failed"
                raise ProviderUnavailable(self.provider, f"{method} {path} failed to connect or was cut off") from exc
            except requests.RequestException as exc:
                raise ProviderUnavailable(self.provider, f"{method} {path} failed: {type(exc).__name__}") from exc
            response = self._wrap(raw, started)
            log.debug("%s %s %s -> %s in %.0f ms", self.provider, method, redact(path), response.status,
                      response.elapsed_ms)
            if 200 <= response.status < 300 or (expect and response.status in expect):
                outcome = "ok"
                return response
            outcome = call_outcome(response.status)
            raise self._error_for(method, path, response)
        finally:
            metrics.PROVIDER_CALLS.labels(self.provider, operation, outcome).inc()
            metrics.PROVIDER_CALL_SECONDS.labels(self.provider, operation).observe(time.perf_counter() - started)

    def _wrap(self, raw: requests.Response, started: float) -> ProviderResponse:
        body: Any = None
        if raw.content:
            try:
                body = raw.json()
            except (ValueError, json.JSONDecodeError):
                body = None
        request_id = next((raw.headers[h] for h in REQUEST_ID_HEADERS if h in raw.headers), None)
        return ProviderResponse(status=raw.status_code, body=body, headers=dict(raw.headers),
                                request_id=request_id, elapsed_ms=(time.perf_counter() - started) * 1000,
                                raw=raw.content)

    def _error_for(self, method: str, path: str, response: ProviderResponse) -> ProviderError:
        common = dict(http_status=response.status, body=response.body, request_id=response.request_id)
        if response.status == 429:
            return ProviderRateLimited(self.provider, f"{method} {path} was rate limited",
                                       retry_after_seconds=retry_after_seconds(response.headers.get("Retry-After")),
                                       **common)
        if response.status >= 500:
            return ProviderUnavailable(self.provider, f"{method} {path} answered {response.status}", **common)
        described = self.describe_error(response) if self.describe_error else None
        if described is not None:
            return described
        if response.status in (401, 403):
            return ProviderAuthError(self.provider, "credentials were refused; check the configuration", **common)
        if response.status == 404:
            return ProviderNotFound(self.provider, f"{method} {redact(path)} was not found", **common)
        return ProviderRejected(self.provider, f"{method} {redact(path)} was refused ({response.status})", **common)
