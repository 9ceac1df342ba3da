"""Build the encoders the settings ask for. Heavy imports happen here, never at import time."""

from __future__ import annotations

from app.embedding.device import default_batch_size
from app.embedding.image import load_image_encoder
from app.embedding.movie import MovieEmbedder
from app.embedding.posters import PosterLoader
from app.embedding.text import TextEncoder
from app.settings import Settings


def build_text_encoder(settings: Settings, device: str) -> TextEncoder:
    return TextEncoder(device, settings.text_model_path, settings.text_backend, settings.model_cache_dir)


def build_movie_embedder(
    settings: Settings, device: str, batch_size: int | None = None, with_images: bool = True
) -> MovieEmbedder:
    """`with_images=False` skips loading the CNN, for catalogues that have no posters at all."""
    image = load_image_encoder(settings.image_model, device, settings.resnet50_weights) if with_images else None
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
