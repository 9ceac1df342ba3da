"""MovieIndex: the project's own small interface over a Qdrant engine, and the types it speaks.

Two adapters implement it: `edge.py` (embedded qdrant-edge-py, the default) and `server.py`
(qdrant-client against a Qdrant server or cluster). An `IndexStore` owns an engine's published
index and builds the next one beside it, so readers never see a half-built index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar, overload

import numpy as np

from app.names import SimilarVector

# 2: the sparse `lexical` vector (app/embedding/lexical.py) and the payload's local_rating_count
# (indexed for ordering); an index without them is rebuilt.
SCHEMA_VERSION = 2
VECTOR_NAMES: tuple[SimilarVector, ...] = ("text", "image", "combined", "collab")  # the dense ones, all cosine
# Stored as float16: the poster vectors, 1280 floats a movie, which the engine's dense storage
# allocates for every point, poster or not (62k movies: 317 MB in float32, twice that while the
# publish rebuilds the segment), and which only `similar?vector=image` and the explanations' image
# share read. float16 keeps cosines within about 1e-3; the text, combined and collab vectors that
# rank every answer stay float32. Applies to indexes created from now on.
HALF_PRECISION_VECTORS = frozenset({"image"})
SPARSE_VECTOR = "lexical"  # BM25-style term weights; the engine applies IDF (its IDF modifier)
MAX_GENRES = 1000  # a facet's bound: catalogues have tens of genres
# Reciprocal rank fusion's k: a hit at rank r (from 0) of a prefetch with weight w scores
# 1 / ((r + 1) / w + k - 1). Both engines use this formula; 2 is Qdrant's own default.
RRF_K = 2
NOT_BUILT = "the index is not built yet: run `movierec ingest`"  # IndexUnavailableError's words, every engine


@dataclass(frozen=True)
class Manifest:
    """What built an index. Two indexes are interchangeable only if their manifests are compatible."""

    text_model: str
    text_dim: int
    image_model: str
    image_dim: int
    combined_dim: int
    projection_seed: int
    collab_dim: int
    schema_version: int = SCHEMA_VERSION
    # The lexical encoder's id (app/embedding/lexical.py ENCODER_ID): its term ids must match the queries'.
    lexical_model: str | None = None
    # Facts recorded when the index is published; they do not affect compatibility.
    stats: dict[str, Any] = field(default_factory=dict, compare=False)

    def compatible(self, other: Manifest | None) -> bool:
        return other is not None and self.model_key() == other.model_key()

    def model_key(self) -> tuple[Any, ...]:
        d = asdict(self)
        d.pop("stats")
        return tuple(sorted(d.items()))

    def vector_dims(self) -> dict[str, int]:
        return {
            "text": self.text_dim,
            "image": self.image_dim,
            "combined": self.combined_dim,
            "collab": self.collab_dim,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        names = cls.__dataclass_fields__.keys()
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector: strictly increasing term ids in [0, 2^31) and their weights, same length."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


# What a named vector is: dense (the VECTOR_NAMES) or sparse (SPARSE_VECTOR).
Vector = np.ndarray | SparseVector


@dataclass
class MoviePoint:
    """One movie as the index stores it: point id = movie id, named vectors, payload."""

    id: int
    vectors: dict[str, Vector]
    payload: dict[str, Any]


@dataclass
class StoredMovie:
    id: int
    payload: dict[str, Any]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


T = TypeVar("T")


class Lazy(Sequence[T]):
    """A read-only sequence of `n` items, each computed by `item(k)` when it is read. For a caller
    that reads a few of many: a heavy user's answer cites at most 10 of its 1,000 stacked movies'
    payloads, and looking up all 1,000 in the vector cache cost 0.5 ms (cache misses)."""

    def __init__(self, item: Callable[[int], T], n: int) -> None:
        self._item, self._n = item, n

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, k: int) -> T: ...

    @overload
    def __getitem__(self, k: slice) -> list[T]: ...

    def __getitem__(self, k: int | slice) -> T | list[T]:
        if isinstance(k, slice):
            return [self._item(i) for i in range(*k.indices(self._n))]
        if not -self._n <= k < self._n:
            raise IndexError(k)
        return self._item(k % self._n)


@dataclass
class Stacked:
    """Some movies' vectors of one name as one matrix, for math on them all at once: row k is the
    vector of the movie asked for at `positions[k]`, `payloads[k]` its payload."""

    positions: list[int]  # indexes into the ids asked for, ascending: the ones that have the vector
    payloads: Sequence[dict[str, Any]]  # a list, or a Lazy one that looks each up when read
    rows: np.ndarray  # (len(positions), dim) float32; no rows when none has it


def stack(movies: Sequence[StoredMovie], ids: Sequence[int], name: str) -> Stacked:
    """`movies` (a retrieve of `ids` with the `name` vector) as a Stacked in the order of `ids`."""
    found = {m.id: m for m in movies if name in m.vectors}
    positions = [k for k, i in enumerate(ids) if i in found]
    chosen = [found[ids[k]] for k in positions]
    # np.array rather than np.stack: 2.7x faster on a list of 1-d rows
    rows = np.array([m.vectors[name] for m in chosen]) if chosen else np.zeros((0, 0), dtype=np.float32)
    return Stacked(positions, [m.payload for m in chosen], rows)


@dataclass
class Hit:
    id: int
    score: float
    payload: dict[str, Any]
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class MovieFilter:
    """The filters every query may carry. Empty means no restriction."""

    genres: tuple[str, ...] = ()  # match any of these
    year_min: int | None = None
    year_max: int | None = None
    exclude_ids: frozenset[int] = frozenset()
    only_ids: frozenset[int] | None = None
    has_poster: bool | None = None  # True: only movies with an image vector; False: only without
    collab_source: str | None = None  # "ratings" or "content": where the movie's collab vector came from
    unrated: bool = False  # True: only movies nobody has rated yet (payload local_rating_count 0)

    def is_empty(self) -> bool:
        return self == MovieFilter()


def fused_names(vectors: Mapping[str, Vector], weights: Mapping[str, float]) -> list[str]:
    """The named vectors a fused query searches: those with a positive weight."""
    return [n for n in vectors if weights.get(n, 0.0) > 0]


class MovieIndex(Protocol):
    """One index generation: an Edge shard or a server collection."""

    def upsert(self, points: Sequence[MoviePoint]) -> None: ...

    def delete(self, ids: Iterable[int]) -> None: ...

    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]: ...

    def stacked(self, ids: Sequence[int], name: str) -> Stacked:
        """The `name` vectors of those of `ids` that have one, in the order asked, as one matrix
        (see Stacked): a retrieve for a caller that does math on them all. An in-memory index
        gathers the rows from its own matrix instead of stacking the movies one by one."""
        ...

    def query(
        self,
        vector: Vector,
        using: str,
        limit: int,
        filter: MovieFilter | None = None,
        with_vectors: Sequence[str] = (),
        with_payload: bool = True,
    ) -> list[Hit]:
        """The `limit` nearest under the filter; a SparseVector on SPARSE_VECTOR scores by dot product
        with the engine's IDF applied. `with_payload=False` may leave `Hit.payload` empty, for a
        caller that holds the payloads already (converting them out of the engine costs time)."""
        ...

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
        """One query: for each named vector, prefetch its `prefetch_limit` (default `limit`) nearest
        under the filter, then fuse the lists by weighted reciprocal rank (see RRF_K); score = the
        fused score. A name whose weight is not positive is left out. A movie lacking one of the
        vectors can still come through the other prefetch."""
        ...

    def set_vectors(self, name: str, vectors: Mapping[int, np.ndarray]) -> None:
        """Set one named vector on existing points, keeping their other vectors and payload."""
        ...

    def delete_vectors(self, name: str, ids: Iterable[int]) -> None:
        """Remove one named vector from points; the points and their other vectors stay."""
        ...

    def set_payload(self, ids: Iterable[int], payload: Mapping[str, Any]) -> None:
        """Set these payload keys on existing points, keeping their other keys and vectors."""
        ...

    def popular(self, limit: int, filter: MovieFilter | None = None) -> list[Hit]:
        """The most rated movies (payload local_rating_count) under the filter; score = that count."""
        ...

    def count(self, filter: MovieFilter | None = None) -> int: ...

    def genres(self) -> dict[str, int]:
        """Every genre in the index with its number of movies (a facet on the keyword index)."""
        ...

    def payload_field(self, key: str) -> dict[int, Any]:
        """Movie id -> the payload value of `key` of every point (None where a point has none)."""
        ...

    def payload_schema(self) -> dict[str, str]:
        """Indexed payload field -> its index type in lower case ("keyword", "integer", "float")."""
        ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def content_hashes(index: MovieIndex) -> dict[int, str]:
    """Movie id -> content hash of every point of `index`, for incremental reindexing."""
    return {i: h or "" for i, h in index.payload_field("content_hash").items()}


def titles(index: MovieIndex) -> dict[int, str]:
    """Movie id -> title of every point of `index` (what search corrects misspelt words against)."""
    return {i: t or "" for i, t in index.payload_field("title").items()}


class IndexStore(Protocol):
    """Owns an engine's published index, and builds the next one without disturbing readers."""

    def manifest(self) -> Manifest | None:
        """The published index's manifest, or None when nothing is published."""
        ...

    def generation(self) -> str | None:
        """A token that changes whenever a new index is published."""
        ...

    def open(self) -> MovieIndex:
        """The published index, for reading. Raises IndexUnavailableError."""
        ...

    def published_hashes(self) -> dict[int, str]: ...

    def stage(self, manifest: Manifest, rebuild: bool, points: int = 0) -> MovieIndex:
        """A writable index to bring up to date: a resumed, copied or fresh one, for about `points`
        movies. Raises DiskSpaceError, before writing anything, where the engine's files would not fit."""
        ...

    def publish(self, index: MovieIndex, manifest: Manifest) -> None:
        """Atomically make `index` the published one."""
        ...

    def recover(self) -> None:
        """Finish what a killed ingest left half done, where the engine allows it (the ingest calls
        this before anything else; only one ingest runs at a time)."""
        ...


def payload_for(
    *,
    title: str,
    year: int | None,
    genres: list[str],
    popularity: float | None,
    vote_average: float | None,
    vote_count: int | None,
    has_poster: bool,
    content_hash: str,
    local_rating_count: int | None = None,
) -> dict[str, Any]:
    """The payload filters and answers need, plus the hash that makes reindexing incremental."""
    return {
        "title": title,
        "year": year,
        "genres": genres,
        # TMDB's score and votes: null when the source has none, as GET /movies/{id} says (not 0)
        "popularity": popularity,
        # this service's own number of ratings: what "popular" and the re-rank's boost mean here
        "local_rating_count": local_rating_count or 0,
        "vote_average": vote_average,
        "vote_count": vote_count,
        "has_poster": has_poster,
        "content_hash": content_hash,
    }
