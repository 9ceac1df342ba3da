"""Searches on every engine give the exact oracle's answers: filtered nearest, fused (weighted RRF), sparse."""

from __future__ import annotations

import numpy as np
import pytest

from app.vectorstore import (
    SPARSE_VECTOR,
    IndexStore,
    MemoryIndex,
    MovieFilter,
    MovieIndex,
    MoviePoint,
    SparseVector,
)
from app.vectorstore.base import HALF_PRECISION_VECTORS
from app.vectorstore.cache import CachedIndex
from tests.helpers.vectorstore import (
    CATALOGUE,
    FILTERS,
    FUSIONS,
    MANIFEST,
    N_MOVIES,
    Engine,
    SyntheticMovies,
    assert_near_oracle,
    assert_same_as_oracle,
    build,
    unit,
)


@pytest.mark.parametrize("using", ["text", "image", "combined", "collab"])
def test_filtered_query_is_exact(published: tuple[IndexStore, MovieIndex], using: str) -> None:
    _, index = published
    rng = np.random.default_rng(7)
    q = unit(rng.standard_normal(MANIFEST.vector_dims()[using]))
    for name, f in FILTERS.items():
        hits = index.query(q, using=using, limit=10, filter=f)
        expected = CATALOGUE.oracle.query(q, using=using, limit=10, filter=f)
        if using in HALF_PRECISION_VECTORS:
            assert_near_oracle(hits, expected, f, q, using)
        else:
            assert_same_as_oracle(hits, expected, f, name, atol=1e-4)


# More than half the catalogue excluded, as a heavy user's ratings exclude it.
MOSTLY_EXCLUDED = {
    "two_thirds": MovieFilter(exclude_ids=frozenset(CATALOGUE.ids[::3]) | frozenset(CATALOGUE.ids[1::3])),
    "with_genres": MovieFilter(genres=("Drama", "Comedy"), exclude_ids=frozenset(CATALOGUE.ids[:150])),
    "unknown_ids": MovieFilter(exclude_ids=frozenset(CATALOGUE.ids[40:]) | {10**9, 10**9 + 1}),
    "all": MovieFilter(exclude_ids=frozenset(CATALOGUE.ids)),
    "with_only": MovieFilter(exclude_ids=frozenset(CATALOGUE.ids[:150]), only_ids=frozenset(CATALOGUE.ids[100:])),
}


def test_a_mostly_excluded_catalogue_is_searched_exactly_through_the_cache(
    published: tuple[IndexStore, MovieIndex],
) -> None:
    """Through the vector cache, plain and fused searches that exclude most of the catalogue give the
    oracle's answers, nothing excluded among them."""
    _, index = published
    cached = CachedIndex.wrap(index, max_points=N_MOVIES)
    assert isinstance(cached, CachedIndex)
    rng = np.random.default_rng(11)
    queries = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in ("combined", "collab")}
    weights = FUSIONS["content+collab"]
    for name, f in MOSTLY_EXCLUDED.items():
        for using, q in queries.items():
            expected = CATALOGUE.oracle.query(q, using=using, limit=10, filter=f)
            hits = cached.query(q, using=using, limit=10, filter=f)
            assert_same_as_oracle(hits, expected, f, name, cached=True, atol=1e-4)
        hits = cached.query_fused(queries, weights, 10, f, prefetch_limit=30)
        expected = CATALOGUE.oracle.query_fused(queries, weights, 10, f, prefetch_limit=30)
        assert_same_as_oracle(hits, expected, f, name, cached=True, rtol=1e-5)
        assert not {h.id for h in hits} & f.exclude_ids
    assert cached.query(queries["collab"], "collab", 10, MOSTLY_EXCLUDED["all"]) == []


def test_the_cache_answers_a_search_for_unrated_movies_as_the_engine_does(
    published: tuple[IndexStore, MovieIndex],
) -> None:
    """A search for movies nobody has rated: the engine's answer through the cache while its
    generation holds one; once none does (every movie rated), nothing, as the engine answers."""
    _, index = published
    cached = CachedIndex.wrap(index, max_points=N_MOVIES)
    rng = np.random.default_rng(17)
    queries = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in ("combined", "collab")}
    unrated = MovieFilter(unrated=True)
    expected = CATALOGUE.oracle.query(queries["collab"], "collab", 5, unrated)
    assert len(expected) == 1  # the catalogue's one movie without ratings
    assert [h.id for h in cached.query(queries["collab"], "collab", 5, unrated)] == [h.id for h in expected]
    rated = MemoryIndex(CATALOGUE.points)
    rated.set_payload([expected[0].id], {"local_rating_count": 3})
    assert rated.query(queries["collab"], "collab", 5, unrated) == []
    all_rated = CachedIndex.wrap(rated, max_points=N_MOVIES)
    assert all_rated.query(queries["collab"], "collab", 5, unrated) == []
    assert all_rated.query_fused(queries, FUSIONS["content+collab"], 5, unrated) == []
    assert len(all_rated.query(queries["collab"], "collab", 5)) == 5


