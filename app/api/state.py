"""What the API holds for its lifetime: engine, index store, live index, encoder, recommender.

Built once in the lifespan (in a worker thread: loading the model and opening the engine block),
kept on `app.state.services`, and closed at shutdown. An Edge shard locks its directory, so the
live index MUST be closed before another instance in this process may open it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
import numpy as np
from litestar import Litestar
from litestar.datastructures import State
from sqlalchemy.engine import Engine

from app.catalog.db import make_engine
from app.embedding.text import cached_query_encoder
from app.errors import IndexUnavailable
from app.recommend.recommender import Recommender
from app.settings import DEV_SECRET_KEY, Settings
from app.vectorstore import IndexStore, MovieIndex, open_store
from app.vectorstore.cache import CachedIndex
from app.vectorstore.live import LiveIndex

log = logging.getLogger(__name__)


class QueryEncoder(Protocol):
    """What the API needs from a text model: TextEncoder, or any test double with the same shape."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class Services:
    settings: Settings
    engine: Engine
    store: IndexStore
    live: LiveIndex
    encoder: QueryEncoder
    device: str
    recommender: Recommender

    @classmethod
    def open(cls, settings: Settings, text_encoder: QueryEncoder | None = None) -> Services:
        engine = make_engine(settings.sqlalchemy_url)
        store = open_store(settings)
        # Opened in the lifespan when one is published; until then requests answer 503 and retry the open.
        live = LiveIndex(store, _vector_cache(settings))
        encoder, device = _encoder(settings, text_encoder)
        recommender = Recommender(
            index=live.current,
            encode_query=cached_query_encoder(encoder),
            history_size=settings.history_size,
            half_life_days=settings.half_life_days,
        )
        return cls(settings, engine, store, live, encoder, device, recommender)

    def close(self) -> None:
        self.live.close()
        self.engine.dispose()


def _vector_cache(settings: Settings) -> Callable[[MovieIndex], MovieIndex] | None:
    """Only Edge generations are immutable once published: a server collection takes incremental upserts."""
    if settings.qdrant_url or not settings.vector_cache_max_points:
        return None
    return lambda index: CachedIndex.wrap(index, settings.vector_cache_max_points)


def _encoder(settings: Settings, injected: QueryEncoder | None) -> tuple[QueryEncoder, str]:
    if injected is not None:
        return injected, str(getattr(injected, "device", settings.device))
    from app.embedding.device import resolve_device
    from app.embedding.factory import build_text_encoder

    device = resolve_device(settings.device)
    return build_text_encoder(settings, device), device


def make_lifespan(
    settings: Settings, text_encoder: QueryEncoder | None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if settings.secret_key == DEV_SECRET_KEY:
            log.warning("MOVIEREC_SECRET_KEY is the development default: anyone can sign tokens; set your own")
        services = await anyio.to_thread.run_sync(Services.open, settings, text_encoder)
        generation = await anyio.to_thread.run_sync(_open_index, services.live, services.encoder)
        app.state.services = services
        log.info("api ready", extra={"device": services.device, "index_generation": generation})
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(services.close)
            del app.state.services

    return lifespan


def _open_index(live: LiveIndex, encoder: QueryEncoder) -> str | None:
    """Open the published index (and fill its vector cache) at start-up rather than on the first
    request. A missing or unreachable index must not stop the API from starting: it answers 503."""
    try:
        live.current()
        manifest = live.store.manifest()
    except IndexUnavailable as exc:
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
    return state.services  # type: ignore[no-any-return]
