"""Ingest a catalogue through `ingest.run`, or index what a database already holds, with the session's
already loaded models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session

import ingest
from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.embedding.factory import build_manifest
from app.embedding.movie import MovieEmbedder
from app.embedding.posters import PosterLoader
from app.settings import Settings
from app.vectorstore import open_store
from ingest.pipeline import index_movies


def build_index(
    settings: Settings,
    text_encoder: Any,
    source: str,
    movies: Path | None = None,
    ratings: Path | None = None,
    limit: int | None = None,
    image_encoder: Any = None,
    collab: bool = True,
    rebuild: bool = False,
) -> ingest.IngestSummary:
    """Ingest `source` into `settings`' database and index, as `movierec ingest` does, reusing models."""
    posters = PosterLoader(settings.poster_cache_dir, timeout_s=2.0)
    return ingest.run(
        settings,
        source,
        movies=movies,
        ratings=ratings,
        limit=limit,
        batch_size=64,
        collab=collab,
        rebuild=rebuild,
        make_embedder=lambda with_images: MovieEmbedder(text_encoder, image_encoder if with_images else None, posters),
    )


def index_stored(settings: Settings, text_encoder: Any, **options: Any) -> ingest.IngestSummary:
    """What `movierec ingest` does after storing the catalogue: embed the stored movies (text only),
    learn collab vectors from every stored rating, publish. `options` go to `index_movies`."""
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        movies, rated = repo.all_movies(session), repo.rated_pairs(session)
    engine.dispose()
    return index_movies(
        movies,
        open_store(settings),
        build_manifest(settings),
        lambda _: MovieEmbedder(text_encoder, None, None),
        batch_size=64,
        progress=False,
        ratings=rated,
        **options,
    )
