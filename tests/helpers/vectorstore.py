"""The vector-store tests' synthetic catalogue, its exact oracle, and how an engine is built from it.

Small and synthetic, so every engine searches exactly and each answer can be compared with the
exact in-memory index (app/vectorstore/memory.py) over the same points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pytest

from app.vectorstore import Hit, IndexStore, Manifest, MemoryIndex, MovieFilter, MovieIndex, MoviePoint, payload_for
from app.vectorstore.base import HALF_PRECISION_VECTORS
from app.vectorstore.cache import UNCACHED_PAYLOAD

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


@dataclass
class SyntheticMovies:
    """Points to index, and the oracle: the exact in-memory index holding the same points."""

    points: list[MoviePoint]
    oracle: MemoryIndex = field(init=False)

    def __post_init__(self) -> None:
        self.oracle = MemoryIndex(self.points)

    @property
    def ids(self) -> list[int]:
        return [p.id for p in self.points]

    def by_id(self, movie_id: int) -> MoviePoint:
        return next(p for p in self.points if p.id == movie_id)

    def kept(self, f: MovieFilter) -> set[int]:
        """The ids the filter keeps, by the oracle."""
        return {h.id for h in self.oracle.popular(len(self.points), f)}


def same_payload(got: dict[str, Any], want: dict[str, Any], *, cached: bool = False) -> bool:
    """Equal, floats within a few ulps: Edge's JSON round trip may move the last digit. `cached`: a
    vector cache's payload, which leaves out UNCACHED_PAYLOAD keys (read from the engine when asked)."""
    if cached:
        want = {k: v for k, v in want.items() if k not in UNCACHED_PAYLOAD}
    return got.keys() == want.keys() and all(
        got[k] == pytest.approx(v, rel=1e-12) if isinstance(v, float) else got[k] == v for k, v in want.items()
    )


def assert_same_as_oracle(
    hits: list[Hit], expected: list[Hit], f: MovieFilter, name: str, *, cached: bool = False, **score_tolerance: float
) -> None:
    """An engine's answer under filter `f` is the oracle's: the same ids in order, scores within
    `score_tolerance` (numpy's atol/rtol), every hit kept by the filter with its stored payload."""
    assert [h.id for h in hits] == [h.id for h in expected], name
    np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], **score_tolerance)
    kept = CATALOGUE.kept(f)
    for hit in hits:
        assert hit.id in kept, name
        assert same_payload(hit.payload, CATALOGUE.by_id(hit.id).payload, cached=cached)


def assert_near_oracle(
    hits: list[Hit], expected: list[Hit], f: MovieFilter, query: np.ndarray, using: str, atol: float = 2e-3
) -> None:
    """An answer on a half-precision vector (HALF_PRECISION_VECTORS): the oracle's up to float16's
    rounding, which ties scores that differ by less than about 2e-4. The scores are the oracle's top
    scores within `atol`, and every hit is kept by `f` and scores, exactly, within `atol` of what the
    engine says."""
    assert len(hits) == len(expected)
    np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], atol=atol)
    kept = CATALOGUE.kept(f)
    for hit in hits:
        assert hit.id in kept
        exact = float(unit(query) @ CATALOGUE.by_id(hit.id).vectors[using])
        assert abs(exact - hit.score) <= atol, (hit.id, exact, hit.score)


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def half_exact_unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    """A unit vector exact in float16 (four coordinates of ±0.5), so that an engine storing it in half
    precision (HALF_PRECISION_VECTORS) ranks it exactly as the oracle does."""
    v = np.zeros(dim, dtype=np.float32)
    v[rng.choice(dim, size=4, replace=False)] = rng.choice([-0.5, 0.5], size=4)
    return v


def make_catalogue(seed: int = 42, n: int = N_MOVIES) -> SyntheticMovies:
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        movie_id = 1000 + 7 * i  # not 0..n-1, so an id never passes for a row number
        vectors = {
            name: half_exact_unit(rng, dim) if name in HALF_PRECISION_VECTORS else unit(rng.standard_normal(dim))
            for name, dim in MANIFEST.vector_dims().items()
        }
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
            people=[f"Director {i % 17}", f"Actor {i % 29}"],
        )
        points.append(MoviePoint(movie_id, vectors, payload))
    return SyntheticMovies(points)


CATALOGUE = make_catalogue()

FILTERS = {
    "none": MovieFilter(),
    "genres": MovieFilter(genres=("Horror", "Romance")),
    "years": MovieFilter(year_min=1970, year_max=1990),
    "year_min": MovieFilter(year_min=2010),
    "exclude": MovieFilter(exclude_ids=frozenset(CATALOGUE.ids[::3])),
    "only": MovieFilter(only_ids=frozenset(CATALOGUE.ids[5:60])),
    "only_none": MovieFilter(only_ids=frozenset()),
    "poster": MovieFilter(has_poster=True),
    "no_poster": MovieFilter(has_poster=False, genres=("Drama", "Action")),
    "all": MovieFilter(
        genres=("Drama", "Comedy", "Action"),
        year_min=1960,
        year_max=2015,
        exclude_ids=frozenset(CATALOGUE.ids[:40]),
        only_ids=frozenset(CATALOGUE.ids[20:180]),
    ),
}

# Weights that never tie two single-list ranks within a 30-deep prefetch ((r+1)/0.37 is no integer).
FUSIONS = {
    "content+collab": {"combined": 0.37, "collab": 1.0},
    "text+image": {"text": 1.0, "image": 0.37},  # a fifth of the movies have no image vector
    "one_weight_zero": {"combined": 1.0, "collab": 0.0},  # left out: plain RRF over one list
}


@dataclass
class Engine:
    name: str
    make: Callable[[], IndexStore]  # a new store object over the same storage: a restarted process


def build(store: IndexStore, catalogue: SyntheticMovies = CATALOGUE, manifest: Manifest = MANIFEST) -> None:
    """Stage, fill and publish the whole catalogue."""
    index = store.stage(manifest, rebuild=True)
    upsert_in_batches(index, catalogue.points)
    store.publish(index, replace(manifest, stats={"movies": len(catalogue.points)}))


def upsert_in_batches(index: MovieIndex, points: list[MoviePoint], size: int = 64) -> None:
    for start in range(0, len(points), size):
        index.upsert(points[start : start + size])
