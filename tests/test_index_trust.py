"""The index when things go wrong (issue 10): a damaged `CURRENT`, an optimize killed halfway,
readers' copies, and the memory a switched-out generation holds.

Real Edge indexes throughout: a small synthetic one for the store and the live index, a copy of the
demo fixture (real text model) for the API.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from litestar.testing import AsyncTestClient, TestClient

from app.api import create_app
from app.errors import IndexUnavailableError
from app.settings import Settings
from app.vectorstore import live as live_module
from app.vectorstore.base import MovieIndex
from app.vectorstore.cache import CachedIndex
from app.vectorstore.edge import SHAREABLE, TEMP_SEGMENTS, EdgeIndex, EdgeStore, ShardLockedError
from app.vectorstore.live import LiveIndex
from tests.helpers.api import bearer
from tests.helpers.synthetic import WIDE, WIDE_POINTS
from tests.helpers.vectorstore import CATALOGUE, MANIFEST, N_MOVIES, build, unit
from tests.helpers.worlds import copy_settings

# -- ways to damage CURRENT -----------------------------------------------------------------------
# Each takes the index root and leaves CURRENT unusable. The good generation stays on disk.


def _invalid_utf8(root: Path) -> None:
    (root / "CURRENT").write_bytes(b"gen-\xff\xfe\x00")


def _a_directory(root: Path) -> None:
    (root / "CURRENT").unlink()
    (root / "CURRENT").mkdir()


def _missing_generation(root: Path) -> None:
    (root / "CURRENT").write_text("gen-20990101T000000-000000")


def _corrupt_generation(root: Path) -> None:
    good = root / (root / "CURRENT").read_text().strip()
    bad = root / "gen-20990101T000000-000001"
    (bad / "shard").mkdir(parents=True)
    (bad / "shard" / "edge_config.json").write_text("{not an engine config")
    shutil.copy(good / "manifest.json", bad / "manifest.json")
    (root / "CURRENT").write_text(bad.name)


def _deleted(root: Path) -> None:
    (root / "CURRENT").unlink()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "invalid-utf8": _invalid_utf8,
    "a-directory": _a_directory,
    "missing-generation": _missing_generation,
    "corrupt-generation": _corrupt_generation,
    "deleted": _deleted,
}


def _repair(root: Path, good: str) -> None:
    current = root / "CURRENT"
    if current.is_dir():
        current.rmdir()
    current.write_text(good)


@pytest.fixture
def every_request_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live index re-reads CURRENT on every call, so a flap would show within a few calls."""
    monkeypatch.setattr(live_module, "CHECK_EVERY_S", 0.0)


# -- the live index over a real Edge store --------------------------------------------------------
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_pointer_keeps_the_last_good_generation(
    tmp_path: Path, damage: str, every_request_checks: None
) -> None:
    store = EdgeStore(tmp_path / "index")
    build(store)
    live = LiveIndex(store)
    good = live.current()
    generation = live.generation
    assert live.problem is None
    DAMAGE[damage](store.root)
    for _ in range(5):  # every call re-checks: the answer must not change from one to the next
        assert live.current() is good
        assert live.current().count() == N_MOVIES
        assert live.generation == generation
        assert live.problem is not None and ("CURRENT" in live.problem or "damaged" in live.problem)
        assert str(tmp_path) not in live.problem
    _repair(store.root, generation)  # type: ignore[arg-type]
    assert live.current() is good and live.problem is None
    live.close()


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_pointer_without_a_good_generation_is_unavailable(
    tmp_path: Path, damage: str, every_request_checks: None
) -> None:
    store = EdgeStore(tmp_path / "index")
    build(store)
    DAMAGE[damage](store.root)
    live = LiveIndex(store)
    for _ in range(3):
        with pytest.raises(IndexUnavailableError) as raised:
            live.current()
        assert str(tmp_path) not in str(raised.value)
    assert live.generation is None and live.manifest() is None
    live.close()


