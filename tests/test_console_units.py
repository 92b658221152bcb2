"""The console's pure helpers: how amounts are written and how the chart's bars are scaled (property-tested)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from service.console.overview import CHART_HEIGHT, CHART_TOP, CHART_WIDTH, chart_bars
from service.console.routes import money

CENTS = st.integers(min_value=-10**12, max_value=10**12)


@given(CENTS)
def test_every_amount_reads_back_as_the_same_cents(cents):
    text = money(cents)
    assert text.startswith("-$" if cents < 0 else "$")
    assert Decimal(text.replace("$", "").replace(",", "")) * 100 == cents
    assert len(text.rsplit(".", 1)[1]) == 2
    assert re.fullmatch(r"-?\$\d{1,3}(,\d{3})*\.\d{2}", text)  # thousands grouped as in the timeline's sentences


def test_examples_of_amounts():
    assert [money(c) for c in (0, 5, 5250, -500, 123456, -100000000, None)] == [
        "$0.00", "$0.05", "$52.50", "-$5.00", "$1,234.56", "-$1,000,000.00", ""]


@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=60))
def test_bars_fit_the_chart_keep_their_order_and_scale_with_the_amounts(amounts):
    days = [(date(2026, 1, 1) + timedelta(days=n), cents) for n, cents in enumerate(amounts)]
    bars = chart_bars(days)
    assert [bar.cents for bar in bars] == amounts
    assert all(bar.x >= 0 and bar.x + bar.width <= CHART_WIDTH + 0.1 for bar in bars)
    assert all(0 <= bar.height <= CHART_HEIGHT - CHART_TOP + 0.1 for bar in bars)
    assert all(abs(bar.y + bar.height - CHART_HEIGHT) <= 0.1 for bar in bars)  # every bar stands on the axis
    assert [bar.x for bar in bars] == sorted(bar.x for bar in bars)
    highest = max(amounts)
    for bar in bars:
        if bar.cents == highest and highest:
            assert abs(bar.height - (CHART_HEIGHT - CHART_TOP)) <= 0.1
        if bar.cents == 0:
            assert bar.height == 0
    for a, b in zip(bars, bars[1:], strict=False):
        if a.cents < b.cents:
            assert a.height <= b.height
