"""Logging: one JSON object a line (production) or readable text, always with secrets masked.

The masking filter rewrites every record's message and arguments, whatever the caller passed, so a claim
code, bearer token or key that reaches a log call is shown as its last four characters only.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

# Claim codes look like "62DD-CV4T-R2NTM2" or "MNK-QPF27E-EHJ3": letter/digit groups joined by hyphens,
# 10+ characters with at least one digit and one letter. Also long unbroken alphanumeric tokens.
# Upper case only: Instagift prints codes in capitals and the service logs them only as it sends them
# (normalised), while lower-case hyphenated ids such as order "ord-audit-1" must stay readable.
_CLAIM_CODE = re.compile(r"\b(?=[A-Z0-9-]*\d)(?=[A-Z0-9-]*[A-Z])[A-Z0-9]{2,8}(?:-[A-Z0-9]{2,8}){1,4}\b")
_BEARER = re.compile(r"(?i)\b(bearer|token|api[-_]?key|secret|password|authorization)(\s*[:=]\s*|\s+)(['\"]?)"
                     r"((?:bearer|basic)\s+)?([^\s'\",}]+)")
_SECRET_PREFIXED = re.compile(r"\b(whsec_|test_|live_|sk_)[A-Za-z0-9+/=_-]{6,}")
# Instagift's URLs carry the code as a path segment, sent bare ("62DDCV4TR2NTM2"), which no shape rule catches.
_CLAIM_CODE_SEGMENT = re.compile(r"(?<=claim_codes/)[^/?#\s\"']+")
# Cart tokens are URL-safe base64 and may start or end with "-" or "_": bounded by lookarounds, not \b.
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{24,}(?![A-Za-z0-9_-])")
MASK = "••••"


def mask(value: str | None, visible: int = 4) -> str:
    """Show only the last `visible` characters of a secret: '••••R2NT'."""
    if not value:
        return ""
    cleaned = str(value)
    if len(cleaned) <= visible:
        return "•" * len(cleaned)
    return MASK + cleaned[-visible:]


def masked_last4(last4: str | None) -> str:
    """A stored last four shown the way `mask` shows a whole code: '••••R2NT'."""
    return MASK + (last4 or "")[-4:]


# snake_case names (function and column names in tracebacks) are left readable; a random URL-safe token of 24+
# characters made only of lower-case letters, digits and inner underscores is vanishingly unlikely.
_SNAKE_CASE = re.compile(r"_*[a-z]+(?:_[a-z0-9]+)+")


def _mask_long_token(match: re.Match) -> str:
    word = match.group(0)
    return word if _SNAKE_CASE.fullmatch(word) else mask(word)


def redact(text: str) -> str:
    """Mask anything in free text that looks like a claim code, token, key or secret."""
    text = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3)}{m.group(4) or ''}{mask(m.group(5))}", text)
    text = _SECRET_PREFIXED.sub(lambda m: mask(m.group(0)), text)
    text = _CLAIM_CODE_SEGMENT.sub(lambda m: mask(m.group(0)), text)
    # Long tokens before claim codes: a cart token can contain a claim-code-shaped run, and masking that run
    # alone would leave the rest of the token in the clear.
    text = _LONG_TOKEN.sub(_mask_long_token, text)
    return _CLAIM_CODE.sub(lambda m: mask(m.group(0)), text)


# No single record may flood the log (a request that recurses deeply once wrote a 107 KB traceback): a message and
# a traceback keep their beginning and their end, the middle is left out.
MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 4000


def clip(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters: its first quarter and its end kept (a traceback's entry point and
    the frames and exception where it failed), saying how much was left out."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n… {len(text) - limit} characters left out …\n{text[-tail:]}"


class RedactingFilter(logging.Filter):
    """Renders the message once, masks secrets in it and clips it before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the log line
            message = str(record.msg)
        record.msg = clip(redact(message), MAX_MESSAGE_CHARS)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = clip(redact(record.exc_text), MAX_TRACEBACK_CHARS)
        return True


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


class JsonFormatter(logging.Formatter):
    _skip = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                entry[key] = value if isinstance(value, (int, float, bool, type(None))) else redact(str(value))
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Install one stderr handler on the root logger with masking and request ids."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_service_handler", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._service_handler = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    # urllib3 logs full provider URLs at DEBUG; Instagift's carry claim codes. Keep it quiet at any level.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
