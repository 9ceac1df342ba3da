"""The API's life: the lifespan releases the index, a query model unlike the index is reported, a
missing index or unreachable Qdrant server is a 503, and `movierec serve --workers 2` answers alike."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func
from sqlmodel import Session, select

from app.api import create_app
from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.models import Movie, Rating
from app.settings import Settings
from tests.helpers.api import assert_error, bearer
from tests.helpers.worlds import copy_settings, make_settings

pytestmark = pytest.mark.anyio


async def test_lifespan_releases_the_index(demo_settings: Settings, tmp_path: Any, text_encoder: Any) -> None:
    # An Edge shard locks its directory until it is closed: after the lifespan, the published
    # generation must open in place again (a reader that finds it locked reads a copy instead).
    from app.vectorstore.edge import EdgeIndex

    settings = copy_settings(demo_settings, tmp_path / "data")
    for _ in range(2):
        async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
            assert (await client.get("/health")).status_code == 200
        generation = settings.index_dir / (settings.index_dir / "CURRENT").read_text().strip()
        EdgeIndex.load(generation / "shard").close()  # raises ShardLockedError if the app kept it open


async def test_a_query_model_unlike_the_index_is_reported(
    demo_settings: Settings, tmp_path: Any, text_encoder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from app.embedding.text import TextEncoder

    settings = copy_settings(demo_settings, tmp_path / "data")
    warning = "another text model than the index's"
    int8 = TextEncoder("cpu", backend="onnx-int8", cache_dir=settings.model_cache_dir)
    for encoder, warned in ((text_encoder, False), (int8, True)):
        caplog.clear()
        async with AsyncTestClient(create_app(settings, text_encoder=encoder)) as client:
            assert (await client.get("/movies/search?q=space", headers=bearer(settings, admin=True))).status_code == 200
        assert any(warning in r.getMessage() for r in caplog.records) is warned


# -- no index -------------------------------------------------------------------------------------
async def test_missing_index_is_503(tmp_path: Any, text_encoder: Any) -> None:
    settings = make_settings(tmp_path / "empty")
    headers = bearer(settings, admin=True)
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        health = await client.get("/health")
        assert health.status_code == 503
        assert (health.json()["database"], health.json()["index"]) == (True, False)
        assert_error(await client.get("/movies/search?q=space", headers=headers), 503)
        assert_error(await client.get("/movies/1/similar", headers=headers), 503)
        metrics = await client.get("/metrics/embeddings", headers=headers)
        assert metrics.status_code == 200 and metrics.json()["movies_in_index"] == 0
        # A user with ratings but no index: the recommendation needs the index, so 503 too.
        with Session(make_engine(settings.sqlalchemy_url)) as s:
            s.add(Movie(id=1, title="Alone"))
            s.commit()
            repo.upsert_ratings(s, [(1, 1, 4.0, 1)])
            s.commit()
        assert_error(await client.get("/movies/recommendations?user_id=1", headers=headers), 503)


async def test_unreachable_qdrant_server_is_a_quick_503(tmp_path: Any, text_encoder: Any) -> None:
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = {"qdrant_url": f"http://127.0.0.1:{port}", "qdrant_timeout_s": 1.0}
    settings = make_settings(tmp_path / "data").model_copy(update=unreachable)
    headers = bearer(settings, admin=True)
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        started = time.monotonic()
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["index"] is False
        body = assert_error(await client.get("/movies/search?q=space", headers=headers), 503)
        assert str(port) in body["detail"]
        assert time.monotonic() - started < 30, "an unreachable server must fail fast, never hang"


# -- the served API, several worker processes ---------------------------------------------------------
def test_serve_with_two_workers(demo_settings: Settings, tmp_path: Any) -> None:
    """`movierec serve --workers 2` on an Edge index: the second worker finds the generation locked
    and reads a private copy; both answer alike, and the copy is gone after a graceful shutdown."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    settings = copy_settings(demo_settings, tmp_path / "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "QDRANT_URL")}
    env.update(MOVIEREC_DATA_DIR=str(settings.data_dir), MOVIEREC_SECRET_KEY=settings.secret_key, HF_HUB_OFFLINE="1")
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
    readers = settings.index_dir / "readers"
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not (readers.exists() and any(readers.iterdir()) and log.read_text().count("api ready") == 2):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        with Session(make_engine(settings.sqlalchemy_url)) as s:
            user = s.exec(select(Rating.user_id).group_by(Rating.user_id).order_by(func.count().desc())).first()
        headers = bearer(settings, admin=True)
        # A new connection per request, so the kernel spreads them over both workers.
        answers = [httpx.get(f"{url}/movies/recommendations?user_id={user}", headers=headers) for _ in range(20)]
        assert all(a.status_code == 200 for a in answers), answers[0].text
        assert len({a.text for a in answers}) == 1, "both workers must give the same answer"
        health = httpx.get(f"{url}/health")
        assert health.json()["status"] == "ok", health.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert not any(readers.iterdir()), "a worker's copy must go when it shuts down"
