"""The durable job queue on the real database: exactly-once claims, leases, backoff, dead jobs, retries."""

from __future__ import annotations

import random
import threading
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from service.db import db, utcnow
from service.jobs import queue
from service.jobs.models import Job, JobAttempt
from service.jobs.registry import Park, PermanentFailure, RetryLater, handler
from service.jobs.worker import Worker
from service.orders.models import Order

runs: Counter = Counter()
runs_lock = threading.Lock()
behaviour: dict[str, object] = {}


@handler("test_record")
def record_run(ctx):
    with runs_lock:
        runs[ctx.job.id] += 1


@handler("test_behave")
def behave(ctx):
    outcome = behaviour.get("outcome")
    if isinstance(outcome, BaseException):
        raise outcome


@pytest.fixture(autouse=True)
def _reset_counters():
    runs.clear()
    behaviour.clear()


def _enqueue(app, kind: str, n: int = 1, **kwargs) -> list[int]:
    with app.app_context():
        for i in range(n):
            queue.enqueue(db.session, kind, {"i": i}, **kwargs)
        db.session.commit()
        return list(db.session.scalars(sa.select(Job.id).where(Job.kind == kind).order_by(Job.id)))


def _job(app, job_id: int) -> Job:
    with app.app_context():
        job = db.session.get(Job, job_id)
        db.session.expunge(job)
        return job


def test_two_workers_racing_run_each_of_200_jobs_exactly_once(app):
    ids = _enqueue(app, "test_record", 200)
    workers = [Worker(app, threads=0, batch=5, worker_id=f"racer-{n}") for n in range(2)]
    threads = [threading.Thread(target=w.drain) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(runs) == ids
    assert set(runs.values()) == {1}
    with app.app_context():
        states = Counter(db.session.scalars(sa.select(Job.state)))
        claimed_by = Counter(db.session.scalars(sa.select(JobAttempt.worker)))
    assert states == {"succeeded": 200}
    assert sum(claimed_by.values()) == 200


def test_dedupe_key_enqueues_one_business_effect_once(app):
    with app.app_context():
        assert queue.enqueue(db.session, "test_record", dedupe_key="effect-1") is True
        assert queue.enqueue(db.session, "test_record", dedupe_key="effect-1") is False
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Job)) == 1


def test_a_job_whose_worker_died_runs_again_after_its_lease_expires(app):
    (job_id,) = _enqueue(app, "test_record")
    start = utcnow()
    with app.app_context():
        # The first worker claims the job and then dies without recording anything.
        claimed = queue.claim(db.session, "dead-worker", lease_seconds=60, now=start)
        assert [j.id for j in claimed] == [job_id]
    still_leased = Worker(app, threads=0, worker_id="second", clock=lambda: start + timedelta(seconds=30))
    assert still_leased.drain() == 0
    after_lease = Worker(app, threads=0, worker_id="second", clock=lambda: start + timedelta(seconds=61))
    assert after_lease.drain() == 1
    assert runs[job_id] == 1
    with app.app_context():
        attempts = db.session.scalars(sa.select(JobAttempt).where(JobAttempt.job_id == job_id)
                                      .order_by(JobAttempt.id)).all()
        assert [(a.worker, a.outcome) for a in attempts] == [("dead-worker", "lease_expired"),
                                                              ("second", "succeeded")]
        job = db.session.get(Job, job_id)
        # The stalled worker coming back late cannot overwrite the outcome.
        assert queue.mark_retry(db.session, job, "dead-worker", "late", queue.Backoff()) == "succeeded"


