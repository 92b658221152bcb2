"""Benchmark: the merchant console's reads with 100,000 orders in PostgreSQL (issue 16): server time p95 of the
orders list (first page, a search by order id, a search by a claim code's last 4, the open attention items) and of
one order's timeline. Target: < 300 ms p95 each. The floor they are shown against is /readyz (the same stack and
one round trip to the database).

Server time is the time the app takes to answer one request in process (routing, the admin token check, the
queries, serialising), measured around Flask's test client: no network and no HTTP server in it.

    .venv/bin/python -m bench.console_queries                       # seed a fresh database, measure, drop it
    .venv/bin/python -m bench.console_queries --keep                # keep the seeded database (its URL is printed)
    .venv/bin/python -m bench.console_queries --database-url URL    # measure an already seeded database again
    .venv/bin/python -m bench.console_queries --database-url URL --without-console-indexes   # the "before" figures

`--without-console-indexes` drops the indexes issue 16 added for these reads (CONSOLE_INDEXES) before measuring;
run without it afterwards to put them back. More pages (the console's HTML `/admin/orders` and
`/admin/orders/<id>`) are measured by adding a `Scenario` to `scenarios()`; `--header 'Cookie: session=…'` sends
whatever a signed-in page needs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
import sqlalchemy as sa

from bench.common import PG_SERVER, fresh_postgres_database, migrate, percentile

ADMIN_TOKEN = "bench-admin-token"

# The indexes these reads need, as the migration creates them (name, SQL); dropped for the "before" figures.
CONSOLE_INDEXES = {
    "ix_orders_shop_order_id_prefix":
        "CREATE INDEX ix_orders_shop_order_id_prefix ON orders (shop_order_id varchar_pattern_ops)",
    "ix_redemptions_code_last4": "CREATE INDEX ix_redemptions_code_last4 ON redemptions (code_last4)",
    "ix_order_attention_items_open":
        "CREATE INDEX ix_order_attention_items_open ON order_attention_items (order_id) WHERE resolved_at IS NULL",
    "ix_redemptions_created_at_id": "CREATE INDEX ix_redemptions_created_at_id ON redemptions (created_at, id)",
}


# -- seeding ------------------------------------------------------------------------------------------------

def seed(url: str, orders: int) -> None:
    """`orders` completed orders in a realistic mix, written by PostgreSQL itself (generate_series):
    3 in 10 paid partly with a gift card (cart, hold, redemption, redeem job); 1 in 100 of those redemptions failed;
    1 in 50 orders cancelled after its gift card was redeemed and its thank-you card placed; every order has its
    planning and thank-you jobs (one attempt each) and a thank-you card. About 5,000 attention items, half resolved."""
    n = orders
    gift = "(i % 10 < 3)"
    at = "(timestamptz '2026-01-01 00:00:00+00' + i * interval '30 seconds')"
    statements = [
        f"""INSERT INTO orders (id, shop_order_id, number, cart_token_hash, currency, total_cents, gift_card_cents,
                customer_email, payload, placed_at, completed_at, cancelled_at, effects_planned_at, created_at)
            SELECT i, 'SO-' || lpad(i::text, 7, '0'), '#' || i,
                   CASE WHEN {gift} THEN encode(sha256(('tok-' || i)::bytea), 'hex') END, 'USD',
                   1000 + (i * 7919) % 20000, CASE WHEN {gift} THEN 1000 ELSE 0 END,
                   'shopper' || i || '@example.com', '{{}}'::json, {at}, {at},
                   CASE WHEN i % 50 = 0 THEN {at} + interval '1 hour' END, {at}, {at}
            FROM generate_series(1, {n}) AS i""",
        f"""INSERT INTO order_events (order_id, event_type, webhook_id, occurred_at, received_at)
            SELECT i, 'order.completed', 'msg_c_' || i, {at}, {at} FROM generate_series(1, {n}) AS i
            UNION ALL
            SELECT i, 'order.cancelled', 'msg_x_' || i, {at} + interval '1 hour', {at} + interval '1 hour'
            FROM generate_series(50, {n}, 50) AS i""",
        f"""INSERT INTO carts (id, token_hash, total_cents, currency, expires_at, failed_lookups, last_verified_at,
                created_at, updated_at)
            SELECT i, encode(sha256(('tok-' || i)::bytea), 'hex'), 1000 + (i * 7919) % 20000, 'USD', {at}, 0,
                   {at}, {at} - interval '5 minutes', {at}
            FROM generate_series(1, {n}) AS i WHERE {gift}""",
        f"""INSERT INTO gift_card_holds (id, cart_id, certificate_id, claim_code_hash, code_last4, currency,
                balance_cents, splittable, applied_cents, covers_cents, redeem_cents, forfeit_cents, accept_forfeit,
                accepted_forfeit_cents, position, status, expires_at, created_at, updated_at)
            SELECT i, i, 'cert-' || i, md5('h' || i) || md5('k' || i), upper(substr(md5('c' || i), 1, 4)), 'USD',
                   10000, true, 1000, 1000, 1000, 0, false, 0, 1,
                   CASE WHEN i % 100 = 2 THEN 'failed' ELSE 'redeemed' END, {at}, {at} - interval '4 minutes', {at}
            FROM generate_series(1, {n}) AS i WHERE {gift}""",
        f"""INSERT INTO redemptions (id, order_id, hold_id, certificate_id, code_last4, currency, splittable,
                applied_cents, taken_cents, intended_cents, requested_cents, redeemed_cents, shortfall_cents,
                forfeit_cents, provider_redemption_id, child_certificate_id, child_balance_cents, state,
                outcome_unknown, attempts, error, redeemed_at, created_at, updated_at)
            SELECT i, i, i, 'cert-' || i, upper(substr(md5('c' || i), 1, 4)), 'USD', true, 1000, 1000, 1000, 1000,
                   CASE WHEN i % 100 = 2 THEN 0 ELSE 1000 END, CASE WHEN i % 100 = 2 THEN 1000 ELSE 0 END, 0,
                   CASE WHEN i % 100 = 2 THEN NULL ELSE 'red-' || i END,
                   CASE WHEN i % 100 = 2 THEN NULL ELSE 'child-' || i END,
                   CASE WHEN i % 100 = 2 THEN NULL ELSE 9000 END,
                   CASE WHEN i % 100 = 2 THEN 'failed' ELSE 'succeeded' END, false, 1,
                   CASE WHEN i % 100 = 2 THEN 'certificate is cancelled' END,
                   CASE WHEN i % 100 = 2 THEN NULL ELSE {at} + interval '10 seconds' END, {at}, {at}
            FROM generate_series(1, {n}) AS i WHERE {gift}""",
        # Jobs: planning (id i), thank-you (n + i), redeem (2n + i, gift orders).
        f"""INSERT INTO jobs (id, kind, payload, state, dedupe_key, order_id, attempts, failures, max_attempts,
                run_at, last_error, created_at, updated_at, finished_at)
            SELECT i, 'plan_order_effects', json_build_object('order_id', i), 'succeeded', 'order:' || i || ':plan',
                   i, 1, 0, 8, {at}, NULL, {at}, {at}, {at} FROM generate_series(1, {n}) AS i
            UNION ALL
            SELECT {n} + i, 'send_thank_you_card', json_build_object('order_id', i), 'succeeded', 'thank_you:' || i,
                   i, 1, 0, 8, {at}, NULL, {at}, {at}, {at} FROM generate_series(1, {n}) AS i
            UNION ALL
            SELECT 2 * {n} + i, 'redeem_gift_card', json_build_object('redemption_id', i, 'hold_id', i),
                   CASE WHEN i % 100 = 2 THEN 'dead' ELSE 'succeeded' END, 'redeem:' || i, i, 1,
                   CASE WHEN i % 100 = 2 THEN 1 ELSE 0 END, 8, {at},
                   CASE WHEN i % 100 = 2 THEN 'gift card ••••' || upper(substr(md5('c' || i), 1, 4)) ||
                        ' could not be redeemed: certificate is cancelled' END, {at}, {at}, {at}
            FROM generate_series(1, {n}) AS i WHERE {gift}""",
        """INSERT INTO job_attempts (job_id, attempt, worker, started_at, finished_at, outcome, error)
            SELECT id, 1, 'bench:1', created_at, created_at + interval '1 second',
                   CASE WHEN state = 'dead' THEN 'failed' ELSE 'succeeded' END, last_error FROM jobs""",
        f"""INSERT INTO thank_you_cards (order_id, status, generation, outcome_unknown, calls, cardly_order_id,
                cost_credits, test_mode, created_at, updated_at, placed_at)
            SELECT i, 'placed', 1, false, 1, 'cardly-' || i, 1, false, {at}, {at}, {at} + interval '20 seconds'
            FROM generate_series(1, {n}) AS i""",
        f"""INSERT INTO order_attention_items (order_id, kind, message, created_at, job_id, job_attempt, resolved_at,
                resolved_by, resolution_note)
            SELECT i, 'cancelled_after_redeemed',
                   'Cancelled after $10.00 was redeemed from gift cards; Instagift has no refund API — refund manually.',
                   {at} + interval '1 hour', NULL::bigint, NULL::integer,
                   CASE WHEN i % 200 < 100 THEN {at} + interval '1 day' END,
                   CASE WHEN i % 200 < 100 THEN 'anna' END, CASE WHEN i % 200 < 100 THEN 'refunded' END
            FROM generate_series(50, {n}, 50) AS i
            UNION ALL
            SELECT i, 'thank_you_card_placed_for_cancelled_order',
                   'The thank-you card was placed with Cardly (order cardly-' || i || ', 1.00 credits) although the '
                   || 'order was cancelled.', {at} + interval '1 hour', NULL::bigint, NULL::integer,
                   CASE WHEN i % 200 < 100 THEN {at} + interval '1 day' END,
                   CASE WHEN i % 200 < 100 THEN 'anna' END, NULL::text
            FROM generate_series(50, {n}, 50) AS i
            UNION ALL
            SELECT i, 'redemption_failed', 'Gift card ••••' || upper(substr(md5('c' || i), 1, 4)) ||
                   ' could not be redeemed: certificate is cancelled', {at}, 2 * {n} + i, 1,
                   CASE WHEN i % 200 < 100 THEN {at} + interval '1 day' END,
                   CASE WHEN i % 200 < 100 THEN 'retry by anna' END, NULL
            FROM generate_series(1, {n}) AS i WHERE i % 100 = 2""",
    ]
    with psycopg.connect(url) as conn:  # one transaction
        for statement in statements:
            conn.execute(statement)
        for table in ("orders", "order_events", "carts", "gift_card_holds", "redemptions", "jobs", "job_attempts",
                      "thank_you_cards", "order_attention_items"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def set_console_indexes(url: str, present: bool) -> None:
    """Create (or drop) the indexes of CONSOLE_INDEXES, then refresh the planner's statistics."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        existing = set(conn.scalars(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")))
        for name, create in CONSOLE_INDEXES.items():
            if present and name not in existing:
                conn.execute(sa.text(create))
            elif not present and name in existing:
                conn.execute(sa.text(f"DROP INDEX {name}"))
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()


