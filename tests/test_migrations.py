"""The migrations build the schema from nothing, on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_database_url(database_url, is_postgres, tmp_path):
    """A database with nothing in it, of the same kind as the suite's."""
    if not is_postgres:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"migrations_{uuid.uuid4().hex[:10]}"
    server = database_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask_db(args: list[str], url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=url, SERVICE_ENV="development")
    return subprocess.run([sys.executable, "-m", "flask", "--app", "service", "db", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_upgrade_from_nothing_then_autogenerate_finds_no_changes(empty_database_url):
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    check = flask_db(["check"], empty_database_url)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr


def test_downgrade_to_base_and_up_again(empty_database_url):
    for step in (["upgrade"], ["downgrade", "base"], ["upgrade"]):
        result = flask_db(step, empty_database_url)
        assert result.returncode == 0, result.stderr


def test_ledger_forfeits_written_before_the_fix_are_corrected(empty_database_url):
    """Rows from before b7c1e2f3a4d5 had forfeit = redeemed − taken; the migration makes it redeemed − applied."""
    from service import create_app
    from service.persistence import db
    from tests.test_reconciliation_support import at, order, redemption

    assert flask_db(["upgrade", "672f4d2110a9"], empty_database_url).returncode == 0
    app = create_app({"SERVICE_ENV": "development", "DATABASE_URL": empty_database_url})
    with app.app_context():
        of = order("m1", completed_at=at(21))
        redemption(of, created_at=at(21), state="succeeded", applied=7500, taken=7450, intended=8000,
                   redeemed=8000, forfeit=550, splittable=False)
        redemption(order("m2", completed_at=at(21)), created_at=at(21), state="succeeded", applied=5300,
                   taken=5250, intended=5300, redeemed=5300)
        db.session.commit()
        db.engine.dispose()
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    with app.app_context():
        rows = db.session.execute(db.text("SELECT splittable, forfeit_cents FROM redemptions ORDER BY id")).all()
        db.engine.dispose()
    assert [(bool(s), f) for s, f in rows] == [(False, 500), (True, 0)]
