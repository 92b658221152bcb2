"""Staff sign-in for the console: an admin token exchanged for a signed session cookie, CSRF on every form.

The session (Flask's cookie, signed with SECRET_KEY) holds the staff name, when they signed in and a fingerprint
of the token they used: a session ends ADMIN_SESSION_HOURS after sign-in whatever the activity, on sign-out, and
as soon as that person's token is removed from or changed in the configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta
from urllib.parse import unquote, urlsplit

from flask import Flask, current_app, g, session
from flask_wtf.csrf import CSRFProtect

from service.api.parsing import staff_name_for

csrf = CSRFProtect()

SESSION_COOKIE = "console_session"


def init_sessions(app: Flask) -> None:
    """Session cookie and CSRF settings for the console (the JSON API uses bearer tokens and no cookie)."""
    settings = app.extensions["settings"]
    app.secret_key = settings.secret_key
    app.config.update(
        SESSION_COOKIE_NAME=SESSION_COOKIE,
        SESSION_COOKIE_PATH="/admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.is_production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.admin_session_hours),
        # The console's blueprint checks its own forms; the API and the webhook never need a CSRF token.
        WTF_CSRF_CHECK_DEFAULT=False,
        # A form stays valid for as long as the session does.
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf.init_app(app)


def token_fingerprint(token: str) -> str:
    """A keyed digest of a token, kept in the session to notice the token being revoked (never the token)."""
    key = current_app.extensions["settings"].secret_key.encode()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()[:32]


def sign_in(token: str) -> str | None:
    """Start a session for the person whose admin token `token` is; their name, or None for no one."""
    settings = current_app.extensions["settings"]
    name = staff_name_for(token.strip(), settings.staff_tokens)
    if name is None:
        return None
    session.clear()
    session.permanent = True
    session.update(staff=name, since=int(time.time()), key=token_fingerprint(token.strip()))
    return name


def sign_out() -> None:
    """End the session (the cookie is emptied)."""
    session.clear()


def session_staff(now: float | None = None) -> str | None:
    """The signed-in staff name, or None when there is no session, it is older than ADMIN_SESSION_HOURS, or the
    token it was opened with no longer belongs to that person."""
    settings = current_app.extensions["settings"]
    name, since, key = session.get("staff"), session.get("since"), session.get("key")
    if not name or not isinstance(since, int) or not key:
        return None
    if (now if now is not None else time.time()) - since >= settings.admin_session_hours * 3600:
        return None
    if not any(staff == name and hmac.compare_digest(token_fingerprint(token), key)
               for staff, token in settings.staff_tokens):
        return None
    g.staff = name
    return name


def had_session() -> bool:
    """Whether the request carried a console session (expired or not): 'signed out' reads differently then."""
    return bool(session.get("staff"))


def safe_next(target: str | None) -> str | None:
    """`target` when it is a console page on this site (no other host, no scheme), else None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/admin/") or target.startswith("//") or "\\" in target:
        return None
    # The browser resolves dot segments (also percent-encoded ones): "/admin/../v1/…" would leave the console.
    if any(unquote(segment) in {".", ".."} for segment in parts.path.split("/")):
        return None
    return target
