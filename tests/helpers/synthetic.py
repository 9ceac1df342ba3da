"""A small synthetic catalogue for the index tests: random unit vectors and payloads, seeded.

The same data as tests/test_vectorstore.py's CATALOGUE (same seed, same draws), so tests of the store
and of the live index share one catalogue.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from app.vectorstore.base import IndexStore, Manifest, MovieIndex, MoviePoint, payload_for

MANIFEST = Manifest(
    text_model="test-text",
    text_dim=16,
    image_model="test-image",
    image_dim=12,
    combined_dim=32,
    projection_seed=7,
    collab_dim=8,
)
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
N_MOVIES = 200

# One wide vector, so that 1,200 points pass the Edge engine's indexing threshold (10 MB of one
# vector) and `optimize()` builds a segment in temp_segments/.
WIDE = Manifest(
    text_model="t", text_dim=8, image_model="i", image_dim=8, combined_dim=2560, projection_seed=7, collab_dim=8
)
WIDE_POINTS = 1200


def unit(v: np.ndarray) -> np.ndarray:
    """`v` scaled to length 1, as float32."""
    return (v / np.linalg.norm(v)).astype(np.float32)


def synthetic_points(seed: int = 42, n: int = N_MOVIES) -> list[MoviePoint]:
    """`n` movies with every vector of MANIFEST (every fifth without a poster) and random payloads."""
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        movie_id = 1000 + 7 * i  # not 0..n-1, so an id never passes for a row number
        vectors = {name: unit(rng.standard_normal(dim)) for name, dim in MANIFEST.vector_dims().items()}
        has_poster = i % 5 != 0
        if not has_poster:
            del vectors["image"]
        genres = sorted(rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False).tolist())
        payload = payload_for(
            title=f"Movie {i}",
            year=int(rng.integers(1950, 2021)),
            genres=genres,
            popularity=float(rng.random() * 100),
            vote_average=round(float(rng.random() * 10), 1),
            vote_count=int(rng.integers(0, 5000)),
            has_poster=has_poster,
            content_hash=f"hash-{i}",
            local_rating_count=(i * 7919) % 10007,  # distinct counts: one right order
        )
        points.append(MoviePoint(movie_id, vectors, payload))
    return points


POINTS = synthetic_points()


def upsert_in_batches(index: MovieIndex, points: list[MoviePoint], size: int = 64) -> None:
    for start in range(0, len(points), size):
        index.upsert(points[start : start + size])


def build(store: IndexStore, points: list[MoviePoint] = POINTS, manifest: Manifest = MANIFEST) -> None:
    """Stage, fill and publish the whole catalogue."""
    index = store.stage(manifest, rebuild=True)
    upsert_in_batches(index, points)
    store.publish(index, replace(manifest, stats={"movies": len(points)}))


def wide_points() -> list[MoviePoint]:
    """WIDE_POINTS movies with WIDE's vectors and the catalogue's payloads, seeded."""
    rng = np.random.default_rng(3)
    points = []
    for i in range(WIDE_POINTS):
        vectors = {name: unit(rng.standard_normal(dim)) for name, dim in WIDE.vector_dims().items()}
        points.append(MoviePoint(i + 1, vectors, dict(POINTS[i % N_MOVIES].payload)))
    return points
