"""The durable job queue: enqueue in the caller's transaction, claim with a lease, record each outcome.

Claims use `SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL and rely on SQLite's `BEGIN IMMEDIATE`
(see service.db) elsewhere, so any number of workers on any number of machines share one queue.
A job whose lease ran out (its worker died) is claimable again. Every function takes `now` so tests and
the worker agree on one clock.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from service.db import insert_ignoring_conflict, lock_for_update, utcnow
from service.errors import Conflict, NotFound
from service.jobs.models import Job, JobAttempt
from service.jobs.registry import person_retry_hook, success_listeners
from service.logs import redact

log = logging.getLogger("service.jobs")

CLAIMABLE_STATES = ("queued", "parked")
PERIODIC_KEY_PREFIX = "periodic:"


def periodic_dedupe_key(kind: str, period: int) -> str:
    """The dedupe key of a periodic job's run in one period: every worker agrees on it, so it runs once."""
    return f"{PERIODIC_KEY_PREFIX}{kind}:{period}"


def is_periodic():
    """SQL condition: the job is a periodic housekeeping run, not a business effect."""
    return Job.dedupe_key.like(PERIODIC_KEY_PREFIX + "%")


def not_periodic():
    """SQL condition: the job is a business effect (jobs without a dedupe key included)."""
    return sa.or_(Job.dedupe_key.is_(None), ~is_periodic())


def is_periodic_key(dedupe_key: str | None) -> bool:
    """The same rule as `is_periodic`, for a job already loaded."""
    return bool(dedupe_key and dedupe_key.startswith(PERIODIC_KEY_PREFIX))

RETRYABLE_BY_PERSON = ("dead", "parked")


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: a delay drawn uniformly from [0, min(cap, base·2^(n−1))]."""

    base_seconds: float = 2.0
    cap_seconds: float = 900.0

    def ceiling(self, failures: int) -> float:
        return min(self.cap_seconds, self.base_seconds * (2 ** max(0, failures - 1)))

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        return (rng or random).uniform(0, self.ceiling(failures))


def enqueue(session: Session, kind: str, payload: dict[str, Any] | None = None, *,
            dedupe_key: str | None = None, order_id: int | None = None, run_at: datetime | None = None,
            max_attempts: int = 8) -> bool:
    """Add a job in the caller's transaction; False when `dedupe_key` was already enqueued."""
    values = dict(kind=kind, payload=payload or {}, state="queued", dedupe_key=dedupe_key, order_id=order_id,
                  attempts=0, failures=0, max_attempts=max_attempts, run_at=run_at or utcnow(),
                  created_at=utcnow(), updated_at=utcnow())
    return insert_ignoring_conflict(session, Job, values, ["dedupe_key"]) is not None


