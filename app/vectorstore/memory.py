"""An exact, in-process MovieIndex: brute-force numpy search, no engine.

It is the oracle the engines are checked against (tests/vectorstore) and the baseline the
benchmarks time them against (bench/query.py): every search is exact, so a difference from it is
the engine's approximation or a bug. It answers as the engines do:

- dense vectors are cosine: stored as unit rows, scored by dot product with the unit query;
- a SparseVector query scores by dot product with Qdrant's IDF applied to each term,
  ln(1 + (N - n + 0.5) / (n + 0.5)) over the N points that have that sparse vector, n of them
  holding the term; only points sharing a term with the query are hits;
- fusion is weighted reciprocal rank fusion of exact prefetches (see RRF_K in base.py);
- filters mean what the adapters' translations mean (MovieFilter); a movie without a year never
  passes a year bound, `has_poster` is whether the image vector is present;
- ties rank by movie id.

Reads build columns (one float32 matrix per vector name, genre masks, payload columns) once after
a write, so a batch of upserts followed by many queries costs one build. Every answer holds fresh
copies of the payloads and vectors, as an engine's do: changing one never changes the index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.vectorstore.base import (
    RRF_K,
    VECTOR_NAMES,
    Hit,
    MovieFilter,
    MovieIndex,
    MoviePoint,
    SparseVector,
    Stacked,
    StoredMovie,
    Vector,
    content_hashes,
    fused_names,
    stack,
)

COPY_CHUNK = 1024  # movies per retrieve when copying another index


@dataclass
class _Columns:
    """The index as columns, rows in movie-id order; rebuilt after a write."""

    ids: np.ndarray  # int64, sorted
    payloads: list[dict[str, Any]]
    dense: dict[str, np.ndarray]  # name -> (rows, dim) float32 unit rows, zero where absent
    present: dict[str, np.ndarray]  # name -> bool per row: the row has that vector
    sparse: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]  # name -> term -> (rows, values)
    sparse_count: dict[str, int]  # name -> points that have it (IDF's N)
    genres: dict[str, np.ndarray]  # genre -> bool per row, as a keyword payload index
    year: np.ndarray  # float64, NaN where absent
    collab_source: np.ndarray  # object
    rating_count: np.ndarray  # int64, -1 where absent
    empty: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.empty = np.zeros(len(self.ids), dtype=bool)

    def rows_of(self, ids: Iterable[int]) -> np.ndarray:
        wanted = np.fromiter(ids, dtype=np.int64)
        if not len(self.ids) or not len(wanted):
            return np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        found: np.ndarray = pos[self.ids[pos] == wanted]
        return found


class MemoryIndex:
    """Exact search over points held in process memory. Implements MovieIndex."""

    def __init__(self, points: Iterable[MoviePoint] = ()) -> None:
        self._points: dict[int, MoviePoint] = {}
        self._columns: _Columns | None = None
        self.upsert(list(points))

    @classmethod
    def copy_of(cls, index: MovieIndex, vectors: Sequence[str] = VECTOR_NAMES) -> MemoryIndex:
        """Every point of `index` (from its hashes) with its payload and the dense `vectors` named;
        sparse vectors are not copied (retrieve does not return them)."""
        ids = sorted(content_hashes(index))
        points = [
            MoviePoint(m.id, dict(m.vectors), m.payload)
            for start in range(0, len(ids), COPY_CHUNK)
            for m in index.retrieve(ids[start : start + COPY_CHUNK], vectors=vectors)
        ]
        return cls(points)

    # -- writes -------------------------------------------------------------------------------
    def upsert(self, points: Sequence[MoviePoint]) -> None:
        """Insert or replace whole points (vectors and payload), as the engines' upsert does."""
        for p in points:
            self._points[int(p.id)] = MoviePoint(
                int(p.id), {n: _stored(v) for n, v in p.vectors.items()}, dict(p.payload)
            )
        self._columns = None

    def delete(self, ids: Iterable[int]) -> None:
        for i in ids:
            self._points.pop(int(i), None)
        self._columns = None

    def set_vectors(self, name: str, vectors: Mapping[int, np.ndarray]) -> None:
        """Ids not in the index are skipped."""
        for i, v in vectors.items():
            if int(i) in self._points:
                self._points[int(i)].vectors[name] = _stored(v)
        self._columns = None

    def delete_vectors(self, name: str, ids: Iterable[int]) -> None:
        for i in ids:
            if int(i) in self._points:
                self._points[int(i)].vectors.pop(name, None)
        self._columns = None

    def set_payload(self, ids: Iterable[int], payload: Mapping[str, Any]) -> None:
        """Ids not in the index are skipped."""
        for i in ids:
            if int(i) in self._points:
                self._points[int(i)].payload.update(payload)
        self._columns = None

    def flush(self) -> None:
        """Nothing to write: the index lives in memory."""

    def close(self) -> None:
        self._points, self._columns = {}, None

    # -- reads --------------------------------------------------------------------------------
    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        """The movies among `ids` that exist, in the order asked, with the dense `vectors` they have."""
        out = []
        for i in ids:
            p = self._points.get(int(i))
            if p is not None:
                dense = {n: v.copy() for n in vectors if isinstance(v := p.vectors.get(n), np.ndarray)}
                out.append(StoredMovie(p.id, dict(p.payload), dense))
        return out

    def stacked(self, ids: Sequence[int], name: str) -> Stacked:
        return stack(self.retrieve(ids, (name,)), ids, name)

    def query(
        self,
        vector: Vector,
        using: str,
        limit: int,
        filter: MovieFilter | None = None,
        with_vectors: Sequence[str] = (),
        with_payload: bool = True,
    ) -> list[Hit]:
        cols = self._cols()
        rows, scores = self._search(cols, vector, using, limit, self._mask(cols, filter))
        return self._hits(cols, rows.tolist(), scores.tolist(), with_vectors)

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
        """Each positive-weight name's exact top `prefetch_limit` (default `limit`) under the filter;
        a hit at rank r (from 0) of a list with weight w scores 1 / ((r + 1) / w + rrf_k - 1), summed."""
        cols = self._cols()
        keep = self._mask(cols, filter)
        fused: dict[int, float] = {}
        for name in fused_names(vectors, weights):
            w = float(weights[name])
            rows, _ = self._search(cols, vectors[name], name, prefetch_limit or limit, keep)
            for rank, row in enumerate(rows.tolist()):
                fused[row] = fused.get(row, 0.0) + 1.0 / ((rank + 1) / w + rrf_k - 1)
        best = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]  # rows are in id order
        return self._hits(cols, [r for r, _ in best], [s for _, s in best], with_vectors)

    def popular(self, limit: int, filter: MovieFilter | None = None) -> list[Hit]:
        """The most rated (payload local_rating_count) under the filter; score = that count."""
        cols = self._cols()
        rows = np.flatnonzero(self._mask(cols, filter))
        rows = rows[np.argsort(-cols.rating_count[rows], kind="stable")][:limit]
        return [
            Hit(int(cols.ids[r]), float(max(cols.rating_count[r], 0)), dict(cols.payloads[r])) for r in rows.tolist()
        ]

    def count(self, filter: MovieFilter | None = None) -> int:
        if filter is None or filter.is_empty():
            return len(self._points)
        cols = self._cols()
        return int(self._mask(cols, filter).sum())

    def genres(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for p in self._points.values():
            for g in p.payload.get("genres") or ():
                out[g] = out.get(g, 0) + 1
        return out

    def payload_field(self, key: str) -> dict[int, Any]:
        return {i: p.payload.get(key) for i, p in self._points.items()}

    def payload_schema(self) -> dict[str, str]:
        """Empty: the oracle filters every payload field by scanning, with no payload index."""
        return {}

    # -- search -------------------------------------------------------------------------------
    def _search(
        self, cols: _Columns, vector: Vector, using: str, limit: int, keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the exact top `limit` among the `keep` rows that have `using`, best first."""
        if isinstance(vector, SparseVector):
            return _top(*self._sparse_scores(cols, vector, using, keep), limit)
        matrix = cols.dense.get(using)
        if matrix is None or limit <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows = np.flatnonzero(keep & cols.present[using])
        q = np.asarray(vector, dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        # Few rows pass: gather them. Many pass: one full matrix-vector product is cheaper than the copy.
        scores = matrix[rows] @ q if 3 * len(rows) < len(matrix) else (matrix @ q)[rows]
        return _top(rows, scores, limit)

    def _sparse_scores(
        self, cols: _Columns, vector: SparseVector, using: str, keep: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        postings = cols.sparse.get(using, {})
        n = cols.sparse_count.get(using, 0)
        scores = np.zeros(len(cols.ids), dtype=np.float64)
        matched = cols.empty.copy()
        for term, weight in zip(vector.indices, vector.values, strict=True):
            if term in postings:
                rows, values = postings[term]
                idf = math.log1p((n - len(rows) + 0.5) / (len(rows) + 0.5))
                scores[rows] += weight * idf * values
                matched[rows] = True
        rows = np.flatnonzero(matched & keep)
        return rows, scores[rows].astype(np.float32)

    def _mask(self, cols: _Columns, f: MovieFilter | None) -> np.ndarray:
        """Rows that pass the filter."""
        keep = ~cols.empty
        if f is None or f.is_empty():
            return keep
        if f.genres:
            keep &= np.logical_or.reduce([cols.genres.get(g, cols.empty) for g in f.genres])
        if f.year_min is not None:
            keep &= cols.year >= f.year_min  # NaN (no year) compares False, as the engines' range does
        if f.year_max is not None:
            keep &= cols.year <= f.year_max
        if f.only_ids is not None:
            only = cols.empty.copy()
            only[cols.rows_of(f.only_ids)] = True
            keep &= only
        if f.exclude_ids:
            keep[cols.rows_of(f.exclude_ids)] = False
        if f.has_poster is not None:
            keep &= cols.present.get("image", cols.empty) == f.has_poster
        if f.collab_source is not None:
            keep &= cols.collab_source == f.collab_source
        if f.unrated:
            keep &= cols.rating_count == 0
        return keep

    def _hits(self, cols: _Columns, rows: list[int], scores: list[float], with_vectors: Sequence[str]) -> list[Hit]:
        dense = [(n, cols.dense[n], cols.present[n]) for n in with_vectors if n in cols.dense]
        return [
            Hit(int(cols.ids[r]), float(s), dict(cols.payloads[r]), {n: m[r].copy() for n, m, has in dense if has[r]})
            for r, s in zip(rows, scores, strict=True)
        ]

    # -- columns ------------------------------------------------------------------------------
    def _cols(self) -> _Columns:
        if self._columns is None:
            self._columns = self._build()
        return self._columns

    def _build(self) -> _Columns:
        points = [self._points[i] for i in sorted(self._points)]
        payloads = [p.payload for p in points]
        names = {n for p in points for n in p.vectors}
        dense, present, sparse, sparse_count = {}, {}, {}, {}
        for name in sorted(names):
            has = np.array([name in p.vectors for p in points], dtype=bool)
            first = points[int(np.argmax(has))].vectors[name]
            if isinstance(first, SparseVector):
                sparse[name], sparse_count[name] = _postings(points, name), int(has.sum())
                continue
            matrix = np.zeros((len(points), len(first)), dtype=np.float32)
            for row in np.flatnonzero(has).tolist():
                vector = points[row].vectors[name]
                assert isinstance(vector, np.ndarray), f"{name} is dense in one point, sparse in another"
                matrix[row] = vector
                points[row].vectors[name] = matrix[row]  # a view: one copy of each vector
            matrix.setflags(write=False)
            dense[name], present[name] = matrix, has
        genre_rows: dict[str, list[int]] = {}
        for row, payload in enumerate(payloads):
            for g in payload.get("genres") or ():
                genre_rows.setdefault(g, []).append(row)
        genres = {}
        for g, rows in genre_rows.items():
            genres[g] = np.zeros(len(points), dtype=bool)
            genres[g][rows] = True
        return _Columns(
            ids=np.array([p.id for p in points], dtype=np.int64),
            payloads=payloads,
            dense=dense,
            present=present,
            sparse=sparse,
            sparse_count=sparse_count,
            genres=genres,
            year=np.array([_number(p.get("year"), math.nan) for p in payloads], dtype=np.float64),
            collab_source=np.array([p.get("collab_source") for p in payloads], dtype=object),
            rating_count=np.array([_number(p.get("local_rating_count"), -1) for p in payloads], dtype=np.int64),
        )


def _stored(v: Vector) -> Vector:
    """A dense vector as stored: float32, unit length (cosine), read-only; a sparse one as given."""
    if isinstance(v, SparseVector):
        return v
    a = np.asarray(v, dtype=np.float32)
    a = a / max(float(np.linalg.norm(a)), 1e-12)
    a.setflags(write=False)
    return a


def _number(value: Any, missing: float) -> float:
    return missing if value is None else value


def _postings(points: Sequence[MoviePoint], name: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """term -> (rows holding it, their weights), rows ascending."""
    lists: dict[int, tuple[list[int], list[float]]] = {}
    for row, p in enumerate(points):
        v = p.vectors.get(name)
        if isinstance(v, SparseVector):
            for term, weight in zip(v.indices, v.values, strict=True):
                rows, values = lists.setdefault(term, ([], []))
                rows.append(row)
                values.append(weight)
    return {t: (np.array(r, dtype=np.int64), np.array(w, dtype=np.float64)) for t, (r, w) in lists.items()}


def _top(rows: np.ndarray, scores: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The `limit` best of `rows` by score, best first; ties by row (movie id) order."""
    k = min(limit, len(rows))
    if k <= 0:
        return rows[:0], scores[:0]
    part = np.sort(np.argpartition(-scores, k - 1)[:k]) if k < len(rows) else np.arange(len(rows))
    order = part[np.argsort(-scores[part], kind="stable")]
    return rows[order], scores[order]
