"""The worker: threads that claim due jobs, run their handlers and record the outcome.

On SIGTERM the worker stops claiming, lets each thread finish the job it is running, gives back the jobs
it had claimed but not started, and exits. A worker that dies instead loses nothing: its leases expire
and another worker picks the jobs up.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from flask import Flask

from service import metrics
from service.db import db, utcnow
from service.errors import ProviderError, ProviderRateLimited
from service.jobs import queue
from service.jobs.models import Job
from service.jobs.registry import (
    JobContext,
    Park,
    PermanentFailure,
    RetryLater,
    get_handler,
    periodic_jobs,
    running,
)

log = logging.getLogger("service.worker")

# The job's state after a run → the run's outcome in the metrics; any other state means another worker had taken
# the job over (its lease had run out), so this run's outcome was not recorded ("lost").
RUN_OUTCOMES = {"succeeded": "succeeded", "queued": "retry", "parked": "parked", "dead": "dead"}


class Worker:
    """Runs jobs for one app; `drain()` runs everything due in the calling thread (tests, scripts)."""

    def __init__(self, app: Flask, *, threads: int = 2, batch: int = 10, poll_seconds: float = 0.5,
                 worker_id: str | None = None, clock: Callable[[], datetime] = utcnow,
                 rng: random.Random | None = None, kinds: tuple[str, ...] | None = None):
        self.app = app
        self.settings = app.extensions["settings"]
        self.threads = threads
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.clock = clock
        self.rng = rng or random.Random()
        self.kinds = kinds
        self.backoff = queue.Backoff(self.settings.job_backoff_base_seconds, self.settings.job_backoff_cap_seconds)
        self.stopping = threading.Event()
        # Jobs this worker has claimed and not finished (running or waiting in a batch), and those of them
        # whose lease another worker has taken over meanwhile.
        self._held: set[int] = set()
        self._lost: set[int] = set()
        self._held_lock = threading.Lock()
        self._renewed_at = clock()

    # -- running one job ---------------------------------------------------------------------------------
    def execute(self, job: Job) -> str:
        """Run one claimed job's handler and record its outcome; returns the job's new state."""
        session = db.session
        if sa.inspect(job).detached:
            session.add(job)  # the previous job's session.close() detached the rest of the batch
        worker_id = job.locked_by or self.worker_id
        handler = get_handler(job.kind)
        if handler is None:
            queue.mark_dead(session, job, worker_id, f"no handler is registered for job kind {job.kind!r}",
                            now=self.clock())
            return job.state
        try:
            with running(job):
                handler(JobContext(job=job, session=session, app=self.app, now=self.clock, rng=self.rng))
            session.commit()
        except RetryLater as exc:
            session.rollback()
            return queue.mark_retry(session, job, worker_id, str(exc), self.backoff,
                                    delay_seconds=exc.delay_seconds, rng=self.rng, now=self.clock())
        except Park as exc:
            session.rollback()
            queue.mark_parked(session, job, worker_id, str(exc), exc.recheck_seconds, now=self.clock())
            return job.state
        except PermanentFailure as exc:
            session.rollback()
            queue.mark_dead(session, job, worker_id, str(exc), now=self.clock())
            return job.state
        except ProviderError as exc:
            session.rollback()
            if not exc.retryable:
                queue.mark_dead(session, job, worker_id, str(exc), now=self.clock())
                return job.state
            delay = exc.retry_after_seconds if isinstance(exc, ProviderRateLimited) else None
            return queue.mark_retry(session, job, worker_id, str(exc), self.backoff,
                                    delay_seconds=delay, rng=self.rng, now=self.clock())
        except Exception as exc:  # an unexpected bug: keep the job, retry with backoff, log the traceback
            session.rollback()
            log.exception("job %s (%s) raised", job.id, job.kind)
            return queue.mark_retry(session, job, worker_id, f"{type(exc).__name__}: {exc}", self.backoff,
                                    rng=self.rng, now=self.clock())
        queue.mark_succeeded(session, job, worker_id, now=self.clock())
        return job.state  # as after any outcome: another worker's state when the lease was lost meanwhile

    def execute_measured(self, job: Job) -> str:
        """`execute`, with the run's time and outcome counted in the job-run metrics (docs/metrics.md)."""
        started = time.perf_counter()
        state = self.execute(job)
        # The kind is read after the run: the job is in the session again by then (see execute).
        metrics.JOB_RUN_SECONDS.labels(job.kind, RUN_OUTCOMES.get(state, "lost")).observe(
            time.perf_counter() - started)
        return state

    def run_batch(self) -> int:
        """Claim and run one batch of due jobs; returns how many were claimed."""
        session = db.session
        # Attributes survive commits (no reload of every job after each step); the session is closed after
        # each job so nothing stale is carried from one job to the next.
        session().expire_on_commit = False
        lease_seconds = self.settings.job_lease_seconds
        jobs = queue.claim(session, self.worker_id, limit=self.batch, lease_seconds=lease_seconds,
                           now=self.clock(), kinds=self.kinds)
        # Ids are taken now: a rollback after a lost lease expires every loaded job, and a closed session
        # cannot reload them.
        ids = [job.id for job in jobs]
        with self._held_lock:
            self._held.update(ids)
        try:
            for index, job in enumerate(jobs):
                if self.stopping.is_set():
                    queue.release(session, ids[index:], self.worker_id, now=self.clock())
                    break
                if self._lease_renewal_due():
                    self.renew_held_leases()
                if ids[index] in self._lost:
                    continue  # its lease ran out and another worker has it now
                try:
                    self.execute_measured(job)
                finally:
                    session.close()
                    with self._held_lock:
                        self._held.discard(ids[index])
        finally:
            with self._held_lock:
                self._held.difference_update(ids)
                self._lost.difference_update(ids)
        return len(jobs)

    def _lease_renewal_due(self) -> bool:
        return (self.clock() - self._renewed_at).total_seconds() > self.settings.job_lease_seconds / 3

    def renew_held_leases(self) -> None:
        """Extend the lease of every job this worker holds, so a slow job or batch is not taken over."""
        self._renewed_at = self.clock()
        with self._held_lock:
            ids = sorted(self._held - self._lost)
        if not ids:
            return
        kept = queue.renew_leases(db.session, ids, self.worker_id, self.settings.job_lease_seconds,
                                  now=self.clock())
        with self._held_lock:
            self._lost.update(set(ids) - kept)

    def drain(self, max_jobs: int = 10_000) -> int:
        """Run due jobs in this thread until none is left; returns how many runs happened."""
        done = 0
        with self.app.app_context():
            while done < max_jobs:
                ran = self.run_batch()
                if not ran:
                    break
                done += ran
        return done

    # -- the long-running process -------------------------------------------------------------------------
    def schedule_periodic(self) -> None:
        """Enqueue each periodic job once per period, across all workers (the dedupe key is the period)."""
        now = self.clock()
        session = db.session
        for periodic in periodic_jobs():
            bucket = int(now.timestamp() // periodic.every_seconds)
            queue.enqueue(session, periodic.kind, dedupe_key=queue.periodic_dedupe_key(periodic.kind, bucket),
                          max_attempts=1)
        session.commit()

    def _thread_loop(self) -> None:
        with self.app.app_context():
            while not self.stopping.is_set():
                try:
                    ran = self.run_batch()
                except Exception:
                    log.exception("worker thread failed to claim jobs; retrying")
                    db.session.rollback()
                    ran = 0
                if not ran:
                    self.stopping.wait(self.poll_seconds)

    def run_forever(self) -> None:
        """Run until `stop()` (SIGTERM): worker threads; this thread schedules periodic jobs and renews leases."""
        log.info("worker %s starting with %d thread(s)", self.worker_id, self.threads)
        workers = [threading.Thread(target=self._thread_loop, name=f"worker-{i}", daemon=True)
                   for i in range(self.threads)]
        for thread in workers:
            thread.start()
        with self.app.app_context():
            while not self.stopping.is_set():
                try:
                    self.schedule_periodic()
                    # The heartbeat: a job running longer than its lease keeps it while this process lives.
                    if self._lease_renewal_due():
                        self.renew_held_leases()
                except Exception:
                    log.exception("could not schedule periodic jobs or renew leases")
                    db.session.rollback()
                self.stopping.wait(min(5, self.settings.job_lease_seconds / 6))
        for thread in workers:
            thread.join()
        log.info("worker %s stopped", self.worker_id)

    def stop(self, *_args) -> None:
        self.stopping.set()
