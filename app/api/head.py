"""HEAD on every GET route: the GET's status and headers (Content-Length included), no body.

Litestar answers 405 to HEAD on a GET route, and its middleware runs only after routing. So the
app's ASGI handler is wrapped (`answer_head`, in create_app): a HEAD request goes through routing,
authentication, strict input and the handler as the same GET would, and its body is dropped on the
way out. A path without a GET answers HEAD as it answers GET (405, 404), without a body.
"""

from __future__ import annotations

from typing import cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send


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
