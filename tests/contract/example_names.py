"""Which documented examples no contract test names: a fixture nobody serves checks nothing."""

from __future__ import annotations

import re
from pathlib import Path

from tests.contract.examples import all_examples

CONTRACT_TESTS = Path(__file__).resolve().parent


def examples_named_by_no_test(provider: str) -> list[str]:
    """The provider's fixture names that appear quoted in no `tests/contract/test_*.py` source."""
    sources = "\n".join(p.read_text() for p in sorted(CONTRACT_TESTS.glob("test_*.py")))
    return [name for name in all_examples(provider)
            if not re.search(rf"""["']{re.escape(name)}["']""", sources)]
