"""Shared fixtures. Real models, real engines, real databases; small data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# ---- qdrant server fixtures (owned by tests/qdrant_fixtures.py) ----
pytest_plugins = ["tests.qdrant_fixtures"]


# ---- a small real index, built once per session with the real text model ----
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

DEMO_LIMIT = 300  # movies: enough for real users with 20+ ratings, small enough for CI


@pytest.fixture(scope="session")
def text_encoder():
    from app.embedding.text import TextEncoder

    return TextEncoder("cpu")


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory: pytest.TempPathFactory, text_encoder):
    """Settings pointing at a data dir holding the first DEMO_LIMIT demo movies, their ratings
    and a published Edge index. Shared: tests must not modify it (copy it if they need to)."""
    from app.settings import Settings

    settings = Settings(data_dir=tmp_path_factory.mktemp("demo"), qdrant_url=None)
    build_index(settings, text_encoder, "demo", limit=DEMO_LIMIT)
    return settings


def build_index(settings, text_encoder, source: str, movies: Path | None = None, ratings: Path | None = None,
                limit: int | None = None, image_encoder=None):
    """Ingest a catalogue into `settings`' database and index, reusing already loaded models."""
    from sqlmodel import Session

    from app.catalog import repository as repo
    from app.catalog.db import make_engine
    from app.embedding.movie import MovieEmbedder
    from app.embedding.posters import PosterLoader
    from app.vectorstore import build_manifest, open_store
    from ingest.pipeline import index_movies, store_catalogue
    from ingest.sources import load_catalogue

    engine = make_engine(settings.sqlalchemy_url)
    catalogue = load_catalogue(source, movies=movies, ratings=ratings, limit=limit)
    store_catalogue(engine, catalogue)
    with Session(engine) as session:
        movies_ = repo.all_movies(session)
    posters = PosterLoader(settings.poster_cache_dir, timeout_s=2.0)
    summary = index_movies(
        movies_,
        open_store(settings),
        build_manifest(settings),
        lambda with_images: MovieEmbedder(text_encoder, image_encoder if with_images else None, posters),
        batch_size=64,
        progress=False,
    )
    engine.dispose()
    return summary