def test_a_generation_that_lost_segments_is_not_served(tmp_path: Path, every_request_checks: None) -> None:
    # A shard whose segment files are gone still opens (the engine replays what its log holds):
    # the count its manifest recorded tells it apart.
    store = EdgeStore(tmp_path / "index")
    build(store)
    store.publish(_restage(store), replace(MANIFEST, stats={"points": N_MOVIES}))
    live = LiveIndex(store)
    good = live.current()
    second = store.generation()
    third = store.root / "gen-20990101T000000-000002"
    shutil.copytree(store.root / second, third, ignore=shutil.ignore_patterns("segments", "wal"))  # type: ignore[operator]
    (store.root / "CURRENT").write_text(third.name)
    assert live.current() is good
    assert live.problem is not None and "damaged" in live.problem and "manifest" in live.problem
    live.close()


def _restage(store: EdgeStore) -> MovieIndex:
    index = store.stage(MANIFEST, rebuild=True)
    index.upsert(CATALOGUE.points)
    return index


def test_the_ingest_repairs_a_damaged_pointer(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "index")
    build(store)
    _invalid_utf8(store.root)
    assert store.manifest() is None and store.published_hashes() == {}  # nothing usable is published
    build(store)  # what `movierec ingest` does: stage afresh, publish
    assert store.generation() is not None
    reader = store.open()
    assert reader.count() == N_MOVIES
    reader.close()


# -- leases: a switched-out generation is released ------------------------------------------------
class Recording:
    """A MovieIndex wrapper that records whether it was closed (the shard under it really is)."""

    def __init__(self, inner: MovieIndex) -> None:
        self.inner = inner
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def close(self) -> None:
        self.closed = True
        self.inner.close()


def test_the_old_generation_closes_when_its_last_lease_ends(tmp_path: Path, every_request_checks: None) -> None:
    store = EdgeStore(tmp_path / "index")
    build(store)
    opened: list[Recording] = []

    def prepare(index: MovieIndex) -> MovieIndex:
        opened.append(Recording(CachedIndex.wrap(index, max_points=10_000)))
        return opened[-1]  # type: ignore[return-value]

    live = LiveIndex(store, prepare)
    first = store.root / store.generation()  # type: ignore[operator]
    q = unit(np.ones(MANIFEST.text_dim, dtype=np.float32))
    in_flight = live.begin()  # a request that started on the first generation
    old = live.current()
    build(store)  # a reindex publishes the next generation
    with live.lease():  # a request that starts now gets the new generation...
        assert live.current() is opened[1] and live.current().count() == N_MOVIES
    assert live.current() is old  # ...while the one in flight keeps its own, still open
    assert [h.id for h in old.query(q, "text", 5)]
    assert not opened[0].closed
    assert live.end(in_flight) is opened[0]  # its last user: the caller closes it
    opened[0].close()
    EdgeIndex.load(first / "shard").close()  # released for real: raises ShardLockedError while it is open
    assert not opened[1].closed
    live.close()
    assert opened[1].closed


def test_shutting_down_closes_leased_generations_too(tmp_path: Path, every_request_checks: None) -> None:
    store = EdgeStore(tmp_path / "index")
    build(store)
    opened: list[Recording] = []
    live = LiveIndex(store, lambda index: opened.append(Recording(index)) or opened[-1])  # type: ignore[func-returns-value]
    in_flight = live.begin()  # a request still running on the old generation at shutdown
    live.current()
    build(store)
    with live.lease():
        live.current()  # switches
    live.close()
    assert [r.closed for r in opened] == [True, True]
    assert live.end(in_flight) is None  # a request that ends after shutdown closes nothing twice


def test_without_a_lease_a_switch_closes_the_old_generation_at_once(tmp_path: Path, every_request_checks: None) -> None:
    store = EdgeStore(tmp_path / "index")
    build(store)
    opened: list[Recording] = []
    live = LiveIndex(store, lambda index: opened.append(Recording(index)) or opened[-1])  # type: ignore[func-returns-value]
    live.current()
    build(store)
    live.current()
    assert [r.closed for r in opened] == [True, False]
    live.close()


