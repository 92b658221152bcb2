"""Housekeeping jobs: keep the jobs table from growing with finished periodic runs."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from service.jobs.models import Job, JobAttempt
from service.jobs.queue import is_periodic
from service.jobs.registry import JobContext, handler


@handler("purge_periodic_jobs", every_seconds=3600)
def purge_periodic_jobs(ctx: JobContext) -> None:
    """Delete succeeded periodic jobs older than a day (business jobs are kept for reconciliation)."""
    cutoff = ctx.now() - timedelta(days=1)
    old = sa.select(Job.id).where(Job.state == "succeeded", is_periodic(),
                                  Job.finished_at < cutoff)
    ctx.session.execute(sa.delete(JobAttempt).where(JobAttempt.job_id.in_(old)))
    ctx.session.execute(sa.delete(Job).where(Job.id.in_(old)))
