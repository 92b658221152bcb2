"""RFC 9457 problem responses: the one place where exceptions become HTTP errors."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json, request
from werkzeug.exceptions import HTTPException

from service import metrics
from service.errors import ServiceError
from service.logs import mask, redact

log = logging.getLogger("service.web")

PROBLEM_TYPE_BASE = "https://docs.instagift-checkout.invalid/problems/"

# Werkzeug's own errors (routing, size limits, methods) get stable codes too.
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


def masked_request_path() -> str:
    """The request path fit for logs and problem bodies: the cart token masked whatever its shape, then redacted."""
    path = request.path
    token = (request.view_args or {}).get("cart_token")
    if token:
        path = path.replace(token, mask(token))
    return redact(path)


def problem(status: int, code: str, title: str, detail: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """Build an application/problem+json response with the service's stable `code`."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
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
        if exc.status >= 500:
            log.warning("%s: %s", exc.code, exc)
        return problem(exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        status = exc.code or 500
        headers = {}
        if status == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        detail = exc.description if status != 404 else "There is nothing at this address."
        if status == 429:
            # Flask-Limiter's RateLimitExceeded: say when to come back.
            headers["Retry-After"] = exc.get_response().headers.get("Retry-After", "60")
            detail = "Too many attempts; please wait before trying again."
        return problem(status, HTTP_CODES.get(status, "http_error"), exc.name, detail, headers=headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return problem(500, "internal_error", "Internal server error",
                       "Something went wrong on our side; the request id identifies it in our logs.")
