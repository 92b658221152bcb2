"""Benchmark: the service's own overhead on balance lookups and applies, next to calling the sandbox directly.

The sandbox answers with a fixed 50 ms latency; 20 concurrent shoppers each open a cart, look up a balance and
apply a fresh certificate through the service (gunicorn, PostgreSQL), while the same shoppers' direct calls to the
sandbox are timed in the same run. Overhead = service latency − direct latency, at p50 and p99 (targets ≤ 5 ms and
≤ 20 ms).

A shopper pauses between steps (typing the code, reading the balance): `--think-ms` is the mean pause, drawn
uniformly from 0.5–1.5× of it. `--think-ms 0` turns the 20 shoppers into 20 clients that never pause: on a 2-core
machine shared with the load generator, the sandbox and PostgreSQL that measures the CPU each checkout costs. `--app floor` runs the same shoppers against `bench/floor_app.py`, the least any app on this stack can do
(one Instagift call; for apply one INSERT + COMMIT): what it shows is the machine's floor.
Run: .venv/bin/python -m bench.checkout_overhead [--think-ms 0] [--app floor]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import threading
import time

import requests

from bench.common import fresh_postgres_database, gunicorn, migrate, percentile

MERCHANT = {"X-Merchant-Key": "sandbox-merchant-key", "X-Merchant-Secret": "sandbox-merchant-secret"}
APPS = {"service": "service:create_app()", "floor": "bench.floor_app:create_app()"}


@contextlib.contextmanager
def sandbox(latency_ms: int):
    """The sandbox providers under gunicorn (one process: its state is in memory; threads for the latency)."""
    env = {"SANDBOX_LATENCY_MS": str(latency_ms), "SERVICE_ENV": "development"}
    # Werkzeug's dev server closes every connection; a real provider keeps them alive, and so does gunicorn.
    with gunicorn("sandbox:create_sandbox_app()", env, workers=1, threads=64, health_path="/_health") as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoppers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15, help="lookups + applies per shopper")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--think-ms", type=int, default=1000, help="a shopper's mean pause between steps")
    parser.add_argument("--app", choices=sorted(APPS), default="service",
                        help="'floor' runs the same shoppers against bench/floor_app.py, the least any app can do")
    args = parser.parse_args()
    total = args.shoppers * args.rounds
    with sandbox(args.latency_ms) as sandbox_url, fresh_postgres_database("bench_checkout") as db_url:
        migrate(db_url)
        codes = []
        for _ in range(total + args.shoppers):
            created = requests.post(f"{sandbox_url}/instagift/v2/_control/certificates",
                                    json={"face_value_cents": 10000}, timeout=10).json()
            codes.append(created["claim_code"])
        env = {"DATABASE_URL": db_url, "SANDBOX_URL": sandbox_url, "SERVICE_ENV": "development",
               "LOOKUP_RATE_LIMIT": "100000/minute", "CART_CREATE_RATE_LIMIT": "100000/minute",
               "LOG_FORMAT": "json"}
        with gunicorn(APPS[args.app], env, workers=2, threads=16) as service_url:
            samples: dict[str, list[float]] = {k: [] for k in ("direct", "balance", "apply")}
            lock = threading.Lock()
            barrier = threading.Barrier(args.shoppers)

            def shopper(n: int) -> None:
                s = requests.Session()
                rng = random.Random(n)

                def think() -> None:
                    if args.think_ms:
                        time.sleep(rng.uniform(0.5, 1.5) * args.think_ms / 1000)

                barrier.wait()
                for r in range(args.rounds):
                    code = codes[n * args.rounds + r]
                    # Each round is a new checkout (not timed): one cart, one card, as a shopper would.
                    cart = s.post(f"{service_url}/v1/carts", json={"total_cents": 20000}, timeout=30).json()
                    think()  # types the claim code
                    t0 = time.perf_counter()
                    direct = s.get(f"{sandbox_url}/instagift/v2/claim_codes/{code}", headers=MERCHANT, timeout=30)
                    t1 = time.perf_counter()
                    balance = s.post(f"{service_url}/v1/gift-cards/balance", json={"claim_code": code}, timeout=30)
                    t2 = time.perf_counter()
                    think()  # reads the balance, clicks Apply
                    t3 = time.perf_counter()
                    applied = s.post(f"{service_url}/v1/carts/{cart['cart_token']}/gift-cards",
                                     json={"claim_code": code}, timeout=30)
                    t4 = time.perf_counter()
                    assert direct.ok and balance.ok and applied.ok, (direct.text, balance.text, applied.text)
                    with lock:
                        samples["direct"].append((t1 - t0) * 1000)
                        samples["balance"].append((t2 - t1) * 1000)
                        samples["apply"].append((t4 - t3) * 1000)

            # Warm-up (connections, imports) on separate codes, then the measured run.
            warm = [threading.Thread(target=lambda: requests.post(
                f"{service_url}/v1/gift-cards/balance", json={"claim_code": codes[-1]}, timeout=30))
                for _ in range(4)]
            for t in warm:
                t.start()
            for t in warm:
                t.join()
            threads = [threading.Thread(target=shopper, args=(n,)) for n in range(args.shoppers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    report = {"app": args.app, "shoppers": args.shoppers, "think_ms": args.think_ms, "requests_each_kind": len(samples["direct"]),
              "sandbox_latency_ms": args.latency_ms}
    for kind in ("direct", "balance", "apply"):
        report[f"{kind}_p50_ms"] = round(percentile(samples[kind], 50), 1)
        report[f"{kind}_p90_ms"] = round(percentile(samples[kind], 90), 1)
        report[f"{kind}_p99_ms"] = round(percentile(samples[kind], 99), 1)
    for kind in ("balance", "apply"):
        report[f"{kind}_overhead_p50_ms"] = round(report[f"{kind}_p50_ms"] - report["direct_p50_ms"], 1)
        report[f"{kind}_overhead_p99_ms"] = round(report[f"{kind}_p99_ms"] - report["direct_p99_ms"], 1)
    report["targets"] = {"overhead_p50_ms": 5, "overhead_p99_ms": 20}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
