"""The membership card rules' settings (INSTANTCARD_PRODUCTS, shipping, the batch cutoff, …), checked at start-up.

InstantCard's connection settings (URL, login, organization, shipping provider) are with the providers
(service.providers.settings). Meanings and defaults: docs/membership-cards.md.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from service.config import Environment
from service.membership.card_fields import TEMPLATE_VARIABLES, UnknownVariable, render_field

SHIP_TO = ("member", "store")  # one print job per order line, or a daily batch to the store
# In development, with no mapping configured, the sandbox's template 101 is a membership product.
DEVELOPMENT_PRODUCTS = {
    "MEMBER-GOLD": {
        "template_id": 101,
        "fields": {
            "Name": "{customer.first_name} {customer.last_name}",
            "Member Number": "{member_number}",
            "Expires": "{expires_on}",
        },
    }
}


@dataclass(frozen=True)
class MembershipSettings:
    products: dict[str, Any]  # SKU -> {"template_id", "fields"}
    member_number_prefix: str
    membership_term_months: int
    ship_to: str  # "member" (one print job per order line) or "store" (daily batch)
    store_address: dict[str, Any] | None
    batch_cutoff: str  # HH:MM, US Eastern
    batch_max_cards: int
    funds_recheck_seconds: int


def template_problems(products: dict[str, Any]) -> list[str]:
    """Everything wrong with INSTANTCARD_PRODUCTS, for the start-up check (empty list when fine)."""
    problems = []
    sample = {name: "x" for name in TEMPLATE_VARIABLES}
    for sku, product in products.items():
        where = f"INSTANTCARD_PRODUCTS[{sku!r}]"
        if not isinstance(product, dict):
            problems.append(f"{where} must be an object with template_id and fields")
            continue
        template_id = product.get("template_id")
        if isinstance(template_id, bool) or not isinstance(template_id, int | str) or not str(template_id).isdigit():
            problems.append(f"{where}.template_id must be a whole number")
        fields = product.get("fields")
        if not isinstance(fields, dict) or not fields:
            problems.append(f"{where}.fields must map template field names to text")
            continue
        for name, text in fields.items():
            if not isinstance(text, str):
                problems.append(f"{where}.fields[{name!r}] must be text")
                continue
            try:
                render_field(text, sample)
            except UnknownVariable as exc:
                problems.append(f"{where}.fields[{name!r}] uses unknown variable {{{exc}}}; known: "
                                + ", ".join(TEMPLATE_VARIABLES))
        if not any(isinstance(t, str) and "{member_number}" in t.replace(" ", "") for t in fields.values()):
            problems.append(f"{where}.fields must put {{member_number}} in a field (it is how a card is found "
                            "again after an uncertain create)")
    return problems


def _mapping_problems(products: Any) -> list[str]:
    if not isinstance(products, dict):
        return ["INSTANTCARD_PRODUCTS must be a JSON object mapping SKU to a card template"]
    return []


def _cutoff_problems(cutoff: str) -> list[str]:
    if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", cutoff):
        return [f"INSTANTCARD_BATCH_CUTOFF must be HH:MM in US Eastern time (got {cutoff!r})"]
    return []


def read(env: Environment) -> MembershipSettings:
    """Which SKUs are membership cards, what they print, and how they are shipped."""
    products = env.json("INSTANTCARD_PRODUCTS", {}, problems=_mapping_problems)
    # A wrong product is reported but kept: a mapped SKU still needs InstantCard's credentials in production,
    # and both are reported at once.
    for problem in template_problems(products):
        env.problem(problem)
    if not env.production and not products:
        products = copy.deepcopy(DEVELOPMENT_PRODUCTS)
    ship_to = env.choice("INSTANTCARD_SHIP_TO", "member", SHIP_TO)
    store_address = env.json("INSTANTCARD_STORE_ADDRESS", None)
    if ship_to == "store" and not (isinstance(store_address, dict)
                                   and all(store_address.get(k) for k in ("address1", "city", "country"))):
        env.problem("INSTANTCARD_STORE_ADDRESS must be a JSON address with at least address1, city and country "
                    "when INSTANTCARD_SHIP_TO=store")
    return MembershipSettings(
        products=products,
        member_number_prefix=env.text("INSTANTCARD_MEMBER_NUMBER_PREFIX", "M-"),
        membership_term_months=env.whole("INSTANTCARD_MEMBERSHIP_TERM_MONTHS", 12, minimum=1),
        ship_to=ship_to,
        store_address=store_address,
        batch_cutoff=env.text("INSTANTCARD_BATCH_CUTOFF", "15:30", problems=_cutoff_problems),
        batch_max_cards=env.whole("INSTANTCARD_BATCH_MAX_CARDS", 50, minimum=1),
        funds_recheck_seconds=env.whole("INSTANTCARD_FUNDS_RECHECK_SECONDS", 900),
    )
