"""Congruence tests: the same tests run against every engine behind IndexStore/MovieIndex.

Engines: "edge" (qdrant-edge-py in tmp_path), "memory" (ServerStore over qdrant-client's
in-memory mode) and "server" (ServerStore over a real Qdrant; skips without one). The data is
small and synthetic, so every engine searches exactly and each result can be checked against a
numpy computation over the rows the filter keeps.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from app.errors import ConflictError, IndexUnavailableError
from app.settings import Settings
from app.vectorstore import edge as edge_module
from app.vectorstore import server as server_module
from app.vectorstore.base import RRF_K, IndexStore, Manifest, MovieFilter, MovieIndex, MoviePoint, payload_for
from app.vectorstore.edge import EdgeStore
from app.vectorstore.server import ServerStore, call_with_retries

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


# -- synthetic catalogue ------------------------------------------------------------------------
@dataclass
class Catalogue:
    points: list[MoviePoint]

    @property
    def ids(self) -> list[int]:
        return [p.id for p in self.points]

    def by_id(self, movie_id: int) -> MoviePoint:
        return next(p for p in self.points if p.id == movie_id)

    def keeps(self, point: MoviePoint, f: MovieFilter) -> bool:
        """The filter's meaning, written out once, independently of any engine."""
        year = point.payload["year"]
        return (
            (not f.genres or bool(set(f.genres) & set(point.payload["genres"])))
            and (f.year_min is None or year >= f.year_min)
            and (f.year_max is None or year <= f.year_max)
            and point.id not in f.exclude_ids
            and (f.only_ids is None or point.id in f.only_ids)
            and (f.has_poster is None or f.has_poster == ("image" in point.vectors))
        )

    def exact_rrf(
        self,
        queries: dict[str, np.ndarray],
        weights: dict[str, float],
        limit: int,
        f: MovieFilter,
        prefetch_limit: int,
        k: int = RRF_K,
    ) -> list[tuple[int, float]]:
        """Weighted reciprocal rank fusion of exact prefetches, written out once: 1 / ((rank + 1) / w + k - 1)."""
        scores: dict[int, float] = {}
        for name, q in queries.items():
            w = weights.get(name, 0.0)
            if w <= 0:
                continue
            for rank, (pid, _) in enumerate(self.exact_top(q, name, prefetch_limit, f)):
                scores[pid] = scores.get(pid, 0.0) + 1.0 / ((rank + 1) / w + k - 1)
        return sorted(scores.items(), key=lambda item: -item[1])[:limit]

    def exact_top(self, q: np.ndarray, using: str, limit: int, f: MovieFilter) -> list[tuple[int, float]]:
        rows = [p for p in self.points if using in p.vectors and self.keeps(p, f)]
        if not rows:
            return []
        scores = np.stack([p.vectors[using] for p in rows]) @ unit(q)
        order = np.argsort(-scores)[:limit]
        return [(rows[i].id, float(scores[i])) for i in order]


def same_payload(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """Equal, floats within a few ulps: Edge's JSON round trip may move the last digit."""
    return got.keys() == want.keys() and all(
        got[k] == pytest.approx(v, rel=1e-12) if isinstance(v, float) else got[k] == v for k, v in want.items()
    )


def unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def make_catalogue(seed: int = 42, n: int = N_MOVIES) -> Catalogue:
    rng = np.random.default_rng(seed)
    points = []
    for i in range(n):
        movie_id = 1000 + 7 * i  # not 0..n-1, so an id never passes for a row number
        vectors = {name: unit(rng.standard_normal(dim)) for name, dim in MANIFEST.vector_dims().items()}
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
        )
        points.append(MoviePoint(movie_id, vectors, payload))
    return Catalogue(points)


CATALOGUE = make_catalogue()


# -- engines --------------------------------------------------------------------------------------
@dataclass
class Engine:
    name: str
    make: Callable[[], IndexStore]  # a new store object over the same storage: a restarted process


