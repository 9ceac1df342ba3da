"""A worker's memo of answers: a question asked again over the same data gets the answer made before.

What Gorse and most production recommenders do, kept honest by its keys: a key holds everything an
answer depends on, so an entry can never be stale and nothing ever needs invalidating, in this
worker or another. A recommendation's key holds a digest of the user's rating rows (movie, stars,
timestamp) and hidden movies as read for this very request, so a rating written through any worker
changes the next request's key. Every key also holds the index generation (`AnswerMemo.key`: a
number that changes whenever the Recommender is handed another index object) and the request's own
inputs; the Recommender adds its tuning.

Bounded twice: in entries, and in an estimate of the bytes the answers hold (`approx_bytes`); the
least recently used entries go first. A heavy user's thousands of rows are never held: only their
16-byte digest. Thread-safe (handlers run in worker threads); one memo per worker process.

Only for an index that cannot change under one generation (an Edge generation is immutable once
published; a server collection takes incremental upserts: the API gives it no memo).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from hashlib import blake2b
from typing import Any, Protocol

import numpy as np

from app.catalog.repository import HIDDEN_COLUMNS, RATING_COLUMNS, HiddenMovie, RatingColumns, UserRating

DIGEST_BYTES = 16  # blake2b-128: a collision among 2^32 keys has probability about 2^-64
KEY_BYTES = 200  # a key's tuple, its digests and small values
ITEM_BYTES = 320  # one ScoredMovie/Recommendation without its strings: instance, dict, floats, genres list


class _Item(Protocol):
    title: str


class AnswerMemo:
    """A bounded LRU of answers by key, with hit and miss counts per kind of answer."""

    def __init__(self, max_entries: int, max_bytes: int, observe: Callable[[str, bool], None] | None = None) -> None:
        """`observe(kind, hit)` is called on every lookup (the API counts them for Prometheus)."""
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.observe = observe
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}
        self._entries: OrderedDict[tuple[Any, ...], tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._index: object = None  # the last index seen; its generation number is _epoch
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The estimated bytes held (approx_bytes of every entry)."""
        return self._bytes

    def key(self, kind: str, index: object, *parts: Hashable) -> tuple[Any, ...]:
        """The key of a `kind` answer made from `index` and `parts`. A number stands for the index
        generation: it changes, and the memo empties, whenever `index` is another object than the
        last one seen (two generations served at once during a switch only cost misses)."""
        with self._lock:
            if index is not self._index:
                self._index, self._epoch = index, self._epoch + 1
                self._entries.clear()
                self._bytes = 0
            return (self._epoch, kind, *parts)

    def get(self, key: tuple[Any, ...], usable: Callable[[Any], bool] | None = None) -> Any | None:
        """The answer stored under `key` when there is one and `usable(answer)` (default: any), else None.
        Counted as a hit or a miss of the key's kind."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        value = found[0] if found is not None and (usable is None or usable(found[0])) else None
        self._count(key[1], value is not None)
        return value

    def put(self, key: tuple[Any, ...], value: Any, size: int) -> None:
        """Store `value` (about `size` bytes) under `key`, evicting the least recently used entries
        beyond the bounds. A key made before the generation changed is dropped: it can never be asked."""
        size += KEY_BYTES
        if size > self.max_bytes:
            return
        with self._lock:
            if key[0] != self._epoch:
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, freed) = self._entries.popitem(last=False)
                self._bytes -= freed

    def _count(self, kind: str, hit: bool) -> None:
        counts = self.hits if hit else self.misses
        counts[kind] = counts.get(kind, 0) + 1  # a lost update under threads costs a count, never an answer
        if self.observe is not None:
            self.observe(kind, hit)


def digest_rows(ratings: Sequence[UserRating], hidden: Sequence[HiddenMovie]) -> bytes:
    """A 16-byte digest of a user's ratings and hidden movies, in order: each table's length, then
    its rows as typed columns (RATING_COLUMNS, HIDDEN_COLUMNS: ids and seconds int64, stars
    float64), so distinct rows never share a digest (ids run to 10^18 - 1: as float64, 2^53 and
    2^53 + 1 were one key). RatingColumns are digested as they are. 5,000 rating rows: about 0.1 ms
    as columns, 0.5 ms as records."""
    h = blake2b(digest_size=DIGEST_BYTES)
    for rows, dtype in ((ratings, RATING_COLUMNS), (hidden, HIDDEN_COLUMNS)):
        table = rows.table if isinstance(rows, RatingColumns) else np.fromiter(rows, dtype, len(rows))
        h.update(np.int64(len(rows)).tobytes())
        h.update(table.tobytes())
    return h.digest()


def digest_ids(ids: Collection[int] | None) -> bytes | None:
    """A digest of a set of ids (None stays None: "no restriction" is not "no ids")."""
    if ids is None:
        return None
    if not ids:
        return b""
    h = blake2b(np.sort(np.fromiter(ids, np.int64, len(ids))).tobytes(), digest_size=DIGEST_BYTES)
    return h.digest()


def approx_bytes(items: Iterable[_Item]) -> int:
    """A rough size of answers' items: a fixed part per item plus its strings' characters."""
    return sum(ITEM_BYTES + len(i.title) + len(getattr(i, "reason", "")) for i in items)
