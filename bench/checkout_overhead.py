"""Benchmark: the service's own overhead on balance lookups and applies, next to calling the sandbox directly.

The sandbox answers with a fixed 50 ms latency; 20 concurrent shoppers each look up a balance and apply a fresh
certificate to a cart through the service (gunicorn, PostgreSQL), while the same shoppers' direct calls to the
sandbox are timed in the same run. Overhead = service latency − direct latency, at p50 and p99 (targets ≤ 5 ms and
≤ 20 ms). Run: .venv/bin/python -m bench.checkout_overhead
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time

import requests

from bench.common import ROOT, free_port, fresh_postgres_database, gunicorn, migrate, percentile

MERCHANT = {"X-Merchant-Key": "sandbox-merchant-key", "X-Merchant-Secret": "sandbox-merchant-secret"}


@contextlib.contextmanager
def sandbox(latency_ms: int):
    port = free_port()
    env = dict(os.environ, SANDBOX_LATENCY_MS=str(latency_ms), SERVICE_ENV="development")
    process = subprocess.Popen([sys.executable, "-m", "flask", "--app", "service", "sandbox", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/_health", timeout=5).ok:
                break
        time.sleep(0.1)
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shoppers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15, help="lookups + applies per shopper")
    parser.add_argument("--latency-ms", type=int, default=50)
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
        with gunicorn("service:create_app()", env, workers=2, threads=8) as service_url:
            samples: dict[str, list[float]] = {k: [] for k in ("direct", "balance", "apply")}
            lock = threading.Lock()
            barrier = threading.Barrier(args.shoppers)

            def shopper(n: int) -> None:
                s = requests.Session()
                barrier.wait()
                for r in range(args.rounds):
                    code = codes[n * args.rounds + r]
                    # Each round is a new checkout (not timed): one cart, one card, as a shopper would.
                    cart = s.post(f"{service_url}/v1/carts", json={"total_cents": 20000}, timeout=30).json()
                    t0 = time.perf_counter()
                    direct = s.get(f"{sandbox_url}/instagift/v2/claim_codes/{code}", headers=MERCHANT, timeout=30)
                    t1 = time.perf_counter()
                    balance = s.post(f"{service_url}/v1/gift-cards/balance", json={"claim_code": code}, timeout=30)
                    t2 = time.perf_counter()
                    applied = s.post(f"{service_url}/v1/carts/{cart['cart_token']}/gift-cards",
                                     json={"claim_code": code}, timeout=30)
                    t3 = time.perf_counter()
                    assert direct.ok and balance.ok and applied.ok, (direct.text, balance.text, applied.text)
                    with lock:
                        samples["direct"].append((t1 - t0) * 1000)
                        samples["balance"].append((t2 - t1) * 1000)
                        samples["apply"].append((t3 - t2) * 1000)

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
    report = {"shoppers": args.shoppers, "requests_each_kind": len(samples["direct"]),
              "sandbox_latency_ms": args.latency_ms}
    for kind in ("direct", "balance", "apply"):
        report[f"{kind}_p50_ms"] = round(percentile(samples[kind], 50), 1)
        report[f"{kind}_p99_ms"] = round(percentile(samples[kind], 99), 1)
    for kind in ("balance", "apply"):
        report[f"{kind}_overhead_p50_ms"] = round(report[f"{kind}_p50_ms"] - report["direct_p50_ms"], 1)
        report[f"{kind}_overhead_p99_ms"] = round(report[f"{kind}_p99_ms"] - report["direct_p99_ms"], 1)
    report["targets"] = {"overhead_p50_ms": 5, "overhead_p99_ms": 20}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