def test_each_lost_lease_is_a_failed_attempt_and_the_last_makes_the_job_dead(app):
    """A job that kills (or hangs) every worker that runs it: after max_attempts lost leases it is dead, in the
    failure queue, and never run again."""
    (job_id,) = _enqueue(app, "test_record", max_attempts=3)
    start = utcnow()
    for n in range(3):  # three workers claim it in turn and die without recording anything
        with app.app_context():
            [job] = queue.claim(db.session, f"doomed-{n}", lease_seconds=30, now=start + timedelta(seconds=31 * n))
            assert (job.attempts, job.failures) == (n + 1, n)
    later = start + timedelta(seconds=31 * 3)
    assert Worker(app, threads=0, worker_id="survivor", clock=lambda: later).drain() == 0
    assert runs[job_id] == 0
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert (job.state, job.attempts, job.failures, job.locked_by, job.lease_expires_at) == ("dead", 3, 3, None,
                                                                                                None)
        assert job.last_error.startswith(queue.WORKER_LOST)
        assert job.finished_at == later
        attempts = db.session.scalars(sa.select(JobAttempt).where(JobAttempt.job_id == job_id)
                                      .order_by(JobAttempt.id)).all()
        assert [(a.attempt, a.worker, a.outcome) for a in attempts] == [
            (n + 1, f"doomed-{n}", "lease_expired") for n in range(3)]
        assert all(a.error == queue.WORKER_LOST for a in attempts)
    # Nothing claims it again, however late.
    with app.app_context():
        assert queue.claim(db.session, "much-later", now=later + timedelta(days=1)) == []


def test_a_lost_lease_then_a_handler_failure_share_one_failure_budget(app):
    (job_id,) = _enqueue(app, "test_behave", max_attempts=2)
    behaviour["outcome"] = RuntimeError("provider hiccup")
    start = utcnow()
    with app.app_context():
        queue.claim(db.session, "doomed", lease_seconds=30, now=start)
    Worker(app, threads=0, worker_id="second", clock=lambda: start + timedelta(seconds=31)).drain()
    job = _job(app, job_id)
    assert (job.state, job.attempts, job.failures) == ("dead", 2, 2)


@pytest.mark.parametrize("expire_on_commit", [True, False])
def test_claim_reports_the_attempt_count_however_the_session_expires(app, expire_on_commit):
    (job_id,) = _enqueue(app, "test_record")
    start = utcnow()
    for n in range(2):
        with app.app_context():
            db.session().expire_on_commit = expire_on_commit
            [job] = queue.claim(db.session, f"w{n}", lease_seconds=30, now=start + timedelta(seconds=31 * n))
            assert (job.id, job.state, job.attempts, job.failures, job.locked_by) == (job_id, "running", n + 1, n,
                                                                                       f"w{n}")
            db.session.expire_all()
            assert (job.attempts, job.failures) == (n + 1, n)  # what the database holds


@pytest.mark.parametrize("outcome", ["succeeded", "retry", "parked", "dead"])
def test_a_worker_whose_lease_was_taken_over_records_no_outcome(app, outcome):
    (job_id,) = _enqueue(app, "test_record")
    start = utcnow()
    with app.app_context():
        [stale] = queue.claim(db.session, "slow-worker", lease_seconds=60, now=start)
        db.session.expunge(stale)
    with app.app_context():  # the lease ran out; another worker has the job now and is still running it
        queue.claim(db.session, "second", lease_seconds=60, now=start + timedelta(seconds=61))
    later = start + timedelta(seconds=90)
    with app.app_context():
        session = db.session
        session.add(stale)
        record = {
            "succeeded": lambda: queue.mark_succeeded(session, stale, "slow-worker", now=later),
            "retry": lambda: queue.mark_retry(session, stale, "slow-worker", "late", queue.Backoff(), now=later),
            "parked": lambda: queue.mark_parked(session, stale, "slow-worker", "late", 60, now=later),
            "dead": lambda: queue.mark_dead(session, stale, "slow-worker", "late", now=later),
        }[outcome]
        answer = record()
        assert answer in (False, "running", None)
        session.rollback()
        job = session.get(Job, job_id)
        # The slow worker's lost lease counted as a failed attempt when "second" took the job over.
        assert (job.state, job.locked_by, job.failures, job.last_error) == ("running", "second", 1,
                                                                           queue.WORKER_LOST)
        attempts = session.scalars(sa.select(JobAttempt).where(JobAttempt.job_id == job_id)
                                   .order_by(JobAttempt.id)).all()
        assert [(a.worker, a.outcome) for a in attempts] == [("slow-worker", "lease_expired"), ("second", "running")]


