"""Test worlds: a data dir (index, posters, SQLite) and its own database, on SQLite or PostgreSQL.

MOVIEREC_TEST_DB=postgres runs every database-backed test on PostgreSQL (one fresh database per data
dir, dropped at exit); the default is SQLite files inside each test's data dir.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.files import copy_tree_sparse
from app.settings import Settings

TEST_DB = os.environ.get("MOVIEREC_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("MOVIEREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TEST_SECRET_KEY = "test-only-secret-key-0123456789abcdef"  # 32+ bytes, as every key must be
DEMO_LIMIT = 300  # movies in the demo fixture: enough for real users with 20+ ratings, small enough for CI
_created_databases: list[str] = []


def _pg_admin(statement: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(statement))
    engine.dispose()


def new_pg_database(template: str | None = None) -> str:
    """Create a fresh PostgreSQL database (a copy of `template` if given), dropped at exit; its URL."""
    from sqlalchemy.engine import make_url

    name = f"movierec_t_{uuid.uuid4().hex[:12]}"
    if template:  # a template must have no other sessions: close the pools that still hold one
        _pg_admin(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{template}' "
            "AND pid <> pg_backend_pid()"
        )
    _pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    _created_databases.append(name)
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@atexit.register
def _drop_pg_databases() -> None:
    for name in _created_databases:
        with contextlib.suppress(Exception):  # best effort at exit; a leftover database is harmless
            _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings for one test's world: its data dir (index, posters, SQLite) and its own database."""
    url = new_pg_database() if TEST_DB == "postgres" else None
    overrides.setdefault("secret_key", TEST_SECRET_KEY)
    return Settings(data_dir=data_dir, database_url=url, qdrant_url=None, **overrides)


def copy_settings(source: Settings, data_dir: Path) -> Settings:
    """A private copy of another test world: data dir and database both, so writes stay local."""
    copy_tree_sparse(source.data_dir, data_dir)  # the index's preallocated files stay sparse
    url = None
    if source.database_url:
        from sqlalchemy.engine import make_url

        url = new_pg_database(template=make_url(source.database_url).database)
    return Settings(data_dir=data_dir, database_url=url, qdrant_url=None, secret_key=source.secret_key)


@contextlib.contextmanager
def cli_environment(settings: Settings, monkeypatch: Any) -> Iterator[Settings]:
    """The CLI's settings (read from the environment) pointed at `settings`' data dir, key and database,
    for the duration; `monkeypatch`: pytest's, which restores the environment."""
    from app.settings import get_settings

    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MOVIEREC_SECRET_KEY", str(settings.secret_key))
    if settings.database_url:
        monkeypatch.setenv("MOVIEREC_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    try:
        yield settings
    finally:
        get_settings.cache_clear()
