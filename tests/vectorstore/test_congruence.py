"""Edge and the server adapter (qdrant-client's local mode) give the same answers to the same queries,
and an Edge generation read by a second process (a private copy) answers as the first."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient

from app.vectorstore.base import HALF_PRECISION_VECTORS, content_hashes
from app.vectorstore.edge import EdgeStore
from app.vectorstore.server import ServerStore
from tests.helpers.vectorstore import CATALOGUE, FILTERS, FUSIONS, MANIFEST, assert_near_oracle, build, unit


def test_edge_and_local_agree(tmp_path: Path) -> None:
    edge = EdgeStore(tmp_path / "index")
    local = ServerStore(QdrantClient(":memory:"), alias=f"test_movies_{uuid.uuid4().hex[:12]}")
    build(edge)
    build(local)
    a, b = edge.open(), local.open()
    rng = np.random.default_rng(11)
    for using, dim in MANIFEST.vector_dims().items():
        for f in FILTERS.values():
            q = unit(rng.standard_normal(dim))
            if using in HALF_PRECISION_VECTORS:  # Edge stores these in float16, local mode in float32
                expected = CATALOGUE.oracle.query(q, using, 20, f)
                assert_near_oracle(a.query(q, using, 20, f), expected, f, q, using)
                assert_near_oracle(b.query(q, using, 20, f), expected, f, q, using)
            else:
                assert [h.id for h in a.query(q, using, 20, f)] == [h.id for h in b.query(q, using, 20, f)]
            assert a.count(f) == b.count(f)
    # A fusion over a half-precision vector ranks its near-ties apart from local mode's float32 (RRF then
    # moves whole ranks): those are held to the oracle in test_queries, not to each other here.
    for weights in (w for w in FUSIONS.values() if not HALF_PRECISION_VECTORS & w.keys()):
        for f in FILTERS.values():
            qs = {name: unit(rng.standard_normal(MANIFEST.vector_dims()[name])) for name in weights}
            fused_a = a.query_fused(qs, weights, 20, f, prefetch_limit=40)
            fused_b = b.query_fused(qs, weights, 20, f, prefetch_limit=40)
            assert [h.id for h in fused_a] == [h.id for h in fused_b]
            np.testing.assert_allclose([h.score for h in fused_a], [h.score for h in fused_b], rtol=1e-5)
    assert content_hashes(a) == content_hashes(b)
    assert edge.manifest() == local.manifest()
    a.close()
    local.close()


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
