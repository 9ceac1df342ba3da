"""The server engine: a Qdrant server or cluster through qdrant-client.

Layout on the server, for the alias `movies` (settings.collection):

    alias movies        -> the published collection; readers query through the alias only
    movies_<timestamp>  a collection; its metadata holds the manifest, and while unpublished a
                        `staging` marker, so a crashed rebuild is found and resumed

An incremental ingest upserts into the live collection: each upsert is atomic per point, so
readers never see half a point. A rebuild (or a model change) fills a new collection beside it,
then one `update_collection_aliases` call moves the alias, and only then is the old one dropped:
a reader's query resolves the alias to one whole collection or the other.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

import grpc
import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
from tenacity import Retrying, retry_if_exception, stop_after_attempt, stop_before_delay, wait_exponential

from app.errors import ConflictError, IndexUnavailableError
from app.settings import Settings
from app.vectorstore.base import (
    HALF_PRECISION_VECTORS,
    MAX_GENRES,
    RRF_K,
    SPARSE_VECTOR,
    Hit,
    Manifest,
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

SCROLL_PAGE = 2048
RETRY_ATTEMPTS = 4
RETRY_BASE_DELAY_S = 0.2
RETRY_BUDGET_S = 10.0  # no new attempt starts after this; a hung server cannot stall a caller long
PUBLISH_WAIT_S = 60.0  # how long publish waits for the optimiser before switching anyway
PAYLOAD_INDEXES = {
    "genres": models.PayloadSchemaType.KEYWORD,
    "year": models.PayloadSchemaType.INTEGER,
    "popularity": models.PayloadSchemaType.FLOAT,
    "local_rating_count": models.PayloadSchemaType.INTEGER,  # the server orders by a field only if indexed
    "collab_source": models.PayloadSchemaType.KEYWORD,  # the exploration share's filter (app/vectorstore/edge.py)
}
_TRANSIENT_GRPC = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
}

P = ParamSpec("P")
T = TypeVar("T")


# -- retries ----------------------------------------------------------------------------------
def is_transient(exc: BaseException) -> bool:
    """Connection failures, timeouts and 5xx are worth another try; 4xx never are."""
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is not None and exc.status_code >= 500
    if isinstance(exc, ResponseHandlingException):
        # The REST client wraps transport errors (refused, reset, timed out) in this.
        return isinstance(exc.source, httpx.TransportError | OSError)
    if isinstance(exc, grpc.RpcError):
        return exc.code() in _TRANSIENT_GRPC
    return isinstance(exc, httpx.TransportError | ConnectionError | TimeoutError)


def call_with_retries(where: str, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call `fn`, retrying transient failures (`is_transient`) with exponential backoff: at most
    RETRY_ATTEMPTS calls, RETRY_BASE_DELAY_S before the second, doubling, and no new attempt once
    RETRY_BUDGET_S would be passed.

    Raises IndexUnavailableError naming `where`, in one line, when the server stays unreachable,
    answers 429 (overloaded: not retried) or 404 (the collection behind the alias went away);
    any other error as it is, at once.
    """
    retrying = Retrying(
        stop=stop_after_attempt(RETRY_ATTEMPTS) | stop_before_delay(RETRY_BUDGET_S),
        wait=wait_exponential(multiplier=RETRY_BASE_DELAY_S),
        retry=retry_if_exception(is_transient),
        reraise=True,  # the last failure itself, not tenacity's RetryError
    )
    try:
        return retrying(fn, *args, **kwargs)
    except ResourceExhaustedResponse as exc:  # a 429: the server asked us to slow down
        raise IndexUnavailableError(f"Qdrant at {where} is overloaded: {_one_line(exc)}") from exc
    except Exception as exc:
        if isinstance(exc, UnexpectedResponse) and exc.status_code == 404:
            raise IndexUnavailableError(f"Qdrant at {where}: {_one_line(exc)}") from exc
        if is_transient(exc):  # retried until the attempts or the budget ran out
            raise IndexUnavailableError(f"Qdrant at {where} is unreachable: {_one_line(exc)}") from exc
        raise


def _one_line(exc: BaseException) -> str:
    """The server's own error message, else the underlying cause, on one line."""
    if isinstance(exc, UnexpectedResponse):
        try:
            return str(exc.structured()["status"]["error"]).splitlines()[0]
        except Exception:  # not the JSON error body Qdrant sends; fall back to the status line
            return f"HTTP {exc.status_code} {exc.reason_phrase}"
    source = getattr(exc, "source", None)  # ResponseHandlingException hides the real cause
    text = str(source or exc).strip() or type(exc).__name__
    return text.splitlines()[0]


