"""What the API holds for its lifetime: engine, index store, live index, encoder, recommender.

Built once in the lifespan (in a worker thread: loading the model and opening the engine block),
kept on `app.state.services`, and closed at shutdown. An Edge shard locks its directory, so the
live index MUST be closed before another instance in this process may open it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import anyio
import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import State
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app.catalog.db import driver_message, ensure_schema, make_engine
from app.catalog.tokens import all_token_versions
from app.datadir import probe_data_dir
from app.embedding.text import QueryEncoder, cached_query_encoder
from app.errors import DatabaseUnavailableError, IndexUnavailableError
from app.recommend.memo import AnswerMemo
from app.recommend.recommender import INDEX_VIEWS, Recommender
from app.settings import Settings
from app.vectorstore import IndexStore, MovieIndex, open_store
from app.vectorstore.cache import CachedIndex
from app.vectorstore.live import LiveIndex

log = logging.getLogger(__name__)


T = TypeVar("T")


@dataclass
class TokenVersions:
    """Each revoked user's token version, as last read from the database (None: never read yet)."""

    versions: dict[int, int] | None = None

    def load(self, engine: Engine) -> None:
        with Session(engine) as session:
            self.versions = all_token_versions(session)


class DatabaseGate:
    """Bounds the database work of one worker, so a database that stalls cannot take every thread.

    At most `slots` requests use the database at once (each also holds a worker thread for as long
    as its statements take, which DbTimeouts bound); a request that finds no slot within `wait_s`
    answers 503 at once instead of queueing a thread. Routes that need no database never pass here
    and keep their threads. `ready` is False until the schema has been checked, so the API can start
    while the database is unreachable and serve it once it answers.
    """

    def __init__(self, slots: int, wait_s: float) -> None:
        self.slots, self.wait_s = slots, wait_s
        self.ready = False
        self.reachable = True  # as last seen by the lifespan's refresher (for logging)
        self._semaphore: anyio.Semaphore | None = None  # made on first use: it belongs to the event loop

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if not self.ready:
            raise DatabaseUnavailableError("the database is unavailable: it could not be reached since start-up")
        if self._semaphore is None:
            self._semaphore = anyio.Semaphore(self.slots)
        acquired = False
        with anyio.move_on_after(self.wait_s):  # bounds the wait only, never the work
            await self._semaphore.acquire()
            acquired = True
        if not acquired:
            raise DatabaseUnavailableError(f"the database is busy: no connection freed within {self.wait_s:g} s")
        try:
            yield
        finally:
            self._semaphore.release()

    async def run(self, func: Callable[..., T], *args: object) -> T:
        """`func(*args)` in a worker thread, holding a slot."""
        async with self.slot():
            return await anyio.to_thread.run_sync(func, *args)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    store: IndexStore
    live: LiveIndex
    encoder: QueryEncoder
    device: str
    recommender: Recommender
    db_gate: DatabaseGate = field(default_factory=lambda: DatabaseGate(10, 5.0))
    token_versions: TokenVersions = field(default_factory=TokenVersions)
    # What GET /health says of the data folder (DataDirProblem.says(public=True)); None: writable.
    # Probed by the lifespan at start-up and then every MOVIEREC_TOKEN_REFRESH_S (`_check_data_dir`).
    data_dir_problem: str | None = None

    @classmethod
    def open(
        cls,
        settings: Settings,
        text_encoder: QueryEncoder | None = None,
        observe_memo: Callable[[str, bool], None] | None = None,
    ) -> Services:
        """`observe_memo(kind, hit)`: told of every lookup in the answer memo (the API's metrics count them)."""
        # No schema work here: an unreachable database must not stop the API from starting.
        engine = make_engine(settings.sqlalchemy_url, settings.db_timeouts, create_schema=False)
        store = open_store(settings)
        # Opened in the lifespan when one is published; until then requests answer 503 and retry the open.
        live = LiveIndex(store, _prepare(_vector_cache(settings), lambda: recommender))
        encoder, device = _encoder(settings, text_encoder)
        recommender = Recommender(
            index=live.current,
            encode_query=cached_query_encoder(encoder),
            history_size=settings.recommend.history_size,
            half_life_days=settings.recommend.half_life_days,
            memo=_answer_memo(settings, observe_memo),
        )
        gate = DatabaseGate(settings.db_max_concurrency, settings.db_pool_timeout_s)
        return cls(settings, engine, store, live, encoder, device, recommender, gate)

    async def in_session(self, work: Callable[[Session], T]) -> T:
        """`work(session)` in one worker thread, holding one of this worker's database slots
        (DatabaseGate): the Session is committed when `work` returns, rolled back when it raises, and
        closed either way. A request's whole database work goes in one call: each thread hop costs
        about as much as a small query. `work` returns plain values (Structs, tuples): the Session's
        objects expire when it commits."""
        return await self.db_gate.run(_in_session, self.engine, work)

    def sync_database(self) -> None:
        """Check the schema until that has once succeeded, then reread token versions. Raises
        SQLAlchemyError while the database is unreachable."""
        if not self.db_gate.ready:
            ensure_schema(self.engine)
            self.db_gate.ready = True
        self.token_versions.load(self.engine)

    def close(self) -> None:
        self.live.close()
        self.engine.dispose()


def _in_session(engine: Engine, work: Callable[[Session], T]) -> T:
    with Session(engine) as session:  # closing it rolls back what was not committed
        result = work(session)
        session.commit()
        return result