# -- an optimize killed halfway -------------------------------------------------------------------
_INGEST = textwrap.dedent(
    """
    import sys
    from app.vectorstore.edge import EdgeStore
    from tests.helpers.synthetic import WIDE, wide_points
    store = EdgeStore(sys.argv[1])
    index = store.stage(WIDE, rebuild=True)
    index.upsert(wide_points())
    index.flush()
    print("publishing", flush=True)
    store.publish(index, WIDE)   # optimize(), then the switch: killed before it gets there
    print("published", flush=True)
    """
)


def test_an_optimize_killed_halfway_leaves_nothing_in_the_published_generation(tmp_path: Path) -> None:
    root = tmp_path / "index"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", _INGEST, str(root)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "publishing"
    builders = root / "staging" / "shard" / TEMP_SEGMENTS
    while proc.poll() is None and not any(builders.glob("*")):
        time.sleep(0.002)  # kill it in the middle of optimize(), once it has started a segment
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"
    assert any(builders.glob("*")), "a killed optimize leaves its segment builder behind"
    assert not (root / "CURRENT").exists()

    store = EdgeStore(root)
    resumed = store.stage(WIDE, rebuild=True)  # the rerun resumes the staging index...
    assert not any(builders.glob("*"))  # ...without the dead run's builder
    assert resumed.count() == WIDE_POINTS
    store.publish(resumed, WIDE)
    published = root / store.generation()  # type: ignore[operator]
    assert not any((published / "shard" / TEMP_SEGMENTS).glob("*"))
    reader = store.open()
    assert reader.count() == WIDE_POINTS
    reader.close()


# -- readers' copies share the bulk files ---------------------------------------------------------
def _files(shard: Path) -> dict[str, os.stat_result]:
    return {str(p.relative_to(shard)): p.stat() for p in shard.rglob("*") if p.is_file()}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_readers_copy_links_the_immutable_files_and_leaves_them_untouched(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "index")
    build(store)
    shard = store.root / store.generation() / "shard"  # type: ignore[operator]
    first = store.open()  # in place: holds the lock
    shared = {name: st for name, st in _files(shard).items() if SHAREABLE.fullmatch(Path(name).name)}
    assert sum(st.st_size for st in shared.values()) > 0.8 * sum(st.st_size for st in _files(shard).values())
    before = {name: (_digest(shard / name), st.st_mtime_ns) for name, st in shared.items()}

    second = store.open()  # finds it locked: a private copy
    (copy,) = (store.root / "readers").iterdir()
    copied = _files(copy / "shard")
    for name, st in shared.items():
        assert copied[name].st_ino == st.st_ino and copied[name].st_nlink >= 2, name
    q = unit(np.random.default_rng(5).standard_normal(MANIFEST.text_dim))
    assert [h.id for h in second.query(q, "text", 10)] == [h.id for h in first.query(q, "text", 10)]
    assert second.count() == N_MOVIES
    second.close()
    assert not copy.exists()
    # A reader that opened, searched and closed its copy wrote nothing into the shared files.
    assert {name: (_digest(shard / name), (shard / name).stat().st_mtime_ns) for name in shared} == before
    assert all((shard / name).stat().st_nlink == 1 for name in shared)
    first.close()


# -- the API --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def world(demo_settings: Settings, tmp_path: Path) -> Settings:
    return copy_settings(demo_settings, tmp_path / "data")


def _clean(resp: httpx.Response, settings: Settings) -> dict[str, Any]:
    """The body says what is wrong in words: no path on this machine, no engine error, no traceback."""
    for leak in (str(settings.data_dir), str(Path(settings.data_dir).resolve()), "Traceback", "os error", "panicked"):
        assert leak not in resp.text, resp.text
    return resp.json()  # type: ignore[no-any-return]


