"""Issue 10.3 and 10.4: a database that stalls, goes away, is read-only or is misconfigured gives a
quick 503 naming the database, never a hang or a 500; routes that need no database keep answering;
service comes back by itself.

PostgreSQL is reached through `FlakyProxy`, a loopback TCP proxy in this file that can pass, drop
(accept and forward nothing: the database looks stalled) or refuse traffic. The read-only cases run
on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlmodel import Session, create_engine

from app.api import create_app
from app.catalog.models import Movie
from app.settings import Settings
from movierec.cli import server_limits
from tests.helpers.api import bearer
from tests.helpers.server import serve
from tests.helpers.worlds import PG_ADMIN_URL, TEST_DB, copy_settings, make_settings, new_pg_database

pytestmark = pytest.mark.anyio


def _postgres_up() -> bool:
    url = make_url(PG_ADMIN_URL)
    with contextlib.suppress(OSError), socket.create_connection((url.host, url.port or 5432), timeout=2):
        return True
    return False


needs_postgres = pytest.mark.skipif(not _postgres_up(), reason="PostgreSQL at 127.0.0.1:5432 is not running")


class FlakyProxy:
    """A TCP proxy on 127.0.0.1 (free port) to `target`, in threads. `mode`:
    - "pass": forwards both ways;
    - "drop": accepts and reads, forwards nothing (a database that is reachable but does not answer);
    - "refuse": closes new and open connections (a database that went away).
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.mode = target, "pass"
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode == "refuse":
            with self._lock:
                for sock in self._open:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.set("refuse")
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if self.mode == "pass":
                    dst.sendall(data)
                elif self.mode == "refuse":
                    break
                # "drop": read and discard, so the sender never blocks and never hears back
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._open -= {src, dst}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def proxy() -> Iterator[FlakyProxy]:
    url = make_url(PG_ADMIN_URL)
    p = FlakyProxy((url.host or "127.0.0.1", url.port or 5432))
    yield p
    p.close()


def proxied_world(demo_settings: Settings, tmp_path: Any, proxy: FlakyProxy, **overrides: Any) -> Settings:
    """A copy of the demo index with a fresh PostgreSQL database behind the proxy, holding one movie."""
    direct = new_pg_database()
    engine = create_engine(direct, poolclass=NullPool)
    from app.catalog.db import ensure_schema

    ensure_schema(engine)
    with Session(engine) as s:
        s.add(Movie(id=1, title="Toy Story", year=1995, genres=["Animation"]))
        s.commit()
    engine.dispose()
    via_proxy = make_url(direct).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    world = copy_settings(demo_settings, tmp_path / "data")
    timeouts = dict(db_connect_timeout_s=2, db_statement_timeout_s=1, db_pool_timeout_s=1, db_max_concurrency=4)
    return world.model_copy(update={"database_url": via_proxy, "token_refresh_s": 0.2, **timeouts, **overrides})


@contextlib.asynccontextmanager
async def serving(settings: Settings, text_encoder: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder), timeout=120) as client:
        yield client


def admin(settings: Settings) -> dict[str, str]:
    return bearer(settings, admin=True)


def assert_503_naming_the_database(resp: Any) -> None:
    assert resp.status_code == 503, resp.text
    assert "database" in resp.json()["detail"], resp.text
    assert "Traceback" not in resp.text and "postgresql" not in resp.text.lower() and "/tmp" not in resp.text


DB_ROUTES = ["/movies/1", "/users/1/ratings", "/movies/recommendations?user_id=1", "/metrics/embeddings"]
INDEX_ROUTES = ["/movies/search?q=toys%20come%20alive", "/genres", "/movies/1/similar"]


