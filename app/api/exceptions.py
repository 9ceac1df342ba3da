"""The one exception mapper: domain errors and Litestar's own errors become `ErrorBody` JSON.

Nothing here ever puts a traceback in a response; unexpected errors are logged and answered 500.
"""

from __future__ import annotations

import logging
import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.types import ExceptionHandlersMap
from sqlalchemy import exc as sa_exc

from app.api.schemas import ErrorBody
from app.catalog.db import READ_ONLY_MESSAGE, driver_message, is_read_only
from app.errors import (
    ConflictError,
    DatabaseUnavailableError,
    DiskSpaceError,
    IndexUnavailableError,
    InvalidInputError,
    ModelUnavailableError,
    MovieRecError,
    NotFoundError,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[MovieRecError], int] = {
    NotFoundError: 404,
    InvalidInputError: 400,
    ConflictError: 409,
    IndexUnavailableError: 503,
    ModelUnavailableError: 503,
    DatabaseUnavailableError: 503,
    DiskSpaceError: 507,
}


ECHO_CHARS = 40  # of a value the client sent, quoted in an error's detail
# msgspec quotes the value it refuses whole, as Python's repr does ("Invalid enum value '...'", or
# "..." for a value holding a ' : a 100 KB `strategy` was a 100 KB detail); its messages quote
# nothing else. A quoted character is one character or a backslash escape.
_LONG_ECHO = re.compile(rf"""(['"])((?:\\.|(?!\1)[^\\]){{{ECHO_CHARS}}})(?:\\.|(?!\1)[^\\])+\1""")
# Any error's detail, cut to this many characters: a backstop for a message that echoes what the
# client sent some way short_echo does not know (the longest written here is a few hundred).
DETAIL_CHARS = 2000


def short_echo(msgspec_message: str) -> str:
    """A msgspec validation message with each quoted value ('...' or "...") cut to ECHO_CHARS
    characters and '…'."""
    return _LONG_ECHO.sub(r"\1\2…\1", msgspec_message)


def capped(detail: str) -> str:
    """`detail` itself, or its first DETAIL_CHARS - 1 characters and '…'."""
    return detail if len(detail) <= DETAIL_CHARS else detail[: DETAIL_CHARS - 1] + "…"


def _respond(
    status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    body = ErrorBody(status_code=status, detail=capped(detail), field=field)
    return Response(body, status_code=status, headers=headers)


def domain_error(_: Request[Any, Any, Any], exc: MovieRecError) -> Response[Any]:
    status = next((code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 500)
    field: str | None = getattr(exc, "field", None)
    detail = str(exc)
    if field and field not in detail:  # the message must name the field, not only the `field` key
        detail = f"{field}: {detail}"
    return _respond(status, detail, field)


_MISSING = re.compile(r"Missing required (\w+) parameter '([^']+)'")


def validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Litestar reports parameter and body errors as `extra=[{"message", "key", "source"}]`;
    rewrite them into one message that names the field, and drop the echoed request URL."""
    problems = [p for p in exc.extra or [] if isinstance(p, dict)] if isinstance(exc.extra, list) else []
    if not problems:
        missing = _MISSING.match(exc.detail)  # Litestar names a missing parameter only in its message
        if missing:
            return _respond(400, f"{missing.group(2)} is required (a {missing.group(1)} parameter)", missing.group(2))
        return _respond(400, exc.detail)
    # The whole body is the `data` kwarg; call it what the client sent.
    fields = ["body" if p.get("key") == "data" else str(p.get("key")) for p in problems]
    messages = [
        f"invalid {f}: {short_echo(str(p.get('message', 'invalid value')))}{_allowed(request, f)}"
        for f, p in zip(fields, problems, strict=True)
    ]
    detail = "; ".join(messages)
    return _respond(400, detail, fields[0])


def _allowed(request: Request[Any, Any, Any], field: str) -> str:
    """ "; allowed: a, b, c" when `field` (a parameter, or a field of the body) takes a fixed set of
    values: msgspec's own message ("Invalid enum value 'x'") does not say which."""
    try:
        params = request.route_handler.parsed_fn_signature.parameters
    except Exception:  # no handler resolved (e.g. an error before routing): say nothing more
        return ""
    annotation = params[field].annotation if field in params else None
    body = params.get("data")
    if annotation is None and body is not None and isinstance(body.annotation, type):
        annotation = get_type_hints(body.annotation, include_extras=True).get(field)
    values = literal_values(annotation)
    return f"; allowed: {', '.join(map(str, values))}" if values else ""


def literal_values(annotation: Any) -> tuple[Any, ...]:
    """The values of a Literal, looking through Annotated and Optional; () for any other type."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    if get_origin(annotation) in (Union, UnionType):
        return tuple(v for arm in get_args(annotation) for v in literal_values(arm))
    return ()


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 500:  # Litestar's own (ImproperlyConfiguredException...): its detail is not for clients
        return unexpected_error(request, exc)
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", "Bearer")
    if exc.status_code == 413:
        limit = request.app.request_max_body_size
        return _respond(413, _too_large(limit if isinstance(limit, int) else None), "body", headers or None)
    return _respond(exc.status_code, exc.detail, headers=headers or None)


def _too_large(limit: int | None) -> str:
    """What a 413 says: the limit, and what to do (a history export that large gzips to a tenth)."""
    size = f"{limit:,} bytes" if limit else "the limit"
    return (
        f"body: larger than this server takes ({size}, MOVIEREC_MAX_BODY_BYTES); "
        "a ratings export can be sent gzip'd (gzip ratings.csv) or as the export's zip"
    )


def database_error(request: Request[Any, Any, Any], exc: sa_exc.SQLAlchemyError) -> Response[Any]:
    """503 for a database that is unreachable, too slow, or read-only; anything else is a bug (500).

    The body names the database but never its URL, path or driver message."""
    if is_read_only(exc):
        return _respond(503, READ_ONLY_MESSAGE)
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, driver_message(exc))
        return _respond(503, "the database is unavailable (unreachable or not answering in time); try again later")
    return unexpected_error(request, exc)


def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """A body nested deeper than the decoder's recursion limit (`[` x 100,000) is the caller's
    error: 400 naming the body, logged in one line, without a traceback."""
    log.warning("request body nested too deeply on %s %s", request.method, request.url.path)
    return _respond(400, "body: JSON nested too deeply", "body")


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(500, "internal server error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    MovieRecError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    sa_exc.SQLAlchemyError: database_error,
    RecursionError: too_deep,
    Exception: unexpected_error,
}
