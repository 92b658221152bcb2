"""A membership card's printed fields: the variables a product's field text may use (INSTANTCARD_PRODUCTS), their
values for one order line, and how a field's text is filled in.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

TEMPLATE_VARIABLES = (
    "member_number", "expires_on", "expires_on_us", "expires_month",
    "customer.first_name", "customer.last_name", "customer.name", "customer.email",
    "order.number", "order.id", "shipping.name", "line.sku", "line.title", "shop.name",
)
_VARIABLE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class UnknownVariable(ValueError):
    """A field's text names a variable the service does not know (the variable's name is the message)."""


def render_field(template: str, variables: dict[str, str]) -> str:
    """Fill `{variable}`s (`{{`/`}}` for literal braces); an unknown variable raises UnknownVariable."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "{{":
            return "{"
        if match.group(0) == "}}":
            return "}"
        name = match.group(1).strip()
        if name not in variables:
            raise UnknownVariable(name)
        return variables[name]

    return " ".join(_VARIABLE.sub(replace, template).split())


def template_variables(data: dict[str, Any], line: dict[str, Any], *, member_number: str, expires_on: date,
                       shop_name: str) -> dict[str, str]:
    """The values a template field may use, from the order's `data` and one of its lines."""
    customer = data.get("customer") or {}
    shipping = data.get("shipping_address") or {}
    first, last = customer.get("first_name") or "", customer.get("last_name") or ""
    return {
        "member_number": member_number,
        "expires_on": expires_on.isoformat(),
        "expires_on_us": expires_on.strftime("%m/%d/%Y"),
        "expires_month": expires_on.strftime("%m/%Y"),
        "customer.first_name": first,
        "customer.last_name": last,
        "customer.name": f"{first} {last}".strip() or (shipping.get("name") or ""),
        "customer.email": customer.get("email") or "",
        "order.number": data.get("number") or "",
        "order.id": str(data.get("id") or ""),
        "shipping.name": shipping.get("name") or "",
        "line.sku": line.get("sku") or "",
        "line.title": line.get("title") or "",
        "shop.name": shop_name,
    }