def test_query_returns_vectors(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    q = unit(np.ones(MANIFEST.text_dim, dtype=np.float32))
    hits = index.query(q, using="text", limit=5, with_vectors=["text", "collab"])
    assert len(hits) == 5
    for hit in hits:
        assert set(hit.vectors) == {"text", "collab"}
        np.testing.assert_allclose(hit.vectors["collab"], CATALOGUE.by_id(hit.id).vectors["collab"], atol=1e-5)
    assert all(h.vectors == {} for h in index.query(q, using="text", limit=5))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fused_query_is_weighted_rrf(published: tuple[IndexStore, MovieIndex], fusion: str) -> None:
    _, index = published
    weights = FUSIONS[fusion]
    rng = np.random.default_rng(5)
    queries = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in weights}
    for name, f in FILTERS.items():
        hits = index.query_fused(queries, weights, 10, f, prefetch_limit=30)
        expected = CATALOGUE.oracle.query_fused(queries, weights, 10, f, prefetch_limit=30)
        assert_same_as_oracle(hits, expected, f, name, rtol=1e-5)


def test_fused_query_options(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    rng = np.random.default_rng(9)
    queries = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in ("combined", "collab")}
    weights = {"combined": 1.0, "collab": 0.37}
    hits = index.query_fused(queries, weights, 5, with_vectors=["combined"], rrf_k=60)
    expected = CATALOGUE.oracle.query_fused(queries, weights, 5, prefetch_limit=5, rrf_k=60)
    assert [h.id for h in hits] == [h.id for h in expected]  # prefetch_limit defaults to limit
    assert all(set(h.vectors) == {"combined"} for h in hits)
    assert index.query_fused(queries, {"combined": 0.0}, 5) == []


def test_fused_query_reaches_movies_lacking_a_vector(engine: Engine) -> None:
    """A movie without a collab vector (a new movie: no ratings yet) still comes through the content prefetch."""
    points = [MoviePoint(p.id, dict(p.vectors), p.payload) for p in CATALOGUE.points]
    new = points[7]
    del new.vectors["collab"]
    store = engine.make()
    build(store, SyntheticMovies(points))
    index = store.open()
    queries = {"combined": new.vectors["combined"], "collab": unit(np.ones(MANIFEST.collab_dim, dtype=np.float32))}
    hits = index.query_fused(queries, {"combined": 1.0, "collab": 1.0}, 10)
    assert new.id in [h.id for h in hits[:2]]  # first in one list, absent from the other
    assert new.id not in [h.id for h in index.query(queries["collab"], "collab", N_MOVIES)]
    index.close()


def lexical_catalogue(seed: int = 3) -> SyntheticMovies:
    """The catalogue with a sparse `lexical` vector per movie: 2-6 of 40 terms, the low ids common
    (so IDF differs from term to term), BM25-like weights."""
    rng = np.random.default_rng(seed)
    points = []
    for p in CATALOGUE.points:
        terms = np.sort(rng.choice(40, size=int(rng.integers(2, 7)), replace=False, p=_zipf(40)))
        weights = rng.uniform(0.5, 2.0, len(terms))  # continuous: no two movies tie
        sparse = SparseVector(tuple(int(t) for t in terms), tuple(float(w) for w in weights))
        points.append(MoviePoint(p.id, {**p.vectors, SPARSE_VECTOR: sparse}, p.payload))
    return SyntheticMovies(points)


def _zipf(n: int) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1)
    return w / w.sum()


def test_sparse_query_scores_with_idf(engine: Engine) -> None:
    """A SparseVector query on `lexical`: dot product with the engine's IDF, under the filter."""
    catalogue = lexical_catalogue()
    store = engine.make()
    build(store, catalogue)
    index = store.open()
    queries = [SparseVector((0, 7, 31), (1.0, 1.0, 1.0)), SparseVector((2,), (1.0,)), SparseVector((39,), (2.0,))]
    for q in queries:
        for name, f in FILTERS.items():
            hits = index.query(q, SPARSE_VECTOR, 10, f)
            expected = catalogue.oracle.query(q, SPARSE_VECTOR, 10, f)
            assert [h.id for h in hits] == [h.id for h in expected], name
            np.testing.assert_allclose([h.score for h in hits], [h.score for h in expected], rtol=1e-4)
    index.close()
