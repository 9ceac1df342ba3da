"""The embedded engine: Qdrant Edge (qdrant-edge-py), in-process.

An Edge shard locks its directory, so one process at a time may open it. Hence the layout:

    <root>/CURRENT                 name of the published generation, replaced atomically
    <root>/gen-<timestamp>/        a published generation: shard/, manifest.json, hashes.json
    <root>/staging/                the next generation being built; survives a crash and is resumed

    <root>/readers/<gen>.<pid>.<n>/  a reader's private copy of a generation, while it has it open

Readers open the generation CURRENT names; the ingest never touches it. It builds `staging/`
(resumed after a crash, else a copy of the current generation, else empty), then renames it
to a new generation and switches CURRENT. A reader notices the new name and reopens.

The first reader opens the generation in place. Another reader (a second API worker) finds it
locked and opens a private copy instead, deleted when it closes; copies left by a killed process
are swept by the next reader that copies.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from app.errors import IndexUnavailable
from app.vectorstore.base import (
    MAX_GENRES,
    RRF_K,
    Hit,
    Manifest,
    MovieFilter,
    MovieIndex,
    MoviePoint,
    StoredMovie,
    fused_names,
)

KEEP_GENERATIONS = 2  # the current one and the one before, which a slow reader may still hold
SCROLL_PAGE = 2048


def edge_filter(f: MovieFilter | None) -> qe.Filter | None:
    if f is None or f.is_empty():
        return None
    must: list[Any] = []
    if f.genres:
        must.append(qe.FieldCondition("genres", match=qe.MatchAny(list(f.genres))))
    if f.year_min is not None or f.year_max is not None:
        must.append(qe.FieldCondition("year", range=qe.RangeFloat(gte=f.year_min, lte=f.year_max)))
    if f.only_ids is not None:
        must.append(qe.HasIdCondition(set(f.only_ids)))
    if f.collab_source is not None:
        must.append(qe.FieldCondition("collab_source", match=qe.MatchValue(f.collab_source)))
    must_not: list[Any] = [qe.HasIdCondition(set(f.exclude_ids))] if f.exclude_ids else []
    if f.has_poster is not None:
        # A poster exists in the index exactly when the image vector does. (Edge 0.9 cannot
        # match booleans: MatchValue(True) finds nothing, index or not.)
        (must if f.has_poster else must_not).append(qe.HasVectorCondition("image"))
    return qe.Filter(must=must or None, must_not=must_not or None)


def _vectors(raw: Any) -> dict[str, np.ndarray]:
    if not raw:
        return {}
    return {name: np.asarray(v, dtype=np.float32) for name, v in raw.items()}


class ShardLocked(IndexUnavailable):
    """Another open shard (another process, or another handle in this one) holds the directory."""


class EdgeIndex:
    """One Edge shard. Implements MovieIndex."""

    def __init__(self, shard: qe.EdgeShard, owned_dir: Path | None = None) -> None:
        self._shard = shard
        self._owned_dir = owned_dir  # a private copy, deleted on close

    @classmethod
    def create(cls, path: Path, manifest: Manifest) -> EdgeIndex:
        config = qe.EdgeConfig(
            vectors={
                name: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
                for name, dim in manifest.vector_dims().items()
            },
            payload_memory=qe.Memory.Cached,
        )
        shard = qe.EdgeShard.create(str(path), config)
        shard.update(qe.UpdateOperation.create_field_index("genres", qe.PayloadSchemaType.Keyword))
        shard.update(qe.UpdateOperation.create_field_index("year", qe.PayloadSchemaType.Integer))
        # popularity orders the cold-start answer; ordering by a field needs its index
        shard.update(qe.UpdateOperation.create_field_index("popularity", qe.PayloadSchemaType.Float))
        return cls(shard)

    @classmethod
    def load(cls, path: Path, owned_dir: Path | None = None) -> EdgeIndex:
        try:
            return cls(qe.EdgeShard.load(str(path)), owned_dir)
        except Exception as exc:  # the binding raises bare Exception
            if "WouldBlock" in str(exc):
                raise ShardLocked(f"the index at {path} is open in another process") from exc
            raise IndexUnavailable(f"cannot open the index at {path}: {exc}") from exc

    def upsert(self, points: Sequence[MoviePoint]) -> None:
        if not points:
            return
        batch = [
            qe.Point(p.id, {k: v.tolist() for k, v in p.vectors.items()}, p.payload) for p in points
        ]
        self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if ids:
            self._shard.update(qe.UpdateOperation.delete_points(ids))

    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        if not ids:
            return []
        records = self._shard.retrieve(
            list(ids), with_payload=True, with_vector=list(vectors) if vectors else False
        )
        return [StoredMovie(int(r.id), r.payload or {}, _vectors(r.vector)) for r in records]

    def query(
        self,
        vector: np.ndarray,
        using: str,
        limit: int,
        filter: MovieFilter | None = None,
        with_vectors: Sequence[str] = (),
        with_payload: bool = True,
    ) -> list[Hit]:
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(np.asarray(vector, dtype=np.float32).tolist(), using=using),
            filter=edge_filter(filter),
            with_payload=with_payload,
            with_vector=list(with_vectors) if with_vectors else False,
        )
        return [
            Hit(int(p.id), float(p.score), p.payload or {}, _vectors(p.vector))
            for p in self._shard.query(request)
        ]

    def query_fused(
        self,
        vectors: Mapping[str, np.ndarray],
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
        flt = edge_filter(filter)
        prefetches = [
            qe.Prefetch(
                limit=prefetch_limit or limit,
                query=qe.Query.Nearest(np.asarray(vectors[n], dtype=np.float32).tolist(), using=n),
                filter=flt,  # on each prefetch too: the fused list must never hold a filtered-out movie
            )
            for n in names
        ]
        request = qe.QueryRequest(
            limit=limit,
            prefetches=prefetches,
            query=qe.Fusion.Rrf(k=rrf_k, weights=[float(weights[n]) for n in names]),
            filter=flt,
            with_payload=with_payload,
            with_vector=list(with_vectors) if with_vectors else False,
        )
        return [
            Hit(int(p.id), float(p.score), p.payload or {}, _vectors(p.vector))
            for p in self._shard.query(request)
        ]

    def set_vectors(self, name: str, vectors: Mapping[int, np.ndarray]) -> None:
        if not vectors:
            return
        batch = [qe.PointVectors(int(i), {name: np.asarray(v, dtype=np.float32).tolist()}) for i, v in vectors.items()]
        self._shard.update(qe.UpdateOperation.update_vectors(batch))

    def delete_vectors(self, name: str, ids: Iterable[int]) -> None:
        ids = [int(i) for i in ids]
        if ids:
            self._shard.update(qe.UpdateOperation.delete_vectors(ids, [name]))

    def set_payload(self, ids: Iterable[int], payload: Mapping[str, Any]) -> None:
        ids = [int(i) for i in ids]
        if ids:
            self._shard.update(qe.UpdateOperation.set_payload(ids, dict(payload)))

    def popular(self, limit: int, filter: MovieFilter | None = None) -> list[Hit]:
        records, _ = self._shard.scroll(
            qe.ScrollRequest(
                limit=limit,
                filter=edge_filter(filter),
                with_payload=True,
                order_by=qe.OrderBy("popularity", direction=qe.Direction.Desc),
            )
        )
        return [Hit(int(r.id), float((r.payload or {}).get("popularity", 0.0)), r.payload or {}) for r in records]

    def count(self, filter: MovieFilter | None = None) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True, filter=edge_filter(filter))))

    def genres(self) -> dict[str, int]:
        response = self._shard.facet(qe.FacetRequest("genres", limit=MAX_GENRES, exact=True))
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def hashes(self) -> dict[int, str]:
        out: dict[int, str] = {}
        offset = None
        while True:
            records, offset = self._shard.scroll(
                qe.ScrollRequest(offset=offset, limit=SCROLL_PAGE, with_payload=["content_hash"])
            )
            for r in records:
                out[int(r.id)] = (r.payload or {}).get("content_hash", "")
            if offset is None:
                return out

    def optimize(self) -> None:
        """Build the HNSW graphs and merge segments; slow, so only before publishing."""
        self._shard.optimize()

    def flush(self) -> None:
        self._shard.flush()

    def close(self) -> None:
        self._shard.close()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)


class EdgeStore:
    """The generations of Edge indexes under one directory. Implements IndexStore."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- reading ------------------------------------------------------------------------------
    def generation(self) -> str | None:
        try:
            return (self.root / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def _current_dir(self) -> Path | None:
        gen = self.generation()
        return self.root / gen if gen else None

    def manifest(self) -> Manifest | None:
        current = self._current_dir()
        return _read_manifest(current) if current else None

    def open(self) -> MovieIndex:
        current = self._current_dir()
        if current is None or not (current / "shard").exists():
            raise IndexUnavailable("the index is not built yet: run `movierec ingest`")
        try:
            return EdgeIndex.load(current / "shard")
        except ShardLocked:
            return self._open_copy(current)

    def _open_copy(self, generation: Path) -> EdgeIndex:
        """A private copy of a published generation, for a reader that found it locked. Published
        generations are never written, so a copy taken while another reader has it open is whole."""
        readers = self.root / "readers"
        _sweep_dead_readers(readers)
        own = readers / f"{generation.name}.{os.getpid()}.{time.monotonic_ns()}"
        shutil.copytree(generation / "shard", own / "shard")
        try:
            return EdgeIndex.load(own / "shard", owned_dir=own)
        except BaseException:
            shutil.rmtree(own, ignore_errors=True)
            raise

    def published_hashes(self) -> dict[int, str]:
        current = self._current_dir()
        if current is None:
            return {}
        data = json.loads((current / "hashes.json").read_text())
        return {int(k): v for k, v in data.items()}

    # -- writing ------------------------------------------------------------------------------
    @property
    def _staging(self) -> Path:
        return self.root / "staging"

    def stage(self, manifest: Manifest, rebuild: bool) -> EdgeIndex:
        staging = self._staging
        state = _read_json(staging / "staging.json")
        resumable = (
            state is not None
            and manifest.compatible(Manifest.from_dict(state["manifest"]))
            and (state["fresh"] or not rebuild)
            and (staging / "shard").exists()
        )
        if resumable:
            return EdgeIndex.load(staging / "shard")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        current = self._current_dir()
        fresh = rebuild or current is None or not manifest.compatible(_read_manifest(current))
        if fresh:
            index = EdgeIndex.create(staging / "shard", manifest)
        else:
            assert current is not None
            shutil.copytree(current / "shard", staging / "shard")
            index = EdgeIndex.load(staging / "shard")
        _write_json(staging / "staging.json", {"manifest": manifest.to_dict(), "fresh": fresh})
        return index

    def publish(self, index: MovieIndex, manifest: Manifest) -> None:
        hashes = index.hashes()
        if isinstance(index, EdgeIndex):
            index.optimize()
        index.flush()
        index.close()
        staging = self._staging
        _write_json(staging / "hashes.json", {str(k): v for k, v in hashes.items()})
        _write_json(staging / "manifest.json", manifest.to_dict())
        (staging / "staging.json").unlink()
        name = time.strftime("gen-%Y%m%dT%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        staging.rename(self.root / name)
        _write_text_atomic(self.root / "CURRENT", name)
        self._prune(keep=name)

    def _prune(self, keep: str) -> None:
        gens = sorted(p for p in self.root.glob("gen-*") if p.is_dir())
        old = [p for p in gens if p.name != keep][: -(KEEP_GENERATIONS - 1) or None]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)


def _sweep_dead_readers(readers: Path) -> None:
    """Delete copies whose process is gone (killed before it could close them)."""
    for path in readers.glob("*.*.*"):
        pid = int(path.name.split(".")[-2])
        if not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _read_manifest(gen_dir: Path) -> Manifest | None:
    data = _read_json(gen_dir / "manifest.json")
    return Manifest.from_dict(data) if data else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def _write_json(path: Path, data: Any) -> None:
    _write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def _write_text_atomic(path: Path, text: str) -> None:
    """Write beside, fsync, then rename: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