def claim(session: Session, worker_id: str, *, limit: int = 1, lease_seconds: int = 30,
          now: datetime | None = None, kinds: tuple[str, ...] | None = None) -> list[Job]:
    """Lease up to `limit` due jobs to `worker_id` and commit; returns them in the running state.

    A job whose lease ran out lost its worker while running (a crash, a kill, a hang): that attempt counts as a
    failure, and a job whose failures reach `max_attempts` that way is `dead` instead of claimed, so a job that
    kills its worker is not run again and again."""
    now = now or utcnow()
    due = sa.or_(
        sa.and_(Job.state.in_(CLAIMABLE_STATES), Job.run_at <= now),
        sa.and_(Job.state == "running", Job.lease_expires_at < now),
    )
    stmt = sa.select(Job).where(due).order_by(Job.run_at, Job.id).limit(limit)
    if kinds:
        stmt = stmt.where(Job.kind.in_(kinds))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    jobs = list(session.scalars(stmt))
    if not jobs:
        session.rollback()
        return []
    lease_until = now + timedelta(seconds=lease_seconds)
    # What each claimed job becomes is taken before the commit: nothing after it may read an attribute the commit
    # expired (with expire_on_commit, `job.attempts` would be read back already raised and counted twice).
    claimed: list[tuple[Job, int, dict[str, Any]]] = []
    buried: list[tuple[Job, dict[str, Any]]] = []
    for job in jobs:
        mirror: dict[str, Any] = {}
        if job.state == "running":
            failures = job.failures + 1
            _finish_open_attempts(session, job.id, now, "lease_expired", WORKER_LOST)
            if failures >= job.max_attempts:
                buried.append((job, _bury_lost_job(session, job, failures, now)))
                continue
            mirror = dict(failures=failures, last_error=WORKER_LOST)
            session.execute(sa.update(Job).where(Job.id == job.id).values(**mirror)
                            .execution_options(synchronize_session=False))
        mirror.update(state="running", attempts=job.attempts + 1, lease_expires_at=lease_until, locked_by=worker_id)
        claimed.append((job, job.id, mirror))
    if claimed:
        ids = [job_id for _job, job_id, _mirror in claimed]
        # One UPDATE and one multi-row INSERT per claim, whatever the batch size.
        session.execute(
            sa.update(Job).where(Job.id.in_(ids))
            .values(state="running", attempts=Job.attempts + 1, lease_expires_at=lease_until, locked_by=worker_id,
                    updated_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(sa.insert(JobAttempt), [
            dict(job_id=job_id, attempt=mirror["attempts"], worker=worker_id, started_at=now, outcome="running")
            for _job, job_id, mirror in claimed
        ])
    session.commit()
    for job, mirror in (*buried, *((job, mirror) for job, _job_id, mirror in claimed)):
        # Mirror the UPDATEs in memory without marking anything dirty (the worker's session keeps attributes
        # across commits, so this saves a reload of every job).
        for name, value in mirror.items():
            set_committed_value(job, name, value)
    for job, mirror in buried:  # logged once the burial is committed, like every other outcome
        _log_outcome(job, "is dead: its worker was lost on its last allowed attempt", mirror["last_error"])
    return [job for job, _job_id, _mirror in claimed]


WORKER_LOST = "worker lost while running (its lease ran out before the job finished)"


def _bury_lost_job(session: Session, job: Job, failures: int, now: datetime) -> dict[str, Any]:
    """The job's last attempt lost its worker too: `dead`, for a person, and never claimed again; returns what was
    written. (Not `_finish_attempt`: the claim holds the row and commits the whole batch at once.)"""
    values = dict(state="dead", failures=failures, last_error=f"{WORKER_LOST}; {failures} of {job.max_attempts} "
                  "attempts failed", finished_at=now, lease_expires_at=None, locked_by=None, updated_at=now)
    session.execute(sa.update(Job).where(Job.id == job.id).values(**values)
                    .execution_options(synchronize_session=False))
    return values


def renew_leases(session: Session, job_ids: list[int], worker_id: str, lease_seconds: int,
                 now: datetime | None = None) -> set[int]:
    """Extend the leases of claimed jobs still held by `worker_id`; returns the ids that are still ours."""
    now = now or utcnow()
    kept = set(session.scalars(
        sa.update(Job)
        .where(Job.id.in_(job_ids), Job.state == "running", Job.locked_by == worker_id)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    ))
    session.commit()
    return kept


def _finish_open_attempts(session: Session, job_id: int, now: datetime, outcome: str, error: str | None) -> None:
    session.execute(
        sa.update(JobAttempt)
        .where(JobAttempt.job_id == job_id, JobAttempt.outcome == "running")
        .values(outcome=outcome, finished_at=now, error=error)
    )


# What an outcome's log line (and the worker's run metric) reads of the job besides what the outcome writes:
# returned by the outcome's UPDATE, so a job that the worker's rollback expired is not loaded again to be logged.
_RETURNED = (Job.id, Job.kind, Job.order_id, Job.attempts, Job.failures, Job.max_attempts, Job.run_at)


def _finish_attempt(session: Session, job: Job, worker_id: str, now: datetime, attempt_outcome: str,
                    error: str | None, *, before_commit: Callable[[], None] | None = None,
                    log_as: str | None = None, **job_values: Any) -> bool:
    """Finish a running attempt while the lease is still ours: the job takes `job_values` (its lease given up),
    the attempt `attempt_outcome`, in one commit; then, with `log_as`, one outcome line is logged. After a long
    run another worker may own the job: then nothing is written or logged and the answer is False."""
    # The id as the session knows it: after a rollback reading `job.id` would load the whole row again.
    job_id = sa.inspect(job).identity[0]
    job_values.update(lease_expires_at=None, locked_by=None, updated_at=now)
    returned = session.execute(
        sa.update(Job)
        .where(Job.id == job_id, Job.state == "running", Job.locked_by == worker_id)
        .values(**job_values)
        .returning(*_RETURNED)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if returned is None:
        session.rollback()
        return False
    _finish_open_attempts(session, job_id, now, attempt_outcome, error)
    if before_commit is not None:
        before_commit()
    session.commit()
    for name, value in {**returned._asdict(), **job_values}.items():
        set_committed_value(job, name, value)  # the job in memory says what was written, without a reload
    if log_as is not None:
        _log_outcome(job, log_as, error or "")
    return True


# An outcome line keeps the error's beginning only: the whole text is on the job (last_error) for the console.
OUTCOME_ERROR_CHARS = 300


def _log_outcome(job: Job, outcome: str, error: str) -> None:
    """One line per failed, retried, parked or dead job for whoever tails the worker log (error already masked)."""
    if len(error) > OUTCOME_ERROR_CHARS:
        error = error[:OUTCOME_ERROR_CHARS] + "…"
    order = f", order {job.order_id}" if job.order_id is not None else ""
    when = "" if job.state == "dead" else f"; next run {job.run_at:%Y-%m-%d %H:%M:%S} UTC"
    log.log(logging.ERROR if job.state == "dead" else logging.WARNING,
            "job %s (%s%s) %s: attempt %d, %d of %d failures%s: %s",
            job.id, job.kind, order, outcome, job.attempts, job.failures, job.max_attempts, when, error)


def mark_succeeded(session: Session, job: Job, worker_id: str, now: datetime | None = None) -> bool:
    """Record success, unless the lease was lost meanwhile (another worker owns the job now)."""
    now = now or utcnow()

    def tell_listeners() -> None:  # what the job's success settles is written with it, or not at all
        for listener in success_listeners():
            listener(session, job, now)

    return _finish_attempt(session, job, worker_id, now, "succeeded", None, before_commit=tell_listeners,
                           state="succeeded", finished_at=now, parked_reason=None)


def mark_retry(session: Session, job: Job, worker_id: str, error: str, backoff: Backoff, *,
               delay_seconds: float | None = None, rng: random.Random | None = None,
               now: datetime | None = None) -> str:
    """Record a failed attempt: back off and retry, or `dead` once `max_attempts` failures are reached; returns
    the job's state (another worker's, when the lease was lost)."""
    now = now or utcnow()
    error = redact(error)[:4000]
    failures = job.failures + 1
    if failures >= job.max_attempts:
        _finish_attempt(session, job, worker_id, now, "failed", error, log_as="is dead after its last allowed failure",
                        state="dead", finished_at=now, failures=failures, last_error=error)
    else:
        wait = delay_seconds if delay_seconds is not None else backoff.delay(failures, rng)
        _finish_attempt(session, job, worker_id, now, "retry", error, log_as="failed, will retry", state="queued",
                        run_at=now + timedelta(seconds=wait), failures=failures, last_error=error)
    return job.state


def mark_parked(session: Session, job: Job, worker_id: str, reason: str, recheck_seconds: float,
                now: datetime | None = None) -> None:
    """Wait for something outside (credit, funds, a person); rechecked after `recheck_seconds`."""
    now = now or utcnow()
    reason = redact(reason)[:4000]
    _finish_attempt(session, job, worker_id, now, "parked", reason, log_as="is parked", state="parked",
                    parked_reason=reason, last_error=reason, run_at=now + timedelta(seconds=recheck_seconds))


def mark_dead(session: Session, job: Job, worker_id: str, error: str, now: datetime | None = None) -> None:
    """A permanent failure: kept as `dead` with its error for a person to look at and retry."""
    now = now or utcnow()
    error = redact(error)[:4000]
    _finish_attempt(session, job, worker_id, now, "failed", error, log_as="is dead (a permanent failure)",
                    state="dead", last_error=error, finished_at=now)


def release(session: Session, ids: list[int], worker_id: str, now: datetime | None = None) -> None:
    """Give back claimed jobs (by id) that were never started (shutdown), without counting an attempt."""
    now = now or utcnow()
    session.execute(
        sa.update(Job).where(Job.id.in_(ids), Job.state == "running", Job.locked_by == worker_id)
        .values(state="queued", lease_expires_at=None, locked_by=None, attempts=Job.attempts - 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.execute(sa.delete(JobAttempt).where(JobAttempt.job_id.in_(ids), JobAttempt.outcome == "running",
                                                JobAttempt.worker == worker_id))
    session.commit()


def wake_parked(session: Session, kind: str, now: datetime | None = None) -> int:
    """Make parked jobs of `kind` due now (e.g. credit was added); returns how many."""
    now = now or utcnow()
    result = session.execute(
        sa.update(Job).where(Job.kind == kind, Job.state == "parked").values(run_at=now, updated_at=now)
    )
    return result.rowcount


def retry_by_person(session: Session, job_id: int, now: datetime | None = None, *, by: str | None = None) -> Job:
    """A merchant's manual retry of a dead or parked job: queued now with a fresh failure budget; `by` names the
    person (kept on the job: a successful run resolves the attention its failures raised "by retry of <by>")."""
    now = now or utcnow()
    job = session.scalar(lock_for_update(session, sa.select(Job).where(Job.id == job_id)))
    if job is None:
        raise NotFound(f"There is no job {job_id}.", code="job_not_found")
    if job.state not in RETRYABLE_BY_PERSON:
        raise Conflict(f"Job {job_id} is {job.state}; only dead or parked jobs can be retried.",
                       code="job_not_retryable", state=job.state)
    hook = person_retry_hook(job.kind)
    if hook is not None:
        hook(session, job, now)
    job.state, job.failures, job.run_at, job.finished_at, job.updated_at = "queued", 0, now, None, now
    job.retried_by, job.retried_at = by or "a person", now
    session.commit()
    return job
