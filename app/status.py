"""Embedding quality metrics, shared by `movierec status` and `GET /metrics/embeddings`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.catalog import repository as repo
from app.errors import IndexUnavailableError
from app.vectorstore import IndexStore, Manifest


def embedding_metrics(engine: Engine, store: IndexStore, device: str) -> dict[str, Any]:
    """Read from the database and the published manifest only: cheap, and safe while the API runs."""
    try:
        generation = store.generation()
    except IndexUnavailableError:  # a damaged pointer: the manifest reads as None too
        generation = None
    return index_metrics(engine, store.manifest(), generation, device)


def index_metrics(engine: Engine, manifest: Manifest | None, generation: str | None, device: str) -> dict[str, Any]:
    """The metrics of one index generation (the API passes the one it serves) against the database."""
    with Session(engine) as session:
        total, with_poster_source = repo.count_movies(session)
    stats = manifest.stats if manifest else {}
    in_index = int(stats.get("points", 0))
    with_poster = int(stats.get("with_poster", 0))
    models: dict[str, Any] = {}
    if manifest:
        models = {
            "text": {"name": manifest.text_model, "dim": manifest.text_dim},
            "image": {"name": manifest.image_model, "dim": manifest.image_dim},
            "combined": {"dim": manifest.combined_dim, "projection_seed": manifest.projection_seed},
            "collab": {"dim": manifest.collab_dim},
            "schema_version": manifest.schema_version,
        }
    return {
        "total_movies": total,
        "movies_in_index": in_index,
        "coverage": round(in_index / total, 4) if total else 0.0,
        "poster_coverage": round(with_poster / total, 4) if total else 0.0,
        "movies_with_poster_source": with_poster_source,
        "movies_with_image_vector": with_poster,
        "device": device,
        "models": models,
        "index_generation": generation,
        "built_at": stats.get("built_at"),
    }
