"""Benchmark (chaos): how long a SIGKILLed worker's job waits before another worker resumes it.

For each lease setting (`default` = JOB_LEASE_SECONDS unset), on a fresh PostgreSQL database: a `chaos_hang` job
(bench/chaos_worker.py) is started by worker process A, A is SIGKILLed mid-job, worker process B starts at once,
and the time from the kill until B starts the job again is measured. Run:
.venv/bin/python -m bench.worker_resume [--leases 120 default] [--repeat 1]
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
from pathlib import Path

from bench.common import ROOT, fresh_postgres_database, migrate


def _runs(marker: Path) -> int:
    return len(marker.read_text().splitlines())


def _wait_for_runs(marker: Path, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _runs(marker) >= count:
            return True
        time.sleep(0.05)  # polling the marker file the job writes when it starts
    return False


def resume_seconds(lease: str) -> float:
    """Kill the worker running a job; seconds until a fresh worker starts that job again."""
    with fresh_postgres_database("bench_resume") as url, tempfile.TemporaryDirectory() as tmp:
        migrate(url)
        env = {**os.environ, "DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json"}
        env.pop("JOB_LEASE_SECONDS", None)
        if lease != "default":
            env["JOB_LEASE_SECONDS"] = lease
        marker = Path(tmp) / "runs"
        marker.touch()
        from service import create_app
        from service.db import db
        from service.jobs import enqueue

        app = create_app({"DATABASE_URL": url, "SERVICE_ENV": "development", "LOG_FORMAT": "json"})
        with app.app_context():
            enqueue(db.session, "chaos_hang", {"marker": str(marker)})
            db.session.commit()
            db.session.remove()
        start = [sys.executable, "-m", "bench.chaos_worker", "--threads", "1"]
        first = subprocess.Popen(start, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        second = None
        try:
            if not _wait_for_runs(marker, 1, 60):
                raise RuntimeError("the first worker never started the job")
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = time.monotonic()
            second = subprocess.Popen(start, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
            if not _wait_for_runs(marker, 2, 600):
                raise RuntimeError("no worker resumed the job within 600 s")
            return time.monotonic() - killed_at
        finally:
            for process in (first, second):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leases", nargs="+", default=["120", "default"])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    results = {lease: [round(resume_seconds(lease), 1) for _ in range(args.repeat)] for lease in args.leases}
    print(json.dumps({"resume_seconds_after_sigkill_by_lease": results}, indent=2))


if __name__ == "__main__":
    main()
