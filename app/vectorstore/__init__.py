"""The vector index behind one interface: Edge (embedded, default) or a Qdrant server."""

from __future__ import annotations

from app.settings import Settings
from app.vectorstore.base import (
    RRF_K,
    SPARSE_VECTOR,
    VECTOR_NAMES,
    Hit,
    IndexStore,
    Manifest,
    MovieFilter,
    MovieIndex,
    MoviePoint,
    SparseVector,
    StoredMovie,
    payload_for,
)

# 255 item factors + 1 coordinate that equalises norms. 255 factors measured a little better than
# 127 on a validation split of ml-100k (NDCG@10 0.269 vs 0.267); see app/embedding/collab.py.
COLLAB_DIM = 256


def build_manifest(settings: Settings) -> Manifest:
    """The manifest an ingest with these settings produces; no model is loaded to know it.

    The int8 text backend's vectors are not interchangeable with the others' (top-10 overlap
    0.82-0.86), so it names a text model of its own and an ingest that switches to or from it
    re-embeds; torch, onnx and openvino share one."""
    from app.embedding.image import IMAGE_DIMS
    from app.embedding.lexical import ENCODER_ID as LEXICAL_MODEL
    from app.embedding.movie import PROJECTION_SEED
    from app.embedding.text import TEXT_DIM, text_model_id

    return Manifest(
        text_model=text_model_id(settings.text_backend),
        text_dim=TEXT_DIM,
        image_model=settings.image_model,
        image_dim=IMAGE_DIMS[settings.image_model],
        combined_dim=2 * TEXT_DIM,
        projection_seed=PROJECTION_SEED,
        collab_dim=COLLAB_DIM,
        lexical_model=LEXICAL_MODEL,
    )


def open_store(settings: Settings) -> IndexStore:
    """The engine the settings select: a Qdrant server when QDRANT_URL is set, else Edge."""
    if settings.qdrant_url:
        from app.vectorstore.server import ServerStore

        return ServerStore.from_settings(settings)
    from app.vectorstore.edge import EdgeStore

    return EdgeStore(settings.index_dir)


__all__ = [
    "COLLAB_DIM",
    "RRF_K",
    "SPARSE_VECTOR",
    "VECTOR_NAMES",
    "Hit",
    "IndexStore",
    "Manifest",
    "MovieFilter",
    "MovieIndex",
    "MoviePoint",
    "SparseVector",
    "StoredMovie",
    "build_manifest",
    "open_store",
    "payload_for",
]
