"""Database engine and schema creation, with the timeouts that keep a stalled database from hanging callers."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import SQLModel, create_engine

from app.catalog import models, tokens  # noqa: F401  (registers the tables)

SQLITE_BUSY_TIMEOUT_S = 30.0  # batch work (ingest, CLI) waits this long for SQLite's write lock
# Connections kept open per process, on both databases: an API worker's MOVIEREC_DB_MAX_CONCURRENCY
# (10 by default) requests at once each hold one. Past the pool, a connection is opened for one
# checkout and closed after it: on SQLite (whose default pool keeps 5) that was a connect and three
# PRAGMAs for every request beyond the fifth at once, about 4 % of a worker's samples under bench/api.py.
POOL_SIZE, POOL_OVERFLOW = 10, 20


@dataclass(frozen=True)
class DbTimeouts:
    """Bounds on every database wait, for a server that must answer (the API).

    - `connect_s`: opening a connection (PostgreSQL `connect_timeout`; SQLite does not connect).
    - `statement_s`: one round trip. On PostgreSQL the server cancels a statement after this long
      (`statement_timeout`) and the client gives up one second later on a connection that does not
      answer at all (packets dropped), closing it so the pool replaces it; on SQLite it is how long
      a write waits for the lock.
    - `pool_s`: waiting for a free pooled connection.
    """

    connect_s: float = 5.0
    statement_s: float = 5.0
    pool_s: float = 5.0


def make_engine(url: str, timeouts: DbTimeouts | None = None, *, create_schema: bool = True) -> Engine:
    """An engine with the schema in place. Idempotent: safe to call on an existing database.

    Without `timeouts` (batch work: ingest, CLI) only connecting is bounded, so long bulk
    statements may run as long as they need. `create_schema=False` leaves the database untouched
    (the API starts while it is unreachable, then calls `ensure_schema`); SQLAlchemy errors
    (OperationalError: unreachable, timed out) come from the first use instead.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""  # "sqlite://": in memory
        on_disk = bool(path) and path != ":memory:" and not path.startswith("file:")
        if on_disk:
            _create_private(Path(path))
        busy_s = timeouts.statement_s if timeouts else SQLITE_BUSY_TIMEOUT_S
        # A file gets SQLAlchemy's QueuePool, sized here; an in-memory database keeps its own pool class.
        pool: dict[str, Any] = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW} if on_disk else {}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_s}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = _postgres_engine(url, timeouts)
    if create_schema:
        ensure_schema(engine)
    return engine


