"""The shopper's language: gettext catalogs (service/translations/<language>/LC_MESSAGES/messages.po, compiled to
.mo) through Flask-Babel, picked from `Accept-Language` on the widget's endpoints and answered as `Content-Language`.

English is the source language (the msgids). A language is supported when its compiled catalog is present, so
adding one is adding a catalog (docs/api.md › Languages). The merchant's and the shop backend's endpoints answer
in English whatever the request asks: their words are for engineers and are not translated.
"""

from __future__ import annotations

import re

from flask import Flask, Response, current_app, has_request_context, request
from flask_babel import Babel, get_locale

SOURCE_LANGUAGE = "en"
LANGUAGES_KEY = "languages"
PROBLEM_MIMETYPE = "application/problem+json"

# The endpoints the widget calls (the cart, its gift cards, the balance): a shopper reads their problems. verify is
# the shop backend's. The same paths get CORS headers (service/__init__.py).
WIDGET_PATHS = re.compile(r"^/v1/(gift-cards(/.*)?|carts(/[^/]+(/gift-cards(/[^/]+)?)?)?)$")

babel = Babel()


def supported_languages(app: Flask) -> tuple[str, ...]:
    """English first, then every language with a compiled catalog under service/translations."""
    return app.extensions[LANGUAGES_KEY]


def answer_language() -> str:
    """The language of this answer: on a widget endpoint the best supported match of `Accept-Language` (English
    when nothing matches or the header is absent), elsewhere English."""
    if not has_request_context() or not WIDGET_PATHS.match(request.path):
        return SOURCE_LANGUAGE
    supported = supported_languages(current_app)
    # By the shopper's order of preference, a regional tag standing for its language ("es-MX" is "es"). Werkzeug's
    # best_match would prefer an exact match further down the list ("es;q=0.9" over a first "en-GB").
    for tag, quality in request.accept_languages:
        language = SOURCE_LANGUAGE if tag == "*" else tag.replace("_", "-").split("-")[0].lower()
        if quality > 0 and language in supported:
            return language
    return SOURCE_LANGUAGE


def _compiled_languages(app: Flask) -> tuple[str, ...]:
    with app.app_context():
        found = sorted(str(locale) for locale in babel.list_translations() if str(locale) != SOURCE_LANGUAGE)
    return (SOURCE_LANGUAGE, *found)


def init_languages(app: Flask) -> None:
    """Flask-Babel with the answer's language chosen by `answer_language`; every problem (the answers that carry
    words) says its language in `Content-Language`, and widget answers vary by `Accept-Language`."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", SOURCE_LANGUAGE)
    babel.init_app(app, locale_selector=answer_language)
    app.extensions[LANGUAGES_KEY] = _compiled_languages(app)

    @app.after_request
    def say_the_language(response: Response) -> Response:
        if response.mimetype == PROBLEM_MIMETYPE:
            response.headers["Content-Language"] = str(get_locale() or SOURCE_LANGUAGE)
        if WIDGET_PATHS.match(request.path):
            response.vary.add("Accept-Language")
        return response