# -- measuring ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scenario:
    """One kind of request: `path(rng)` gives the path of each sample (so samples differ, as real ones do)."""

    name: str
    path: Callable[[random.Random], str]


def scenarios(orders: int, last4s: list[str]) -> list[Scenario]:
    """The reads measured: the JSON API's and the console's HTML pages (signed in, see `sign_in`)."""

    def some_order(rng: random.Random) -> str:
        return f"SO-{rng.randint(1, orders):07d}"

    return [
        # The floor: what any request costs on this stack (routing, the answer, one round trip to PostgreSQL).
        Scenario("GET /readyz (floor: the stack and SELECT 1)", lambda rng: "/readyz"),
        Scenario("GET /v1/orders (first page)", lambda rng: "/v1/orders"),
        Scenario("GET /v1/orders?q=<order id>", lambda rng: f"/v1/orders?q={some_order(rng)}"),
        Scenario("GET /v1/orders?q=<order id prefix>", lambda rng: f"/v1/orders?q={some_order(rng)[:-2]}"),
        Scenario("GET /v1/orders?q=<last 4>", lambda rng: f"/v1/orders?q={rng.choice(last4s)}"),
        Scenario("GET /v1/orders?attention=open", lambda rng: "/v1/orders?attention=open"),
        Scenario("GET /v1/orders?attention=open&page=20", lambda rng: "/v1/orders?attention=open&page=20"),
        Scenario("GET /v1/orders/{id}", lambda rng: f"/v1/orders/{some_order(rng)}"),
        Scenario("GET /v1/orders/{id} (cancelled, gift card, attention)",
                 lambda rng: f"/v1/orders/SO-{rng.randint(1, orders // 50) * 50:07d}"),
        # The console's pages: the same rules, rendered to HTML, behind the session check.
        Scenario("GET /admin/orders (HTML, first page)", lambda rng: "/admin/orders"),
        Scenario("GET /admin/orders?q=<order id> (HTML)", lambda rng: f"/admin/orders?q={some_order(rng)}"),
        Scenario("GET /admin/orders?q=<last 4> (HTML)", lambda rng: f"/admin/orders?q={rng.choice(last4s)}"),
        Scenario("GET /admin/orders?attention=open (HTML)", lambda rng: "/admin/orders?attention=open"),
        Scenario("GET /admin/orders/{id} (HTML)", lambda rng: f"/admin/orders/{some_order(rng)}"),
        Scenario("GET /admin/orders/{id} (HTML; cancelled, gift card, attention)",
                 lambda rng: f"/admin/orders/SO-{rng.randint(1, orders // 50) * 50:07d}"),
        # The ledger page sums every row of its range (the seed's orders start on 2026-01-01, 30 s apart).
        Scenario("GET /admin/ledger?from=2026-01-01&to=2026-01-30 (HTML, with totals)",
                 lambda rng: "/admin/ledger?from=2026-01-01&to=2026-01-30"),
    ]


