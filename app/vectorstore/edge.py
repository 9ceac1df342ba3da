"""The embedded engine: Qdrant Edge (qdrant-edge-py), in-process.

An Edge shard locks its directory, so one process at a time may open it. Hence the layout:

    <root>/CURRENT                 name of the published generation, replaced atomically
    <root>/gen-<timestamp>/        a published generation: shard/, manifest.json, hashes.json
    <root>/staging/                the next generation being built; survives a crash and is resumed

    <root>/readers/<gen>.<pid>.<n>/  a reader's private copy of a generation, while it has it open

Readers open the generation CURRENT names; the ingest never touches it. It builds `staging/`
(resumed after a crash, else a copy of the current generation, else empty), then renames it
to a new generation and switches CURRENT. A reader notices the new name and reopens. A CURRENT
that cannot be followed (not text, a directory, no generation name, a generation that is not
there, deleted while generations exist) is IndexUnavailableError for readers, with a message that
names no path; for the ingest it is "nothing published", so the next ingest repairs it.

The first reader opens the generation in place. Another reader (a second API worker) finds it
locked and opens a private copy instead, deleted when it closes; copies left by a killed process
are swept by the next reader that copies. The copy hard-links the engine's bulk data files (the
ones a reader never writes) and copies the rest, which the engine rewrites in place on open.

An `optimize()` killed halfway leaves its segment builders in `shard/temp_segments/`; the engine
never removes them, so the ingest does before resuming and before publishing.

A publish is three steps: mark the complete staging index (`staging.json` renamed `complete.json`),
rename it to a generation, write CURRENT (then the mark goes). A kill between them leaves the mark,
and the next ingest's `recover()` finishes the publish instead of embedding everything again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from app.errors import DiskSpaceError, IndexUnavailableError
from app.files import atomic_write, copy_sparse, copy_tree_sparse, process_alive
from app.vectorstore.base import (
    HALF_PRECISION_VECTORS,
    MAX_GENRES,
    NOT_BUILT,
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

log = logging.getLogger(__name__)

SPACE_MARGIN = 64 << 20  # the engine grows its write-ahead log and vector chunks 32 MiB at a time
KEEP_GENERATIONS = 2  # the current one and the one before, which a slow reader may still hold
SCROLL_PAGE = 2048
GENERATION_NAME = re.compile(r"gen-[A-Za-z0-9_.-]+")
# In a staging index, or a generation, that is complete but not yet published (named by CURRENT):
# a publish killed halfway leaves it, and the next ingest finishes that publish (EdgeStore.recover).
COMPLETE = "complete.json"
TEMP_SEGMENTS = "temp_segments"  # where the engine's optimizer builds segments before swapping them in
# Engine files written only while a segment is built, never by a reader that opens it: a reader's
# copy may share them (hard links). Measured on qdrant-edge-py 0.9: opening and closing a shard
# rewrites in place its flags_*.dat, tracker.dat, status.dat and deleted.dat, and replaces its
# *.json by rename; those are copied. tests/test_index_trust.py checks that a reader leaves the
# shared files byte-for-byte and mtime-for-mtime as they were.
SHAREABLE = re.compile(
    r"matrix\.dat|page_\d+\.dat|chunk_\d+\.mmap|graph\.bin|links(_compressed)?\.bin"
    r"|point_to_values\.bin|(open|closed)-\d+"
)


PAYLOAD_INDEXES = {
    "genres": qe.PayloadSchemaType.Keyword,
    "year": qe.PayloadSchemaType.Integer,
    # the rating count orders the cold-start answer; ordering by a field needs its index
    "popularity": qe.PayloadSchemaType.Float,
    "local_rating_count": qe.PayloadSchemaType.Integer,
    # The exploration share's filter (new movies: collab predicted from content). Without an index the
    # engine reads every point's payload: 21-27 ms per query on the demo, 0.3 ms with it.
    "collab_source": qe.PayloadSchemaType.Keyword,
}


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
    if f.unrated:
        must.append(qe.FieldCondition("local_rating_count", match=qe.MatchValue(0)))
    must_not: list[Any] = [qe.HasIdCondition(set(f.exclude_ids))] if f.exclude_ids else []
    if f.has_poster is not None:
        # A poster exists in the index exactly when the image vector does. (Edge 0.9 cannot
        # match booleans: MatchValue(True) finds nothing, index or not.)
        (must if f.has_poster else must_not).append(qe.HasVectorCondition("image"))
    return qe.Filter(must=must or None, must_not=must_not or None)


def edge_vector(v: Vector) -> Any:
    """A named vector as the binding takes it: a list of floats, or a qe.SparseVector."""
    if isinstance(v, SparseVector):
        return qe.SparseVector(list(v.indices), list(v.values))
    return np.asarray(v, dtype=np.float32).tolist()


def _vectors(raw: Any) -> dict[str, np.ndarray]:
    if not raw:
        return {}
    return {name: np.asarray(v, dtype=np.float32) for name, v in raw.items()}


def _hits(points: Sequence[Any], with_payload: bool, with_vectors: Sequence[str]) -> list[Hit]:
    """The engine's scored points as Hits. Their payload and vector are read only when asked for:
    each read converts the engine's value, and the vector cache's searches ask for neither (a heavy
    user's 250 fused candidates: 0.3 ms)."""
    if with_payload or with_vectors:
        return [Hit(int(p.id), float(p.score), p.payload or {}, _vectors(p.vector)) for p in points]
    return [Hit(int(p.id), float(p.score), {}) for p in points]


class ShardLockedError(IndexUnavailableError):
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
                name: qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Cosine,
                    datatype=qe.VectorStorageDatatype.Float16 if name in HALF_PRECISION_VECTORS else None,
                )
                for name, dim in manifest.vector_dims().items()
            },
            # BM25 term weights; the IDF modifier makes the engine weigh each term by its rarity.
            sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            payload_memory=qe.Memory.Cached,
        )
        index = cls(qe.EdgeShard.create(str(path), config))
        index.ensure_payload_indexes()
        return index

    def ensure_payload_indexes(self) -> None:
        """Create the payload indexes of PAYLOAD_INDEXES that the shard lacks (a generation built by
        an older version gets the new ones in its next incremental build)."""
        have = self._shard.info().payload_schema
        for name, schema in PAYLOAD_INDEXES.items():
            if name not in have:
                self._shard.update(qe.UpdateOperation.create_field_index(name, schema))

    @classmethod
    def load(cls, path: Path, owned_dir: Path | None = None) -> EdgeIndex:
        """Open the shard at `path` (`<root>/<generation>/shard`). Raises ShardLockedError, or
        IndexUnavailableError naming the generation only: the path and the engine's words go to the log."""
        try:
            return cls(qe.EdgeShard.load(str(path)), owned_dir)
        except BaseException as exc:  # the binding raises bare Exception, and a Rust panic a BaseException
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            name = path.parent.name
            if "WouldBlock" in str(exc):
                raise ShardLockedError(f"index {name} is open in another process") from exc
            log.error("cannot open an Edge shard", extra={"path": str(path), "error": str(exc)})
            raise IndexUnavailableError(f"index generation {name} cannot be opened: it is damaged") from exc

    def upsert(self, points: Sequence[MoviePoint]) -> None:
        if not points:
            return
        batch = [qe.Point(p.id, {k: edge_vector(v) for k, v in p.vectors.items()}, p.payload) for p in points]
        self._shard.update(qe.UpdateOperation.upsert_points(batch))

    def delete(self, ids: Iterable[int]) -> None:
        points: list[qe.PointId] = list(ids)
        if points:
            self._shard.update(qe.UpdateOperation.delete_points(points))

    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        if not ids:
            return []
        records = self._shard.retrieve(list(ids), with_payload=True, with_vector=list(vectors) if vectors else False)
        return [StoredMovie(int(r.id), r.payload or {}, _vectors(r.vector)) for r in records]

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
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(edge_vector(vector), using=using),
            filter=edge_filter(filter),
            with_payload=with_payload,
            with_vector=list(with_vectors) if with_vectors else False,
        )
        return _hits(self._shard.query(request), with_payload, with_vectors)

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
        flt = edge_filter(filter)
        prefetches = [
            qe.Prefetch(
                limit=prefetch_limit or limit,
                query=qe.Query.Nearest(edge_vector(vectors[n]), using=n),
                filter=flt,  # the fused list holds only prefetched points: none is filtered out
            )
            for n in names
        ]
        request = qe.QueryRequest(
            limit=limit,
            prefetches=prefetches,
            # The stub's ScoringQueryType names Fusion, not its Rrf class, which the engine takes.
            query=qe.Fusion.Rrf(k=rrf_k, weights=[float(weights[n]) for n in names]),  # type: ignore[arg-type]
            # No filter here: the engine would add it to each prefetch's own, checking every condition
            # twice (a heavy user's 5,000 excluded ids: 7.3 -> 4.1 ms CPU per query on the demo).
            with_payload=with_payload,
            with_vector=list(with_vectors) if with_vectors else False,
        )
        return _hits(self._shard.query(request), with_payload, with_vectors)

    def set_vectors(self, name: str, vectors: Mapping[int, np.ndarray]) -> None:
        if not vectors:
            return
        batch = [qe.PointVectors(int(i), {name: np.asarray(v, dtype=np.float32).tolist()}) for i, v in vectors.items()]
        self._shard.update(qe.UpdateOperation.update_vectors(batch))

    def delete_vectors(self, name: str, ids: Iterable[int]) -> None:
        points: list[qe.PointId] = [int(i) for i in ids]
        if points:
            self._shard.update(qe.UpdateOperation.delete_vectors(points, [name]))

    def set_payload(self, ids: Iterable[int], payload: Mapping[str, Any]) -> None:
        points: list[qe.PointId] = [int(i) for i in ids]
        if points:
            self._shard.update(qe.UpdateOperation.set_payload(points, dict(payload)))

    def popular(self, limit: int, filter: MovieFilter | None = None) -> list[Hit]:
        records, _ = self._shard.scroll(
            qe.ScrollRequest(
                limit=limit,
                filter=edge_filter(filter),
                with_payload=True,
                order_by=qe.OrderBy("local_rating_count", direction=qe.Direction.Desc),
            )
        )
        return [Hit(int(r.id), float((r.payload or {}).get("local_rating_count", 0)), r.payload or {}) for r in records]

    def count(self, filter: MovieFilter | None = None) -> int:
        return int(self._shard.count(qe.CountRequest(exact=True, filter=edge_filter(filter))))

    def genres(self) -> dict[str, int]:
        response = self._shard.facet(qe.FacetRequest("genres", limit=MAX_GENRES, exact=True))
        return {str(hit.value): int(hit.count) for hit in response.hits}

    def payload_schema(self) -> dict[str, str]:
        schema = self._shard.info().payload_schema
        return {name: str(info.data_type).rsplit(".", 1)[-1].lower() for name, info in schema.items()}

    def payload_field(self, key: str) -> dict[int, Any]:
        out: dict[int, Any] = {}
        offset = None
        while True:
            records, offset = self._shard.scroll(qe.ScrollRequest(offset=offset, limit=SCROLL_PAGE, with_payload=[key]))
            for r in records:
                out[int(r.id)] = (r.payload or {}).get(key)
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
        """The published generation's name, None when nothing was ever published.

        Raises IndexUnavailableError, with a message that names no path, when CURRENT cannot be
        followed: not UTF-8 text, a directory, unreadable, not a generation's name, naming a
        generation that is not on disk, or missing while generations are."""
        try:
            name = (self.root / "CURRENT").read_bytes().decode("utf-8").strip()
        except FileNotFoundError:
            if any(p.is_dir() for p in self.root.glob("gen-*")):
                raise IndexUnavailableError(_damaged("is missing, though index generations are on disk")) from None
            return None
        except UnicodeDecodeError:
            raise IndexUnavailableError(_damaged("is not UTF-8 text")) from None
        except OSError as exc:  # a directory, no permission, an I/O error: strerror names no path
            raise IndexUnavailableError(_damaged(f"cannot be read ({exc.strerror or type(exc).__name__})")) from None
        if not GENERATION_NAME.fullmatch(name):
            raise IndexUnavailableError(_damaged("does not name an index generation"))
        if not (self.root / name / "shard").is_dir():
            raise IndexUnavailableError(_damaged(f"names generation {name}, which is not on disk"))
        return name

    def _published_dir(self) -> Path | None:
        """The published generation's directory for the ingest, which treats a damaged CURRENT as
        nothing published: it builds afresh and its publish repairs CURRENT."""
        try:
            gen = self.generation()
        except IndexUnavailableError as exc:
            log.warning("ignoring the published index", extra={"problem": str(exc)})
            return None
        return self.root / gen if gen else None

    def manifest(self) -> Manifest | None:
        current = self._published_dir()
        return _read_manifest(current) if current else None

    def open(self) -> MovieIndex:
        """The published generation, opened in place or, when another process holds it, as a private
        copy. Raises IndexUnavailableError (naming no path) when none is published or it cannot be opened."""
        name = self.generation()
        if name is None:
            raise IndexUnavailableError(NOT_BUILT)
        current = self.root / name
        try:
            index = EdgeIndex.load(current / "shard")
        except ShardLockedError:
            index = self._open_copy(current)
        _check_complete(index, name, _read_manifest(current))
        return index

    def _open_copy(self, generation: Path) -> EdgeIndex:
        """A private copy of a published generation, for a reader that found it locked. Published
        generations are never rebuilt, so a copy taken while another reader has it open is whole.
        Bulk files are hard links (shared pages, no copying); see SHAREABLE."""
        readers = self.root / "readers"
        _sweep_dead_readers(readers)
        own = readers / f"{generation.name}.{os.getpid()}.{time.monotonic_ns()}"
        try:
            shutil.copytree(
                generation / "shard",
                own / "shard",
                copy_function=_link_or_copy,
                ignore=lambda d, names: [TEMP_SEGMENTS] if TEMP_SEGMENTS in names else [],
            )
            return EdgeIndex.load(own / "shard", owned_dir=own)
        except BaseException as exc:
            shutil.rmtree(own, ignore_errors=True)
            if isinstance(exc, OSError):  # e.g. the disk is full: say so without the path
                log.error("cannot copy an index generation", extra={"path": str(own), "error": str(exc)})
                raise IndexUnavailableError(
                    f"index generation {generation.name} cannot be copied for this reader"
                ) from exc
            raise

    def published_hashes(self) -> dict[int, str]:
        current = self._published_dir()
        data = _read_json(current / "hashes.json") if current else None
        return {int(k): v for k, v in data.items()} if isinstance(data, dict) else {}

    # -- writing ------------------------------------------------------------------------------
    @property
    def _staging(self) -> Path:
        return self.root / "staging"

    def stage(self, manifest: Manifest, rebuild: bool, points: int = 0) -> EdgeIndex:
        staging = self._staging
        self._check_space(manifest, points)
        state = _read_json(staging / "staging.json")
        resumable = (
            state is not None
            and manifest.compatible(Manifest.from_dict(state["manifest"]))
            and (state["fresh"] or not rebuild)
            and (staging / "shard").exists()
        )
        if resumable:
            index = EdgeIndex.load(staging / "shard")
            _sweep_temp_segments(staging / "shard")  # after load: the shard's lock is ours now
            return index
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        current = self._published_dir()
        fresh = rebuild or current is None or not manifest.compatible(_read_manifest(current))
        if fresh:
            index = EdgeIndex.create(staging / "shard", manifest)
        else:
            assert current is not None
            copy_tree_sparse(current / "shard", staging / "shard", ignore=TEMP_SEGMENTS)
            index = EdgeIndex.load(staging / "shard")
            index.ensure_payload_indexes()
        _write_json(staging / "staging.json", {"manifest": manifest.to_dict(), "fresh": fresh})
        return index

    def _check_space(self, manifest: Manifest, points: int) -> None:
        """DiskSpaceError, before anything is written, when the index folder's file system has less
        free space (the staging index's own bytes counted as free: it is resumed or replaced) than
        `space_needed`. The engine writes through mmap: a full disk kills it with SIGBUS instead."""
        self.root.mkdir(parents=True, exist_ok=True)
        fs = os.statvfs(self.root)
        free = fs.f_bavail * fs.f_frsize + allocated_bytes(self._staging)
        current = self._published_dir()
        need = space_needed(manifest, points, allocated_bytes(current / "shard") if current else 0)
        if free < need:
            raise DiskSpaceError(
                f"not enough free disk for a new index generation in {self.root}: about {need:,} bytes "
                f"({need / 2**20:,.0f} MiB) needed, {free:,} ({free / 2**20:,.0f} MiB) free; free some space or "
                "set MOVIEREC_DATA_DIR to a larger disk, then run the ingest again (the published index is unchanged)"
            )

    def publish(self, index: MovieIndex, manifest: Manifest) -> None:
        hashes = content_hashes(index)
        if isinstance(index, EdgeIndex):
            index.optimize()
        index.flush()
        index.close()
        staging = self._staging
        _sweep_temp_segments(staging / "shard")  # a finished optimize leaves none; a killed one did
        _write_json(staging / "hashes.json", {str(k): v for k, v in hashes.items()})
        _write_json(staging / "manifest.json", manifest.to_dict())
        (staging / "staging.json").rename(staging / COMPLETE)  # from here on, `recover` finishes the publish
        self._finish_publish()

    def recover(self) -> None:
        """Finish a publish that a killed ingest left between its steps: a complete staging index
        not yet renamed, or a generation renamed but not yet named by CURRENT. The ingest calls this
        first, so such a run is published as it is, not embedded again."""
        if (self._staging / COMPLETE).is_file():
            log.warning("finishing an interrupted publish of the complete staging index")
            self._finish_publish()
            return
        pending = sorted(p.parent for p in self.root.glob(f"gen-*/{COMPLETE}"))
        if pending:
            log.warning("finishing an interrupted publish", extra={"index_generation": pending[-1].name})
            self._point_at(pending[-1].name)

    def _finish_publish(self) -> None:
        """Rename the complete staging index to a new generation and point CURRENT at it."""
        name = time.strftime("gen-%Y%m%dT%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}"
        self._staging.rename(self.root / name)  # a folder: published by its own rename, then pointed at by CURRENT
        self._point_at(name)

    def _point_at(self, name: str) -> None:
        _write_text_atomic(self.root / "CURRENT", name)
        (self.root / name / COMPLETE).unlink(missing_ok=True)
        self._prune(keep=name)

    def _prune(self, keep: str) -> None:
        gens = sorted(p for p in self.root.glob("gen-*") if p.is_dir())
        old = [p for p in gens if p.name != keep][: -(KEEP_GENERATIONS - 1) or None]
        for path in old:
            shutil.rmtree(path, ignore_errors=True)


def space_needed(manifest: Manifest, points: int, published_bytes: int) -> int:
    """A conservative estimate of the bytes a new generation takes on disk while it is built: each
    movie's vectors three times as float32 (the write-ahead log, its segment, the optimizer's rebuilt
    segment) and 4 KiB of payload, graph and terms; at least twice the published generation's
    allocated bytes (`published_bytes`: its copy, then its rebuild); plus SPACE_MARGIN."""
    per_point = 3 * 4 * sum(manifest.vector_dims().values()) + 4096
    return max(points * per_point, 2 * published_bytes) + SPACE_MARGIN


def allocated_bytes(folder: Path) -> int:
    """The disk blocks the files under `folder` hold (their holes not counted); 0 when it is missing."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed meanwhile
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _check_complete(index: EdgeIndex, name: str, manifest: Manifest | None) -> None:
    """Close `index` and raise IndexUnavailableError unless it holds the points its manifest counted
    (a generation that lost segment files still opens, with fewer points)."""
    expected = manifest.stats.get("points") if manifest is not None else None
    if expected is None:
        return
    found = index.count()
    if found != expected:
        index.close()
        raise IndexUnavailableError(
            f"index generation {name} is damaged: it holds {found} movies, its manifest {expected}"
        )


def _damaged(what: str) -> str:
    return f"the index pointer CURRENT {what}: `movierec ingest` publishes a new index"


def _sweep_temp_segments(shard: Path) -> None:
    """Delete what an optimize killed halfway left (about 100 MB per builder at the demo's size).
    Only while no optimize runs on this shard: after loading it (its lock is ours) or closing it."""
    for path in (shard / TEMP_SEGMENTS).glob("*"):
        log.info("removing an interrupted optimize's temporary segment", extra={"segment": path.name})
        shutil.rmtree(path, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> str:
    """Hard-link the engine's bulk files (SHAREABLE), copy everything else (holes kept), and copy where
    a link cannot be made (another file system, no permission, too many links)."""
    if SHAREABLE.fullmatch(os.path.basename(src)):
        try:
            os.link(src, dst)
            return dst
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES, errno.ENOTSUP):
                raise
    return copy_sparse(src, dst)


def _sweep_dead_readers(readers: Path) -> None:
    """Delete copies whose process is gone (killed before it could close them)."""
    for path in readers.glob("*.*.*"):
        pid = int(path.name.split(".")[-2])
        if not process_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _read_manifest(gen_dir: Path) -> Manifest | None:
    data = _read_json(gen_dir / "manifest.json")
    try:
        return Manifest.from_dict(data) if isinstance(data, dict) and data else None
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("unreadable index manifest", extra={"generation": gen_dir.name, "error": str(exc)})
        return None


def _read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable (a damaged generation)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("unreadable index metadata", extra={"file": path.name, "error": str(exc)})
        return None


def _write_json(path: Path, data: Any) -> None:
    _write_text_atomic(path, json.dumps(data, indent=1, sort_keys=True))


def _write_text_atomic(path: Path, text: str) -> None:
    """A reader sees the old file or the new one, never half; fsynced, as CURRENT must survive a crash."""
    with atomic_write(path, fsync=True) as tmp:
        tmp.write_text(text)