def _vector_cache(settings: Settings) -> Callable[[MovieIndex], MovieIndex] | None:
    """Only Edge generations are immutable once published: a server collection takes incremental upserts."""
    if settings.qdrant_url or not settings.vector_cache_max_points:
        return None
    return lambda index: _frozen(CachedIndex.wrap(index, settings.vector_cache_max_points, INDEX_VIEWS))


def _prepare(
    cache: Callable[[MovieIndex], MovieIndex] | None, recommender: Callable[[], Recommender]
) -> Callable[[MovieIndex], MovieIndex]:
    """What LiveIndex does to each generation it opens, in the one thread that opens it while the
    others serve the one before: the vector cache, then search's spelling vocabulary (1-2 s at 62k
    movies, which every worker's first search after a switch would otherwise wait for). A failed
    vocabulary read is logged and left to the first search; it never keeps a generation from serving."""

    def prepare(index: MovieIndex) -> MovieIndex:
        index = cache(index) if cache else index
        try:
            recommender().speller(index)
        except Exception as exc:  # the engine's own errors included: search reads it again
            log.warning("search's spelling vocabulary not read", extra={"error": str(exc)[:200]})
        return index

    return prepare


def _answer_memo(settings: Settings, observe: Callable[[str, bool], None] | None) -> AnswerMemo | None:
    """A worker's answer memo, as the settings size it; none for a server collection, which takes
    incremental upserts under one generation (an answer's key would not see them)."""
    size = int(settings.answer_memo_mb * 1024 * 1024)
    if settings.qdrant_url or not settings.answer_memo_entries or not size:
        return None
    return AnswerMemo(settings.answer_memo_entries, size, observe)


def _frozen(index: MovieIndex) -> MovieIndex:
    """Move every object alive now (the models, the vector cache: about 160k objects at the demo's
    size) out of the garbage collector's generations. A full collection walked them all: about 90 ms,
    every few hundred requests, at a heavy user's thousands of rows per request. They are still
    freed by reference counting when a reindex closes the generation (the cache holds no cycles)."""
    gc.freeze()
    return index


def _encoder(settings: Settings, injected: QueryEncoder | None) -> tuple[QueryEncoder, str]:
    if injected is not None:
        return injected, str(getattr(injected, "device", settings.device))
    from app.embedding.device import resolve_device
    from app.embedding.factory import build_text_encoder

    device = resolve_device(settings.device)
    return build_text_encoder(settings, device), device


def make_lifespan(
    settings: Settings,
    text_encoder: QueryEncoder | None,
    observe_memo: Callable[[str, bool], None] | None = None,
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = await anyio.to_thread.run_sync(Services.open, settings, text_encoder, observe_memo)
        await _check_data_dir(services)  # before the database and index fail on it
        await _sync_database(services, at_start=True)
        generation = await anyio.to_thread.run_sync(_open_index, services)
        app.state.services = services
        refresher = asyncio.get_running_loop().create_task(_keep_in_sync(services))
        log.info("api ready", extra={"device": services.device, "index_generation": generation})
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher
            await anyio.to_thread.run_sync(services.close)
            del app.state.services

    return lifespan


async def _sync_database(services: Services, *, at_start: bool = False) -> None:
    """One line when the database becomes unreachable and one when it is back, not one per attempt."""
    gate = services.db_gate
    try:
        await anyio.to_thread.run_sync(services.sync_database)
    except SQLAlchemyError as exc:
        if gate.reachable:
            # No traceback: /health says the same, and requests that need the database answer 503.
            log.warning(
                "the database is unreachable%s; check DATABASE_URL",
                " at start-up: serving what needs no database" if at_start else "",
                extra={"error": driver_message(exc)},
            )
        gate.reachable = False
        return
    if not gate.reachable:
        log.info("the database is reachable again")
    gate.reachable = True


async def _keep_in_sync(services: Services) -> None:
    """Every MOVIEREC_TOKEN_REFRESH_S: the data folder's writability (what /health reports of it),
    the schema once reachable, then the token revocations."""
    while True:
        await anyio.sleep(services.settings.token_refresh_s)
        await _check_data_dir(services)
        await _sync_database(services)


async def _check_data_dir(services: Services) -> None:
    """Probe the data folder the API writes and keep the answer for /health; one line when it becomes
    unwritable (at start-up too) and one when it is writable again."""
    problem = await anyio.to_thread.run_sync(lambda: probe_data_dir(services.settings, serving=True))
    if problem is not None and services.data_dir_problem is None:
        log.warning("%s; /health answers 503 until it is", problem.says())
    elif problem is None and services.data_dir_problem is not None:
        log.info("the data folder is writable again")
    services.data_dir_problem = None if problem is None else problem.says(public=True)


def _open_index(services: Services) -> str | None:
    """Open the published index (`_prepare`: its vector cache, search's spelling vocabulary) at
    start-up rather than on the first request. A missing or unreachable index must not stop the API
    from starting: it answers 503."""
    live, encoder = services.live, services.encoder
    try:
        live.current()
        manifest = live.store.manifest()
    except IndexUnavailableError as exc:
        log.warning("index unavailable at start-up", extra={"error": str(exc)})
        return None
    query_model = getattr(encoder, "model_id", None)
    if manifest is not None and query_model is not None and query_model != manifest.text_model:
        # Searches still answer, from a slightly different space: say how to line them up.
        log.warning(
            "search queries are embedded by another text model than the index's: "
            "set MOVIEREC_TEXT_BACKEND to the one the index was built with, or reindex",
            extra={"query_text_model": query_model, "index_text_model": manifest.text_model},
        )
    return live.generation


def services_from(state: State) -> Services:
    services: Services = state.services  # set by the lifespan; State's values are Any
    return services
