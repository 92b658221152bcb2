"""Metrics for operators: every metric the service exports, defined in one place, and how a scrape renders them.

The metrics are prometheus_client's. Each is counted where its fact is recorded (one call per event): webhooks in
the order webhook route, provider calls in the shared HTTP helper, job runs in the worker, gift-card cents where
the redemption ledger is committed, rate-limit rejections where a 429 problem is answered. The jobs in each state
are read from the jobs table at scrape time (service.jobs.metrics). docs/metrics.md describes every metric.

Two modes, chosen by the environment before the process starts (prometheus_client decides when it is imported):

- `PROMETHEUS_MULTIPROC_DIR` set (the Procfile and `scripts/run` set it): every process — each gunicorn worker,
  each job worker process — writes its counts to its own files in that directory, and a scrape of any web process
  on the host sums the files of every process that has run there since the web process started;
- unset (tests, a single process): the counts live in this process's `REGISTRY`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# The Prometheus text format, version 0.0.4: what every Prometheus server reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def multiprocess_directory() -> str | None:
    """The directory shared by this host's processes, or None in single-process mode."""
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


if multiprocess_directory():
    # prometheus_client opens this process's file when the first value is made (at import, below): the directory
    # must exist by then, whichever process starts first.
    os.makedirs(multiprocess_directory(), exist_ok=True)

# No `_created` series: multiprocess mode has none, and single-process answers should read the same.
disable_created_metrics()

# The metrics below register here; in multiprocess mode their values are in the directory's files instead, and a
# scrape reads those (so nothing is counted twice).
REGISTRY = CollectorRegistry()

PREFIX = "instagift_checkout_"

WEBHOOKS_RECEIVED = Counter(
    PREFIX + "webhooks_received", "Order webhook deliveries by result: accepted (a new event), duplicate (a "
    "redelivery), or the problem code of a refused one (webhook_signature_invalid, validation_failed, …)",
    ["result"], registry=REGISTRY)

PROVIDER_CALLS = Counter(
    PREFIX + "provider_calls", "HTTP calls to a provider by provider, operation (the client's name for the call) "
    "and outcome (ok, refused, not_found, auth_refused, rate_limited, server_error, timeout, connection_failed, "
    "failed)", ["provider", "operation", "outcome"], registry=REGISTRY)

PROVIDER_CALL_SECONDS = Histogram(
    PREFIX + "provider_call_seconds", "Time from sending a provider call to its answer (or to the timeout or "
    "transport failure), by provider and operation", ["provider", "operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0), registry=REGISTRY)

JOB_RUN_SECONDS = Histogram(
    PREFIX + "job_run_seconds", "Time a worker spent on one run of a job (its handler and the recording of its "
    "outcome), by kind and outcome (succeeded, retry, parked, dead, lost); the _count is the runs",
    ["kind", "outcome"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
    registry=REGISTRY)

GIFT_CARD_APPLIED_CENTS = Counter(
    PREFIX + "gift_card_applied_cents", "Gift-card cents completed orders applied (the ledger's applied amount, "
    "counted when the redemption is planned)", registry=REGISTRY)
GIFT_CARD_REDEEMED_CENTS = Counter(
    PREFIX + "gift_card_redeemed_cents", "Gift-card cents Instagift reports redeemed (counted when a ledger row "
    "is settled)", registry=REGISTRY)
GIFT_CARD_ROUNDING_CENTS = Counter(
    PREFIX + "gift_card_rounding_cents", "Whole-dollar rounding on settled redemptions, by direction: up (cents "
    "redeemed beyond what the order took) or down (cents the order took that were not asked for)",
    ["direction"], registry=REGISTRY)
GIFT_CARD_FORFEIT_CENTS = Counter(
    PREFIX + "gift_card_forfeit_cents", "Non-splittable gift-card value redeemed beyond what the orders applied "
    "(the shopper's forfeit)", registry=REGISTRY)
GIFT_CARD_SHORTFALL_CENTS = Counter(
    PREFIX + "gift_card_shortfall_cents", "Gift-card cents intended but not redeemed (the balance was spent "
    "elsewhere, or the redemption failed), counted when a ledger row is settled", registry=REGISTRY)

RATE_LIMIT_REJECTIONS = Counter(
    PREFIX + "rate_limit_rejections", "Requests answered 429 rate_limited, by route (the route's template, "
    "e.g. /v1/gift-cards/balance)", ["route"], registry=REGISTRY)


# Series that exist from the start (at 0), so rates and alerts see them before the first event.
for _result in ("accepted", "duplicate"):
    WEBHOOKS_RECEIVED.labels(result=_result)
for _direction in ("up", "down"):
    GIFT_CARD_ROUNDING_CENTS.labels(direction=_direction)


class _Scrape:
    """What one scrape reads: this host's counts, then the collectors computed at scrape time."""

    def __init__(self, counted: Collector, scrape_time: Iterable[Collector]):
        self.collectors = (counted, *scrape_time)

    def collect(self) -> Iterator[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


def render(scrape_time: Iterable[Collector] = ()) -> bytes:
    """Every metric in the Prometheus text format: the counts (summed over the host's processes in multiprocess
    mode) and the `scrape_time` collectors' readings."""
    directory = multiprocess_directory()
    if directory:
        counted: Collector = MultiProcessCollector(None, path=directory)
    else:
        counted = REGISTRY
    return generate_latest(_Scrape(counted, scrape_time))  # type: ignore[arg-type]
