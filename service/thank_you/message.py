"""The thank-you message (CARDLY_MESSAGE): the variables it may use and how it is filled in.

`{name}` or `{name|fallback}` placeholders, `{{`/`}}` for literal braces. Start-up refuses a message with an
unknown variable (service.thank_you.settings); rendering never raises.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MESSAGE_VARIABLES = ("customer.first_name", "customer.last_name", "order.number", "order.id", "shop.name")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}|]*)(?:\|([^{}]*))?\}")


def unknown_message_variables(template: str) -> list[str]:
    """The `{…}` variables in `template` that the service does not know (CARDLY_MESSAGE is checked at start)."""
    found = [m.group(1).strip() for m in _PLACEHOLDER.finditer(template) if m.group(1) is not None]
    return sorted({name for name in found if name not in MESSAGE_VARIABLES})


def render_message(template: str, values: Mapping[str, str | None]) -> str:
    """Fill `{name}` / `{name|fallback}` placeholders; `{{`/`}}` are literal braces; never raises.

    A known variable without a value renders its fallback (or nothing); an unknown variable renders as
    nothing, so a typo never prints braces on a customer's card (start-up refuses such a template anyway).
    """

    def fill(match: re.Match) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = (match.group(1) or "").strip()
        value = values.get(name) if name in MESSAGE_VARIABLES else None
        if value is None or str(value).strip() == "":
            return match.group(2) or ""
        return str(value)

    return _PLACEHOLDER.sub(fill, template)
