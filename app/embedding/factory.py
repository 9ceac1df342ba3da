"""Build the encoders the settings ask for, and say which vectors they make (the index's manifest).
Heavy imports happen when an encoder is built, never at import time."""

from __future__ import annotations

from app.embedding import lexical
from app.embedding.device import default_batch_size
from app.embedding.image import IMAGE_DIMS, ImageEncoder, load_image_encoder
from app.embedding.movie import PROJECTION_SEED, MovieEmbedder, combined_dim
from app.embedding.posters import PosterLoader
from app.embedding.text import TextEncoder, text_model_id
from app.settings import Settings
from app.vectorstore import COLLAB_DIM, Manifest


def build_manifest(settings: Settings) -> Manifest:
    """The manifest of an index built with these settings: the models the embedder these settings
    build runs, the widths of the vectors it makes, its projection seed, and the collab and lexical
    encoders. No model is loaded to know it.

    The int8 text backend's vectors are not interchangeable with the others' (top-10 overlap
    0.82-0.86), so it names a text model of its own and an ingest that switches to or from it
    re-embeds; torch, onnx and openvino share one."""
    return Manifest(
        text_model=text_model_id(settings.text_backend),
        text_dim=TextEncoder.dim,
        image_model=settings.image_model,
        image_dim=IMAGE_DIMS[settings.image_model],
        combined_dim=combined_dim(TextEncoder.dim),
        projection_seed=PROJECTION_SEED,
        collab_dim=COLLAB_DIM,
        lexical_model=lexical.ENCODER_ID,
    )


def build_text_encoder(settings: Settings, device: str, backend: str | None = None) -> TextEncoder:
    """The settings' text model on `device`, run by `backend` (TEXT_BACKENDS; default: the settings'
    MOVIEREC_TEXT_BACKEND, the benches compare others). Raises as TextEncoder does."""
    backend = backend or settings.text_backend
    return TextEncoder(device, settings.text_model_path, backend, settings.model_cache_dir)


def build_image_encoder(settings: Settings, device: str) -> ImageEncoder:
    """The configured poster CNN, from its local weights file where the settings name one."""
    weights = settings.resnet50_weights if settings.image_model == "resnet50" else settings.efficientnet_weights
    return load_image_encoder(settings.image_model, device, weights)


def build_movie_embedder(
    settings: Settings, device: str, batch_size: int | None = None, with_images: bool = True
) -> MovieEmbedder:
    """`with_images=False` skips loading the CNN, for catalogues that have no posters at all."""
    image = build_image_encoder(settings, device) if with_images else None
    posters = (
        PosterLoader(settings.poster_cache_dir, settings.poster_timeout_s, settings.poster_concurrency)
        if with_images
        else None
    )
    return MovieEmbedder(
        build_text_encoder(settings, device),
        image,
        posters,
        text_batch_size=batch_size or default_batch_size(device, "text"),
        image_batch_size=default_batch_size(device, "image"),
    )
