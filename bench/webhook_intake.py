"""Benchmark: signed webhook intake vs a bare one-row insert, on PostgreSQL under gunicorn.

Reports (1) closed-loop throughput of each endpoint and their ratio (target ≥ 0.6) and (2) p50/p99 latency of
webhook intake at a fixed 100 requests/s (target p99 < 100 ms). Run: .venv/bin/python -m bench.webhook_intake
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.common import fresh_postgres_database, gunicorn, migrate, percentile
from tests.support import order_completed, signed_webhook


def make_webhooks(n: int, tag: str) -> list[tuple[bytes, dict]]:
    bodies = []
    for i in range(n):
        event = order_completed(f"{tag}-{i}", line_items=[
            {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000},
            {"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "unit_price_cents": 250}])
        bodies.append(signed_webhook(event))
    return bodies


def closed_loop(url: str, requests_list: list[tuple[bytes, dict]], clients: int, seconds: float) -> float:
    """Requests/s with `clients` concurrent senders for `seconds`."""
    done = 0
    lock = threading.Lock()
    index = iter(range(len(requests_list)))
    deadline = time.perf_counter() + seconds

    def client():
        nonlocal done
        session = requests.Session()
        while time.perf_counter() < deadline:
            with lock:
                i = next(index, None)
            if i is None:
                return
            raw, headers = requests_list[i]
            response = session.post(url, data=raw, headers=headers, timeout=30)
            assert response.status_code in (200, 202), response.text
            with lock:
                done += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done / (time.perf_counter() - started)


def fixed_rate(url: str, requests_list: list[tuple[bytes, dict]], rate: float, seconds: float) -> list[float]:
    """Latencies (ms) measured from each request's scheduled send time, so queueing delay counts."""
    count = int(rate * seconds)
    latencies: list[float] = []
    sessions = threading.local()
    start = time.perf_counter() + 0.2

    def send(i: int):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # pacing the load generator, not synchronising a test
        if not hasattr(sessions, "s"):
            sessions.s = requests.Session()
        raw, headers = requests_list[i]
        response = sessions.s.post(url, data=raw, headers=headers, timeout=30)
        assert response.status_code in (200, 202)
        latencies.append((time.perf_counter() - scheduled) * 1000)

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(send, range(count)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100)
    args = parser.parse_args()
    with fresh_postgres_database("bench_intake") as url:
        migrate(url)
        with gunicorn("bench.bench_app:app", {"DATABASE_URL": url, "LOG_FORMAT": "json",
                                              "SERVICE_ENV": "development"}) as base:
            warm = make_webhooks(200, "warm")
            closed_loop(f"{base}/v1/webhooks/orders", warm, args.clients, 3)
            closed_loop(f"{base}/bench/bare", warm, args.clients, 3)
            results = {}
            for round_ in range(2):  # interleave to share any drift in machine load
                hooks = make_webhooks(int(2000 * args.seconds / 10), f"tp{round_}")
                results.setdefault("webhook_rps", []).append(
                    closed_loop(f"{base}/v1/webhooks/orders", hooks, args.clients, args.seconds / 2))
                results.setdefault("bare_rps", []).append(
                    closed_loop(f"{base}/bench/bare", hooks, args.clients, args.seconds / 2))
            paced = make_webhooks(int(args.rate * args.seconds), "paced")
            latencies = fixed_rate(f"{base}/v1/webhooks/orders", paced, args.rate, args.seconds)
    webhook_rps = sum(results["webhook_rps"]) / 2
    bare_rps = sum(results["bare_rps"]) / 2
    report = {
        "webhook_intake_rps": round(webhook_rps, 1),
        "bare_insert_rps": round(bare_rps, 1),
        "throughput_ratio": round(webhook_rps / bare_rps, 3),
        "target_ratio": 0.6,
        f"latency_at_{int(args.rate)}rps_p50_ms": round(percentile(latencies, 50), 1),
        f"latency_at_{int(args.rate)}rps_p99_ms": round(percentile(latencies, 99), 1),
        "target_p99_ms": 100,
        "requests_at_fixed_rate": len(latencies),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
