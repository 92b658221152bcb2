"""Benchmark: one worker process running no-op jobs on PostgreSQL.

Reports jobs/s (target ≥ 300) and resident memory after the first 1,000 and after 10,000 jobs (target: within
20%). Run: .venv/bin/python -m bench.worker_throughput
"""

from __future__ import annotations

import argparse
import json
import threading
import time

import sqlalchemy as sa

from bench.common import fresh_postgres_database, migrate, rss_mib
from service import create_app
from service.db import db
from service.jobs import enqueue
from service.jobs.models import Job
from service.jobs.registry import handler
from service.jobs.worker import Worker


@handler("bench_noop")
def noop(ctx) -> None:
    """Does nothing: the benchmark measures the queue itself."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=11_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    with fresh_postgres_database("bench_worker") as url:
        migrate(url)
        app = create_app({"DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json"})
        with app.app_context():
            for start in range(0, args.jobs, 1000):
                for i in range(start, min(args.jobs, start + 1000)):
                    enqueue(db.session, "bench_noop", {"i": i})
                db.session.commit()
        worker = Worker(app, threads=args.threads, batch=args.batch, poll_seconds=0.05)
        threads = [threading.Thread(target=worker._thread_loop, daemon=True) for _ in range(args.threads)]
        marks: dict[int, tuple[float, float]] = {}
        started = time.perf_counter()
        for t in threads:
            t.start()
        with app.app_context():
            while True:
                done = db.session.scalar(sa.select(sa.func.count()).where(Job.state == "succeeded"))
                db.session.commit()
                elapsed = time.perf_counter() - started
                for mark in (1000, 10_000):
                    if done >= mark and mark not in marks:
                        marks[mark] = (elapsed, rss_mib())
                if done >= args.jobs:
                    break
                time.sleep(0.02)  # sampling interval of the benchmark's progress probe
        total = time.perf_counter() - started
        worker.stop()
        for t in threads:
            t.join()
    rss_1k, rss_10k = marks[1000][1], marks[10_000][1]
    print(json.dumps({
        "jobs": args.jobs, "threads": args.threads, "batch": args.batch,
        "jobs_per_second": round(args.jobs / total, 1), "target_jobs_per_second": 300,
        "rss_mib_after_1000": round(rss_1k, 1), "rss_mib_after_10000": round(rss_10k, 1),
        "rss_growth_percent": round((rss_10k - rss_1k) / rss_1k * 100, 1), "target_growth_percent": 20,
    }, indent=2))


if __name__ == "__main__":
    main()
