"""The thank-you card rules' settings (CARDLY_MESSAGE, CARDLY_SENDER, …), checked at start-up.

Whether cards are sent at all (CARDLY_ENABLED), the key, the artwork and the template are Cardly's connection
settings (service.providers.settings). Meanings and defaults: docs/thank-you-cards.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.config import Environment
from service.providers.cardly import SENDER_DOCUMENTED_FIELDS, SENDER_FIELDS
from service.thank_you.message import unknown_message_variables

DEFAULT_MESSAGE = "Dear {customer.first_name},\nThank you for your order {order.number}!\n{shop.name}"


@dataclass(frozen=True)
class ThankYouSettings:
    message: str
    sender: dict[str, Any] | None
    shipping_method: str | None
    min_order_cents: int
    countries: tuple[str, ...]
    skip_opted_out: bool
    arrival_offset_days: int | None
    credit_recheck_seconds: int


def message_problems(message: str) -> list[str]:
    """A message with a variable the service does not know would print nothing where the merchant expects text."""
    unknown = unknown_message_variables(message)
    if unknown:
        return [f"CARDLY_MESSAGE uses unknown variables: {', '.join(unknown)} (see docs/thank-you-cards.md)"]
    return []


def sender_problems(sender: Any) -> list[str]:
    """Cardly refuses a card whose sender lacks a field: an incomplete sender would fail every card."""
    if sender is None:  # JSON null: no sender, as when unset
        return []
    if not isinstance(sender, dict):
        return ["CARDLY_SENDER must be a JSON object with Cardly's sender fields"]
    unknown = [name for name in sender if name not in SENDER_DOCUMENTED_FIELDS]
    if unknown:
        return [f"CARDLY_SENDER has {', '.join(unknown)}, which Cardly's sender does not have (its fields: "
                f"{', '.join(SENDER_DOCUMENTED_FIELDS)})"]
    missing = [name for name in SENDER_FIELDS if not str(sender.get(name) or "").strip()]
    if missing:
        return [f"CARDLY_SENDER lacks {', '.join(missing)} (Cardly needs all sender fields or none)"]
    return []


def _not_negative(days: int) -> list[str]:
    return ["CARDLY_ARRIVAL_OFFSET_DAYS must not be negative"] if days < 0 else []


def read(env: Environment) -> ThankYouSettings:
    """Which orders get a card and what it says."""
    return ThankYouSettings(
        message=env.text("CARDLY_MESSAGE", DEFAULT_MESSAGE, problems=message_problems),
        sender=env.json("CARDLY_SENDER", None, problems=sender_problems),
        shipping_method=env.text("CARDLY_SHIPPING_METHOD"),
        min_order_cents=env.whole("CARDLY_MIN_ORDER_CENTS", 0),
        countries=tuple(country.upper() for country in env.entries("CARDLY_COUNTRIES")),
        skip_opted_out=env.flag("CARDLY_SKIP_OPTED_OUT", True),
        arrival_offset_days=env.whole("CARDLY_ARRIVAL_OFFSET_DAYS", 0, problems=_not_negative) or None,
        credit_recheck_seconds=env.whole("CARDLY_CREDIT_RECHECK_SECONDS", 900),
    )
