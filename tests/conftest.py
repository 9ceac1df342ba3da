"""Shared fixtures. Real models, real engines, real databases; small data.

Plain helpers (settings for a test world, API calls, a browser, a server) are in tests/helpers/."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import Engine

from app.settings import Settings
from tests.helpers.api import bearer
from tests.helpers.ingest import build_index
from tests.helpers.qdrant import QDRANT_IMAGE
from tests.helpers.worlds import DEMO_LIMIT, copy_settings, make_settings


# ---- a small real index, built once per session with the real text model ----
@pytest.fixture(scope="session")
def text_encoder():
    from app.embedding.text import TextEncoder

    return TextEncoder("cpu")


@pytest.fixture(scope="session")
def demo_settings(tmp_path_factory: pytest.TempPathFactory, text_encoder):
    """Settings pointing at a data dir holding the first DEMO_LIMIT demo movies, their ratings
    and a published Edge index. Shared: tests must not modify it (copy it if they need to)."""
    settings = make_settings(tmp_path_factory.mktemp("demo"))
    build_index(settings, text_encoder, "demo", limit=DEMO_LIMIT)
    return settings


# ---- a private API world per test module ----
# A copy of the demo fixture (data dir and database), so the module's writes stay its own, with the
# app serving it. A module that needs another world defines fixtures of the same names, which take
# precedence over these.
@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def settings(
    demo_settings: Settings, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Settings:
    name = request.module.__name__.rsplit(".", 1)[-1]
    return copy_settings(demo_settings, tmp_path_factory.mktemp(name) / "data")


@pytest.fixture(scope="module")
def db(settings: Settings) -> Iterator[Engine]:
    from app.catalog.db import make_engine

    engine = make_engine(settings.sqlalchemy_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
async def client(settings: Settings, text_encoder: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    from app.api import create_app

    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as c:  # runs the lifespan
        yield c


@pytest.fixture(scope="module")
def admin(settings: Settings) -> dict[str, str]:
    return bearer(settings, admin=True)


@pytest.fixture(scope="module")
def real_users(db: Engine) -> list[int]:
    """Five MovieLens users with 20+ ratings among the world's movies, most ratings first."""
    from sqlalchemy import func
    from sqlmodel import Session, select

    from app.catalog.models import Rating

    with Session(db) as s:
        rows = s.exec(
            select(Rating.user_id)
            .group_by(Rating.user_id)
            .having(func.count() >= 20)
            .order_by(func.count().desc(), Rating.user_id)
            .limit(5)
        ).all()
    assert len(rows) == 5, "the demo fixture should hold users with 20+ ratings"
    return list(rows)


@pytest.fixture(scope="module")
def movie_ids(db: Engine) -> list[int]:
    """Every movie id of the world, ascending."""
    from sqlmodel import Session, select

    from app.catalog.models import Movie

    with Session(db) as s:
        return list(s.exec(select(Movie.id).order_by(Movie.id)))


# ---- evaluation data ----
@pytest.fixture(scope="module")
def ml100k() -> pd.DataFrame:
    """MovieLens 100k's ratings, as the evaluation loads them."""
    from app.evaluation.runner import load_dataset

    return load_dataset("ml-100k")[1]


@pytest.fixture(scope="module")
def eval_data_dir(request: pytest.FixtureRequest, text_encoder) -> Path:
    """A data dir whose embedding cache holds ml-100k's text vectors. It lives in pytest's cache,
    so only the first session pays for embedding the catalogue (about a minute on 2 cores)."""
    from app.evaluation.embed_cache import cached_text_vectors
    from app.evaluation.runner import load_dataset

    data_dir = Path(request.config.cache.mkdir("movierec-eval-data"))
    movies, _ = load_dataset("ml-100k")
    cached_text_vectors(movies, data_dir / "eval-cache", lambda: text_encoder)
    return data_dir


# ---- a real Qdrant server for the server adapter's tests ----
@pytest.fixture(scope="session")
def qdrant_server() -> Iterator[str]:
    """The URL of a Qdrant server that lives as long as the test session: QDRANT_URL if set, else a
    testcontainer. Where neither exists (no Docker daemon), the tests that need it skip saying why."""
    url = os.environ.get("QDRANT_URL")
    if url:
        yield url
        return
    from docker.errors import DockerException
    from testcontainers.community.qdrant import QdrantContainer

    try:
        container = QdrantContainer(QDRANT_IMAGE)  # connects to the Docker daemon at once
    except DockerException as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        pytest.skip(f"no Qdrant server: set QDRANT_URL or run Docker ({reason[:120]})")
    with container:
        yield f"http://{container.get_container_host_ip()}:{container.exposed_rest_port}"
