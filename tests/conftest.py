"""Shared fixtures. Real models, real engines, real databases; small data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# ---- qdrant server fixtures (owned by tests/qdrant_fixtures.py) ----
pytest_plugins = ["tests.qdrant_fixtures", "tests.api_world"]


# ---- which database the suite runs on ----
# MOVIEREC_TEST_DB=postgres runs every database-backed test on PostgreSQL (one fresh database per
# data dir, dropped at exit); the default is SQLite files inside each test's data dir.
import atexit  # noqa: E402
import contextlib  # noqa: E402
import shutil  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

TEST_DB = os.environ.get("MOVIEREC_TEST_DB", "sqlite")
PG_ADMIN_URL = os.environ.get("MOVIEREC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_created_databases: list[str] = []


def _pg_admin(statement: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with engine.connect() as conn:
        conn.execute(text(statement))
    engine.dispose()


def _new_pg_database(template: str | None = None) -> str:
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


TEST_SECRET_KEY = "test-only-secret-key-0123456789abcdef"  # 32+ bytes, as every key must be


def make_settings(data_dir: Path, **overrides):
    """Settings for one test's world: its data dir (index, posters, SQLite) and its own database."""
    from app.settings import Settings

    url = _new_pg_database() if TEST_DB == "postgres" else None
    overrides.setdefault("secret_key", TEST_SECRET_KEY)
    return Settings(data_dir=data_dir, database_url=url, qdrant_url=None, **overrides)


def copy_settings(source, data_dir: Path):
    """A private copy of another test world: data dir and database both, so writes stay local."""
    from app.settings import Settings

    shutil.copytree(source.data_dir, data_dir)
    url = None
    if source.database_url:
        from sqlalchemy.engine import make_url

        url = _new_pg_database(template=make_url(source.database_url).database)
    return Settings(data_dir=data_dir, database_url=url, qdrant_url=None, secret_key=source.secret_key)


# ---- a small real index, built once per session with the real text model ----

DEMO_LIMIT = 300  # movies: enough for real users with 20+ ratings, small enough for CI


@pytest.fixture(scope="session")
def text_encoder():
    from app.embedding.text import TextEncoder

    return TextEncoder("cpu")


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory: pytest.TempPathFactory, text_encoder):
    """Settings pointing at a data dir holding the first DEMO_LIMIT demo movies, their ratings
    and a published Edge index. Shared: tests must not modify it (copy it if they need to)."""
    settings = make_settings(tmp_path_factory.mktemp("demo"))
    build_index(settings, text_encoder, "demo", limit=DEMO_LIMIT)
    return settings


def build_index(
    settings,
    text_encoder,
    source: str,
    movies: Path | None = None,
    ratings: Path | None = None,
    limit: int | None = None,
    image_encoder=None,
    collab: bool = True,
):
    """Ingest a catalogue into `settings`' database and index, reusing already loaded models."""
    import ingest
    from app.embedding.movie import MovieEmbedder
    from app.embedding.posters import PosterLoader

    posters = PosterLoader(settings.poster_cache_dir, timeout_s=2.0)
    return ingest.run(
        settings,
        source,
        movies=movies,
        ratings=ratings,
        limit=limit,
        batch_size=64,
        collab=collab,
        make_embedder=lambda with_images: MovieEmbedder(text_encoder, image_encoder if with_images else None, posters),
    )