@needs_postgres
async def test_a_stalled_database_answers_503_fast_and_recovers(
    demo_settings: Settings, tmp_path: Any, text_encoder: Any, proxy: FlakyProxy
) -> None:
    settings = proxied_world(demo_settings, tmp_path, proxy)
    headers = admin(settings)
    # A real server: the test client hands requests to the app one at a time, which hides starvation.
    with serve(create_app(settings, text_encoder=text_encoder), settings) as base_url:
        client = httpx.AsyncClient(base_url=base_url, timeout=120, limits=httpx.Limits(max_connections=200))
        assert (await client.get("/movies/1", headers=headers)).status_code == 200
        proxy.set("drop")
        answers: dict[str, list[int]] = {"db": [], "index": []}

        async def call(kind: str, url: str) -> None:
            answers[kind].append((await client.get(url, headers=headers)).status_code)

        # Far more database requests than the worker has threads for database work, and reads that
        # need only the index among them: the latter must all be served, the former refused quickly.
        with anyio.fail_after(90):  # a hang fails here; the bound is generous on purpose (shared CPUs)
            async with anyio.create_task_group() as tg:
                for i in range(60):
                    tg.start_soon(call, "db", "/movies/1" if i % 2 else "/users/1/ratings")
                for url in INDEX_ROUTES * 4:
                    tg.start_soon(call, "index", url)
            health = await client.get("/health")
        assert answers["index"] == [200] * len(INDEX_ROUTES) * 4, answers["index"]
        assert set(answers["db"]) == {503}, answers["db"]
        assert health.status_code == 503 and health.json()["database"] is False, health.text
        assert "database" in health.json()["detail"], health.text
        assert_503_naming_the_database(await client.get("/movies/1", headers=headers))

        proxy.set("pass")  # the database answers again: no restart, no manual reset
        with anyio.fail_after(60):
            while (await client.get("/movies/1", headers=headers)).status_code != 200:
                await anyio.sleep(0.2)
        assert (await client.get("/health")).status_code == 200
        await client.aclose()


@needs_postgres
async def test_a_database_gone_at_run_time_is_503_not_500(
    demo_settings: Settings, tmp_path: Any, text_encoder: Any, proxy: FlakyProxy
) -> None:
    settings = proxied_world(demo_settings, tmp_path, proxy)
    headers = admin(settings)
    async with serving(settings, text_encoder) as client:
        assert (await client.get("/movies/1", headers=headers)).status_code == 200
        proxy.set("refuse")
        for url in DB_ROUTES:
            assert_503_naming_the_database(await client.get(url, headers=headers))
        assert_503_naming_the_database(
            await client.post("/users/1/ratings", json={"movie_id": 1, "rating": 4}, headers=headers)
        )
        assert_503_naming_the_database(await client.delete("/users/1/ratings/1", headers=headers))
        for url in INDEX_ROUTES:
            assert (await client.get(url, headers=headers)).status_code == 200, url
        proxy.set("pass")
        with anyio.fail_after(60):
            while (await client.get("/movies/1", headers=headers)).status_code != 200:
                await anyio.sleep(0.2)


