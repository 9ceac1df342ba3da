"""The server adapter alone: readers during a rebuild (alias swap), an unreachable server, retries."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from app.errors import IndexUnavailableError
from app.settings import Settings
from app.vectorstore import MovieFilter
from app.vectorstore import server as server_module
from app.vectorstore.server import ServerStore, call_with_retries
from tests.helpers.vectorstore import MANIFEST, N_MOVIES, Engine, build, unit


def test_reader_never_sees_a_gap_during_rebuild(server_engine: Engine) -> None:
    store = server_engine.make()
    build(store)
    reader = store.open()
    q = unit(np.ones(MANIFEST.text_dim, dtype=np.float32))
    errors: list[BaseException] = []
    empties = 0
    reads = 0
    done = threading.Event()

    def read() -> None:
        nonlocal empties, reads
        while not done.is_set():
            try:
                hits = reader.query(q, "text", 5, MovieFilter(genres=("Drama",)))
            except BaseException as exc:  # any failure is the finding
                errors.append(exc)
                return
            empties += not hits
            reads += 1

    thread = threading.Thread(target=read)
    thread.start()
    try:
        while reads == 0 and not errors:  # the reader is under way before the first rebuild
            time.sleep(0.01)
        before = reads
        for _ in range(2):  # two rebuilds, so the alias moves and an old collection is dropped twice
            build(store)
        during = reads - before
    finally:
        done.set()
        thread.join(timeout=30)
    assert not errors, errors[0]
    assert empties == 0
    assert during > 0
    assert reader.count() == N_MOVIES


@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
def test_unreachable_server_fails_fast() -> None:
    settings = Settings(qdrant_url="http://127.0.0.1:1", qdrant_timeout_s=1)
    store = ServerStore.from_settings(settings)
    start = time.monotonic()
    with pytest.raises(IndexUnavailableError, match="127.0.0.1:1") as exc_info:
        store.open()
    assert time.monotonic() - start < 10
    assert "\n" not in str(exc_info.value)
    store.close()


class Flaky:
    """A call that fails with `errors` in turn, then answers "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def _http_error(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "", b'{"status": {"error": "boom"}}', httpx.Headers())


def test_transient_errors_are_retried() -> None:
    refused = ResponseHandlingException(httpx.ConnectError("refused"))
    flaky = Flaky(refused, _http_error(503))
    assert call_with_retries("test", flaky) == "ok"
    assert flaky.calls == 3


def test_client_errors_are_not_retried() -> None:
    flaky = Flaky(_http_error(400))
    with pytest.raises(UnexpectedResponse):
        call_with_retries("test", flaky)
    assert flaky.calls == 1


def test_retries_give_up_with_index_unavailable() -> None:
    flaky = Flaky(*[_http_error(502)] * 10)
    with pytest.raises(IndexUnavailableError, match="Qdrant at test is unreachable: boom"):
        call_with_retries("test", flaky)
    assert flaky.calls == server_module.RETRY_ATTEMPTS
