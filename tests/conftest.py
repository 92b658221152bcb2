"""Fixtures: a real database (SQLite file, or PostgreSQL when DATABASE_URL says so), the app, real HTTP
servers for the service and the sandbox providers, and a worker that drains the queue synchronously."""

from __future__ import annotations

import dataclasses
import os
import random

import pytest
import requests
import sqlalchemy as sa

from sandbox import create_sandbox_app
from service import create_app
from service.db import db, transaction_guard
from service.jobs.worker import Worker
from tests.support import ServerThread


@pytest.fixture(autouse=True)
def no_transaction_across_provider_calls():
    """Every test of every flow: a provider call made while its thread holds a database transaction fails."""
    transaction_guard.enable()
    transaction_guard.violations.clear()
    yield
    violations, transaction_guard.violations[:] = list(transaction_guard.violations), []
    assert not violations, "a provider was called inside a database transaction:\n" + "\n".join(violations)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """PostgreSQL when DATABASE_URL is set (CI creates a fresh database per run), else an SQLite file."""
    return os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def is_postgres(database_url) -> bool:
    return database_url.startswith(("postgres://", "postgresql"))


@pytest.fixture(scope="session")
def sandbox():
    """The sandbox providers served over real HTTP for the whole session (reset before each test)."""
    sandbox_app = create_sandbox_app(latency_ms=0)
    with ServerThread(sandbox_app) as server:
        server.app = sandbox_app
        yield server


@pytest.fixture
def instagift(sandbox):
    """The sandbox Instagift's state: seeded demo certificates, `add_certificate`, fault injection."""
    return sandbox.app.extensions["sandbox"]["instagift"]


@pytest.fixture
def cardly(sandbox):
    """The sandbox Cardly's state: credit, placed orders, fault injection."""
    return sandbox.app.extensions["sandbox"]["cardly"]


@pytest.fixture
def instantcard(sandbox):
    """The sandbox InstantCard's state: tokens, cards, print jobs, balance, fault injection."""
    return sandbox.app.extensions["sandbox"]["instantcard"]


@pytest.fixture
def environ(database_url, sandbox) -> dict[str, str]:
    """The environment a test app is built from; tests may add to it before asking for `app`."""
    return {
        "SERVICE_ENV": "development",
        "DATABASE_URL": database_url,
        "SANDBOX_URL": sandbox.url,
        "RATELIMIT_STORAGE_URI": "memory://",
        "LOG_FORMAT": "text",
    }


_schema_ready: set[str] = set()


@pytest.fixture
def app(environ, sandbox):
    """A fresh app on an emptied database and freshly reset sandbox providers."""
    application = create_app(environ)
    with application.app_context():
        url = application.config["SQLALCHEMY_DATABASE_URI"]
        if url not in _schema_ready:
            db.drop_all()
            db.create_all()
            _schema_ready.add(url)
        _empty_all_tables()
    requests.post(f"{sandbox.url}/_control/reset", timeout=5).raise_for_status()
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


def _empty_all_tables() -> None:
    tables = db.metadata.sorted_tables
    if db.engine.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        db.session.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    else:
        for table in reversed(tables):
            db.session.execute(table.delete())
    db.session.commit()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def live_server(app):
    """The service itself over real HTTP (threaded), for concurrency and browser tests."""
    with ServerThread(app) as server:
        # The demo's shop backend calls the service at its configured address: this server's.
        app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], demo_service_url=server.url)
        yield server


class _LongestBackoff(random.Random):
    """Backoff jitter drawn at its ceiling (2 s for a first failure): a failed job is not due again within the
    drain that failed it. With real jitter the delay could come out at a few milliseconds, and whether a retry ran
    inside the same drain depended on the machine's speed (tests flaked). Tests move the clock on to retry.
    """

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.fixture
def run_jobs(app):
    """Run every due job now, in this thread, through the real worker code; returns how many ran."""

    def run(**worker_options) -> int:
        return Worker(app, threads=0, **{"rng": _LongestBackoff(), **worker_options}).drain()

    return run
