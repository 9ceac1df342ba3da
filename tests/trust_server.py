"""A real uvicorn server for the trust tests: the test client hands requests to the app one at a
time, which hides thread starvation and bypasses the server's own limits."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn
from litestar import Litestar

from app.settings import Settings
from movierec.cli import server_limits


@contextlib.contextmanager
def served(app: Litestar, settings: Settings) -> Iterator[str]:
    """The app behind uvicorn, with `movierec serve`'s limits, in a thread on a free loopback port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **server_limits(settings))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            time.sleep(0.1)
        assert server.started, "uvicorn did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
