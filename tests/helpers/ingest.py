"""Ingest a catalogue through `ingest.run`, with the session's already loaded models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ingest
from app.embedding.movie import MovieEmbedder
from app.embedding.posters import PosterLoader
from app.settings import Settings


def build_index(
    settings: Settings,
    text_encoder: Any,
    source: str,
    movies: Path | None = None,
    ratings: Path | None = None,
    limit: int | None = None,
    image_encoder: Any = None,
    collab: bool = True,
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
        make_embedder=lambda with_images: MovieEmbedder(text_encoder, image_encoder if with_images else None, posters),
    )
