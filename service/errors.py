"""The service's few exception types. `service.api.problems` maps them to RFC 9457 responses in one place.

`ServiceError` subclasses carry the HTTP status and the stable problem `code` the public contract promises; their
titles are translated (lazily: in the language of the answer that shows them, service.api.languages).
`ProviderError` subclasses describe what a provider said (status, body, request id) and whether trying
again may help (`retryable`) or whether the provider may have acted even though we got no answer
(`outcome_unknown`), modelled on stripe-python's error classes.
"""

from __future__ import annotations

import math
from typing import Any

from flask_babel import gettext, lazy_gettext

from service.formats import duration_words


class ServiceError(Exception):
    """An error with a public problem `code`, HTTP `status`, human `title` and optional `detail`/extras."""

    status = 500
    code = "internal_error"
    title = lazy_gettext("Internal server error")

    def __init__(self, detail: str | None = None, *, code: str | None = None, title: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail or title or self.title)
        self.detail = detail
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        if status is not None:
            self.status = status
        self.headers = headers or {}
        self.extra = extra


class BadRequest(ServiceError):
    status, code, title = 400, "bad_request", lazy_gettext("Bad request")


class Unauthorized(ServiceError):
    status, code, title = 401, "unauthorized", lazy_gettext("Authentication required")


class NotFound(ServiceError):
    status, code, title = 404, "not_found", lazy_gettext("Not found")


class UnsupportedMediaType(ServiceError):
    status, code, title = 415, "unsupported_media_type", lazy_gettext("Unsupported media type")


class Conflict(ServiceError):
    status, code, title = 409, "conflict", lazy_gettext("Conflict")


class ValidationFailed(ServiceError):
    """The request was understood but its content is invalid; `errors` maps field → messages."""

    status, code, title = 422, "validation_failed", lazy_gettext("The request is invalid")

    def __init__(self, errors: dict[str, Any], detail: str | None = None, **kwargs: Any):
        # `errors` stays in English whatever the answer's language: it names fields for the developer.
        super().__init__(detail or gettext("One or more fields are invalid."), errors=errors, **kwargs)


class RateLimited(ServiceError):
    """429: the `Retry-After` header and the `retry_after` member say when to come back (whole seconds); `reason`
    says which limit it was (docs/api.md)."""

    status, code, title = 429, "rate_limited", lazy_gettext("Too many requests")

    def __init__(self, retry_after_seconds: float, detail: str | None = None, *, reason: str = "too_many_requests",
                 **kwargs: Any):
        retry_after_seconds = max(1, math.ceil(retry_after_seconds))
        super().__init__(detail or gettext("Too many attempts. Please wait %(wait)s and try again.",
                                           wait=duration_words(retry_after_seconds)),
                         headers={"Retry-After": str(retry_after_seconds)}, reason=reason,
                         retry_after=retry_after_seconds, **kwargs)
        self.retry_after_seconds = retry_after_seconds


class ProviderError(ServiceError):
    """A provider call failed. Raised only by provider clients; the message never contains secrets."""

    status, code, title = 502, "provider_error", lazy_gettext("A provider call failed")
    retryable = False
    outcome_unknown = False  # True when the provider may have acted although we have no definite answer

    def __init__(self, provider: str, message: str, *, http_status: int | None = None,
                 body: Any = None, request_id: str | None = None, reason: str | None = None, **kwargs: Any):
        super().__init__(f"{provider}: {message}", **kwargs)
        self.provider = provider
        self.message = message
        self.http_status = http_status
        self.body = body
        self.request_id = request_id
        self.reason = reason

    def __str__(self) -> str:
        parts = [f"{self.provider}: {self.message}"]
        if self.http_status is not None:
            parts.append(f"(HTTP {self.http_status})")
        if self.request_id:
            parts.append(f"[request id {self.request_id}]")
        return " ".join(parts)


class ProviderUnavailable(ProviderError):
    """Timeout, connection failure or 5xx: the outcome is unknown, trying again later may work."""

    status, code, title = 503, "provider_unavailable", lazy_gettext("A provider is unavailable")
    retryable = True
    outcome_unknown = True


class ProviderRateLimited(ProviderError):
    status, code, title = 503, "provider_rate_limited", lazy_gettext("A provider is rate limiting us")
    retryable = True

    def __init__(self, provider: str, message: str, *, retry_after_seconds: float | None = None, **kwargs: Any):
        super().__init__(provider, message, **kwargs)
        self.retry_after_seconds = retry_after_seconds


class ProviderAuthError(ProviderError):
    """401/403: credentials or permissions are wrong; a configuration problem for a person to fix."""

    status, code, title = 502, "provider_configuration", lazy_gettext("A provider rejected our credentials")


class ProviderNotFound(ProviderError):
    status, code, title = 502, "provider_not_found", lazy_gettext("A provider does not know this resource")


class ProviderRejected(ProviderError):
    """The provider understood the request and definitively refused it (4xx with a reason)."""

    status, code, title = 502, "provider_rejected", lazy_gettext("A provider refused the request")


class ProviderPaymentRequired(ProviderRejected):
    """The provider account lacks credit or funds to do this (Cardly 402, InstantCard balance)."""

    code, title = "provider_payment_required", lazy_gettext("The provider account needs more credit")


class ProviderResponseInvalid(ProviderError):
    """The provider answered 2xx with a body we cannot read; the outcome may still have happened."""

    status, code, title = 502, "provider_response_invalid", lazy_gettext("A provider's answer could not be read")
    outcome_unknown = True