@pytest.mark.anyio
async def test_api_serves_the_last_good_index_and_says_degraded(
    world: Settings, text_encoder: Any, every_request_checks: None
) -> None:
    headers = bearer(world, admin=True)
    root = world.index_dir
    good = (root / "CURRENT").read_text().strip()
    async with AsyncTestClient(create_app(world, text_encoder=text_encoder)) as client:
        healthy = (await client.get("/health")).json()
        assert healthy["status"] == "ok"
        in_index = (await client.get("/metrics/embeddings", headers=headers)).json()["movies_in_index"]
        assert in_index > 0
        for name, damage in DAMAGE.items():
            damage(root)
            for _ in range(3):  # the same answer every time: no flapping between 200 and 503
                health = await client.get("/health")
                body = _clean(health, world)
                assert health.status_code == 200 and body["status"] == "degraded", (name, body)
                assert body["index"] is True and body["index_generation"] == good
                assert "CURRENT" in body["detail"] or "damaged" in body["detail"], (name, body)
                metrics = _clean(await client.get("/metrics/embeddings", headers=headers), world)
                assert metrics["movies_in_index"] == in_index and metrics["index_generation"] == good
                similar = await client.get("/movies/1/similar?limit=3", headers=headers)
                assert similar.status_code == 200 and len(similar.json()["items"]) == 3, (name, similar.text)
            _repair(root, good)
            assert (await client.get("/health")).json() == healthy, name


@pytest.mark.anyio
@pytest.mark.parametrize("damage", DAMAGE)
async def test_api_without_a_good_index_is_503_everywhere(
    world: Settings, text_encoder: Any, damage: str, every_request_checks: None
) -> None:
    headers = bearer(world, admin=True)
    DAMAGE[damage](world.index_dir)
    async with AsyncTestClient(create_app(world, text_encoder=text_encoder)) as client:
        for _ in range(2):
            health = await client.get("/health")
            body = _clean(health, world)
            assert health.status_code == 503 and body["status"] == "unavailable" and body["index"] is False
            assert body["detail"]
            for path in ("/movies/1/similar", "/movies/search?q=space", "/genres"):
                resp = await client.get(path, headers=headers)
                assert resp.status_code == 503, (path, resp.text)
                _clean(resp, world)
            metrics = _clean(await client.get("/metrics/embeddings", headers=headers), world)
            assert metrics["movies_in_index"] == 0  # never "ok" beside "0 movies"


class Gate:
    """The real text encoder, except that a search for "hold" waits in the handler until released:
    a request in flight, on demand."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered, self.go = threading.Event(), threading.Event()

    def encode(self, texts: Any) -> Any:
        if any("hold" in t for t in texts):
            self.entered.set()
            assert self.go.wait(60)
        return self.inner.encode(texts)


def test_api_releases_the_old_generation_when_its_last_request_ends(world: Settings, text_encoder: Any) -> None:
    # A request in flight keeps the generation it started on; once it ends, that generation's shard
    # is closed and its directory unlocked (before, it stayed open until the next reindex). The
    # sync TestClient, because its requests can overlap (from threads); the async one's do not.
    gate = Gate(text_encoder)
    headers = bearer(world, admin=True)
    app = create_app(world, text_encoder=gate)
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        assert client.get("/health").status_code == 200
        live = app.state.services.live
        old = world.index_dir / live.generation
        in_flight = pool.submit(client.get, "/movies/search?q=hold+on&limit=3", headers=headers)
        assert gate.entered.wait(60)  # it has its index, and waits
        staged = live.store.stage(live.manifest(), rebuild=False)  # a reindex: the next generation
        live.store.publish(staged, live.manifest())
        time.sleep(live_module.CHECK_EVERY_S)
        health = client.get("/health").json()  # a new request switches to it
        assert health["status"] == "ok" and health["index_generation"] != old.name
        with pytest.raises(ShardLockedError):
            EdgeIndex.load(old / "shard")  # the request in flight still holds the old one open
        gate.go.set()
        resp = in_flight.result(60)
        assert resp.status_code == 200 and len(resp.json()["items"]) == 3, resp.text
        EdgeIndex.load(old / "shard").close()  # released: it opens in place again
        assert client.get("/movies/search?q=space&limit=3", headers=headers).status_code == 200
