"""What the three sandboxes share in holding requests to the providers' documents (kept apart from the package's
`__init__`, which imports the sandboxes)."""

from __future__ import annotations

from collections.abc import Iterable


def undocumented(given: Iterable[str], documented: Iterable[str]) -> list[str]:
    """The names a request sends (body fields or query parameters) that the provider's document does not give for
    the endpoint, sorted; each sandbox refuses them in its own provider's error shape."""
    return sorted(set(given) - set(documented))
