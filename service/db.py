"""The database handle, column types shared by all models, and SQLite's transaction behaviour."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive, in UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Large integers that are still plain INTEGER on SQLite so that AUTOINCREMENT-style rowids work.
BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, connection_record):
    # pysqlite's own transaction handling defers BEGIN and cannot take the write lock up front; we turn it
    # off and issue BEGIN IMMEDIATE ourselves so that concurrent writers queue on busy_timeout instead of
    # failing with "database is locked" when a read transaction tries to upgrade.
    module = type(dbapi_connection).__module__
    if "sqlite" not in module:
        return
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@event.listens_for(Engine, "begin")
def _sqlite_on_begin(conn):
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_conflict_inserts: dict[tuple, sa.TextClause] = {}


def insert_ignoring_conflict(session, model, values: dict, conflict_columns: list[str] | None = None):
    """INSERT … ON CONFLICT DO NOTHING on either database; the new row's id, or None when it clashed.

    Without `conflict_columns` a clash with any unique constraint counts. The statement is built once per
    table and column set as typed text: SQLAlchemy's dialect-specific INSERT constructs are never cached, and
    compiling one per call cost more than the rest of webhook intake's SQL put together.
    """
    table = model.__table__
    row = dict(values)
    for column in table.columns:
        if column.name not in row and column.default is not None and not column.primary_key:
            default = column.default
            row[column.name] = default.arg(None) if default.is_callable else default.arg
    dialect = session.get_bind().dialect
    key = (table.name, tuple(conflict_columns or ()), dialect.name, tuple(sorted(row)))
    stmt = _conflict_inserts.get(key)
    if stmt is None:
        quote = dialect.identifier_preparer.quote
        names = sorted(row)
        target = f" ({', '.join(quote(c) for c in conflict_columns)})" if conflict_columns else ""
        returning = ", ".join(quote(c.name) for c in table.primary_key.columns)
        stmt = sa.text(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join(':' + n for n in names)}) ON CONFLICT{target} DO NOTHING RETURNING {returning}"
        ).bindparams(*[sa.bindparam(n, type_=table.c[n].type) for n in names])
        _conflict_inserts[key] = stmt
    session.flush()  # keep ORM-pending rows ahead of this statement, as session.execute(orm stmt) would
    # RETURNING, not rowcount (drivers report it differently for ON CONFLICT), says whether a row went in.
    inserted = session.connection().execute(stmt, row).first()
    return inserted[0] if inserted else None


def lock_for_update(session, stmt):
    """Add FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises writers."""
    return stmt.with_for_update() if session.get_bind().dialect.name == "postgresql" else stmt
