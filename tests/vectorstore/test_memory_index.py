"""The oracle itself (app/vectorstore/memory.py), against answers worked out by hand on tiny catalogues.

The engine tests compare every engine with it, so its own meaning is pinned here independently:
the filter, cosine ranking, weighted RRF, BM25's IDF, writes, and copying another index.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.vectorstore import (
    SPARSE_VECTOR,
    MemoryIndex,
    MovieFilter,
    MoviePoint,
    SparseVector,
    content_hashes,
    payload_for,
)
from tests.helpers.vectorstore import CATALOGUE, FILTERS


def movie(movie_id: int, year: int | None, genres: list[str], rated: int, **vectors: object) -> MoviePoint:
    payload = payload_for(
        title=f"Movie {movie_id}",
        year=year,
        genres=genres,
        popularity=1.0,
        vote_average=None,
        vote_count=None,
        has_poster="image" in vectors,
        content_hash=f"h{movie_id}",
        local_rating_count=rated,
    )
    return MoviePoint(movie_id, {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items()}, payload)


# Five movies in a 2-d space; ids out of order so a row number never passes for an id.
TINY = [
    movie(30, 1990, ["Drama"], 5, text=[1, 0], image=[1, 0]),
    movie(10, 2001, ["Comedy", "Drama"], 0, text=[0.8, 0.6]),
    movie(50, None, ["Horror"], 9, text=[0, 1], image=[0, 1]),
    movie(20, 1975, [], 0, text=[-1, 0]),
    movie(40, 2010, ["Comedy"], 7, text=[0.6, -0.8], image=[1, 1]),
]


@pytest.mark.parametrize(
    ("f", "ids"),
    [
        (MovieFilter(), {10, 20, 30, 40, 50}),
        (MovieFilter(genres=("Drama", "Horror")), {10, 30, 50}),  # any of them
        (MovieFilter(genres=("Western",)), set()),
        (MovieFilter(year_min=1990), {10, 30, 40}),  # no year: never passes a bound
        (MovieFilter(year_min=1975, year_max=2001), {10, 20, 30}),  # inclusive
        (MovieFilter(exclude_ids=frozenset({10, 40, 999})), {20, 30, 50}),
        (MovieFilter(only_ids=frozenset({20, 50, 999})), {20, 50}),
        (MovieFilter(only_ids=frozenset()), set()),
        (MovieFilter(has_poster=True), {30, 40, 50}),  # the image vector is there
        (MovieFilter(has_poster=False), {10, 20}),
        (MovieFilter(unrated=True), {10, 20}),
        (MovieFilter(genres=("Comedy",), year_max=2005, exclude_ids=frozenset({30})), {10}),
    ],
)
def test_filter(f: MovieFilter, ids: set[int]) -> None:
    index = MemoryIndex(TINY)
    assert {h.id for h in index.popular(10, f)} == ids
    assert index.count(f) == len(ids)


def test_query_ranks_by_cosine_ties_by_id() -> None:
    index = MemoryIndex(TINY)
    hits = index.query(np.array([3.0, 0.0]), "text", 10)  # not unit: cosine, not dot product
    assert [h.id for h in hits] == [30, 10, 40, 50, 20]
    np.testing.assert_allclose([h.score for h in hits], [1.0, 0.8, 0.6, 0.0, -1.0], atol=1e-6)
    assert [h.id for h in index.query(np.array([1.0, 1.0]), "image", 2)] == [40, 30]  # 30 and 50 tie: id order
    assert [h.id for h in index.query(np.array([1.0, 0.0]), "image", 3, MovieFilter(year_min=1995))] == [40]
    assert index.query(np.array([1.0, 0.0]), "collab", 3) == []  # nobody has that vector
    stored = index.retrieve([40], vectors=["image", "collab"])[0].vectors
    assert set(stored) == {"image"}
    np.testing.assert_allclose(stored["image"], [math.sqrt(0.5)] * 2, atol=1e-6)  # kept as a unit vector


def test_fused_query_is_weighted_rrf_by_hand() -> None:
    index = MemoryIndex(TINY)
    # text ranks 30, 10, 40 (w 1); image ranks 50, 40, 30 (w 0.5); k 2: 1 / ((r + 1) / w + 1)
    hits = index.query_fused(
        {"text": np.array([1.0, 0.0]), "image": np.array([0.0, 1.0])}, {"text": 1.0, "image": 0.5}, 3, prefetch_limit=3
    )
    want = {30: 1 / 2 + 1 / 7, 10: 1 / 3, 40: 1 / 4 + 1 / 5, 50: 1 / 3}
    assert [h.id for h in hits] == [30, 40, 10]  # 10 and 50 tie at 1/3: id order
    np.testing.assert_allclose([h.score for h in hits], [want[h.id] for h in hits])
    only_text = index.query_fused({"text": np.array([1.0, 0.0]), "image": np.array([0.0, 1.0])}, {"text": 1.0}, 2)
    np.testing.assert_allclose([h.score for h in only_text], [1 / 2, 1 / 3])
    hits = index.query_fused({"text": np.array([1.0, 0.0])}, {"text": 1.0}, 3, MovieFilter(genres=("Comedy",)))
    assert [h.id for h in hits] == [10, 40]


def test_sparse_query_is_bm25_idf_by_hand() -> None:
    docs = {1: ((5, 9), (1.0, 2.0)), 2: ((5,), (0.5,)), 3: ((7,), (1.0,))}
    points = [MoviePoint(i, {SPARSE_VECTOR: SparseVector(*d)}, {"genres": []}) for i, d in docs.items()]
    points.append(MoviePoint(4, {}, {"genres": []}))  # no sparse vector: not in IDF's N
    index = MemoryIndex(points)

    def idf(n: int) -> float:
        return math.log(1 + (3 - n + 0.5) / (n + 0.5))

    hits = index.query(SparseVector((5, 9, 11), (1.0, 1.0, 1.0)), SPARSE_VECTOR, 10)
    assert [h.id for h in hits] == [1, 2]  # 3 shares no term: not a hit
    np.testing.assert_allclose([h.score for h in hits], [idf(2) + 2 * idf(1), 0.5 * idf(2)], rtol=1e-6)


def test_writes_show_in_reads() -> None:
    index = MemoryIndex(TINY)
    assert index.count(MovieFilter(unrated=True)) == 2
    index.set_payload([10], {"local_rating_count": 3, "collab_source": "ratings"})
    assert {h.id for h in index.popular(10, MovieFilter(unrated=True))} == {20}
    assert [h.id for h in index.popular(10, MovieFilter(collab_source="ratings"))] == [10]
    index.set_vectors("collab", {20: np.array([0.0, 2.0])})
    assert [h.id for h in index.query(np.array([0.0, 1.0]), "collab", 5)] == [20]
    index.delete_vectors("image", [40])
    assert index.count(MovieFilter(has_poster=True)) == 2
    index.upsert([movie(10, 1950, ["Western"], 1, text=[0, -1])])  # the whole point is replaced
    assert index.genres() == {"Drama": 1, "Horror": 1, "Comedy": 1, "Western": 1}
    index.delete([30, 999])
    assert index.count() == 4
    assert content_hashes(index) == {10: "h10", 20: "h20", 40: "h40", 50: "h50"}
    assert [h.score for h in index.popular(2)] == [9.0, 7.0]


def test_copy_of_another_index_answers_alike() -> None:
    copy = MemoryIndex.copy_of(CATALOGUE.oracle)
    q = np.random.default_rng(3).standard_normal(32)
    for f in FILTERS.values():
        got, want = copy.query(q, "combined", 10, f), CATALOGUE.oracle.query(q, "combined", 10, f)
        assert [h.id for h in got] == [h.id for h in want]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want], atol=1e-6)
    assert content_hashes(copy) == content_hashes(CATALOGUE.oracle)


def test_answers_are_copies() -> None:
    index = MemoryIndex(TINY)
    hit = index.query(np.array([1.0, 0.0]), "text", 1, with_vectors=["text"])[0]
    hit.payload["genres"] = ["Western"]
    hit.vectors["text"][:] = 0
    index.retrieve([30])[0].payload.clear()
    index.popular(1)[0].payload.clear()
    assert index.genres()["Drama"] == 2 and "Western" not in index.genres()
    assert index.query(np.array([1.0, 0.0]), "text", 1)[0].score == pytest.approx(1.0)
    assert index.retrieve([30])[0].payload["title"] == "Movie 30"
