"""The service plus a bare endpoint on the same stack (Flask, gunicorn, SQLAlchemy, PostgreSQL) that only
inserts one row: the baseline webhook intake is compared with."""

from __future__ import annotations

import sqlalchemy as sa
from flask import request

from service import create_app
from service.db import db

app = create_app()

with app.app_context():
    try:
        db.session.execute(sa.text(
            "CREATE TABLE IF NOT EXISTS bench_rows (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"))
        db.session.commit()
    except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
        # The other gunicorn worker created it at the same moment (PostgreSQL's IF NOT EXISTS is not atomic);
        # failing here would stop this worker from booting and gunicorn would shut down mid-benchmark.
        db.session.rollback()


@app.post("/bench/bare")
def bare_insert():
    db.session.execute(sa.text("INSERT INTO bench_rows (body) VALUES (:b)"), {"b": request.get_data(as_text=True)})
    db.session.commit()
    return {"status": "stored"}, 202