def sign_in(client) -> None:
    """Sign the test client in to the console as a person would: the form's CSRF token, then the admin token."""
    form = client.get("/admin/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf})
    assert answer.status_code == 302, answer.status_code


def measure(url: str, orders: int, samples: int, headers: dict[str, str], seed_value: int) -> list[dict]:
    """Server time of each scenario's samples (after a warm-up), in milliseconds."""
    from service import create_app

    app = create_app({"DATABASE_URL": url,
                      "SERVICE_ENV": "development", "ADMIN_API_TOKEN": ADMIN_TOKEN, "LOG_FORMAT": "text"})
    logging.getLogger("service").setLevel(logging.WARNING)  # one log line a request would be measured too
    client = app.test_client()
    sign_in(client)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", **headers}
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        last4s = list(conn.scalars(sa.text("SELECT DISTINCT code_last4 FROM redemptions LIMIT 500")))
    engine.dispose()
    rng = random.Random(seed_value)
    results = []
    for scenario in scenarios(orders, last4s):
        for _ in range(10):  # warm-up: connections, caches
            client.get(scenario.path(rng), headers=headers)
        times = []
        for _ in range(samples):
            path = scenario.path(rng)
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:300])
        results.append({"scenario": scenario.name, "samples": samples, "p50_ms": round(percentile(times, 50), 1),
                        "p95_ms": round(percentile(times, 95), 1), "max_ms": round(max(times), 1)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=100, help="requests per scenario")
    parser.add_argument("--database-url", help="an already seeded database (else a fresh one is seeded)")
    parser.add_argument("--keep", action="store_true", help="keep the fresh database")
    parser.add_argument("--without-console-indexes", action="store_true",
                        help="drop the indexes issue 16 added before measuring (the 'before' figures)")
    parser.add_argument("--header", action="append", default=[], help="an extra request header, 'Name: value'")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)

    def run(url: str) -> None:
        set_console_indexes(url, present=not args.without_console_indexes)
        results = measure(url, args.orders, args.samples, headers, args.seed)
        width = max(len(r["scenario"]) for r in results)
        print(f"{'scenario':<{width}}  p50 ms  p95 ms  max ms   (target p95 < 300 ms; indexes "
              f"{'dropped' if args.without_console_indexes else 'present'})")
        for r in results:
            print(f"{r['scenario']:<{width}}  {r['p50_ms']:6.1f}  {r['p95_ms']:6.1f}  {r['max_ms']:6.1f}")
        print(json.dumps(results))

    if args.database_url:
        run(args.database_url)
        return
    with contextlib.ExitStack() as stack:
        url = keep_database() if args.keep else stack.enter_context(fresh_postgres_database("console"))
        migrate(url)
        started = time.perf_counter()
        seed(url, args.orders)
        print(f"seeded {args.orders:,} orders in {time.perf_counter() - started:.1f} s"
              + (f"; kept at {url}" if args.keep else ""))
        run(url)


def keep_database() -> str:
    """A new empty database that outlives the run (measure it again with --database-url)."""
    name = f"console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


if __name__ == "__main__":
    main()
