"""Database engine and schema creation."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel, create_engine

from app.catalog import models  # noqa: F401  (registers the tables)


def make_engine(url: str) -> Engine:
    """An engine with the schema in place. Idempotent: safe to call on an existing database."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    _create_schema(engine)
    return engine


_SCHEMA_LOCK_KEY = 0x6D6F76696572  # any constant: names the advisory lock below


def _create_schema(engine: Engine) -> None:
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


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