# -- conversions ------------------------------------------------------------------------------
def server_filter(f: MovieFilter | None) -> models.Filter | None:
    if f is None or f.is_empty():
        return None
    must: list[Any] = []
    if f.genres:
        must.append(models.FieldCondition(key="genres", match=models.MatchAny(any=list(f.genres))))
    if f.year_min is not None or f.year_max is not None:
        must.append(models.FieldCondition(key="year", range=models.Range(gte=f.year_min, lte=f.year_max)))
    if f.only_ids is not None:
        must.append(models.HasIdCondition(has_id=sorted(f.only_ids)))
    if f.collab_source is not None:
        must.append(models.FieldCondition(key="collab_source", match=models.MatchValue(value=f.collab_source)))
    if f.unrated:
        must.append(models.FieldCondition(key="local_rating_count", match=models.MatchValue(value=0)))
    must_not: list[Any] = [models.HasIdCondition(has_id=sorted(f.exclude_ids))] if f.exclude_ids else []
    if f.has_poster is not None:
        # A poster exists exactly when the image vector does; Edge filters the same way.
        (must if f.has_poster else must_not).append(models.HasVectorCondition(has_vector="image"))
    return models.Filter(must=must or None, must_not=must_not or None)


def server_vector(v: Vector) -> Any:
    """A named vector as qdrant-client takes it: a list of floats, or a models.SparseVector."""
    if isinstance(v, SparseVector):
        return models.SparseVector(indices=list(v.indices), values=list(v.values))
    return np.asarray(v, dtype=np.float32).tolist()


def _vectors(raw: Any) -> dict[str, np.ndarray]:
    # Named vectors come back as a dict; anything else means none were asked for.
    if not isinstance(raw, dict):
        return {}
    return {name: np.asarray(v, dtype=np.float32) for name, v in raw.items()}


def _with_vectors(names: Sequence[str]) -> list[str] | bool:
    return list(names) if names else False


