"""The real worker process: `flask --app service worker` runs jobs and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from service.db import db
from service.jobs import enqueue
from service.jobs.models import Job

ROOT = Path(__file__).resolve().parent.parent


def wait_for(predicate, timeout: float = 60.0) -> bool:
    """Poll the database until `predicate()` holds (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_worker_process_runs_jobs_and_stops_cleanly_on_sigterm(app, environ):
    with app.app_context():
        for n in range(20):
            enqueue(db.session, "purge_periodic_jobs", {"n": n})
        db.session.commit()

    def succeeded() -> int:
        with app.app_context():
            count = db.session.scalar(sa.select(sa.func.count()).where(Job.state == "succeeded",
                                                                         Job.kind == "purge_periodic_jobs"))
            db.session.remove()
            return count

    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "service", "worker", "--threads", "2"],
                              cwd=ROOT, env={**os.environ, **environ}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: succeeded() >= 20), "the worker did not run the queued jobs"
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert "stopped" in output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).where(Job.state == "running")) == 0