def _server_engine(name: str, client: QdrantClient) -> Iterator[Engine]:
    alias = f"test_movies_{uuid.uuid4().hex[:12]}"  # each test its own alias and collections
    yield Engine(name, lambda: ServerStore(client, alias=alias))
    for c in client.get_collections().collections:
        if c.name.startswith(f"{alias}_"):
            client.delete_collection(c.name)
    client.close()


@pytest.fixture(params=["edge", "memory", "server"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from _engine(request.param, request, tmp_path)


@pytest.fixture(params=["memory", "server"])
def server_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from _engine(request.param, request, tmp_path)


def _engine(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if name == "edge":
        yield Engine(name, lambda: EdgeStore(tmp_path / "index"))
    elif name == "memory":
        yield from _server_engine(name, QdrantClient(":memory:"))
    else:
        url = request.getfixturevalue("qdrant_server")
        yield from _server_engine(name, QdrantClient(url=url, timeout=10))


def build(store: IndexStore, catalogue: Catalogue = CATALOGUE, manifest: Manifest = MANIFEST) -> None:
    """Stage, fill and publish the whole catalogue."""
    index = store.stage(manifest, rebuild=True)
    upsert_in_batches(index, catalogue.points)
    store.publish(index, replace(manifest, stats={"movies": len(catalogue.points)}))


def upsert_in_batches(index: MovieIndex, points: list[MoviePoint], size: int = 64) -> None:
    for start in range(0, len(points), size):
        index.upsert(points[start : start + size])


@pytest.fixture
def published(engine: Engine) -> Iterator[tuple[IndexStore, MovieIndex]]:
    store = engine.make()
    build(store)
    index = store.open()
    yield store, index
    index.close()


# -- publishing and the manifest ------------------------------------------------------------------
def test_open_before_publish_raises(engine: Engine) -> None:
    store = engine.make()
    assert store.manifest() is None
    assert store.generation() is None
    assert store.published_hashes() == {}
    with pytest.raises(IndexUnavailableError):
        store.open()


def test_publish_records_manifest(engine: Engine) -> None:
    store = engine.make()
    build(store)
    manifest = store.manifest()
    assert manifest == MANIFEST
    assert manifest is not None and manifest.stats == {"movies": N_MOVIES}
    assert MANIFEST.compatible(manifest)
    assert not replace(MANIFEST, image_model="resnet50", image_dim=2048).compatible(manifest)
    assert engine.make().manifest() == MANIFEST  # a restarted process reads the same
    assert store.generation() is not None
    index = store.open()
    assert index.count() == N_MOVIES
    index.close()


def test_unchanged_collection_reads_after_reopen(engine: Engine) -> None:
    build(engine.make())
    index = engine.make().open()
    assert index.count() == N_MOVIES
    index.close()


# -- points ---------------------------------------------------------------------------------------
def test_retrieve(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    with_poster, without_poster = CATALOGUE.points[1], CATALOGUE.points[0]
    assert "image" not in without_poster.vectors
    missing = 999_999
    got = index.retrieve([with_poster.id, missing, without_poster.id], vectors=["text", "image"])
    assert sorted(m.id for m in got) == sorted([with_poster.id, without_poster.id])
    for movie in got:
        source = CATALOGUE.by_id(movie.id)
        assert same_payload(movie.payload, source.payload)
        assert set(movie.vectors) == {"text", "image"} & set(source.vectors)
        for name, vector in movie.vectors.items():
            assert vector.dtype == np.float32
            np.testing.assert_allclose(vector, source.vectors[name], atol=1e-5)
    bare = index.retrieve([with_poster.id])
    assert len(bare) == 1 and bare[0].vectors == {}
    assert same_payload(bare[0].payload, with_poster.payload)
    assert index.retrieve([]) == []


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


@pytest.mark.parametrize("using", ["text", "image", "combined", "collab"])
def test_filtered_query_is_exact(published: tuple[IndexStore, MovieIndex], using: str) -> None:
    _, index = published
    rng = np.random.default_rng(7)
    q = unit(rng.standard_normal(MANIFEST.vector_dims()[using]))
    for name, f in FILTERS.items():
        hits = index.query(q, using=using, limit=10, filter=f)
        expected = CATALOGUE.exact_top(q, using, 10, f)
        assert [h.id for h in hits] == [i for i, _ in expected], name
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], atol=1e-4)
        for hit in hits:
            assert CATALOGUE.keeps(CATALOGUE.by_id(hit.id), f), name
            assert same_payload(hit.payload, CATALOGUE.by_id(hit.id).payload)


def test_query_returns_vectors(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    q = unit(np.ones(MANIFEST.text_dim, dtype=np.float32))
    hits = index.query(q, using="text", limit=5, with_vectors=["text", "collab"])
    assert len(hits) == 5
    for hit in hits:
        assert set(hit.vectors) == {"text", "collab"}
        np.testing.assert_allclose(hit.vectors["collab"], CATALOGUE.by_id(hit.id).vectors["collab"], atol=1e-5)
    assert all(h.vectors == {} for h in index.query(q, using="text", limit=5))


# Weights that never tie two single-list ranks within a 30-deep prefetch ((r+1)/0.37 is no integer).
FUSIONS = {
    "content+collab": {"combined": 0.37, "collab": 1.0},
    "text+image": {"text": 1.0, "image": 0.37},  # a fifth of the movies have no image vector
    "one_weight_zero": {"combined": 1.0, "collab": 0.0},  # left out: plain RRF over one list
}


@pytest.mark.parametrize("fusion", FUSIONS)
def test_fused_query_is_weighted_rrf(published: tuple[IndexStore, MovieIndex], fusion: str) -> None:
    _, index = published
    weights = FUSIONS[fusion]
    rng = np.random.default_rng(5)
    queries = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in weights}
    for name, f in FILTERS.items():
        hits = index.query_fused(queries, weights, 10, f, prefetch_limit=30)
        expected = CATALOGUE.exact_rrf(queries, weights, 10, f, prefetch_limit=30)
        assert [h.id for h in hits] == [i for i, _ in expected], name
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-5)
        for hit in hits:
            assert CATALOGUE.keeps(CATALOGUE.by_id(hit.id), f), name
            assert same_payload(hit.payload, CATALOGUE.by_id(hit.id).payload)


def test_fused_query_options(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    rng = np.random.default_rng(9)
    queries = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in ("combined", "collab")}
    weights = {"combined": 1.0, "collab": 0.37}
    hits = index.query_fused(queries, weights, 5, with_vectors=["combined"], rrf_k=60)
    expected = CATALOGUE.exact_rrf(queries, weights, 5, MovieFilter(), prefetch_limit=5, k=60)
    assert [h.id for h in hits] == [i for i, _ in expected]  # prefetch_limit defaults to limit
    assert all(set(h.vectors) == {"combined"} for h in hits)
    assert index.query_fused(queries, {"combined": 0.0}, 5) == []


def test_fused_query_reaches_movies_lacking_a_vector(engine: Engine) -> None:
    """A movie without a collab vector (a new movie: no ratings yet) still comes through the content prefetch."""
    points = [MoviePoint(p.id, dict(p.vectors), p.payload) for p in CATALOGUE.points]
    new = points[7]
    del new.vectors["collab"]
    store = engine.make()
    build(store, Catalogue(points))
    index = store.open()
    queries = {"combined": new.vectors["combined"], "collab": unit(np.ones(MANIFEST.collab_dim, dtype=np.float32))}
    hits = index.query_fused(queries, {"combined": 1.0, "collab": 1.0}, 10)
    assert new.id in [h.id for h in hits[:2]]  # first in one list, absent from the other
    assert new.id not in [h.id for h in index.query(queries["collab"], "collab", N_MOVIES)]
    index.close()


def test_set_and_delete_one_named_vector(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    index = store.stage(MANIFEST, rebuild=False)
    changed, cleared = CATALOGUE.points[1], CATALOGUE.points[2]
    new_collab = unit(np.arange(1, MANIFEST.collab_dim + 1, dtype=np.float32))
    index.set_vectors("collab", {changed.id: new_collab})
    index.set_vectors("collab", {})
    index.delete_vectors("collab", [cleared.id])
    index.delete_vectors("collab", [])
    store.publish(index, MANIFEST)
    reader = store.open()
    got = {m.id: m for m in reader.retrieve([changed.id, cleared.id], vectors=["text", "image", "collab"])}
    np.testing.assert_allclose(got[changed.id].vectors["collab"], new_collab, atol=1e-5)
    assert "collab" not in got[cleared.id].vectors
    for movie in got.values():  # the other vectors and the payload are kept
        source = CATALOGUE.by_id(movie.id)
        np.testing.assert_allclose(movie.vectors["text"], source.vectors["text"], atol=1e-5)
        assert ("image" in movie.vectors) == ("image" in source.vectors)
        assert same_payload(movie.payload, source.payload)
    assert reader.query(new_collab, "collab", 1)[0].id == changed.id
    assert cleared.id not in [h.id for h in reader.query(new_collab, "collab", N_MOVIES)]
    assert reader.count() == N_MOVIES
    reader.close()


def test_popular(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    for name, f in FILTERS.items():
        kept = [p for p in CATALOGUE.points if CATALOGUE.keeps(p, f)]
        kept.sort(key=lambda p: -p.payload["local_rating_count"])
        hits = index.popular(10, f)
        assert [h.id for h in hits] == [p.id for p in kept[:10]], name
        assert all(h.score == pytest.approx(h.payload["local_rating_count"]) for h in hits)


def test_count(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    assert index.count() == N_MOVIES
    for name, f in FILTERS.items():
        assert index.count(f) == sum(CATALOGUE.keeps(p, f) for p in CATALOGUE.points), name


def test_genres(published: tuple[IndexStore, MovieIndex]) -> None:
    _, index = published
    expected: dict[str, int] = {}
    for point in CATALOGUE.points:
        for genre in point.payload["genres"]:
            expected[genre] = expected.get(genre, 0) + 1
    assert index.genres() == expected


def test_delete(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    gone = CATALOGUE.ids[:10]
    index = store.stage(MANIFEST, rebuild=False)
    index.delete(gone)
    index.delete([])
    store.publish(index, MANIFEST)
    reader = store.open()
    assert reader.count() == N_MOVIES - 10
    assert reader.retrieve(gone) == []
    assert not set(gone) & set(reader.hashes())
    reader.close()


def test_hashes_page_through(published: tuple[IndexStore, MovieIndex], monkeypatch: pytest.MonkeyPatch) -> None:
    store, index = published
    # Pages smaller than the catalogue, so the scroll's continuation is exercised.
    monkeypatch.setattr(edge_module, "SCROLL_PAGE", 64)
    monkeypatch.setattr(server_module, "SCROLL_PAGE", 64)
    expected = {p.id: p.payload["content_hash"] for p in CATALOGUE.points}
    assert index.hashes() == expected
    assert store.published_hashes() == expected


# -- staging --------------------------------------------------------------------------------------
def test_incremental_stage_keeps_points(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    index = store.stage(MANIFEST, rebuild=False)
    assert index.count() == N_MOVIES
    changed = CATALOGUE.points[3]
    index.upsert([MoviePoint(changed.id, changed.vectors, {**changed.payload, "content_hash": "new"})])
    store.publish(index, MANIFEST)
    reader = store.open()
    assert reader.count() == N_MOVIES
    assert reader.hashes()[changed.id] == "new"
    reader.close()


def test_rebuild_stage_starts_empty(published: tuple[IndexStore, MovieIndex]) -> None:
    store, reader = published
    staged = store.stage(MANIFEST, rebuild=True)
    assert staged.count() == 0
    assert reader.count() == N_MOVIES  # readers keep the published index meanwhile
    staged.close()


def test_incompatible_manifest_forces_fresh_stage(published: tuple[IndexStore, MovieIndex]) -> None:
    store, _ = published
    other = replace(MANIFEST, text_model="other-text")
    staged = store.stage(other, rebuild=False)
    assert staged.count() == 0  # a model change never mixes spaces
    staged.close()


def test_resume_after_crash(engine: Engine) -> None:
    store = engine.make()
    build(store, Catalogue(CATALOGUE.points[:50]))
    generation = store.generation()
    half = CATALOGUE.points[: N_MOVIES // 2]
    staged = store.stage(MANIFEST, rebuild=True)
    upsert_in_batches(staged, half)
    staged.flush()
    staged.close()  # the writer dies here, before publishing

    restarted = engine.make()
    assert restarted.generation() == generation  # nothing was published
    resumed = restarted.stage(MANIFEST, rebuild=True)
    assert resumed.hashes() == {p.id: p.payload["content_hash"] for p in half}
    upsert_in_batches(resumed, CATALOGUE.points[N_MOVIES // 2 :])
    restarted.publish(resumed, MANIFEST)
    assert restarted.generation() != generation
    reader = restarted.open()
    assert reader.count() == N_MOVIES
    reader.close()


def test_publish_refuses_a_collection_in_the_alias_place() -> None:
    client = QdrantClient(":memory:")
    alias = f"test_movies_{uuid.uuid4().hex[:12]}"
    client.create_collection(alias, vectors_config={})  # e.g. left by an older version of the app
    store = ServerStore(client, alias=alias)
    index = store.stage(MANIFEST, rebuild=True)
    with pytest.raises(ConflictError, match=alias):
        store.publish(index, MANIFEST)
    store.close()


def test_staging_of_another_model_is_not_resumed(engine: Engine) -> None:
    store = engine.make()
    staged = store.stage(MANIFEST, rebuild=True)
    staged.upsert(CATALOGUE.points[:5])
    staged.close()
    other = engine.make().stage(replace(MANIFEST, collab_dim=4), rebuild=True)
    assert other.count() == 0
    other.close()


# -- congruence between engines -------------------------------------------------------------------
def test_edge_and_memory_agree(tmp_path: Path) -> None:
    edge = EdgeStore(tmp_path / "index")
    memory = ServerStore(QdrantClient(":memory:"), alias=f"test_movies_{uuid.uuid4().hex[:12]}")
    build(edge)
    build(memory)
    a, b = edge.open(), memory.open()
    rng = np.random.default_rng(11)
    for using, dim in MANIFEST.vector_dims().items():
        for f in FILTERS.values():
            q = unit(rng.standard_normal(dim))
            assert [h.id for h in a.query(q, using, 20, f)] == [h.id for h in b.query(q, using, 20, f)]
            assert a.count(f) == b.count(f)
    for weights in FUSIONS.values():
        for f in FILTERS.values():
            qs = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in weights}
            fused_a = a.query_fused(qs, weights, 20, f, prefetch_limit=40)
            fused_b = b.query_fused(qs, weights, 20, f, prefetch_limit=40)
            assert [h.id for h in fused_a] == [h.id for h in fused_b]
            np.testing.assert_allclose([h.score for h in fused_a], [h.score for h in fused_b], rtol=1e-5)
    assert a.hashes() == b.hashes()
    assert edge.manifest() == memory.manifest()
    a.close()
    memory.close()


def test_a_second_edge_reader_opens_a_private_copy(tmp_path: Path) -> None:
    # An Edge shard locks its directory, so a second reader (another API worker) must not fail:
    # it reads a copy of its own, which goes away when it closes.
    store = EdgeStore(tmp_path / "index")
    build(store)
    readers = tmp_path / "index" / "readers"
    first = store.open()
    assert not readers.exists() or not any(readers.iterdir()), "the first reader opens in place"
    second = store.open()
    assert [p.name.split(".")[0] for p in readers.iterdir()] == [store.generation()]
    q = unit(np.random.default_rng(5).standard_normal(MANIFEST.text_dim))
    for f in FILTERS.values():
        assert [h.id for h in second.query(q, "text", 10, f)] == [h.id for h in first.query(q, "text", 10, f)]
    second.close()
    assert not any(readers.iterdir())
    first.close()


def test_copies_left_by_dead_readers_are_swept(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    store = EdgeStore(tmp_path / "index")
    build(store)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    readers = tmp_path / "index" / "readers"
    dead = readers / f"{store.generation()}.{int(gone.stdout)}.1"  # a worker killed with its copy open
    alive = readers / f"{store.generation()}.{os.getpid()}.1"  # this process's: must stay
    for path in (dead, alive):
        (path / "shard").mkdir(parents=True)
    first, second = store.open(), store.open()
    assert not dead.exists() and alive.exists()
    second.close()
    first.close()


# -- server only ----------------------------------------------------------------------------------
def test_reader_never_sees_a_gap_during_rebuild(server_engine: Engine) -> None:
    store = server_engine.make()
    build(store)
    reader = store.open()
    q = unit(np.ones(MANIFEST.text_dim, dtype=np.float32))
    errors: list[BaseException] = []
    empties = 0
    reads = 0
    done = threading.Event()

    def read() -> None:
        nonlocal empties, reads
        while not done.is_set():
            try:
                hits = reader.query(q, "text", 5, MovieFilter(genres=("Drama",)))
            except BaseException as exc:  # any failure is the finding
                errors.append(exc)
                return
            empties += not hits
            reads += 1

    thread = threading.Thread(target=read)
    thread.start()
    try:
        while reads == 0 and not errors:  # the reader is under way before the first rebuild
            time.sleep(0.01)
        before = reads
        for _ in range(2):  # two rebuilds, so the alias moves and an old collection is dropped twice
            build(store)
        during = reads - before
    finally:
        done.set()
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert empties == 0
    assert during > 0
    assert reader.count() == N_MOVIES


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
def test_unreachable_server_fails_fast() -> None:
    settings = Settings(qdrant_url="http://127.0.0.1:1", qdrant_timeout_s=1)
    store = ServerStore.from_settings(settings)
    start = time.monotonic()
    with pytest.raises(IndexUnavailableError, match="127.0.0.1:1") as exc_info:
        store.open()
    assert time.monotonic() - start < 10
    assert "\n" not in str(exc_info.value)
    store.close()


class Flaky:
    """A call that fails with `errors` in turn, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _http_error(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "", b'{"status": {"error": "boom"}}', httpx.Headers())


def test_transient_errors_are_retried() -> None:
    refused = ResponseHandlingException(httpx.ConnectError("refused"))
    flaky = Flaky(refused, _http_error(503))
    assert call_with_retries("test", flaky) == "ok"
    assert flaky.calls == 3


def test_client_errors_are_not_retried() -> None:
    flaky = Flaky(_http_error(400))
    with pytest.raises(UnexpectedResponse):
        call_with_retries("test", flaky)
    assert flaky.calls == 1


def test_retries_give_up_with_index_unavailable() -> None:
    flaky = Flaky(*[_http_error(502)] * 10)
    with pytest.raises(IndexUnavailableError, match="Qdrant at test is unreachable: boom"):
        call_with_retries("test", flaky)
    assert flaky.calls == server_module.RETRY_ATTEMPTS
