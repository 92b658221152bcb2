"""Imports every module that registers job handlers, so a worker knows every job kind."""

from __future__ import annotations

import importlib

HANDLER_MODULES = (
    "service.domain.orders",
    "service.domain.checkout",
    "service.domain.redemption",
    "service.domain.thank_you",
    "service.domain.membership",
    "service.domain.maintenance",
)


def load_handlers() -> None:
    """Import the handler modules (registration happens at import)."""
    for name in HANDLER_MODULES:
        importlib.import_module(name)