async def test_a_wrong_database_port_at_start_up_serves_503_and_health_explains(
    demo_settings: Settings, tmp_path: Any, text_encoder: Any
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        port = s.getsockname()[1]  # closed below: nothing listens there
    world = copy_settings(demo_settings, tmp_path / "data")
    settings = world.model_copy(
        update={"database_url": f"postgresql://postgres@127.0.0.1:{port}/test", "db_connect_timeout_s": 1}
    )
    headers = admin(settings)
    async with serving(settings, text_encoder) as client:  # starts: the lifespan does not fail
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["database"] is False, health.text
        assert "DATABASE_URL" in health.json()["detail"] or "database" in health.json()["detail"], health.text
        assert (await client.head("/health")).status_code == 503  # HEAD says the same, without a body
        for url in DB_ROUTES:
            assert_503_naming_the_database(await client.get(url, headers=headers))
        for url in INDEX_ROUTES:
            assert (await client.get(url, headers=headers)).status_code == 200, url
        user = bearer(settings, user_id=1)
        resp = await client.get("/genres", headers=user)  # revocations unreadable: 503, never trusted blindly
        assert resp.status_code == 503 and "database" in resp.json()["detail"], resp.text


@pytest.fixture
def read_only_world(demo_settings: Settings, tmp_path: Any) -> Iterator[Settings]:
    settings = copy_settings(demo_settings, tmp_path / "data")
    if TEST_DB == "postgres":
        name = make_url(settings.database_url).database
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        with engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        engine.dispose()
        yield settings
    else:  # the file opened read-only, as from a read-only mount
        db_file = settings.data_dir / "movierec.db"
        yield settings.model_copy(update={"database_url": f"sqlite:///file:{db_file}?mode=ro&uri=true"})


async def test_a_read_only_store_is_503_saying_so(read_only_world: Settings, text_encoder: Any) -> None:
    settings = read_only_world
    headers = admin(settings)
    async with serving(settings, text_encoder) as client:
        assert (await client.get("/movies/1", headers=headers)).status_code == 200  # reads still work
        for resp in (
            await client.post("/users/1/ratings", json={"movie_id": 1, "rating": 4.5}, headers=headers),
            await client.delete("/users/1/ratings/1", headers=headers),
        ):
            assert resp.status_code == 503, resp.text
            assert "read-only" in resp.json()["detail"] and "Traceback" not in resp.text, resp.text


async def test_deeply_nested_json_is_400(demo_settings: Settings, tmp_path: Any, text_encoder: Any) -> None:
    settings = make_settings(tmp_path / "data")
    headers = admin(settings) | {"Content-Type": "application/json"}
    async with serving(settings, text_encoder) as client:
        cases = [
            (b"[" * 100_000, "body"),
            (b"[" * 100_000 + b"]" * 100_000, "body"),
            (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "a"),  # refused at its first key: no such field
            (b'{"movie_id":' * 50_000 + b"1" + b"}" * 50_000, "movie_id"),
        ]
        for body, field in cases:
            resp = await client.post("/users/1/ratings", content=body, headers=headers)
            assert resp.status_code == 400, resp.text[:300]
            assert resp.json()["field"] == field and "Traceback" not in resp.text


async def test_bodies_over_the_limit_are_413(tmp_path: Any, text_encoder: Any) -> None:
    settings = make_settings(tmp_path / "data", max_body_bytes=64 * 1024)
    headers = admin(settings) | {"Content-Type": "application/json"}
    async with serving(settings, text_encoder) as client:
        big = b'{"movie_id": 1, "rating": 4, "pad": "' + b"x" * (65 * 1024) + b'"}'
        resp = await client.post("/users/1/ratings", content=big, headers=headers)
        assert resp.status_code == 413, resp.text[:300]
        # It says the limit and what to do: a Letterboxd or IMDb export that large gzips to a tenth.
        export = b"Date,Name,Year,Letterboxd URI,Rating\n" + b"2024-01-05,Heat,1995,u,4\n" * 3000
        url = "/users/1/ratings/import?format=letterboxd"
        resp = await client.post(url, content=export, headers=admin(settings))
        assert resp.status_code == 413 and resp.json()["field"] == "body", resp.text[:300]
        assert "65,536 bytes" in resp.json()["detail"] and "MOVIEREC_MAX_BODY_BYTES" in resp.json()["detail"]


def test_headers_over_the_limit_are_refused_by_the_server(tmp_path: Any, text_encoder: Any) -> None:
    settings = make_settings(tmp_path / "data", max_header_bytes=8 * 1024)
    with serve(create_app(settings, text_encoder=text_encoder), settings) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        assert httpx.get(f"{base_url}/health", headers={"X-Pad": "x" * 4096}, timeout=30).status_code in (200, 503)
        # Raw socket: the server must answer 4xx or close, without reading a 1 MB header to the end.
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"x" * (64 * 1024))
            with contextlib.suppress(OSError):
                sock.sendall(b"x" * (1024 * 1024) + b"\r\n\r\n")
            reply = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    reply += chunk
        assert reply == b"" or reply.split(b" ", 2)[1].startswith(b"4"), reply[:200]
        # A complete head over the limit in many small headers: 431 naming the limit, in the API's JSON
        # error body (it was uvicorn's plain text "Invalid HTTP request received."); just under it: served.
        pads = [f"X-Pad-{i}: {'x' * 1000}" for i in range(9)]
        status, body = _raw_reply(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + _lines(pads) + b"\r\n")
        assert status == 431 and body["status_code"] == 431, body
        assert "8,192 bytes" in body["detail"] and "MOVIEREC_MAX_HEADER_BYTES" in body["detail"], body
        assert _raw_reply(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + _lines(pads[:7]) + b"\r\n")[0] in (200, 503)
        # A long query value, as a client sends one.
        resp = httpx.get(f"{base_url}/movies/search", params={"q": "x" * 20_000}, timeout=30)
        assert resp.status_code == 431 and resp.json()["status_code"] == 431, resp.text[:300]
        # A request line that does not parse (a NUL, a raw 0xFF byte, an unknown method): 400, JSON too.
        for line in (b"GET /movies/1\x00 HTTP/1.1", b"GET /movies/\xff HTTP/1.1", b"FOO /health HTTP/1.1"):
            status, body = _raw_reply(port, line + b"\r\nHost: x\r\n\r\n")
            assert status == 400 and body["status_code"] == 400 and "malformed" in body["detail"], (line, body)
        # The count starts again with each request: a keep-alive client's heads add up to more than the limit.
        with httpx.Client(base_url=base_url, timeout=30) as client:
            for _ in range(3):
                assert client.get("/health", headers={"X-Pad": "x" * 6000}).status_code in (200, 503)
    assert server_limits(settings)["timeout_keep_alive"] == settings.timeout_keep_alive_s == 75


def _lines(headers: list[str]) -> bytes:
    return b"".join(h.encode() + b"\r\n" for h in headers)


def _raw_reply(port: int, request: bytes) -> tuple[int, Any]:
    """The status code and the JSON body of the server's answer to one raw request (it closes the
    connection after it: `Connection: close` is added)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))
        reply = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)
