"""The published index as a long-running reader sees it: reopened when a new one is published.

Two promises, for an API that serves for days across reindexes and operator mistakes:

- **One consistent state.** When what is published cannot be opened (a malformed or dangling
  `CURRENT`, a missing or corrupt generation, a server alias gone), the last good generation keeps
  serving and `problem` says why; with no good generation ever, every read raises IndexUnavailableError.
  The state changes only when the published pointer does: never back and forth from one second to
  the next.
- **A switched-out generation is released** (shard closed, vector cache dropped) as soon as the last
  request that used it ends, not one reindex later. A request holds a lease (`begin`/`end`, or the
  `lease()` block): every `current()` inside it returns the generation its first call got.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field

from app.errors import IndexUnavailableError
from app.vectorstore.base import NOT_BUILT, IndexStore, Manifest, MovieIndex

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0
UNREADABLE = "the published index cannot be opened (the server log says why)"


@dataclass(eq=False)
class Generation:
    """One opened generation and the leases that use it."""

    name: str
    index: MovieIndex
    manifest: Manifest | None
    users: int = 0  # leases on it; once switched out, it is closed when this reaches 0


@dataclass(eq=False)
class Lease:
    """One request's hold on the generation its first `current()` returned."""

    token: Token[Lease | None] | None = None
    held: Generation | None = field(default=None)


class LiveIndex:
    """Hands out the generation to serve; checks the published one at most once a second.

    Thread-safe. Callers that keep using an index across a switch must hold a lease: outside one,
    a switched-out generation is closed at once.
    """

    def __init__(self, store: IndexStore, prepare: Callable[[MovieIndex], MovieIndex] | None = None) -> None:
        """`prepare` wraps each newly opened generation, e.g. in a vector cache."""
        self.store = store
        self._prepare = prepare
        self._lock = threading.Lock()  # guards _serving, _retired and every users count: held briefly
        self._checking = threading.Lock()  # one thread checks and opens; the others keep serving
        self._serving: Generation | None = None
        self._retired: list[Generation] = []  # switched out, still leased
        self._problem: str | None = None
        self._answers = True  # whether the served generation answered when the published one failed
        self._checked_at = float("-inf")
        self._lease: ContextVar[Lease | None] = ContextVar(f"index_lease_{id(self)}", default=None)

    # -- reading --------------------------------------------------------------------------------
    def current(self) -> MovieIndex:
        """The generation to serve: the leased one inside a lease, else the newest good one.

        Raises IndexUnavailableError (its message names no path) when no good generation was ever opened,
        or when the served one stops answering as well (a server that went away)."""
        lease = self._lease.get()
        if lease is not None and lease.held is not None:
            return lease.held.index
        if self._serving is None or time.monotonic() - self._checked_at >= CHECK_EVERY_S:
            self._check()
        with self._lock:
            serving = self._serving
            if serving is None or not self._answers:
                raise IndexUnavailableError(self._problem or NOT_BUILT)
            if lease is not None:
                serving.users += 1
                lease.held = serving
            return serving.index

    @property
    def generation(self) -> str | None:
        """The name of the generation being served, or None."""
        serving = self._serving
        return serving.name if serving else None

    def manifest(self) -> Manifest | None:
        """The manifest of the generation being served (not necessarily the published one)."""
        serving = self._serving
        return serving.manifest if serving else None

    @property
    def problem(self) -> str | None:
        """Why what is published cannot be served now (the last good generation serves meanwhile);
        None when the served generation is the published one."""
        return self._problem

    # -- leases ---------------------------------------------------------------------------------
    def begin(self) -> Lease:
        """Start a lease in the current context (threads started from it inherit it)."""
        lease = Lease()
        lease.token = self._lease.set(lease)
        return lease

    def end(self, lease: Lease) -> MovieIndex | None:
        """End `lease`. Returns the index the caller must close when this was the last user of a
        switched-out generation (so an event loop can close it in a thread), else None."""
        if lease.token is not None:
            self._lease.reset(lease.token)
        held, lease.held = lease.held, None
        if held is None:
            return None
        with self._lock:
            held.users -= 1
            if held.users > 0 or held not in self._retired:  # still leased, serving, or closed by close()
                return None
            self._retired.remove(held)
        return held.index

    @contextmanager
    def lease(self) -> Iterator[None]:
        """`with live.lease(): ...`: one generation for the whole block, released at its end."""
        lease = self.begin()
        try:
            yield
        finally:
            doomed = self.end(lease)
            if doomed is not None:
                doomed.close()

    # -- switching ------------------------------------------------------------------------------
    def _check(self) -> None:
        # With a generation to serve, a request never waits for another one's check (an open
        # fills the vector cache: seconds); with none, it waits and sees that check's outcome.
        if not self._checking.acquire(blocking=self._serving is None):
            return
        try:
            if self._serving is not None and time.monotonic() - self._checked_at < CHECK_EVERY_S:
                return  # checked while this thread waited
            self._checked_at = time.monotonic()
            problem = self._follow()
            # Serving the last good generation is only worth it if it answers: an unreachable
            # server fails both ways, and then nothing is served (503) until it is back.
            serving = self._serving
            self._answers = problem is None or serving is None or _answers(serving.index)
            self._set_problem(problem)
        finally:
            self._checking.release()

    def _follow(self) -> str | None:
        """Switch to the published generation if it is new. Returns why it cannot be, or None."""
        try:
            name = self.store.generation()
            if name is None:
                return NOT_BUILT
            if self._serving is None or name != self._serving.name:
                self._switch(name)
            return None
        except IndexUnavailableError as exc:
            return str(exc)
        except Exception:  # a server client's own errors, an engine's panic: never a 500
            log.exception("opening the published index failed")
            return UNREADABLE

    def _switch(self, name: str) -> None:
        fresh = self.store.open()
        try:
            manifest = self.store.manifest()
            if manifest is None:
                raise IndexUnavailableError(f"index generation {name} has no manifest")
            if self._prepare is not None:
                fresh = self._prepare(fresh)
        except BaseException:
            fresh.close()
            raise
        with self._lock:
            old, self._serving = self._serving, Generation(name, fresh, manifest)
            doomed = self._retire(old)
        if doomed is not None:
            doomed.close()
        log.info("index generation opened", extra={"index_generation": name, "previous": old and old.name})

    def _retire(self, old: Generation | None) -> MovieIndex | None:
        """Under the lock: the old generation's index to close now, or None while leases hold it."""
        if old is None:
            return None
        if old.users == 0:
            return old.index
        self._retired.append(old)
        return None

    def _set_problem(self, problem: str | None) -> None:
        if problem != self._problem:  # log changes only: the check runs every second
            level = logging.WARNING if problem else logging.INFO
            log.log(level, "published index state changed", extra={"problem": problem, "serving": self.generation})
        self._problem = problem

    def close(self) -> None:
        """Close every generation, leased or not: the process is shutting down."""
        with self._lock:
            doomed = [g.index for g in (self._serving, *self._retired) if g is not None]
            self._serving, self._retired = None, []
        for index in doomed:
            index.close()


def _answers(index: MovieIndex) -> bool:
    try:
        index.count()
    except Exception:  # whatever the engine raises, it does not answer
        return False
    return True
