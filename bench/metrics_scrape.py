"""Benchmark: what the metrics cost. A scrape of GET /metrics under gunicorn (multiprocess mode, PostgreSQL) with
100,000 jobs in the table, next to GET /healthz on the same server (the floor of any request on this stack); and the
time one provider call's counting adds (a counter and a histogram), in multiprocess and single-process mode, next
to the fastest provider call the benchmark can make (the sandbox on loopback).

Run: .venv/bin/python -m bench.metrics_scrape
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta

import requests
import sqlalchemy as sa

from bench.common import ROOT, fresh_postgres_database, gunicorn, migrate, percentile
from service import create_app
from service.db import db, utcnow
from service.jobs.models import Job

ADMIN = {"Authorization": "Bearer dev-admin-token"}

# One provider call's counting, timed in a fresh process (prometheus_client picks its mode at import).
COUNTING = """
import json, time
from service import metrics
n = 20000
started = time.perf_counter()
for _ in range(n):
    metrics.PROVIDER_CALLS.labels("instagift", "fetch_certificate", "ok").inc()
    metrics.PROVIDER_CALL_SECONDS.labels("instagift", "fetch_certificate").observe(0.05)
print(json.dumps((time.perf_counter() - started) / n * 1e6))
"""


def _fill_jobs(url: str, total: int) -> None:
    app = create_app({"DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json"})
    now = utcnow()
    states = ["succeeded"] * 97 + ["queued", "parked", "dead"]
    kinds = ["send_thank_you_card", "redeem_gift_card", "plan_order_effects", "issue_membership_card"]
    with app.app_context():
        rows = [dict(kind=kinds[i % len(kinds)], payload={}, state=states[i % len(states)], attempts=1, failures=0,
                     max_attempts=8, run_at=now + timedelta(hours=1), created_at=now, updated_at=now)
                for i in range(total)]
        for start in range(0, total, 5000):
            db.session.execute(sa.insert(Job), rows[start:start + 5000])
        db.session.commit()
        db.session.execute(sa.text("ANALYZE jobs"))
        db.session.commit()
        db.engine.dispose()


def _latencies(url: str, headers: dict[str, str], n: int) -> list[float]:
    session = requests.Session()
    session.get(url, headers=headers, timeout=30).raise_for_status()  # warm: connections, plans
    times = []
    for _ in range(n):
        started = time.perf_counter()
        session.get(url, headers=headers, timeout=30).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _counting_microseconds(multiprocess: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory() as directory:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        out = subprocess.run([sys.executable, "-c", COUNTING], cwd=ROOT, env=env, check=True, capture_output=True,
                             text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with fresh_postgres_database("bench_metrics") as url, tempfile.TemporaryDirectory() as directory:
        migrate(url)
        _fill_jobs(url, args.jobs)
        env = {"DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json",
               "PROMETHEUS_MULTIPROC_DIR": directory}
        with gunicorn("service:create_app()", env, workers=2, threads=4) as base:
            scrape = _latencies(f"{base}/metrics", ADMIN, args.requests)
            floor = _latencies(f"{base}/healthz", {}, args.requests)
            size = len(requests.get(f"{base}/metrics", headers=ADMIN, timeout=30).content)
    print(json.dumps({
        "jobs_in_table": args.jobs, "requests": args.requests, "scrape_bytes": size,
        "scrape_ms_p50": round(percentile(scrape, 50), 2), "scrape_ms_p95": round(percentile(scrape, 95), 2),
        "floor_healthz_ms_p50": round(percentile(floor, 50), 2), "floor_healthz_ms_p95": round(percentile(floor, 95), 2),
        "provider_call_counting_us_multiprocess": round(_counting_microseconds(True), 2),
        "provider_call_counting_us_single_process": round(_counting_microseconds(False), 2),
    }, indent=2))


if __name__ == "__main__":
    main()
