"""A real uvicorn server in a thread, for the tests that need one: a browser reaching the app, or the
trust tests (the test client hands requests to the app one at a time, which hides thread starvation
and bypasses the server's own limits)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from app.settings import Settings
from movierec.cli import server_limits

START_TIMEOUT_S = 120  # the lifespan opens the index and fills its vector cache


@contextlib.contextmanager
def serve(app: Any, settings: Settings | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free port of 127.0.0.1 in a thread; yields its base URL.

    With `settings`, uvicorn runs with `movierec serve`'s limits (server_limits); without, uvicorn's own.
    Raises RuntimeError if the server has not started within START_TIMEOUT_S.
    """
    limits = server_limits(settings) if settings is not None else {}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
