"""The engines every vector-store test runs against, behind IndexStore/MovieIndex.

"edge": qdrant-edge-py in tmp_path; "local": ServerStore over qdrant-client's in-memory (local)
mode; "server": ServerStore over a real Qdrant (skips without one). The answers are checked
against the exact in-memory oracle (tests/helpers/vectorstore.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from app.vectorstore import IndexStore, MovieIndex
from app.vectorstore.edge import EdgeStore
from app.vectorstore.server import ServerStore
from tests.helpers.vectorstore import Engine, build


@pytest.fixture(params=["edge", "local", "server"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from _engine(request.param, request, tmp_path)


@pytest.fixture(params=["local", "server"])
def server_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from _engine(request.param, request, tmp_path)


@pytest.fixture
def published(engine: Engine) -> Iterator[tuple[IndexStore, MovieIndex]]:
    store = engine.make()
    build(store)
    index = store.open()
    yield store, index
    index.close()


def _engine(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if name == "edge":
        yield Engine(name, lambda: EdgeStore(tmp_path / "index"))
    elif name == "local":
        yield from _server_engine(name, QdrantClient(":memory:"))
    else:
        url = request.getfixturevalue("qdrant_server")
        yield from _server_engine(name, QdrantClient(url=url, timeout=10))


def _server_engine(name: str, client: QdrantClient) -> Iterator[Engine]:
    alias = f"test_movies_{uuid.uuid4().hex[:12]}"  # each test its own alias and collections
    yield Engine(name, lambda: ServerStore(client, alias=alias))
    for c in client.get_collections().collections:
        if c.name.startswith(f"{alias}_"):
            client.delete_collection(c.name)
    client.close()
