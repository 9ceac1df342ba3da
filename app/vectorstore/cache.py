"""A published Edge generation's vectors and payloads, held in process memory for readers.

A published Edge generation never changes (the ingest builds the next one beside it), so its
vectors can be read once when a reader opens it. Converting vectors out of the engine costs about
10 us each, paid per request for the user's rated movies and for every re-rank candidate: most of
a recommendation's time. With the cache, searches still run in the engine; only the vectors and
payloads come from memory. 9k movies take about 50 MB; past `max_points` nothing is cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from app.vectorstore.base import RRF_K, VECTOR_NAMES, Hit, MovieFilter, MovieIndex, MoviePoint, StoredMovie

LOAD_CHUNK = 1024


class CachedIndex:
    """Read-only MovieIndex over an immutable index: searches delegated, vectors and payloads from memory."""

    def __init__(self, inner: MovieIndex, movies: dict[int, StoredMovie]) -> None:
        self._inner = inner
        self._movies = movies

    @classmethod
    def wrap(cls, inner: MovieIndex, max_points: int) -> MovieIndex:
        """`inner` with its vectors cached, or `inner` itself when it holds more than `max_points`."""
        ids = sorted(inner.hashes())
        if len(ids) > max_points:
            return inner
        movies: dict[int, StoredMovie] = {}
        for start in range(0, len(ids), LOAD_CHUNK):
            for movie in inner.retrieve(ids[start : start + LOAD_CHUNK], vectors=VECTOR_NAMES):
                for vector in movie.vectors.values():
                    vector.setflags(write=False)  # shared by every request
                movies[movie.id] = movie
        return cls(inner, movies)

    def _vectors(self, movie_id: int, names: Sequence[str]) -> dict[str, np.ndarray]:
        stored = self._movies.get(movie_id)
        if stored is None or not names:
            return {}
        return {n: stored.vectors[n] for n in names if n in stored.vectors}

    def _with_vectors(self, hits: list[Hit], names: Sequence[str]) -> list[Hit]:
        for hit in hits:
            hit.vectors = self._vectors(hit.id, names)
        return hits

    # -- reads --------------------------------------------------------------------------------------
    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        return [
            StoredMovie(i, self._movies[i].payload, self._vectors(i, vectors)) for i in ids if i in self._movies
        ]

    def query(
        self,
        vector: np.ndarray,
        using: str,
        limit: int,
        filter: MovieFilter | None = None,
        with_vectors: Sequence[str] = (),
    ) -> list[Hit]:
        return self._with_vectors(self._inner.query(vector, using, limit, filter), with_vectors)

    def query_fused(
        self,
        vectors: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        limit: int,
        filter: MovieFilter | None = None,
        with_vectors: Sequence[str] = (),
        prefetch_limit: int | None = None,
        rrf_k: int = RRF_K,
    ) -> list[Hit]:
        hits = self._inner.query_fused(vectors, weights, limit, filter, prefetch_limit=prefetch_limit, rrf_k=rrf_k)
        return self._with_vectors(hits, with_vectors)

    def popular(self, limit: int, filter: MovieFilter | None = None) -> list[Hit]:
        return self._inner.popular(limit, filter)

    def count(self, filter: MovieFilter | None = None) -> int:
        return self._inner.count(filter)

    def hashes(self) -> dict[int, str]:
        return {i: m.payload.get("content_hash", "") for i, m in self._movies.items()}

    def close(self) -> None:
        self._movies = {}
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
