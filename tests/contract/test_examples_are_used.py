"""Every documented example is served by some contract test: a fixture nobody serves checks nothing."""

from __future__ import annotations

import pytest

from tests.contract.examples import all_examples, examples_named_by_no_test


@pytest.mark.parametrize("provider", ["instagift", "cardly", "instantcard"])
def test_every_documented_example_is_named_by_a_contract_test(provider):
    assert all_examples(provider), f"no {provider} examples at all"
    assert examples_named_by_no_test(provider) == []
