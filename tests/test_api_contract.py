"""The HTTP contract: every served API route is in /openapi.json, and schemathesis finds no answer that disagrees
with the document (status, content type, body schema) and no server error, over a fixed, derandomized budget."""

from __future__ import annotations

import inspect
import json
import time
import zlib
from collections import Counter
from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from standardwebhooks.webhooks import Webhook

from service import create_app
from service.config import DEV_WEBHOOK_SECRET
from tests.support import ADMIN, order_completed, signed_webhook

# Routes that are served but are not part of the JSON API contract, and why.
NOT_DOCUMENTED = {
    "static": "Flask's static files route (the widget build directory); the widget's own routes are documented",
    "api-docs.openapi_json": "/openapi.json is the document itself",
    "demo.": "the demo storefront: HTML pages for development, 404 in production",
    "console.": "the merchant console: HTML pages for staff with a session cookie (docs/console.md)",
}


def _also_for_probes(check):
    """schemathesis skips its conformance checks for the coverage phase's request-shape probes (a body sent as
    text/plain, a malformed Content-Type, …); the answers to those (415, 400) are part of the contract too. Probes
    with another method than the operation's (405 from routing) are not an operation's answer and stay skipped."""
    unwrapped = inspect.unwrap(check)

    def conformance_for_probes_too(ctx, response, case):
        if case.method.upper() == case.operation.method.upper():
            return unwrapped(ctx, response, case)
        return check(ctx, response, case)

    conformance_for_probes_too.__name__ = f"{check.__name__}_for_probes_too"
    return conformance_for_probes_too


CHECKS = [not_a_server_error, *map(_also_for_probes, (status_code_conformance, content_type_conformance,
                                                      response_schema_conformance))]
MAX_EXAMPLES = 100  # fuzzing cases per operation (the coverage phase adds its own boundary cases)
BUDGET = 1_500  # generated cases the whole run must reach
SEED = 20261121
TOKENS = {"shop": "dev-shop-token", "admin": "dev-admin-token"}
DEMO_CODES = ("DEMO-100S-PLIT", "DEMO-050S-PLIT", "DEMO-025N-OSPL", "DEMO-080N-OSPL", "DEMO-7550-CENT",
              "DEMO-0050-CENT", "DEMO-USED-0001", "DEMO-EXPD-0001", "DEMO-CAD0-0050", "DEMO-100N-OSPL")
GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000}

CASES: Counter[str] = Counter()


@pytest.fixture
def environ(environ):
    """Limits high enough that the run is not a wall of 429s (429 stays documented and is tested elsewhere)."""
    return {**environ, "LOOKUP_RATE_LIMIT": "1000000/minute", "CART_CREATE_RATE_LIMIT": "1000000/minute",
            "CART_FAILURE_LIMIT": "1000000"}


def test_every_served_api_route_is_documented(app, client):
    paths = client.get("/openapi.json").get_json()["paths"]
    documented = {(path, method.upper()) for path, item in paths.items() for method in item if method != "parameters"}
    served = set()
    for rule in app.url_map.iter_rules():
        if any(rule.endpoint == name or (name.endswith(".") and rule.endpoint.startswith(name))
               for name in NOT_DOCUMENTED):
            continue
        path = rule.rule.replace("<id:", "<").replace("<", "{").replace(">", "}")
        served |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert served - documented == set(), "served but not in /openapi.json"
    assert documented - served == set(), "documented but not served"
    assert len(served) >= 20