def test_retry_timing_follows_exponential_backoff_with_full_jitter(app):
    (job_id,) = _enqueue(app, "test_behave", max_attempts=10)
    behaviour["outcome"] = RuntimeError("provider hiccup")
    settings = app.extensions["settings"]
    backoff = queue.Backoff(settings.job_backoff_base_seconds, settings.job_backoff_cap_seconds)
    expected_rng = random.Random(7)
    now = utcnow()
    worker = Worker(app, threads=0, rng=random.Random(7), clock=lambda: now)
    for failures in range(1, 8):
        assert worker.drain() == 1
        job = _job(app, job_id)
        expected_delay = expected_rng.uniform(0, backoff.ceiling(failures))
        assert job.state == "queued" and job.failures == failures
        assert (job.run_at - now).total_seconds() == pytest.approx(expected_delay, abs=1e-3)
        assert 0 <= (job.run_at - now).total_seconds() <= min(settings.job_backoff_cap_seconds,
                                                                settings.job_backoff_base_seconds * 2 ** (failures - 1))
        now = job.run_at  # the worker's clock moves to when the job is due again
    assert "provider hiccup" in _job(app, job_id).last_error


def test_backoff_ceiling_doubles_then_caps():
    backoff = queue.Backoff(base_seconds=2, cap_seconds=60)
    assert [backoff.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]
    draws = [backoff.delay(6, random.Random(seed)) for seed in range(200)]
    assert all(0 <= d <= 60 for d in draws) and max(draws) > 30


def test_last_failure_makes_the_job_dead_and_a_manual_retry_revives_it(app):
    (job_id,) = _enqueue(app, "test_behave", max_attempts=3)
    behaviour["outcome"] = RetryLater("not yet", delay_seconds=0)
    worker = Worker(app, threads=0)
    worker.drain()
    job = _job(app, job_id)
    assert job.state == "dead" and job.failures == 3 and job.attempts == 3
    with app.app_context():
        outcomes = list(db.session.scalars(sa.select(JobAttempt.outcome).where(JobAttempt.job_id == job_id)
                                           .order_by(JobAttempt.id)))
    assert outcomes == ["retry", "retry", "failed"]

    behaviour["outcome"] = None
    with app.app_context():
        queue.retry_by_person(db.session, job_id)
    assert worker.drain() == 1
    assert _job(app, job_id).state == "succeeded"


def test_permanent_failure_is_dead_at_once_and_park_waits(app):
    dead_id, parked_id = _enqueue(app, "test_behave", 2)
    behaviour["outcome"] = PermanentFailure("bad address: postcode missing")
    now = utcnow()
    worker = Worker(app, threads=0, batch=1, clock=lambda: now)
    with app.app_context():
        worker.run_batch()
    assert _job(app, dead_id).state == "dead"
    assert _job(app, dead_id).last_error == "bad address: postcode missing"

    behaviour["outcome"] = Park("waiting for credit", recheck_seconds=900)
    with app.app_context():
        worker.run_batch()
    parked = _job(app, parked_id)
    assert parked.state == "parked" and parked.parked_reason == "waiting for credit"
    assert (parked.run_at - now).total_seconds() == pytest.approx(900)
    assert worker.drain() == 0  # not due yet
    with app.app_context():
        assert queue.wake_parked(db.session, "test_behave", now=now) == 1
        db.session.commit()
    behaviour["outcome"] = None
    assert worker.drain() == 1
    assert _job(app, parked_id).state == "succeeded"


def test_manual_retry_refuses_jobs_that_are_not_dead_or_parked(app):
    (job_id,) = _enqueue(app, "test_record")
    with app.app_context(), pytest.raises(Exception) as caught:
        queue.retry_by_person(db.session, job_id)
    assert getattr(caught.value, "code", None) == "job_not_retryable"


def test_unknown_kind_is_dead_with_a_clear_reason(app):
    (job_id,) = _enqueue(app, "no_such_kind")
    Worker(app, threads=0).drain()
    job = _job(app, job_id)
    assert job.state == "dead" and "no handler" in job.last_error


def test_stopping_worker_releases_claimed_jobs_it_has_not_started(app):
    ids = _enqueue(app, "test_record", 5)
    worker = Worker(app, threads=0, batch=5)
    worker.stopping.set()
    with app.app_context():
        worker.run_batch()
        states = Counter(db.session.scalars(sa.select(Job.state).where(Job.id.in_(ids))))
        attempts = db.session.scalar(sa.select(sa.func.count()).select_from(JobAttempt))
    assert states == {"queued": 5} and attempts == 0 and not runs


