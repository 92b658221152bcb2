"""Multiprocess mode as the Procfile runs it: the `web` process (gunicorn, two workers) and two `worker` processes
one after the other share one PROMETHEUS_MULTIPROC_DIR; a scrape sums what every process counted, and the counts
an earlier run left behind are cleared when the web process starts."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from service.db import db
from service.jobs.models import Job
from service.orders.models import Order
from service.thank_you.models import ThankYouCard
from tests.support import ADMIN, order_completed, signed_webhook

ROOT = Path(__file__).resolve().parent.parent
PROCFILE = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())


def wait_for(predicate, what: str, timeout: float = 90.0) -> None:
    """Poll until `predicate()` holds (a condition, not a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_scrape_sums_the_counts_of_every_process_on_the_host(app, environ, tmp_path):
    directory = tmp_path / "metrics"
    port = free_port()
    env = {**os.environ, **environ, "PROMETHEUS_MULTIPROC_DIR": str(directory), "PORT": str(port),
           "WEB_CONCURRENCY": "2", "WORKER_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # An earlier run's counts, left by a process that has exited since.
    subprocess.run([sys.executable, "-c", "from service import metrics; "
                    "metrics.WEBHOOKS_RECEIVED.labels(result='accepted').inc(1000)"],
                   cwd=ROOT, env=env, check=True)
    earlier = list(directory.glob("counter_*.db"))
    assert earlier

    def order_jobs_done(shop_order_ids: list[str]) -> bool:
        with app.app_context():
            orders = sa.select(Order.id).where(Order.shop_order_id.in_(shop_order_ids))
            unfinished = db.session.scalar(sa.select(sa.func.count()).where(Job.order_id.in_(orders),
                                                                              Job.state != "succeeded"))
            placed = db.session.scalar(sa.select(sa.func.count()).where(ThankYouCard.order_id.in_(orders),
                                                                          ThankYouCard.status == "placed"))
            db.session.remove()
        return unfinished == 0 and placed == len(shop_order_ids)

    def run_worker_until_done(shop_order_ids: list[str]) -> int:
        """The Procfile's worker process, until the orders' jobs are done; SIGTERM; returns its pid."""
        worker = subprocess.Popen(["bash", "-c", f"exec {PROCFILE['worker']}"], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            wait_for(lambda: order_jobs_done(shop_order_ids), f"the jobs of orders {shop_order_ids}")
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, output
        return worker.pid

    base = f"http://127.0.0.1:{port}"

    def deliver(shop_order_id: str) -> None:
        raw, headers = signed_webhook(order_completed(shop_order_id))
        assert requests.post(f"{base}/v1/webhooks/orders", data=raw, headers=headers, timeout=10).status_code == 202

    def healthy() -> bool:
        try:
            return requests.get(f"{base}/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not bound yet, or its workers still loading
            assert web.poll() is None, (tmp_path / "web.log").read_text()
            return False

    with open(tmp_path / "web.log", "w") as web_log:
        web = subprocess.Popen(["bash", "-c", f"exec {PROCFILE['web']}"], cwd=ROOT, env=env, stdout=web_log,
                               stderr=subprocess.STDOUT)
        try:
            wait_for(healthy, "the web process")
            assert not any(path.exists() for path in earlier), "the earlier run's counts were not cleared"

            deliver("9001")
            first = run_worker_until_done(["9001"])
            deliver("9002")
            deliver("9003")
            second = run_worker_until_done(["9002", "9003"])

            answer = requests.get(f"{base}/metrics", headers=ADMIN, timeout=10)
        finally:
            web.terminate()
            web.wait(timeout=30)

    assert answer.status_code == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(answer.text) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples[("instagift_checkout_" + name, tuple(sorted(labels.items())))]

    # Both job workers wrote their own files, and the scrape (by a web worker) added them up: 1 + 2 runs.
    assert first != second
    for pid in (first, second):
        assert (directory / f"histogram_{pid}.db").exists()
    assert value("job_run_seconds_count", kind="plan_order_effects", outcome="succeeded") == 3
    assert value("job_run_seconds_count", kind="send_thank_you_card", outcome="succeeded") == 3
    assert value("provider_calls_total", provider="cardly", operation="place_order", outcome="ok") == 3
    # Counted by the web workers, whichever of the two took each delivery; the earlier 1000 are gone.
    assert value("webhooks_received_total", result="accepted") == 3
    assert value("jobs", kind="send_thank_you_card", state="queued") == 0
