"""MovieEmbedder: text, image and combined vectors for movies.

combined = normalise(concat(sqrt(0.7) * text, sqrt(0.3) * normalise(P @ image)))

Both halves are unit vectors, so the cosine of two combined vectors is exactly
0.7 * cos(text) + 0.3 * cos(projected image). P is a fixed random projection with orthonormal
rows (seeded, recorded in the manifest), which keeps image angles roughly intact in 384-d.
A movie without a poster keeps only the text half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.catalog.models import Movie
from app.catalog.text import movie_text
from app.embedding.image import ImageEncoder
from app.embedding.posters import PosterLoader
from app.embedding.text import TextEncoder

TEXT_WEIGHT = 0.7
PROJECTION_SEED = 20260101


def projection_matrix(image_dim: int, out_dim: int, seed: int = PROJECTION_SEED) -> np.ndarray:
    """An (out_dim, image_dim) matrix with orthonormal rows, the same for the same seed."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((image_dim, out_dim)))
    return q.T.astype(np.float32)


def _normalise(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=-1, keepdims=True)
    unit: np.ndarray = m / np.maximum(norms, 1e-12)
    return unit


def combined_dim(text_dim: int) -> int:
    """The width of a combined vector: a text half and an image half, each `text_dim` wide."""
    return 2 * text_dim


def combined_halves(combined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(text half, image half) of a combined vector, or of each row of a matrix of them: views, not
    copies. The text half is the text vector scaled by sqrt(TEXT_WEIGHT) when there is a poster."""
    width = combined.shape[-1] // 2
    return combined[..., :width], combined[..., width:]


def combine(text: np.ndarray, projected_image: np.ndarray | None) -> np.ndarray:
    """Rows of unit text vectors (+ projected image vectors, NaN-free) -> unit combined vectors."""
    text = np.atleast_2d(text)
    if projected_image is None:
        return np.concatenate([text, np.zeros_like(text)], axis=1)
    image_half = np.sqrt(1 - TEXT_WEIGHT) * _normalise(np.atleast_2d(projected_image))
    return _normalise(np.concatenate([np.sqrt(TEXT_WEIGHT) * text, image_half], axis=1))


@dataclass
class MovieVectors:
    text: np.ndarray
    image: np.ndarray | None
    combined: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        named = {"text": self.text, "combined": self.combined}
        if self.image is not None:
            named["image"] = self.image
        return named


@dataclass
class EmbedResult:
    vectors: list[MovieVectors]
    poster_failures: int


class MovieEmbedder:
    def __init__(
        self,
        text: TextEncoder,
        image: ImageEncoder | None,
        posters: PosterLoader | None,
        *,
        text_batch_size: int = 64,
        image_batch_size: int = 16,
        projection_seed: int = PROJECTION_SEED,
    ) -> None:
        self.text = text
        self.image = image
        self.posters = posters
        self.text_batch_size = text_batch_size
        self.image_batch_size = image_batch_size
        self.projection = projection_matrix(image.dim, text.dim, projection_seed) if image is not None else None

    def in_batch_order(self, movies: Sequence[Movie]) -> list[Movie]:
        """`movies` in the order whose batches cost the text model least (TextEncoder.order)."""
        return [movies[i] for i in self.text.order([movie_text(m) for m in movies])]

    def embed(self, movies: Sequence[Movie]) -> EmbedResult:
        text = self.text.encode([movie_text(m) for m in movies], batch_size=self.text_batch_size)
        images, failures = self.embed_posters(movies)
        vectors = []
        for i, t in enumerate(text):
            img = images[i]
            projected = self.projection @ img if img is not None and self.projection is not None else None
            vectors.append(MovieVectors(t, img, combine(t, projected)[0]))
        return EmbedResult(vectors, failures)

    def embed_posters(self, movies: Sequence[Movie]) -> tuple[list[np.ndarray | None], int]:
        """(one unit image vector per movie, None where it has no usable poster or the embedder no
        CNN; the number of posters that failed to load)."""
        out: list[np.ndarray | None] = [None] * len(movies)
        wanted = [i for i, m in enumerate(movies) if m.poster]
        if not wanted or self.image is None or self.posters is None:
            return out, 0
        loaded = self.posters.load_many([movies[i].poster for i in wanted])
        ok = [(i, im) for i, im in zip(wanted, loaded, strict=True) if im is not None]
        if ok:
            feats = self.image.encode([im for _, im in ok], batch_size=self.image_batch_size)
            for (i, _), f in zip(ok, feats, strict=True):
                out[i] = f
        return out, len(wanted) - len(ok)
