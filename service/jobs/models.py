"""The job queue's tables: jobs (the transactional outbox) and every attempt made at them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import BigIntId, UTCDateTime, db, utcnow

JOB_STATES = ("queued", "running", "succeeded", "parked", "dead")


class Job(db.Model):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.Index("ix_jobs_claim", "state", "run_at"),
        sa.CheckConstraint("state IN ('queued','running','succeeded','parked','dead')", name="state"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    state: Mapped[str] = mapped_column(sa.String(16), default="queued")
    # One business effect, one job: a second enqueue with the same key is a no-op.
    dedupe_key: Mapped[str | None] = mapped_column(sa.String(200), unique=True)
    order_id: Mapped[int | None] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    failures: Mapped[int] = mapped_column(sa.Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(sa.Integer, default=8)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    locked_by: Mapped[str | None] = mapped_column(sa.String(100))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    parked_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last person's retry: who (a staff name, or "a person" when the token names nobody) and when.
    retried_by: Mapped[str | None] = mapped_column(sa.String(200))
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attempt_log: Mapped[list[JobAttempt]] = relationship(
        back_populates="job", order_by="JobAttempt.id", cascade="all, delete-orphan"
    )


class JobAttempt(db.Model):
    """One run of a job: who ran it, when, and how it ended (`error` is masked text)."""

    __tablename__ = "job_attempts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("jobs.id"), index=True)
    attempt: Mapped[int] = mapped_column(sa.Integer)
    worker: Mapped[str | None] = mapped_column(sa.String(100))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # succeeded | retry | parked | failed | lease_expired | released | running
    outcome: Mapped[str] = mapped_column(sa.String(20), default="running")
    error: Mapped[str | None] = mapped_column(sa.Text)

    job: Mapped[Job] = relationship(back_populates="attempt_log")
