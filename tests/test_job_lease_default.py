"""Issue 14 › 2: with the default settings, a job whose worker hangs or dies is taken up by another worker within
about half a minute (the lease), not two minutes."""

from __future__ import annotations

from datetime import timedelta

from service.db import db, utcnow
from service.jobs import queue
from service.jobs.registry import handler
from service.jobs.worker import Worker

seen: dict = {}


@handler("test_hangs_its_worker")
def hangs_its_worker(ctx):
    # While this worker is stuck here (it sends no heartbeat), another worker looks for due jobs.
    app, start = seen["app"], seen["start"]
    for seconds in (1, 31):
        with app.app_context():
            taken = queue.claim(db.session, "other", now=start + timedelta(seconds=seconds))
            seen[seconds] = [job.id for job in taken]


def test_a_hung_workers_job_is_taken_up_by_another_within_about_half_a_minute(app, environ):
    assert "JOB_LEASE_SECONDS" not in environ  # the default
    with app.app_context():
        queue.enqueue(db.session, "test_hangs_its_worker")
        db.session.commit()
        start = utcnow()
        seen.update(app=app, start=start)
        assert Worker(app, threads=0, worker_id="hung", clock=lambda: start).run_batch() == 1
    # Held while the lease runs (a second in), taken up once 31 seconds have passed.
    assert seen[1] == [] and len(seen[31]) == 1, seen