def test_periodic_jobs_are_enqueued_once_per_period_across_workers(app):
    now = utcnow()
    for name in ("a", "b"):
        with app.app_context():
            Worker(app, threads=0, worker_id=name, clock=lambda: now).schedule_periodic()
    with app.app_context():
        kinds = Counter(db.session.scalars(sa.select(Job.kind)))
    assert kinds["purge_periodic_jobs"] == 1


def test_stop_requested_mid_batch_finishes_the_running_job_and_gives_back_the_rest(app):
    ids = _enqueue(app, "test_behave", 4)
    worker = Worker(app, threads=0, batch=4)
    behaviour["outcome"] = None

    @handler("test_stop_after_first")
    def stop_after_first(ctx):
        worker.stop()

    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == ids[0]).values(kind="test_stop_after_first"))
        db.session.commit()
        worker.run_batch()
        states = dict(db.session.execute(sa.select(Job.id, Job.state).where(Job.id.in_(ids))).all())
        attempts = db.session.scalar(sa.select(sa.func.count()).select_from(JobAttempt))
    assert states == {ids[0]: "succeeded", ids[1]: "queued", ids[2]: "queued", ids[3]: "queued"}
    assert attempts == 1


@pytest.mark.parametrize("outcome", [PermanentFailure("gone"), RetryLater("later", delay_seconds=60),
                                     Park("waiting", recheck_seconds=60), RuntimeError("bug")])
def test_every_job_of_a_batch_records_its_failure(app, outcome):
    ids = _enqueue(app, "test_behave", 3)
    behaviour["outcome"] = outcome
    worker = Worker(app, threads=0, batch=3)
    with app.app_context():
        assert worker.run_batch() == 3
    states = {_job(app, i).state for i in ids}
    assert states == {{PermanentFailure: "dead", RetryLater: "queued", Park: "parked",
                       RuntimeError: "queued"}[type(outcome)]}
    assert all(_job(app, i).last_error for i in ids)


def test_a_slow_batch_renews_the_leases_of_its_waiting_jobs_and_skips_ones_taken_over(app):
    slow, taken_over, waiting = _enqueue(app, "test_record", 3)
    start = utcnow()
    clock = {"now": start}
    lease = app.extensions["settings"].job_lease_seconds

    @handler("test_slow")
    def slow_job(ctx):
        # The job takes longer than the whole lease; meanwhile another worker takes over the second job.
        clock["now"] = start + timedelta(seconds=lease + 1)
        with app.app_context():
            stolen = queue.claim(db.session, "other", limit=1, now=clock["now"], kinds=("test_record",))
            assert [j.id for j in stolen] == [taken_over]

    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == slow).values(kind="test_slow"))
        db.session.commit()
        worker = Worker(app, threads=0, batch=3, worker_id="slow-worker", clock=lambda: clock["now"])
        assert worker.run_batch() == 3
    assert runs[waiting] == 1 and runs[taken_over] == 0  # skipped: it belongs to "other" now
    taken = _job(app, taken_over)
    assert taken.state == "running" and taken.locked_by == "other"
    assert _job(app, waiting).state == "succeeded"


def test_a_job_running_longer_than_its_lease_keeps_it_through_the_heartbeat(app):
    (job_id,) = _enqueue(app, "test_record")
    start = utcnow()
    clock = {"now": start}
    lease = app.extensions["settings"].job_lease_seconds
    worker = Worker(app, threads=0, worker_id="busy", clock=lambda: clock["now"])
    stolen: list = []

    @handler("test_long")
    def long_job(ctx):
        clock["now"] = start + timedelta(seconds=lease / 2)
        worker.renew_held_leases()  # what run_forever's heartbeat does while a job runs
        clock["now"] = start + timedelta(seconds=lease + 1)  # past the first lease
        with app.app_context():
            stolen.extend(queue.claim(db.session, "other", limit=1, now=clock["now"]))

    with app.app_context():
        db.session.execute(sa.update(Job).where(Job.id == job_id).values(kind="test_long"))
        db.session.commit()
        assert worker.run_batch() == 1
    assert stolen == []
    assert _job(app, job_id).state == "succeeded"


