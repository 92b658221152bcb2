"""Count the work per request and per job: SQL statements and Python function calls, which no machine load moves.

Timed benchmarks on a shared 2-core machine are noisy; these counts are not. For a signed webhook intake (the
same order as bench.webhook_intake), a gift-card apply (as bench.checkout_overhead, sandbox at 0 ms) and a no-op
job (as bench.worker_throughput: one worker, 4 threads, batch 20), on PostgreSQL, it prints SQL statements (the
engine's cursor executions, pool pings included) and, for the two requests, Python function calls (cProfile, in
this process behind Flask's test client) and this process's CPU time per request (unprofiled; the least
load-sensitive time there is). It runs unchanged from an older tree that has bench/common.py (e.g. the
pre-renovation commit): `cd <tree> && .venv/bin/python - < <this file>`; it adapts to the module paths that moved.
Run: .venv/bin/python -m bench.count_work [--n 200]
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.util
import json
import pstats
import threading
import time

import requests
import sqlalchemy as sa

from bench.common import fresh_postgres_database, gunicorn, migrate
from tests.support import order_completed, signed_webhook


def _first_module(*names: str):
    """The first of these modules that exists (a module moved between the commits compared)."""
    for name in names:
        if importlib.util.find_spec(name) is not None:
            return importlib.import_module(name)
    raise ImportError(names)


class StatementCounter:
    """Counts cursor executions on an engine: from this thread only (requests), or from every other (workers)."""

    def __init__(self, engine) -> None:
        self.count = 0
        self.main = threading.get_ident()
        self.other_threads = False
        self.lock = threading.Lock()
        sa.event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args) -> None:
        if (threading.get_ident() != self.main) == self.other_threads:
            with self.lock:
                self.count += 1


def pings(engine, counter: StatementCounter) -> None:
    """Pool pre-pings bypass before_cursor_execute: count them on the pool's checkout as well."""
    if engine.pool._pre_ping:
        sa.event.listen(engine, "checkout", lambda *_: counter._seen())


def profiled_requests(client, requests_: list[tuple[str, dict]], counter: StatementCounter) -> dict:
    """Send each (path, kwargs) through the test client under cProfile; calls and statements per request."""
    profile = cProfile.Profile()
    counter.count = 0
    for path, kwargs in requests_:
        profile.enable()
        response = client.post(path, **kwargs)
        profile.disable()
        assert response.status_code in (200, 201, 202), response.get_data(as_text=True)
    calls = sum(entry[1] for entry in pstats.Stats(profile).stats.values())
    return {"python_calls": round(calls / len(requests_)), "sql_statements": round(counter.count / len(requests_), 2)}


def cpu_per_request(client, requests_: list[tuple[str, dict]]) -> float:
    """This process's CPU time per request in ms, unprofiled: what waiting for the CPU on a busy machine adds to
    wall time is not in it (PostgreSQL's and the sandbox's CPU are not either)."""
    started = time.process_time()
    for path, kwargs in requests_:
        response = client.post(path, **kwargs)
        assert response.status_code in (200, 201, 202), response.get_data(as_text=True)
    return round((time.process_time() - started) / len(requests_) * 1000, 2)


def main() -> None:
    """Count intake, apply and worker work on fresh PostgreSQL databases."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200, help="requests (and jobs ×10) measured")
    args = parser.parse_args()
    from service import create_app

    db = _first_module("service.db", "service.persistence").db
    jobs = importlib.import_module("service.jobs")
    job_model = _first_module("service.jobs.models", "service.persistence").Job
    handler = importlib.import_module("service.jobs.registry").handler
    worker_class = importlib.import_module("service.jobs.worker").Worker
    sandbox_spec = ("sandbox:create_sandbox_app()" if importlib.util.find_spec("sandbox") is not None
                    else "service.sandbox:create_sandbox_app()")

    @handler("bench_count_noop")
    def noop(ctx) -> None:
        """Does nothing: the count is the queue's own."""

    report = {}
    with gunicorn(sandbox_spec, {"SANDBOX_LATENCY_MS": "0", "SERVICE_ENV": "development"}, workers=1, threads=8,
                  health_path="/_health") as sandbox_url, fresh_postgres_database("bench_count") as url:
        migrate(url)
        app = create_app({"DATABASE_URL": url, "SANDBOX_URL": sandbox_url, "SERVICE_ENV": "development",
                          "LOG_FORMAT": "json", "LOOKUP_RATE_LIMIT": "100000/minute",
                          "CART_CREATE_RATE_LIMIT": "100000/minute"})
        client = app.test_client()
        with app.app_context():
            counter = StatementCounter(db.engine)
            pings(db.engine, counter)
        hooks = []
        for i in range(2 * args.n + 20):
            raw, headers = signed_webhook(order_completed(f"count-{i}", line_items=[
                {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000},
                {"sku": "TEE-1", "title": "T-shirt", "quantity": 1, "unit_price_cents": 250}]))
            hooks.append(("/v1/webhooks/orders", {"data": raw, "headers": headers}))
        profiled_requests(client, hooks[:20], counter)  # warm-up
        report["intake"] = profiled_requests(client, hooks[20:args.n + 20], counter)
        report["intake"]["cpu_ms"] = cpu_per_request(client, hooks[args.n + 20:])

        codes = [requests.post(f"{sandbox_url}/instagift/v2/_control/certificates", json={"face_value_cents": 10000},
                               timeout=10).json()["claim_code"] for _ in range(2 * args.n + 20)]
        applies = []
        for code in codes:
            token = client.post("/v1/carts", json={"total_cents": 20000}).get_json()["cart_token"]
            applies.append((f"/v1/carts/{token}/gift-cards", {"json": {"claim_code": code}}))
        profiled_requests(client, applies[:20], counter)
        report["apply"] = profiled_requests(client, applies[20:args.n + 20], counter)
        report["apply"]["cpu_ms"] = cpu_per_request(client, applies[args.n + 20:])

        jobs_count = args.n * 10
        with app.app_context():
            for i in range(jobs_count):
                jobs.enqueue(db.session, "bench_count_noop", {"i": i})
            db.session.commit()
        worker = worker_class(app, threads=4, batch=20, poll_seconds=0.05)
        threads = [threading.Thread(target=worker._thread_loop, daemon=True) for _ in range(4)]
        counter.count, counter.other_threads = 0, True  # the progress probe below runs in this thread
        for t in threads:
            t.start()
        with app.app_context():
            while db.session.scalar(sa.select(sa.func.count()).where(job_model.state == "succeeded")) < jobs_count:
                db.session.commit()
                time.sleep(0.05)  # sampling interval of the progress probe
        worker.stop()
        for t in threads:
            t.join()
        report["worker_noop_job"] = {"sql_statements": round(counter.count / jobs_count, 2)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
