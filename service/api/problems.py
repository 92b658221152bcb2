"""RFC 9457 problem responses: the one place where exceptions become HTTP errors."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, json, request
from flask_babel import gettext, lazy_gettext
from werkzeug.exceptions import HTTPException

from service import metrics
from service.api.ratelimit import limiter
from service.errors import ProviderError, ServiceError
from service.formats import duration_words
from service.logs import mask, redact

log = logging.getLogger("service.web")

PROBLEM_TYPE_BASE = "https://docs.instagift-checkout.invalid/problems/"

# Werkzeug's own errors (routing, size limits, methods) get stable codes, and titles in the answer's language.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
HTTP_TITLES = {
    400: lazy_gettext("Bad request"),
    401: lazy_gettext("Authentication required"),
    403: lazy_gettext("Forbidden"),
    404: lazy_gettext("Not found"),
    405: lazy_gettext("Method not allowed"),
    406: lazy_gettext("Not acceptable"),
    413: lazy_gettext("Request too large"),
    415: lazy_gettext("Unsupported media type"),
    429: lazy_gettext("Too many requests"),
}


def masked_request_path() -> str:
    """The request path fit for logs and problem bodies: the cart token masked whatever its shape, then redacted."""
    path = request.path
    token = (request.view_args or {}).get("cart_token")
    if token:
        path = path.replace(token, mask(token))
    return redact(path)


def problem(status: int, code: str, title: str, detail: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """Build an application/problem+json response with the service's stable `code`; `title` and `detail` may be
    lazy translations, written here in the answer's language."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": str(title),
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = str(detail)
    # Paths can carry a cart token (a bearer capability): shown masked like every other secret.
    body["instance"] = masked_request_path() if request else None
    if g.get("request_id"):
        body["request_id"] = g.request_id
    body.update({k: v for k, v in extra.items() if v is not None})
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    g.problem_code = code  # the request's answer, for the metrics that count by it (service.metrics)
    if status == 429:
        metrics.RATE_LIMIT_REJECTIONS.labels(route=request.url_rule.rule if request.url_rule else "unmatched").inc()
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Map ServiceError, Werkzeug HTTP errors and unexpected exceptions to problem responses."""

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        if exc.status >= 500:  # every provider's error is one, also when re-worded for a shopper
            # A problem worded for a shopper raised from a provider's error: the log keeps the technical words,
            # under the request id the problem carries.
            log.warning("%s: %s", exc.code, exc.__cause__ if isinstance(exc.__cause__, ProviderError) else exc)
        return problem(exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        headers = {}
        extra: dict[str, Any] = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        detail = _http_detail(status, exc)
        if status == 429:
            # Flask-Limiter's RateLimitExceeded (new carts per client): say when to come back.
            limit = limiter.current_limit
            retry_after = max(1, int(limit.reset_at - time.time())) if limit else 60  # as Flask-Limiter says it
            headers["Retry-After"] = str(retry_after)
            extra = {"reason": "too_many_carts", "retry_after": retry_after}
            detail = gettext("Too many checkouts were started from your connection. Please wait %(wait)s and try "
                             "again.", wait=duration_words(retry_after))
        return problem(status, HTTP_CODES.get(status, "http_error"), HTTP_TITLES.get(status, exc.name), detail,
                       headers=headers, **extra)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return problem(500, "internal_error", lazy_gettext("Internal server error"),
                       gettext("Something went wrong on our side. Please try again in a minute, or pay another way; "
                               "the request id identifies what happened in our logs."))


def _http_detail(status: int, exc: HTTPException) -> str | None:
    """Werkzeug's own errors, in words a shopper's browser may show."""
    if status == 400:
        return gettext("The request could not be understood.")
    if status == 404:
        return gettext("There is nothing at this address.")
    if status == 405:
        return gettext("This address does not accept this method.")
    if status == 413:
        return gettext("The request is too large.")
    return exc.description