def test_finished_periodic_jobs_older_than_a_day_are_purged_and_business_jobs_kept(app):
    now = utcnow()
    with app.app_context():
        for key, finished in (("periodic:a:1", now - timedelta(days=2)), ("periodic:a:2", now - timedelta(hours=1)),
                              ("order:1:plan", now - timedelta(days=30))):
            queue.enqueue(db.session, "test_record", dedupe_key=key)
            db.session.flush()
            db.session.execute(sa.update(Job).where(Job.dedupe_key == key)
                               .values(state="succeeded", finished_at=finished))
        queue.enqueue(db.session, "purge_periodic_jobs", dedupe_key="periodic:purge_periodic_jobs:1")
        db.session.commit()
    Worker(app, threads=0, clock=lambda: now + timedelta(minutes=1)).drain()
    with app.app_context():
        left = set(db.session.scalars(sa.select(Job.dedupe_key)))
    assert left == {"periodic:a:2", "order:1:plan", "periodic:purge_periodic_jobs:1"}


# Not "test_…": a kind starting like a test key (test_…) would itself be masked in the line.
handler("logged_behave")(behave)


def _outcome_lines(caplog) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "service.jobs"]


def test_each_failed_outcome_is_one_short_masked_log_line(app, caplog):
    caplog.set_level("WARNING", logger="service.jobs")
    code = "62DD-CV4T-R2NTM2"
    with app.app_context():
        order = Order(shop_order_id="log-1", currency="USD", total_cents=100, gift_card_cents=0, payload={})
        db.session.add(order)
        db.session.commit()
        order_id = order.id
    (job_id,) = _enqueue(app, "logged_behave", max_attempts=2, order_id=order_id)
    now = utcnow().replace(microsecond=0) + timedelta(seconds=1)  # the job is due
    worker = Worker(app, threads=0, batch=1, clock=lambda: now)
    behaviour["outcome"] = RetryLater(f"Instagift refused claim code {code} " + "and more " * 500, delay_seconds=60)
    with app.app_context():
        worker.run_batch()
    ((level, line),) = _outcome_lines(caplog)
    next_run = (now + timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M:%S")
    assert level == "WARNING"
    assert line.startswith(f"job {job_id} (logged_behave, order {order_id}) failed, will retry: attempt 1, 1 of 2 failures; "
                           f"next run {next_run} UTC: Instagift refused claim code ••••NTM2 and more")
    assert code not in line and len(line) < 500

    caplog.clear()
    behaviour["outcome"] = Park("waiting for credit", recheck_seconds=60)
    later = now + timedelta(seconds=60)
    with app.app_context():
        Worker(app, threads=0, batch=1, clock=lambda: later).run_batch()
    assert _outcome_lines(caplog) == [("WARNING", f"job {job_id} (logged_behave, order {order_id}) is parked: attempt 2, "
                                                  f"1 of 2 failures; next run {later + timedelta(seconds=60):%Y-%m-%d %H:%M:%S} UTC: waiting for credit")]

    caplog.clear()
    behaviour["outcome"] = PermanentFailure("bad address: postcode missing")
    latest = later + timedelta(seconds=60)
    with app.app_context():
        Worker(app, threads=0, batch=1, clock=lambda: latest).run_batch()
    assert _outcome_lines(caplog) == [("ERROR", f"job {job_id} (logged_behave, order {order_id}) is dead (a permanent failure): "
                                                "attempt 3, 1 of 2 failures: bad address: postcode missing")]


def test_a_job_dead_of_lost_leases_is_one_error_line_once_buried(app, caplog):
    caplog.set_level("WARNING", logger="service.jobs")
    (job_id,) = _enqueue(app, "logged_behave", max_attempts=2)
    start = utcnow()
    for n in range(2):  # two workers claim it in turn and die without recording anything
        with app.app_context():
            queue.claim(db.session, f"doomed-{n}", lease_seconds=30, now=start + timedelta(seconds=31 * n))
    caplog.clear()
    with app.app_context():
        assert queue.claim(db.session, "survivor", now=start + timedelta(seconds=62)) == []
    assert _outcome_lines(caplog) == [("ERROR", f"job {job_id} (logged_behave) is dead: its worker was lost on its "
                                                f"last allowed attempt: attempt 2, 2 of 2 failures: {queue.WORKER_LOST}; "
                                                "2 of 2 attempts failed")]
