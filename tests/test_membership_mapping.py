"""Mapping from configuration: templates, variables, member numbers, expiry, and the start-up check."""

from __future__ import annotations

import json
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.config import ConfigurationError
from service.features import load_settings
from service.membership.card_fields import UnknownVariable, render_field, template_variables
from service.membership.rules import add_months, member_number_for, split_cost
from service.membership.settings import template_problems
from service.providers.instantcard import one_off_address
from tests.support import order_completed

DATA = order_completed("1001")["data"]


def variables(**overrides):
    return template_variables({**DATA, **overrides}, DATA["line_items"][0], member_number="M-00000042",
                              expires_on=date(2027, 11, 21), shop_name="Demo Shop")


def test_every_documented_variable_renders():
    values = variables()
    assert render_field("{customer.first_name} {customer.last_name}", values) == "Ada Lovelace"
    assert render_field("{member_number}", values) == "M-00000042"
    assert render_field("{expires_on} {expires_on_us} {expires_month}", values) == "2027-11-21 11/21/2027 11/2027"
    assert render_field("Order {order.number} ({order.id}) at {shop.name}", values) == "Order #1001 (1001) at Demo Shop"
    assert render_field("{customer.email} {shipping.name} {line.sku} {line.title}", values) == \
        "ada@example.com Ada Lovelace TEE-1 T-shirt"
    assert render_field("{{literal}}", values) == "{literal}"


def test_missing_values_render_empty_and_spaces_collapse():
    values = variables(customer={"first_name": None, "last_name": "Lovelace", "email": None})
    assert render_field("{customer.first_name} {customer.last_name}", values) == "Lovelace"


def test_unknown_variable_is_refused():
    with pytest.raises(UnknownVariable):
        render_field("{customer.nickname}", variables())


def test_member_numbers_carry_the_prefix_and_are_fixed_width():
    assert member_number_for("M-", 7) == "M-00000007"
    assert member_number_for("GOLD", 123456789) == "GOLD123456789"


@pytest.mark.parametrize("start, months, expected", [
    (date(2026, 11, 21), 12, date(2027, 11, 21)),
    (date(2027, 1, 31), 1, date(2027, 2, 28)),
    (date(2028, 1, 31), 1, date(2028, 2, 29)),
    (date(2026, 12, 15), 3, date(2027, 3, 15)),
])
def test_expiry_adds_whole_months(start, months, expected):
    assert add_months(start, months) == expected


def test_order_address_maps_to_a_one_off_address():
    assert one_off_address(DATA["shipping_address"]) == {
        "full_name": "Ada Lovelace", "address_1": "10 Main St", "city": "Springfield", "state": "IL",
        "zip_code": "62701", "country": "US"}
    assert one_off_address(None) is None


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=1, max_value=500))
def test_cost_shares_are_whole_cents_that_sum_to_the_total(total, parts):
    shares = split_cost(total, parts)
    assert len(shares) == parts
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_template_problems_name_what_is_wrong():
    problems = template_problems({
        "A": {"template_id": "x", "fields": {"Name": "{customer.nickname}"}},
        "B": "not an object",
        "C": {"template_id": 5, "fields": {"Name": "{customer.first_name}"}},
    })
    text = "\n".join(problems)
    assert "INSTANTCARD_PRODUCTS['A'].template_id" in text
    assert "unknown variable {customer.nickname}" in text
    assert "INSTANTCARD_PRODUCTS['B'] must be an object" in text
    assert "INSTANTCARD_PRODUCTS['C'].fields must put {member_number}" in text
    assert template_problems({"OK": {"template_id": 1, "fields": {"No": "{member_number}"}}}) == []


def test_the_service_refuses_to_start_with_a_bad_mapping_or_store_settings():
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"INSTANTCARD_PRODUCTS": json.dumps({"GOLD": {"template_id": 1, "fields": {"N": "{nope}"}}}),
                       "INSTANTCARD_SHIP_TO": "store", "INSTANTCARD_BATCH_CUTOFF": "25:00"})
    message = str(caught.value)
    assert "unknown variable {nope}" in message
    assert "INSTANTCARD_STORE_ADDRESS" in message
    assert "INSTANTCARD_BATCH_CUTOFF" in message


def test_development_default_maps_member_gold():
    settings = load_settings({"SERVICE_ENV": "development"})
    assert settings.membership.products["MEMBER-GOLD"]["template_id"] == 101
    assert settings.instantcard.sandbox
