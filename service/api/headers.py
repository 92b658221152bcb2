"""Security headers on every answer the service gives (API, problems, the OpenAPI document, pages).

Browsers must not guess a type from the content (`nosniff`), send our URLs (they carry cart tokens) to other
sites (`no-referrer`), or frame any answer (`frame-ancestors 'none'`, and `X-Frame-Options: DENY` for older
browsers). In production a request that arrived over HTTPS also gets HSTS. Answers on the widget's CORS routes
vary by `Origin` whatever the origin was, so no cache hands one origin's answer to another.
"""

from __future__ import annotations

from flask import Flask, Response, request

from service.api.languages import WIDGET_PATHS

HSTS = "max-age=31536000; includeSubDomains"


def register_security_headers(app: Flask) -> None:
    """Add the headers above to every response of `app` (the CORS routes are the widget's, WIDGET_PATHS)."""
    production = app.extensions["settings"].is_production

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        policy = headers.get("Content-Security-Policy")
        if not policy:
            headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        elif "frame-ancestors" not in policy:
            headers["Content-Security-Policy"] = f"{policy}; frame-ancestors 'none'"
        if production and request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        if WIDGET_PATHS.match(request.path):
            response.vary.add("Origin")
        return response
