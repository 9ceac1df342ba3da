"""HEAD on every GET route: the GET's status and headers (Content-Length included), no body; and
an `Allow` header that lists every method a path answers, HEAD included.

Litestar answers 405 to HEAD on a GET route, and its middleware runs only after routing. So the
app's ASGI handler is wrapped (`answer_head`, in create_app): a HEAD request goes through routing,
authentication, strict input and the handler as the same GET would, and its body is dropped on the
way out. A path without a GET answers HEAD as it answers GET (405, 404), without a body.

`list_allowed_methods` wraps it too: Litestar 2's automatic OPTIONS answer lists only the methods of
the first handler registered on a path (litestar-org/litestar#4169: `OPTIONS /users/15/ratings`
said `GET, OPTIONS`, without POST), and neither it nor a 405 lists the HEAD answered here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from litestar.enums import ScopeType
from litestar.routes import BaseRoute, HTTPRoute
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

ALLOW = b"allow"


def answer_head(app: ASGIApp) -> ASGIApp:
    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):  # the last part: one empty body ends the response
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await app(cast(HTTPScope, {**scope, "method": "GET"}), receive, send_headers_only)

    return handle


def list_allowed_methods(app: ASGIApp, routes: Iterable[BaseRoute]) -> ASGIApp:
    """Rewrite the `Allow` header of any response that has one (OPTIONS' 204, a 405) to every method
    of the routed path (the route's own, after routing; else the header's, as a 405 lists them), plus
    HEAD wherever GET is served; sorted."""
    by_template = {r.path_format: _allow(r.methods) for r in routes if isinstance(r, HTTPRoute)}

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and any(k.lower() == ALLOW for k, _ in message["headers"]):
                headers = []
                for key, value in message["headers"]:
                    if key.lower() == ALLOW:
                        value = by_template.get(scope.get("path_template", "")) or _allow(value.decode().split(","))
                    headers.append((key, value))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_allow)

    return handle


def _allow(methods: Iterable[str]) -> bytes:
    """`Allow`'s value: the methods, HEAD added where GET is, sorted, upper case."""
    allowed = {m.strip().upper() for m in methods if m.strip()}
    if "GET" in allowed:
        allowed.add("HEAD")
    return ", ".join(sorted(allowed)).encode()
