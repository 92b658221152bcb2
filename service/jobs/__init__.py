"""Durable jobs: the queue (persistence of intent), handler registry and the worker process."""

from service.jobs.queue import Backoff, enqueue, wake_parked  # noqa: F401
from service.jobs.registry import JobContext, Park, PermanentFailure, RetryLater, handler  # noqa: F401
