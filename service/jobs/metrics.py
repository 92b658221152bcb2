"""The jobs in each state, read from the jobs table when /metrics is scraped.

A reading of the table, not a count kept by each process: every web process reports the same figures, nothing is
counted twice across processes, and a job that changes state in a process that then dies is still right. Only the
states that stay small are read (queued, running, parked, dead), through the claim index on `state`; succeeded jobs
stay in the table for their history and are counted as runs instead (`job_run_seconds_count`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from service.db import db
from service.jobs.models import Job
from service.jobs.registry import registered_kinds
from service.metrics import PREFIX

log = logging.getLogger("service.worker")

READ_STATES = ("queued", "running", "parked", "dead")


class JobStatesCollector:
    """Yields `instagift_checkout_jobs{kind,state}` (0 for every registered kind and state with no job) and
    `instagift_checkout_jobs_read_ok` (0 when the table could not be read: the other metrics are still served)."""

    def collect(self) -> Iterator[Metric]:
        """The readings, made now in the app context's session."""
        jobs = GaugeMetricFamily(PREFIX + "jobs", "Jobs now in each state (queued, running, parked, dead) by "
                                 "kind, read from the jobs table at scrape time: every web process reports the "
                                 "same figures, so aggregate with max, not sum", labels=["kind", "state"])
        read_ok = GaugeMetricFamily(PREFIX + "jobs_read_ok", "1 when the jobs table was read for this scrape, "
                                    "0 when the database did not answer")
        try:
            counts = {(kind, state): count for kind, state, count in db.session.execute(
                sa.select(Job.kind, Job.state, sa.func.count()).where(Job.state.in_(READ_STATES))
                .group_by(Job.kind, Job.state))}
            db.session.rollback()  # a read: end it, so no transaction stays open after the scrape
        except sa.exc.SQLAlchemyError:
            log.exception("metrics: the jobs table could not be read")
            db.session.rollback()
            read_ok.add_metric([], 0)
            yield read_ok
            return
        kinds = sorted(set(registered_kinds()) | {kind for kind, _ in counts})
        for kind in kinds:
            for state in READ_STATES:
                jobs.add_metric([kind, state], counts.get((kind, state), 0))
        read_ok.add_metric([], 1)
        yield jobs
        yield read_ok
