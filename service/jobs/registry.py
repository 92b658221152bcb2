"""Job kinds, their handlers, and the outcomes a handler can report besides plain success.

A handler is `handler(ctx: JobContext) -> None`. Returning means success. Raising `RetryLater`,
`Park` or `PermanentFailure` chooses the outcome; any other exception is retried with backoff (a
`ProviderError` that is not retryable counts as permanent).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from service.jobs.models import Job


class RetryLater(Exception):
    """Try again after a backoff (or after `delay_seconds` when the cause says how long)."""

    def __init__(self, reason: str, delay_seconds: float | None = None):
        super().__init__(reason)
        self.delay_seconds = delay_seconds


class Park(Exception):
    """Waiting on something outside (provider credit, funds, a person); rechecked on a slow schedule."""

    def __init__(self, reason: str, recheck_seconds: float = 900):
        super().__init__(reason)
        self.recheck_seconds = recheck_seconds


class PermanentFailure(Exception):
    """Trying again will not help until something changes; the job becomes `dead` and keeps the reason."""


@dataclass
class JobContext:
    """What a handler gets: its job, a session, the app (settings, providers) and the worker's clock."""

    job: Job
    session: Session
    app: Flask
    now: Callable[[], datetime]
    rng: random.Random = field(default_factory=random.Random)

    @property
    def payload(self) -> dict[str, Any]:
        return self.job.payload or {}

    @property
    def settings(self):
        return self.app.extensions["settings"]

    @property
    def providers(self):
        return self.app.extensions["providers"]


Handler = Callable[[JobContext], None]


@dataclass(frozen=True)
class RunningJob:
    """The job whose handler is running in this thread, and which attempt it is."""

    job_id: int
    attempt: int


_running: ContextVar[RunningJob | None] = ContextVar("running_job", default=None)


@contextmanager
def running(job: Job) -> Iterator[None]:
    """While a handler runs: what it records (an order's attention item) can name the job that raised it."""
    token = _running.set(RunningJob(job.id, job.attempts))
    try:
        yield
    finally:
        _running.reset(token)


def running_job() -> RunningJob | None:
    """The job running in this thread's handler, if any."""
    return _running.get()


@dataclass(frozen=True)
class Periodic:
    kind: str
    every_seconds: int


# Called inside a person's retry, before the job is queued again: undoes the job's own record of a final
# failure so the retry does the work again, or raises a ServiceError to refuse the retry.
PersonRetryHook = Callable[[Session, Job, datetime], None]
# Called when a job succeeds, in the transaction that records it: a feature clears what the job's failures
# raised (an order's attention items) once a retry has done the work.
SuccessListener = Callable[[Session, Job, datetime], None]

_handlers: dict[str, Handler] = {}
_periodic: dict[str, Periodic] = {}
_person_retry_hooks: dict[str, PersonRetryHook] = {}
_success_listeners: list[SuccessListener] = []


def handler(kind: str, *, every_seconds: int | None = None,
            on_person_retry: PersonRetryHook | None = None) -> Callable[[Handler], Handler]:
    """Register the handler for `kind`; with `every_seconds` the worker also enqueues it on that schedule."""

    def register(fn: Handler) -> Handler:
        _handlers[kind] = fn
        if every_seconds:
            _periodic[kind] = Periodic(kind, every_seconds)
        if on_person_retry:
            _person_retry_hooks[kind] = on_person_retry
        return fn

    return register


def on_job_succeeded(listener: SuccessListener) -> SuccessListener:
    """Register `listener` to run for every job that succeeds (once, however often its module is imported)."""
    if listener not in _success_listeners:
        _success_listeners.append(listener)
    return listener


def success_listeners() -> list[SuccessListener]:
    return list(_success_listeners)


def person_retry_hook(kind: str) -> PersonRetryHook | None:
    return _person_retry_hooks.get(kind)


def get_handler(kind: str) -> Handler | None:
    return _handlers.get(kind)


def periodic_jobs() -> list[Periodic]:
    return list(_periodic.values())

