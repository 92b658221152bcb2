"""Benchmark (hostile input): a burst of deeply nested JSON bodies at the public and webhook endpoints.

300 requests, `{"claim_code":"x","x":[[[…]]]}` nested `--depth` levels (480 by default, well inside the 64 KB body
limit): 100 to the public balance look-up, 100 to a cart's apply, 100 signed order webhooks (signed with the
development secret, so they pass the signature check). The service runs under gunicorn (2 workers) on a fresh
PostgreSQL database. Reports the answers by status, how many were 5xx, and how many bytes the service's log grew by
(in total and per request). Run: .venv/bin/python -m bench.deep_json_burst [--depth 480] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import requests
from standardwebhooks.webhooks import Webhook

from bench.common import fresh_postgres_database, gunicorn, migrate
from service.config import DEV_WEBHOOK_SECRET


def deep_body(depth: int) -> str:
    """A JSON object with a claim code and one member nested `depth` levels deep."""
    return '{"claim_code":"x","x":' + "[" * depth + "]" * depth + "}"


def signed_headers(raw: str) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(DEV_WEBHOOK_SECRET).sign(msg_id, now, raw),
            "Content-Type": "application/json"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--depth", type=int, default=480)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    body = deep_body(args.depth)
    with fresh_postgres_database("bench_deep") as url, tempfile.TemporaryDirectory() as tmp:
        migrate(url)
        log_path = Path(tmp) / "service.log"
        env = {"DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json",
               "RATELIMIT_STORAGE_URI": "memory://"}
        with gunicorn("service:create_app()", env, workers=2, threads=4, log_path=log_path) as base:
            session = requests.Session()
            cart = session.post(f"{base}/v1/carts", json={"total_cents": 5000, "currency": "USD"}, timeout=30).json()
            targets = [
                ("balance", f"{base}/v1/gift-cards/balance", lambda: {"Content-Type": "application/json"}),
                ("apply", f"{base}/v1/carts/{cart['cart_token']}/gift-cards",
                 lambda: {"Content-Type": "application/json"}),
                ("webhook", f"{base}/v1/webhooks/orders", lambda: signed_headers(body)),
            ]
            time.sleep(0.5)  # let start-up log lines land before the baseline size is taken
            log_before = log_path.stat().st_size
            statuses: dict[str, Counter] = {name: Counter() for name, _url, _headers in targets}
            started = time.perf_counter()
            for n in range(args.requests):
                name, target, headers = targets[n % len(targets)]
                answer = session.post(target, data=body.encode(), headers=headers(), timeout=30)
                statuses[name][answer.status_code] += 1
            elapsed = time.perf_counter() - started
            time.sleep(0.5)  # let the workers' last log lines reach the file
            grown = log_path.stat().st_size - log_before
    total = Counter()
    for counts in statuses.values():
        total.update(counts)
    print(json.dumps({
        "requests": args.requests, "depth": args.depth, "body_bytes": len(body),
        "answers_by_status": {str(k): v for k, v in sorted(total.items())},
        "answers_by_endpoint": {name: {str(k): v for k, v in sorted(c.items())} for name, c in statuses.items()},
        "answers_5xx": sum(v for k, v in total.items() if k >= 500),
        "log_bytes_written": grown, "log_bytes_per_request": round(grown / args.requests),
        "seconds": round(elapsed, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
