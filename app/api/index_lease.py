"""Each HTTP request leases one index generation for its whole life (app/vectorstore/live.py).

A reindex switches new requests to the new generation; the old one is closed (its shard, its
vector cache: about 400 MB per worker at the demo's size) when the last request that used it ends.
"""

from __future__ import annotations

import anyio
import anyio.to_thread
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send


def index_lease(app: ASGIApp) -> ASGIApp:
    """Litestar middleware factory: wraps `app` so that each HTTP request holds a lease."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        services = scope["app"].state.get("services") if scope["type"] == ScopeType.HTTP else None
        if services is None:  # the lifespan, or a request before the services exist
            await app(scope, receive, send)
            return
        live = services.live
        lease = live.begin()  # the handler's thread inherits this context, and with it the lease
        try:
            await app(scope, receive, send)
        finally:
            doomed = live.end(lease)
            if doomed is not None:  # this request was the last on a switched-out generation
                with anyio.CancelScope(shield=True):  # a client that went away must not leak it
                    await anyio.to_thread.run_sync(doomed.close)

    return middleware
