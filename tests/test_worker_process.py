"""The real worker process: `flask --app service worker` runs jobs and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from service.db import db, utcnow
from service.jobs import enqueue
from service.jobs.models import Job, JobAttempt

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


def test_a_job_that_kills_its_worker_is_dead_after_max_attempts_and_never_runs_again(app, environ, tmp_path):
    """A poison job SIGKILLs each real worker process that runs it. Each lost lease is a failed attempt; once
    JOB_MAX_ATTEMPTS are used up the job is dead and the next worker process lives on without running it."""
    marker = tmp_path / "runs"
    marker.touch()
    with app.app_context():
        enqueue(db.session, "poison", {"marker": str(marker)}, max_attempts=3)
        db.session.commit()

    def job() -> Job:
        with app.app_context():
            row = db.session.scalar(sa.select(Job).where(Job.kind == "poison"))
            db.session.expunge_all()
            db.session.remove()
            return row

    def start_worker() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tests.crashing_worker", "--threads", "1"], cwd=ROOT,
                                env={**os.environ, **environ}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

    for attempt in range(1, 4):
        worker = start_worker()
        output, _ = worker.communicate(timeout=60)
        assert worker.returncode == -signal.SIGKILL, output  # the job killed it mid-run
        assert (job().state, job().attempts) == ("running", attempt)
        with app.app_context():  # its lease runs out (rather than waiting JOB_LEASE_SECONDS)
            db.session.execute(sa.update(Job).where(Job.kind == "poison")
                               .values(lease_expires_at=utcnow() - timedelta(seconds=1)))
            db.session.commit()

    survivor = start_worker()
    try:
        assert wait_for(lambda: job().state == "dead"), "the poison job was not buried"
        assert survivor.poll() is None, "the job was run again and killed the next worker"
    finally:
        survivor.send_signal(signal.SIGTERM)
        output, _ = survivor.communicate(timeout=60)
    assert survivor.returncode == 0, output
    final = job()
    assert (final.state, final.attempts, final.failures) == ("dead", 3, 3)
    assert final.last_error.startswith("worker lost while running")
    assert len(marker.read_text().splitlines()) == 3  # the handler ran three times, never a fourth
    with app.app_context():
        outcomes = db.session.scalars(sa.select(JobAttempt.outcome).join(Job).where(Job.kind == "poison")).all()
    assert outcomes == ["lease_expired"] * 3
