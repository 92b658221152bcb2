"""Benchmark (chaos): one job that kills every worker process that runs it.

A `chaos_crash` job (bench/chaos_worker.py) is enqueued on a fresh PostgreSQL database; a real worker process is
started, the job SIGKILLs it, its lease is made to run out (set into the past: the benchmark does not wait the
lease out), and a new worker process is started, up to `--cycles` times or until a worker survives because the
job is no longer claimed. Reports how many worker processes the job killed, how often its handler ran, the job's
state, `attempts` and `failures`, and how many attempts were closed as `lease_expired`.
Run: .venv/bin/python -m bench.poison_job [--cycles 20]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.common import ROOT, fresh_postgres_database, migrate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--max-attempts", type=int, default=8)
    args = parser.parse_args()
    with fresh_postgres_database("bench_poison") as url, tempfile.TemporaryDirectory() as tmp:
        migrate(url)
        env = {**os.environ, "DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json",
               "JOB_MAX_ATTEMPTS": str(args.max_attempts)}
        marker = Path(tmp) / "runs"
        marker.touch()
        from service import create_app
        from service.db import db, utcnow
        from service.jobs import enqueue
        from service.jobs.models import Job, JobAttempt

        app = create_app({"DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json"})
        with app.app_context():
            enqueue(db.session, "chaos_crash", {"marker": str(marker)}, max_attempts=args.max_attempts)
            db.session.commit()

        def job() -> Job:
            with app.app_context():
                row = db.session.scalar(sa.select(Job).where(Job.kind == "chaos_crash"))
                db.session.expunge_all()
                db.session.remove()
                return row

        killed = survived = 0
        for _cycle in range(args.cycles):
            worker = subprocess.Popen([sys.executable, "-m", "bench.chaos_worker", "--threads", "1"], cwd=ROOT,
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while worker.poll() is None and job().state not in ("dead", "succeeded") and time.monotonic() < deadline:
                time.sleep(0.05)  # polling the process and the database
            if worker.poll() is None:
                survived += 1
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
                break
            killed += worker.returncode == -signal.SIGKILL
            with app.app_context():  # the lease runs out (instead of waiting JOB_LEASE_SECONDS)
                db.session.execute(sa.update(Job).where(Job.kind == "chaos_crash")
                                   .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
                db.session.commit()
        final = job()
        with app.app_context():
            lapsed = db.session.scalar(sa.select(sa.func.count()).select_from(JobAttempt)
                                       .where(JobAttempt.job_id == final.id, JobAttempt.outcome == "lease_expired"))
        runs = len(marker.read_text().splitlines())
    print(json.dumps({
        "cycles": args.cycles, "job_max_attempts": args.max_attempts,
        "workers_killed_by_the_job": killed, "worker_survived": bool(survived), "handler_runs": runs,
        "job_state": final.state, "attempts": final.attempts, "failures": final.failures,
        "attempts_closed_lease_expired": lapsed, "last_error": final.last_error,
    }, indent=2))


if __name__ == "__main__":
    main()
