"""Shared pieces of the benchmark scripts: fresh PostgreSQL databases, gunicorn, latency statistics."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgresql://postgres@127.0.0.1:5432")


@contextlib.contextmanager
def fresh_postgres_database(prefix: str = "bench"):
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(database_url: str) -> None:
    env = dict(os.environ, DATABASE_URL=database_url, SERVICE_ENV="development")
    subprocess.run([sys.executable, "-m", "flask", "--app", "service", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app_spec: str, env: dict[str, str], workers: int = 2, threads: int = 4, health_path: str = "/healthz",
             log_path: Path | None = None):
    """Run gunicorn on a free port until the block ends; yields the base URL. Its log (stderr) goes to `log_path`
    when given, else to a temporary file."""
    port = free_port()
    cmd = [sys.executable, "-m", "gunicorn", "--no-control-socket", "--workers", str(workers), "--threads",
           str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning", app_spec]
    # Logs go to a file: a pipe nobody reads fills up and blocks the server's logging.
    # The file lives as long as the server.
    log_file = (open(log_path, "ab") if log_path  # noqa: SIM115
                else tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False))  # noqa: SIM115
    process = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                               stderr=log_file)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}{health_path}", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError("gunicorn did not start: " + Path(log_file.name).read_text()[-2000:])
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
