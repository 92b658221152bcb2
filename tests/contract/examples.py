"""The providers' own documented examples, kept as fixtures: each file is one sample response or error body.

A fixture is a JSON object:

- `source`: where in the provider's public API documentation the sample stands (document, section, which sample);
- `request`: the documented request it answers (method and path as the docs show them);
- `status`: the HTTP status the docs give for it (or the one assumed, said in `guessed`);
- `body`: the sample as printed in the docs, unchanged (placeholders such as `"...": "..."` included);
- `guessed` (optional): what the docs leave out that the fixture or the client had to assume.

A fixture named `*_request.json` is a documented request instead: `body` is what the client sends (the sample call's
body, or the parameter table's keys), `request` may carry the documented `headers`, and `sent` says how it is sent.

Contract tests serve a fixture as the provider's answer (`responses`) and check what the client makes of it;
test_wire_forms.py captures every request the clients send and compares it with the `*_request.json` fixtures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent / "examples"


def doc_example(provider: str, name: str) -> dict[str, Any]:
    """Load one documented example, e.g. doc_example("instagift", "fetch_certificate")."""
    example = json.loads((EXAMPLES / provider / f"{name}.json").read_text())
    missing = {"source", "request", "status", "body"} - example.keys()
    assert not missing, f"{provider}/{name}.json lacks {sorted(missing)}"
    return example


def all_examples(provider: str) -> list[str]:
    """The names of every documented example of one provider (so a test can require each to be used)."""
    return sorted(p.stem for p in (EXAMPLES / provider).glob("*.json"))


def examples_named_by_no_test(provider: str) -> list[str]:
    """The provider's fixture names that appear quoted in no `tests/contract/test_*.py` source."""
    sources = "\n".join(p.read_text() for p in sorted(Path(__file__).resolve().parent.glob("test_*.py")))
    return [name for name in all_examples(provider)
            if not re.search(rf"""["']{re.escape(name)}["']""", sources)]
