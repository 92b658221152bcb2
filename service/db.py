"""The database handle, column types shared by all models, and SQLite's transaction behaviour."""

from __future__ import annotations

import threading
import traceback
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import ParamSpec, TypeVar

import sqlalchemy as sa
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session

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


# -- transactions and provider calls ---------------------------------------------------------------------------
#
# One rule for every step that talks to a provider: no database transaction (and, on SQLite, no write lock) is
# held while the provider answers. A step commits what it has (an intent, or nothing but a read), calls the
# provider, then writes the answer in a fresh transaction that re-reads, under a lock, whatever may have changed
# meanwhile (a cancellation, another worker). `call_provider` is the middle of that; `transaction_guard` makes
# the test suite fail wherever a call is made inside a transaction.

_P = ParamSpec("_P")
_T = TypeVar("_T")


def call_provider(session: Session, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Commit the session's work, then make one provider call (`call(*args, **kwargs)`) with no transaction open."""
    session.commit()
    return call(*args, **kwargs)


class TransactionHeldOpen(RuntimeError):
    """A provider call was made while the calling thread held a database transaction open."""


class TransactionGuard:
    """Knows which database transactions each thread holds open, so that a provider call made inside one is caught.

    The rule it enforces: no transaction (and, on SQLite, no write lock) is held across a provider call. Off by
    default, so production pays nothing; the test suite switches it on for every test, and the shared provider
    HTTP helper asks `check` before each request. Violations are also kept in `violations`, because a job that
    catches every exception would otherwise hide one.
    """

    def __init__(self) -> None:
        self.enabled = False
        self.violations: list[str] = []
        self._open: weakref.WeakKeyDictionary[Connection, int] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._listening = False

    def enable(self) -> None:
        """Start tracking transactions (engine events on every engine) and refusing calls made inside one."""
        with self._lock:
            if not self._listening:
                event.listen(Engine, "begin", self._began)
                event.listen(Engine, "commit", self._ended)
                event.listen(Engine, "rollback", self._ended)
                self._listening = True
            self.enabled = True

    def disable(self) -> None:
        """Stop refusing calls (tracking stays installed; it is cheap)."""
        self.enabled = False

    def _began(self, conn: Connection) -> None:
        with self._lock:
            self._open[conn] = threading.get_ident()

    def _ended(self, conn: Connection) -> None:
        with self._lock:
            self._open.pop(conn, None)

    def open_in_this_thread(self) -> int:
        """How many transactions the calling thread holds open (on any engine)."""
        me = threading.get_ident()
        with self._lock:
            return sum(1 for owner in self._open.values() if owner == me)

    def check(self, what: str) -> None:
        """Raise TransactionHeldOpen (and remember it) when the calling thread holds a transaction open."""
        if not self.enabled or not self.open_in_this_thread():
            return
        where = "".join(traceback.format_stack(limit=12)[:-1])
        message = f"{what} was called while this thread held a database transaction open"
        self.violations.append(f"{message}\n{where}")
        raise TransactionHeldOpen(message)


transaction_guard = TransactionGuard()
