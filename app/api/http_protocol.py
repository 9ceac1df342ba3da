"""The HTTP/1.1 protocol `movierec serve` runs: uvicorn's httptools one, with h11's cap on a request's head.

Parsing with h11 (pure Python) took about a sixth of a worker's CPU under `bench/api.py`; httptools
wraps llhttp, in C. But only uvicorn's h11 protocol bounds the request line and headers
(`h11_max_incomplete_event_size`): httptools would buffer a header of any length. This protocol
keeps that bound, read from the same uvicorn option.

What the protocol answers itself, before any route runs, is the API's JSON error body too (uvicorn's
is the plain text "Invalid HTTP request received."), and the connection is closed: 431 naming the
limit for a request line and headers over it (a 100 KB query value), 400 for a request that does not
parse (a NUL or a raw 0xFF byte in the URL, an unknown method).
"""

from __future__ import annotations

from typing import Any

import msgspec
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.api.schemas import ErrorBody

# What a head line adds to the bytes the parser hands over: "Name: value\r\n", "METHOD url HTTP/1.1\r\n".
HEADER_OVERHEAD = len(b": \r\n")
REQUEST_LINE_OVERHEAD = len(b"  HTTP/1.1\r\n")


class HeadTooLargeError(Exception):
    """Raised in a parser callback: httptools turns it into the HttpParserError uvicorn answers 400."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol refusing a request whose line and headers exceed `max_head` bytes.

    Two checks, as the head arrives:
    - the head parsed so far (URL, each complete header), counted in the parser's callbacks;
    - the bytes received while a head is incomplete, so a single endless header (which httptools
      buffers until it ends) is refused once the bytes pass the bound, without reading it to its end.
      Bytes that arrive in the read that completes the previous request are not counted here (the
      first check still holds them), so the buffer holds at most the bound plus one read.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        configured = self.config.h11_max_incomplete_event_size
        self.max_head = DEFAULT_MAX_INCOMPLETE_EVENT_SIZE if configured is None else configured
        self._in_head = True  # until the current request's headers are complete
        self._received = 0  # bytes received while in the head
        self._parsed = 0  # bytes of the head the parser has handed over
        self._too_large = False  # the head passed max_head: the refusal says so

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._received += len(data)
        super().data_received(data)
        if self._in_head and self._received > self.max_head and not self.transport.is_closing():
            self._too_large = True
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")

    def send_400_response(self, msg: str) -> None:
        """uvicorn's refusal of a request it cannot read (`msg`: its log text), as the API's ErrorBody
        JSON: 431 when the head passed max_head, else 400; the connection is closed."""
        if self._too_large:
            status, detail = 431, head_too_large(self.max_head)
        else:
            status, detail = 400, "malformed HTTP request: the request line or a header does not parse"
        body = msgspec.json.encode(ErrorBody(status_code=status, detail=detail))
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\n", b"content-length: %d\r\n" % len(body)]
        self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", body]))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._parsed = REQUEST_LINE_OVERHEAD

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + HEADER_OVERHEAD)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._received = True, 0
        super().on_message_complete()

    def _count(self, size: int) -> None:
        self._parsed += size
        if self._parsed > self.max_head:
            self._too_large = True
            raise HeadTooLargeError(f"the request line and headers exceed {self.max_head} bytes")


def head_too_large(limit: int) -> str:
    """What a 431 says: the limit, and where a long value belongs."""
    return (
        f"the request line and headers are larger than this server takes ({limit:,} bytes, "
        "MOVIEREC_MAX_HEADER_BYTES): shorten the query (a long `exclude` or `genres` list)"
    )
