"""The widget tells the shopper how long to wait when the service rate-limits lookups (429 + Retry-After)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Widget

pytestmark = pytest.mark.browser


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "2/minute"
    return environ


def test_rate_limited_lookups_say_when_to_try_again(demo: Widget):
    demo.apply("DEMO-050S-PLIT")
    expect(demo.cards).to_have_count(1)
    demo.apply("DEMO-025N-OSPL")
    expect(demo.confirm).to_be_visible()
    demo.page.get_by_role("button", name="Cancel").click()

    demo.apply("DEMO-100S-PLIT")

    expect(demo.message).to_have_text(re.compile(r"^Too many attempts from this device\. Please wait \d+ seconds and try again\.$"))
    seconds = int(re.search(r"\d+", demo.message.inner_text()).group())
    assert 0 < seconds <= 60
    expect(demo.cards).to_have_count(1)