def _create_private(path: Path) -> None:
    """Create a new SQLite file (and its folder) readable by its owner only: it holds every user's
    ratings and hidden movies. SQLite gives the -wal and -shm files it creates beside it the same
    mode. An existing file keeps the mode its owner gave it; a file that cannot be created here (a
    read-only folder) is left for SQLite to report as it always has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if "?" in path.name:  # URL options (sqlite:///db?timeout=...): SQLite's own business
        return
    with contextlib.suppress(OSError):  # FileExistsError among them
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # an empty file: an empty database


def _postgres_engine(url: str, timeouts: DbTimeouts | None) -> Engine:
    connect_s = timeouts.connect_s if timeouts else DbTimeouts.connect_s
    connect_args: dict[str, Any] = {"connect_timeout": max(1, round(connect_s))}  # libpq takes whole seconds
    pool_args: dict[str, Any] = {}
    if timeouts:
        connect_args["options"] = _with_option(url, f"-c statement_timeout={round(timeouts.statement_s * 1000)}")
        pool_args["pool_timeout"] = timeouts.pool_s
    # pool_pre_ping: a connection the database dropped (restart, failover) is replaced at checkout.
    engine = create_engine(
        url,
        pool_pre_ping=True,
        pool_size=POOL_SIZE,
        max_overflow=POOL_OVERFLOW,
        connect_args=connect_args,
        **pool_args,
    )
    if timeouts and url.startswith("postgresql+psycopg"):
        client_s = timeouts.statement_s + 1.0  # after the server's own statement_timeout has had its chance

        @event.listens_for(engine, "do_connect")
        def _bounded_connection(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> psycopg.Connection[Any]:
            conn = BoundedConnection.connect(*cargs, **cparams)
            conn.wait_timeout_s = client_s
            return conn

    return engine


def _with_option(url: str, option: str) -> str:
    """`option` after the connection's own options: the URL's `options` (`?options=-csearch_path%3Dmine`),
    else PGOPTIONS. libpq reads either only when no `options` is passed, so passing the timeout
    alone dropped a schema chosen there."""
    given = make_url(url).query.get("options") or os.environ.get("PGOPTIONS") or ""
    own = " ".join(given) if isinstance(given, tuple) else given
    return f"{own} {option}".strip()


class BoundedConnection(psycopg.Connection):
    """A psycopg connection whose every wait on the server (query, fetch, commit, rollback, ping)
    ends after `wait_timeout_s`.

    `statement_timeout` cannot help when the server never sees the statement (a stalled network
    path drops it), and TCP timeouts do not fire while a middlebox still acknowledges packets. So
    the client bounds the wait itself, through psycopg's own `Connection.wait(timeout=)`, and then
    closes the connection: SQLAlchemy sees a closed connection, treats the error as a disconnect,
    and replaces the pool's connections, which is how service comes back once the database answers.
    """

    wait_timeout_s: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        try:
            return super().wait(gen, interval=interval, timeout=timeout or self.wait_timeout_s)
        except pg_errors._WaitTimeout as exc:  # psycopg's own timeout error, an OperationalError
            self.close()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.wait_timeout_s:g} s; connection closed"
            ) from exc


PG_READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction: a hot standby, or default_transaction_read_only
# What the API (503) and the CLI (exit 2) say of an error `is_read_only` recognises.
READ_ONLY_MESSAGE = "the database is read-only: nothing can be written until it is writable again"


def driver_message(exc: BaseException) -> str:
    """The first line of the driver's own error under a SQLAlchemy one (of `exc` itself otherwise),
    or the error's class name when it says nothing: for logs and the CLI, never for an API body."""
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]


def is_read_only(exc: BaseException) -> bool:
    """Whether a driver error (SQLAlchemy's, or the driver's own) says the database refuses writes."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.Error):
        return (getattr(orig, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_READONLY
    return getattr(orig, "sqlstate", None) == PG_READ_ONLY_SQLSTATE


def is_locked(exc: BaseException) -> bool:
    """Whether a driver error says SQLite's write lock stayed taken past the busy timeout."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.Error) and (getattr(orig, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


_SCHEMA_LOCK_KEY = 0x6D6F76696572  # any constant: names the advisory lock below


def ensure_schema(engine: Engine) -> None:
    """CREATE what is missing, in one transaction. On PostgreSQL an advisory lock serialises
    processes that start together (API workers, the ingest worker): two concurrent create_all
    calls would otherwise both try to create the same tables, and one would fail."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
        SQLModel.metadata.create_all(conn)
        _add_missing_columns(conn)
        # create_all skips tables that exist: add the indexes declared since a table was created.
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)
        # Only those present: a DROP, even IF EXISTS, is a write that a read-only database refuses.
        present = {ix["name"] for ix in inspect(conn).get_indexes(models.Rating.__tablename__)}
        for name in present.intersection(models.OBSOLETE_INDEXES):
            conn.execute(text(f"DROP INDEX {name}"))


def _add_missing_columns(conn: Connection) -> None:
    """create_all never alters a table: add the nullable columns a newer version defines, so an
    existing data dir keeps working (every added column defaults to NULL)."""
    existing = inspect(conn)
    for table in SQLModel.metadata.sorted_tables:
        have = {c["name"] for c in existing.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have and column.nullable:
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}'))


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