# -- one collection ---------------------------------------------------------------------------
class ServerIndex:
    """One collection, or the alias in front of it. Implements MovieIndex.

    The client belongs to the ServerStore that made this index, so close() leaves it open.
    """

    def __init__(self, client: QdrantClient, name: str, where: str = "qdrant") -> None:
        self._client = client
        self.name = name
        self._where = where

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return call_with_retries(self._where, fn, *args, **kwargs)

    def upsert(self, points: Sequence[MoviePoint]) -> None:
        if not points:
            return
        batch = [
            models.PointStruct(id=p.id, vector={k: server_vector(v) for k, v in p.vectors.items()}, payload=p.payload)
            for p in points
        ]
        # An upsert of the same points is idempotent, so retrying one is safe.
        self._call(self._client.upsert, self.name, points=batch, wait=True)

    def delete(self, ids: Iterable[int]) -> None:
        points: list[models.ExtendedPointId] = list(ids)
        if points:
            selector = models.PointIdsList(points=points)
            self._call(self._client.delete, self.name, points_selector=selector, wait=True)

    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        if not ids:
            return []
        records = self._call(
            self._client.retrieve,
            self.name,
            ids=list(ids),
            with_payload=True,
            with_vectors=_with_vectors(vectors),
        )
        found = {int(r.id): StoredMovie(int(r.id), r.payload or {}, _vectors(r.vector)) for r in records}
        return [found[i] for i in dict.fromkeys(ids) if i in found]  # the caller's order

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
        response = self._call(
            self._client.query_points,
            self.name,
            query=server_vector(vector),
            using=using,
            limit=limit,
            query_filter=server_filter(filter),
            with_payload=with_payload,
            with_vectors=_with_vectors(with_vectors),
        )
        return [Hit(int(p.id), float(p.score), p.payload or {}, _vectors(p.vector)) for p in response.points]

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
        names = fused_names(vectors, weights)
        if not names:
            return []
        flt = server_filter(filter)
        prefetch = [
            models.Prefetch(
                query=server_vector(vectors[n]),
                using=n,
                limit=prefetch_limit or limit,
                filter=flt,  # as on Edge: each prefetch filtered, and the fused list holds only their points
            )
            for n in names
        ]
        response = self._call(
            self._client.query_points,
            self.name,
            prefetch=prefetch,
            query=models.RrfQuery(rrf=models.Rrf(k=rrf_k, weights=[float(weights[n]) for n in names])),
            # No query_filter: the engine adds a root filter to each prefetch, checking it twice (edge.py).
            limit=limit,
            with_payload=with_payload,
            with_vectors=_with_vectors(with_vectors),
        )
        return [Hit(int(p.id), float(p.score), p.payload or {}, _vectors(p.vector)) for p in response.points]

    def set_vectors(self, name: str, vectors: Mapping[int, np.ndarray]) -> None:
        if not vectors:
            return
        points = [models.PointVectors(id=int(i), vector={name: np.asarray(v).tolist()}) for i, v in vectors.items()]
        # Setting the same vectors again is idempotent, so a retry is safe.
        self._call(self._client.update_vectors, self.name, points=points, wait=True)

    def delete_vectors(self, name: str, ids: Iterable[int]) -> None:
        points: list[models.ExtendedPointId] = [int(i) for i in ids]
        if points:
            selector = models.PointIdsList(points=points)
            self._call(self._client.delete_vectors, self.name, vectors=[name], points=selector, wait=True)

    def set_payload(self, ids: Iterable[int], payload: Mapping[str, Any]) -> None:
        points: list[models.ExtendedPointId] = [int(i) for i in ids]
        if points:
            selector = models.PointIdsList(points=points)
            self._call(self._client.set_payload, self.name, payload=dict(payload), points=selector, wait=True)

    def popular(self, limit: int, filter: MovieFilter | None = None) -> list[Hit]:
        records, _ = self._call(
            self._client.scroll,
            self.name,
            scroll_filter=server_filter(filter),
            limit=limit,
            order_by=models.OrderBy(key="local_rating_count", direction=models.Direction.DESC),
            with_payload=True,
            with_vectors=False,
        )
        return [Hit(int(r.id), float((r.payload or {}).get("local_rating_count", 0)), r.payload or {}) for r in records]

    def count(self, filter: MovieFilter | None = None) -> int:
        result = self._call(self._client.count, self.name, count_filter=server_filter(filter), exact=True)
        return int(result.count)

    def genres(self) -> dict[str, int]:
        response = self._call(self._client.facet, self.name, key="genres", limit=MAX_GENRES, exact=True)
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def payload_schema(self) -> dict[str, str]:
        schema = self._call(self._client.get_collection, self.name).payload_schema
        return {name: str(getattr(info.data_type, "value", info.data_type)).lower() for name, info in schema.items()}

    def payload_field(self, key: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        offset: Any = None
        while True:
            records, offset = self._call(
                self._client.scroll,
                self.name,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=[key],
                with_vectors=False,
            )
            for r in records:
                out[int(r.id)] = (r.payload or {}).get(key)
            if offset is None:
                return out

    def flush(self) -> None:
        """Nothing to do: every write waits until the server has applied it."""

    def close(self) -> None:
        """Nothing to do: the store owns the client."""


# -- the alias and its collections ------------------------------------------------------------
class ServerStore:
    """The collections behind one alias on a Qdrant server. Implements IndexStore."""

    def __init__(
        self,
        client: QdrantClient,
        alias: str = "movies",
        shards: int = 1,
        replication: int = 1,
        where: str | None = None,
    ) -> None:
        self._client = client
        self.alias = alias
        self._shards = shards
        self._replication = replication
        self._where = where or str(client.init_options.get("url") or client.init_options.get("location"))

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerStore:
        assert settings.qdrant_url, "from_settings needs QDRANT_URL"
        client = QdrantClient(
            url=settings.qdrant_url,
            api_key=settings.qdrant_api_key,
            prefer_grpc=settings.qdrant_grpc,
            timeout=math.ceil(settings.qdrant_timeout_s),  # the client takes whole seconds
        )
        return cls(
            client,
            alias=settings.collection,
            shards=settings.qdrant_shards,
            replication=settings.qdrant_replication,
            where=settings.qdrant_url,
        )

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return call_with_retries(self._where, fn, *args, **kwargs)

    def close(self) -> None:
        self._client.close()

    # -- reading ------------------------------------------------------------------------------
    def _target(self) -> str | None:
        """The collection the alias points to, or None when nothing is published."""
        aliases = self._call(self._client.get_aliases).aliases
        return next((a.collection_name for a in aliases if a.alias_name == self.alias), None)

    def _metadata(self, collection: str) -> dict[str, Any]:
        info = self._call(self._client.get_collection, collection)
        return dict(info.config.metadata or {})

    def generation(self) -> str | None:
        return self._target()

    def manifest(self) -> Manifest | None:
        target = self._target()
        return _manifest_of(self._metadata(target)) if target else None

    def open(self) -> MovieIndex:
        if self._target() is None:
            raise IndexUnavailableError(
                f"no index is published at {self._where} (alias {self.alias!r} is missing): run `movierec ingest`"
            )
        # Through the alias, so the next publish is picked up without reopening.
        return ServerIndex(self._client, self.alias, self._where)

    def published_hashes(self) -> dict[int, str]:
        target = self._target()
        return content_hashes(ServerIndex(self._client, target, self._where)) if target else {}

    # -- writing ------------------------------------------------------------------------------
    def stage(self, manifest: Manifest, rebuild: bool, points: int = 0) -> ServerIndex:  # the server's own disk
        target = self._target()
        if not rebuild and target and manifest.compatible(_manifest_of(self._metadata(target))):
            self._ensure_payload_indexes(target)  # an older version may have made fewer of them
            return ServerIndex(self._client, target, self._where)
        stagings = self._stagings()
        resumable = [
            name
            for name, meta in stagings.items()
            if manifest.compatible(_manifest_of(meta)) and (meta["staging"].get("rebuild", True) or not rebuild)
        ]
        if resumable:
            name = max(resumable)  # names carry a timestamp: the newest
            self._ensure_payload_indexes(name)  # a crash may have come before they were made
        else:
            name = self._create(manifest, rebuild)
        for stale in stagings.keys() - {name}:  # like Edge, keep one staging at most
            self._call(self._client.delete_collection, stale)
        return ServerIndex(self._client, name, self._where)

    def recover(self) -> None:
        """Nothing to finish: a publish's switch is one alias operation on the server, and an
        unfinished staging collection is resumed by `stage`."""

    def publish(self, index: MovieIndex, manifest: Manifest) -> None:
        if not isinstance(index, ServerIndex):
            raise TypeError(f"ServerStore cannot publish a {type(index).__name__}")
        name = index.name
        # A null removes the staging marker: the collection is now a finished generation.
        self._call(self._client.update_collection, name, metadata={"manifest": manifest.to_dict(), "staging": None})
        target = self._target()
        if target == name:
            return  # an incremental update of the live collection: nothing to switch
        if target is None and self._call(self._client.collection_exists, self.alias):
            # Say so plainly, rather than let the server refuse the alias with a 4xx.
            raise ConflictError(
                f"Qdrant at {self._where} has a collection named {self.alias!r} where the alias "
                "should be: delete or rename it, or set MOVIEREC_COLLECTION"
            )
        self._wait_optimised(name)
        operations: list[models.CreateAliasOperation | models.DeleteAliasOperation] = []
        if target:
            operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        operations.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=name, alias_name=self.alias))
        )
        # One call, so the server applies both or neither: the alias never dangles.
        self._call(self._client.update_collection_aliases, change_aliases_operations=operations)
        if target:
            self._call(self._client.delete_collection, target)

    def _stagings(self) -> dict[str, dict[str, Any]]:
        """Unpublished collections of this alias, by name, with their metadata."""
        names = [c.name for c in self._call(self._client.get_collections).collections]
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            if name.startswith(f"{self.alias}_"):
                meta = self._metadata(name)
                if isinstance(meta.get("staging"), dict):
                    out[name] = meta
        return out

    def _create(self, manifest: Manifest, rebuild: bool) -> str:
        name = f"{self.alias}_{time.strftime('%Y%m%dT%H%M%S')}_{time.time_ns() % 1_000_000:06d}"
        vectors = {
            vname: models.VectorParams(
                size=dim,
                distance=models.Distance.COSINE,
                datatype=models.Datatype.FLOAT16 if vname in HALF_PRECISION_VECTORS else None,
            )
            for vname, dim in manifest.vector_dims().items()
        }
        self._call(
            self._client.create_collection,
            name,
            vectors_config=vectors,
            # BM25 term weights; the IDF modifier makes the engine weigh each term by its rarity.
            sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            shard_number=self._shards,
            replication_factor=self._replication,
            metadata={"manifest": manifest.to_dict(), "staging": {"rebuild": rebuild}},
        )
        self._ensure_payload_indexes(name)
        return name

    def _ensure_payload_indexes(self, name: str) -> None:
        with warnings.catch_warnings():
            # qdrant-client's in-memory mode warns that it ignores payload indexes; a server uses them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect", category=UserWarning)
            for field, schema in PAYLOAD_INDEXES.items():
                self._call(self._client.create_payload_index, name, field_name=field, field_schema=schema)

    def _wait_optimised(self, name: str) -> None:
        """Give the optimiser a bounded time to build the HNSW graphs before readers arrive."""
        deadline = time.monotonic() + PUBLISH_WAIT_S
        while time.monotonic() < deadline:
            status = self._call(self._client.get_collection, name).status
            if status != models.CollectionStatus.YELLOW:
                return
            time.sleep(0.5)


def _manifest_of(metadata: dict[str, Any]) -> Manifest | None:
    data = metadata.get("manifest")
    return Manifest.from_dict(data) if isinstance(data, dict) else None
