"""The published index as a long-running reader sees it: reopened when a new one is published."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.errors import IndexUnavailable
from app.vectorstore.base import IndexStore, MovieIndex

CHECK_EVERY_S = 1.0


class LiveIndex:
    """Hands out the current published index; checks for a newer one at most once a second.

    The previous generation stays open until the next switch, so a query that started on it
    finishes there: a reindex never interrupts a reader.
    """

    def __init__(self, store: IndexStore, prepare: Callable[[MovieIndex], MovieIndex] | None = None) -> None:
        """`prepare` wraps each newly opened generation, e.g. in a vector cache."""
        self.store = store
        self._prepare = prepare
        self._lock = threading.Lock()
        self._index: MovieIndex | None = None
        self._previous: MovieIndex | None = None
        self._generation: str | None = None
        self._checked_at = 0.0

    def current(self) -> MovieIndex:
        now = time.monotonic()
        if self._index is not None and now - self._checked_at < CHECK_EVERY_S:
            return self._index
        with self._lock:
            self._checked_at = now
            generation = self.store.generation()
            if self._index is None or generation != self._generation:
                self._switch(generation)
            if self._index is None:
                raise IndexUnavailable("the index is not built yet: run `movierec ingest`")
            return self._index

    def _switch(self, generation: str | None) -> None:
        if generation is None:
            return
        fresh = self.store.open()
        if self._prepare is not None:
            fresh = self._prepare(fresh)
        if self._previous is not None:
            self._previous.close()
        self._previous, self._index, self._generation = self._index, fresh, generation

    @property
    def generation(self) -> str | None:
        return self._generation

    def close(self) -> None:
        with self._lock:
            for index in (self._index, self._previous):
                if index is not None:
                    index.close()
            self._index = self._previous = None