def test_every_route_that_asks_for_a_token_says_which(app, client):
    """An operation answering 401 with a bearer realm declares that security scheme, and documents the 401."""
    spec = client.get("/openapi.json").get_json()
    assert set(spec["components"]["securitySchemes"]) == {"shop", "admin"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            url = path.replace("{cart_token}", "t0ken").replace("{order_id}", "o1")
            url = url.replace("{job_id}", "1").replace("{card_id}", "1").replace("{gift_card_id}", "1")
            url = url.replace("{item_id}", "1")
            url = url.replace("{version}", "0")
            response = client.open(url, method=method.upper(), json={})
            realm = response.headers.get("WWW-Authenticate", "")
            if response.status_code == 401 and realm:
                expected = realm.removeprefix('Bearer realm="').removesuffix('"')
                assert operation.get("security") == [{expected: []}], (method, path)
                assert "401" in operation["responses"], (method, path)
            else:
                # Open to anyone, or open to anyone and telling more with one declared token (an empty requirement
                # first, then that scheme): nothing else, e.g. not a lone {} or an undeclared scheme after it.
                assert operation.get("security") in (None, [{}, {"admin": []}], [{}, {"shop": []}]), (method, path)


@pytest.fixture
def known(app, client, run_jobs):
    """Rows the generated cases can hit (a cart with a card, an order with its jobs run, so a membership card
    exists at InstantCard), so that operations are exercised past 404 and their answers are checked too."""
    token = client.post("/v1/carts", json={"total_cents": 100_000}).get_json()["cart_token"]  # room for more cards
    cart = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": "DEMO-100S-PLIT"}).get_json()
    # Its cart token matches no cart while it says gift cards paid: an attention item to resolve.
    raw, headers = signed_webhook(order_completed("contract-1", line_items=[GOLD], cart_token="no-such-cart",
                                                  gift_card_cents=500))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    run_jobs()
    timeline = client.get("/v1/orders/contract-1", headers=ADMIN).get_json()
    return {"cart_token": token, "gift_card_id": cart["gift_cards"][0]["id"], "order_id": "contract-1",
            "job_id": timeline["jobs"][0]["id"], "card_id": timeline["membership_cards"][0]["id"],
            "item_id": timeline["attention"][0]["id"]}


CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
})


def _served_document() -> dict:
    """/openapi.json as an app serves it (the same for every app; each test then runs against its own fresh app)."""
    app = create_app({"SERVICE_ENV": "development", "DATABASE_URL": "sqlite://", "LOG_FORMAT": "text"})
    return app.test_client().get("/openapi.json").get_json()


schema = schemathesis.openapi.from_dict(_served_document(), config=CONFIG)


def _share(case, salt: str, out_of: int) -> bool:
    """True for a fixed share (1 in `out_of`) of an operation's cases, by their order (the run is derandomized,
    so the same cases are picked every run)."""
    return (CASES[case.operation.label] + zlib.crc32(salt.encode())) % out_of == 0


def _raw_body(case) -> bytes:
    body = case.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str) and not (case.media_type or "").endswith("json"):
        return body.encode()
    if type(body).__name__ == "NotSet":
        return b""
    return json.dumps(body).encode()


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # one fresh app per operation, on purpose
def test_the_service_answers_as_documented(case, app, known):
    CASES[case.operation.label] += 1
    headers: dict[str, str] = {}
    kwargs = {}
    for scheme in [name for requirement in case.operation.definition.raw.get("security", []) for name in requirement]:
        # Mostly the right token, so operations are exercised past authentication; some none or a wrong one.
        if _share(case, "auth", 8):
            headers["Authorization"] = "Bearer not-the-token"
        elif not _share(case, "no-auth", 7):
            headers["Authorization"] = f"Bearer {TOKENS[scheme]}"
    for name in ("cart_token", "gift_card_id", "order_id", "job_id", "card_id", "item_id"):
        if name in (case.path_parameters or {}) and not _share(case, name, 3):
            case.path_parameters[name] = known[name]
    if isinstance(case.body, dict) and "claim_code" in case.body and not _share(case, "claim_code", 3):
        # Codes the sandbox knows: each kind of certificate (splittable, not, used, expired, CAD, 50 cents, …).
        case.body["claim_code"] = DEMO_CODES[zlib.crc32(repr(case.body).encode()) % len(DEMO_CODES)]
    if case.operation.path == "/v1/thank-you-cards/preview" and not _share(case, "sample", 3):
        case.body = order_completed("sample-1")["data"]
    if case.operation.path == "/v1/webhooks/orders" and not _share(case, "unsigned", 6):
        # Sign the generated body as the shop would (with the generated webhook-id); the rest stay unsigned.
        raw = _raw_body(case)
        msg_id = str((case.headers or {}).get("webhook-id") or "msg_contract")
        now = int(time.time())
        signature = Webhook(DEV_WEBHOOK_SECRET).sign(msg_id, _utc(now), raw.decode("utf-8", "replace"))
        headers.update({"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature})
        kwargs["data"] = raw
    case.call_and_validate(app=app, headers=headers, checks=CHECKS, **kwargs)


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_the_run_spent_its_budget():
    """Reads the counts of the run above (pytest runs a module's tests in order): every operation ran, and the
    cases add up to the fixed budget."""
    assert len(CASES) >= 20, f"run the whole module: only {len(CASES)} operations ran"
    assert sum(CASES.values()) >= BUDGET, CASES
