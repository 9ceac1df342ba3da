"""The one exception mapper: domain errors and Litestar's own errors become `ErrorBody` JSON.

Nothing here ever puts a traceback in a response; unexpected errors are logged and answered 500.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.types import ExceptionHandlersMap

from app.api.schemas import ErrorBody
from app.errors import (
    Conflict,
    IndexUnavailable,
    InvalidInput,
    ModelUnavailable,
    MovieRecError,
    NotFound,
    NotImplementedYet,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[MovieRecError], int] = {
    NotFound: 404,
    InvalidInput: 400,
    Conflict: 409,
    IndexUnavailable: 503,
    NotImplementedYet: 501,
    ModelUnavailable: 503,
}


def _respond(
    status: int, detail: str, field: str | None = None, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(ErrorBody(status_code=status, detail=detail, field=field), status_code=status, headers=headers)


def domain_error(_: Request[Any, Any, Any], exc: MovieRecError) -> Response[Any]:
    status = next((code for cls, code in STATUS_BY_ERROR.items() if isinstance(exc, cls)), 500)
    field: str | None = getattr(exc, "field", None)
    detail = str(exc)
    if field and field not in detail:  # the message must name the field, not only the `field` key
        detail = f"{field}: {detail}"
    return _respond(status, detail, field)


def validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """Litestar reports parameter and body errors as `extra=[{"message", "key", "source"}]`;
    rewrite them into one message that names the field, and drop the echoed request URL."""
    problems = [p for p in exc.extra or [] if isinstance(p, dict)] if isinstance(exc.extra, list) else []
    if not problems:
        return _respond(400, exc.detail)
    # The whole body is the `data` kwarg; call it what the client sent.
    fields = ["body" if p.get("key") == "data" else str(p.get("key")) for p in problems]
    messages = [f"invalid {f}: {p.get('message', 'invalid value')}" for f, p in zip(fields, problems, strict=True)]
    detail = "; ".join(messages)
    return _respond(400, detail, fields[0])


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    headers = dict(exc.headers or {})
    if isinstance(exc, NotAuthorizedException):
        headers.setdefault("WWW-Authenticate", "Bearer")
    return _respond(exc.status_code, exc.detail, headers=headers or None)


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(500, "internal server error")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    MovieRecError: domain_error,
    ValidationException: validation_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
