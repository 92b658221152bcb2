"""The thank-you card rules, message templating and idempotency keys as pure functions."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.config import ConfigurationError
from service.features import load_settings
from service.thank_you.message import render_message, unknown_message_variables
from service.thank_you.rules import Send, Skip, idempotency_key, thank_you_decision
from tests.support import order_completed

TODAY = date(2026, 11, 22)
BASE_ENV = {"SERVICE_ENV": "development", "DATABASE_URL": "sqlite://"}


CARDLY_FIELDS = {"enabled", "artwork", "template"}  # the rest of what a test changes are the thank-you rules


def settings_with(**changes):
    settings = load_settings(BASE_ENV)
    cardly = {k: v for k, v in changes.items() if k in CARDLY_FIELDS}
    rules = {k: v for k, v in changes.items() if k not in CARDLY_FIELDS}
    return dataclasses.replace(settings, cardly=dataclasses.replace(settings.cardly, **cardly),
                               thank_you=dataclasses.replace(settings.thank_you, **rules))


def order(**overrides):
    return order_completed("1001", **overrides)["data"]


def test_a_qualifying_order_becomes_one_line_to_the_shipping_address():
    decision = thank_you_decision(order(), settings_with(), today=TODAY)
    assert isinstance(decision, Send)
    assert decision.payload["purchaseOrderNumber"] == "#1001"
    [line] = decision.payload["lines"]
    assert line["recipient"]["address"] == "10 Main St" and line["recipient"]["country"] == "US"
    assert "sender" not in line and "shippingMethod" not in line and "requestedArrival" not in line


def test_sender_shipping_method_and_arrival_offset_are_passed_on():
    sender = {"firstName": "Demo Shop", "lastName": "", "address": "1 Shop St", "city": "Springfield",
              "region": "IL", "postcode": "62701", "country": "US"}
    decision = thank_you_decision(order(), settings_with(sender=sender, shipping_method="standard",
                                                         arrival_offset_days=7), today=TODAY)
    [line] = decision.payload["lines"]
    assert line["sender"] == sender and line["shippingMethod"] == "standard"
    assert line["requestedArrival"] == "2026-11-29" and decision.requested_arrival == date(2026, 11, 29)


def test_without_a_template_the_message_goes_on_the_inside_page():
    [line] = thank_you_decision(order(), settings_with(template=None), today=TODAY).payload["lines"]
    assert "template" not in line and "variables" not in line
    assert line["messages"] == {"pages": [{"page": 3, "text": "Dear Ada,\nThank you for your order #1001!\nDemo Shop"}]}


def test_the_recipient_name_falls_back_to_the_customer_name():
    address = order()["shipping_address"] | {"name": None, "company": "Analytical Engines Ltd"}
    [line] = thank_you_decision(order(shipping_address=address), settings_with(), today=TODAY).payload["lines"]
    assert (line["recipient"]["firstName"], line["recipient"]["lastName"]) == ("Ada", "Lovelace")
    assert line["recipient"]["company"] == "Analytical Engines Ltd"


@pytest.mark.parametrize(("changes", "overrides", "reason"), [
    ({"enabled": False}, {}, "disabled"),
    ({"artwork": None}, {}, "not_configured"),
    ({"min_order_cents": 5251}, {}, "below_minimum"),
    ({"countries": ("CA",)}, {}, "country_not_allowed"),
    ({}, {"customer": {"first_name": "Ada", "accepts_mail": False}}, "opted_out"),
    ({}, {"shipping_address": None}, "no_shipping_address"),
])
def test_each_rule_says_why_it_skips(changes, overrides, reason):
    decision = thank_you_decision(order(**overrides), settings_with(**changes), today=TODAY)
    assert isinstance(decision, Skip) and decision.reason == reason and decision.detail


def test_opted_out_customers_get_a_card_when_the_rule_is_off():
    decision = thank_you_decision(order(customer={"first_name": "Ada", "accepts_mail": False}),
                                  settings_with(skip_opted_out=False), today=TODAY)
    assert isinstance(decision, Send)


def test_a_cancelled_order_is_skipped():
    assert thank_you_decision(order(), settings_with(), today=TODAY, cancelled=True).reason == "order_cancelled"


@given(total=st.integers(min_value=0, max_value=10**9), minimum=st.integers(min_value=0, max_value=10**9))
def test_minimum_order_value_sends_exactly_when_the_total_reaches_it(total, minimum):
    decision = thank_you_decision(order(total_cents=total), settings_with(min_order_cents=minimum), today=TODAY)
    assert isinstance(decision, Send) == (total >= minimum)
    if isinstance(decision, Skip):
        assert decision.reason == "below_minimum"


@given(shop_order_id=st.text(min_size=1, max_size=100), generation=st.integers(min_value=1, max_value=10**6))
def test_idempotency_keys_fit_cardly_and_are_distinct_per_generation(shop_order_id, generation):
    key = idempotency_key(shop_order_id, generation)
    assert 1 <= len(key) <= 64 and key.isascii() and " " not in key
    assert key == idempotency_key(shop_order_id, generation)
    assert key != idempotency_key(shop_order_id, generation + 1)
    assert key.endswith(f"-g{generation}")


def test_readable_ids_are_kept_and_long_ones_hashed():
    assert idempotency_key("1001", 1) == "order-1001-g1"
    long_key = idempotency_key("x" * 80, 2)
    assert long_key.startswith("order-h") and len(long_key) <= 64
    assert idempotency_key("x" * 80, 2) != idempotency_key("x" * 79 + "y", 2)


def test_message_variables_fallbacks_and_literal_braces():
    values = {"customer.first_name": None, "order.number": "#7", "shop.name": "Shop"}
    assert render_message("Dear {customer.first_name|friend}, order {order.number} {{ok}}", values) == \
        "Dear friend, order #7 {ok}"
    assert render_message("Hi {customer.first_name}!", values) == "Hi !"
    assert render_message("Hi {customer.nickname}!", values) == "Hi !"  # unknown: never printed as braces
    assert unknown_message_variables("{customer.first_name} {customer.nickname} {order.total}") == [
        "customer.nickname", "order.total"]


@given(template=st.text(max_size=200), value=st.one_of(st.none(), st.text(max_size=20)))
def test_rendering_never_raises(template, value):
    rendered = render_message(template, {"customer.first_name": value})
    assert isinstance(rendered, str)


def test_start_up_refuses_an_unknown_message_variable_and_an_incomplete_sender():
    with pytest.raises(ConfigurationError) as caught:
        load_settings(BASE_ENV | {"CARDLY_MESSAGE": "Hi {customer.nickname}",
                                  "CARDLY_SENDER": '{"firstName": "Shop"}',
                                  "CARDLY_ARRIVAL_OFFSET_DAYS": "-1"})
    text = str(caught.value)
    assert "CARDLY_MESSAGE uses unknown variables: customer.nickname" in text
    assert "CARDLY_SENDER lacks address, city, postcode, country" in text
    assert "CARDLY_ARRIVAL_OFFSET_DAYS must not be negative" in text


def test_settings_read_the_cardly_rules():
    settings = load_settings(BASE_ENV | {"CARDLY_MIN_ORDER_CENTS": "2500", "CARDLY_COUNTRIES": "us, ca",
                                         "CARDLY_SKIP_OPTED_OUT": "false", "CARDLY_TIMEOUT_SECONDS": "4",
                                         "CARDLY_SHIPPING_METHOD": "standard"})
    cardly, rules = settings.cardly, settings.thank_you
    assert (rules.min_order_cents, rules.countries, rules.skip_opted_out) == (2500, ("US", "CA"), False)
    assert cardly.timeout_seconds == 4.0 and rules.shipping_method == "standard"
    assert cardly.sandbox and cardly.api_key == "test_sandbox_key"
