"""A published Edge generation's vectors and payloads, held in process memory for readers.

A published Edge generation never changes (the ingest builds the next one beside it), so its
vectors can be read once when a reader opens it. Converting vectors out of the engine costs about
10 us each, paid per request for the user's rated movies and for every re-rank candidate: most of
a recommendation's time. With the cache, searches still run in the engine; only the vectors and
payloads come from memory. 9k movies take about 50 MB; past `max_points` nothing is cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from app.vectorstore.base import (
    RRF_K,
    VECTOR_NAMES,
    Hit,
    Lazy,
    MovieFilter,
    MovieIndex,
    MoviePoint,
    Stacked,
    StoredMovie,
    Vector,
    content_hashes,
)

LOAD_CHUNK = 1024


# Payload keys read once per generation (search's spelling vocabulary), not per answer: left in the
# engine, not held in every worker's memory (about 30 MB at 62k movies).
UNCACHED_PAYLOAD = ("people",)


def cached_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `payload` without the UNCACHED_PAYLOAD keys: what a cached movie holds."""
    return {k: v for k, v in payload.items() if k not in UNCACHED_PAYLOAD}


class CachedIndex:
    """Read-only MovieIndex over an immutable index: searches delegated, vectors and payloads from memory."""

    def __init__(self, inner: MovieIndex, movies: dict[int, StoredMovie], views: Iterable[Sequence[str]] = ()) -> None:
        """`views`: the tuples of vector names callers will ask for, whose answers are built now (see _view)."""
        self._inner = inner
        self._movies = movies
        # Ready-made answers per requested vector names: a retrieve of a user's 1,000 rated movies is
        # then one dict lookup each. Callers must treat what they get as read-only (it is shared).
        self._views: dict[tuple[str, ...], dict[int, StoredMovie]] = {}
        # Per vector name, the sorted ids of the movies that have it and one read-only matrix of
        # their vectors, row for id; the movies' own vectors become views of those rows, so
        # each vector is held once.
        self._matrices: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in VECTOR_NAMES:
            having = sorted((m for m in movies.values() if name in m.vectors), key=lambda m: m.id)
            if having:
                matrix = np.array([m.vectors[name] for m in having])
                matrix.setflags(write=False)  # shared by every request
                for row, m in enumerate(having):
                    m.vectors[name] = matrix[row]
                self._matrices[name] = (np.array([m.id for m in having], dtype=np.int64), matrix)
        # Whether a search for movies nobody has rated (MovieFilter.unrated: local_rating_count 0) can
        # find any: on the demo every movie has ratings, and a collab answer's exploration query then
        # cost an engine search (and a hop to its threads) for an empty answer.
        self._any_unrated = any(m.payload.get("local_rating_count") == 0 for m in movies.values())
        for names in views:
            self._view(names)

    @classmethod
    def wrap(cls, inner: MovieIndex, max_points: int, views: Iterable[Sequence[str]] = ()) -> MovieIndex:
        """`inner` with its vectors cached, or `inner` itself when it holds more than `max_points`.

        `views`: the tuples of vector names the callers ask for, built now rather than on first use.
        A view is two objects per movie (124k at 62k movies); the API freezes what the cache holds
        out of the garbage collector's generations once it is built (app/api/state.py), and a view
        built later stays in them: every full collection then walked it (57-107 ms at 62k movies,
        every few 5,000-rating requests)."""
        ids = sorted(content_hashes(inner))
        if len(ids) > max_points:
            return inner
        movies: dict[int, StoredMovie] = {}
        for start in range(0, len(ids), LOAD_CHUNK):
            for movie in inner.retrieve(ids[start : start + LOAD_CHUNK], vectors=VECTOR_NAMES):
                movies[movie.id] = StoredMovie(movie.id, cached_payload(movie.payload), movie.vectors)
        return cls(inner, movies, views)

    def _view(self, names: Sequence[str]) -> dict[int, StoredMovie]:
        key = tuple(names)
        if set(key) == set(VECTOR_NAMES):  # every vector: the cached movies themselves (the dashboard's)
            return self._movies
        view = self._views.get(key)
        if view is None:  # built once per distinct tuple of names (a handful); a race only builds it twice
            view = {
                i: StoredMovie(i, m.payload, {n: m.vectors[n] for n in key if n in m.vectors})
                for i, m in self._movies.items()
            }
            self._views[key] = view
        return view

    def _complete(self, hits: list[Hit], names: Sequence[str]) -> list[Hit]:
        """Payloads and the asked-for vectors of the engine's hits, from memory."""
        view = self._view(names)
        for hit in hits:
            stored = view.get(hit.id)
            if stored is not None:
                hit.payload, hit.vectors = stored.payload, stored.vectors
        return hits

    # -- reads --------------------------------------------------------------------------------------
    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        view = self._view(vectors)
        return [view[i] for i in ids if i in view]

    def stacked(self, ids: Sequence[int], name: str) -> Stacked:
        """Rows gathered from the name's matrix, found by binary search: for a heavy user's 1,000
        collab vectors about 10x less than stacking them one by one (1 ms), with the same values.
        The payloads are looked up when read (Lazy)."""
        known = self._matrices.get(name)
        if known is None:
            return Stacked([], [], np.zeros((0, 0), dtype=np.float32))
        have, matrix = known
        wanted = np.fromiter(ids, dtype=np.int64, count=len(ids))
        rows = np.minimum(np.searchsorted(have, wanted), len(have) - 1)
        found = have[rows] == wanted
        positions: list[int] = np.flatnonzero(found).tolist()
        movies = self._movies
        payloads = Lazy(lambda k: movies[ids[positions[k]]].payload, len(positions))
        return Stacked(positions, payloads, matrix[rows[found]])

    def query(
        self,
        vector: Vector,
        using: str,
        limit: int,
        filter: MovieFilter | None = None,
        with_vectors: Sequence[str] = (),
        with_payload: bool = True,
    ) -> list[Hit]:
        if filter is not None and filter.unrated and not self._any_unrated:
            return []
        hits = self._inner.query(vector, using, limit, filter, with_payload=False)
        return self._complete(hits, with_vectors)

    def query_fused(
        self,
        vectors: Mapping[str, Vector],
        weights: Mapping[str, float],
        limit: int,
        filter: MovieFilter | None = None,
        with_vectors: Sequence[str] = (),
        prefetch_limit: int | None = None,
        rrf_k: int = RRF_K,
        with_payload: bool = True,
    ) -> list[Hit]:
        if filter is not None and filter.unrated and not self._any_unrated:
            return []
        hits = self._inner.query_fused(
            vectors, weights, limit, filter, prefetch_limit=prefetch_limit, rrf_k=rrf_k, with_payload=False
        )
        return self._complete(hits, with_vectors)

    def popular(self, limit: int, filter: MovieFilter | None = None) -> list[Hit]:
        return self._inner.popular(limit, filter)

    def count(self, filter: MovieFilter | None = None) -> int:
        return self._inner.count(filter)

    def genres(self) -> dict[str, int]:
        return self._inner.genres()

    def payload_schema(self) -> dict[str, str]:
        return self._inner.payload_schema()

    def payload_field(self, key: str) -> dict[int, Any]:
        if key in UNCACHED_PAYLOAD:
            return self._inner.payload_field(key)
        return {i: m.payload.get(key) for i, m in self._movies.items()}

    def close(self) -> None:
        self._movies, self._views, self._matrices = {}, {}, {}
        self._inner.close()

    def flush(self) -> None:
        """Nothing to write: the index is read-only."""

    # -- writes: a published generation is immutable ------------------------------------------------
    def upsert(self, points: Sequence[MoviePoint]) -> None:
        raise TypeError("a cached index is read-only")

    def delete(self, ids: Iterable[int]) -> None:
        raise TypeError("a cached index is read-only")

    def set_vectors(self, name: str, vectors: Mapping[int, np.ndarray]) -> None:
        raise TypeError("a cached index is read-only")

    def delete_vectors(self, name: str, ids: Iterable[int]) -> None:
        raise TypeError("a cached index is read-only")

    def set_payload(self, ids: Iterable[int], payload: Mapping[str, Any]) -> None:
        raise TypeError("a cached index is read-only")
