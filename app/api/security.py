"""Bearer JWT auth (tokens from app.auth) and the ownership check that keeps a user to their own data."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from app.api.deps import UserIdPath, parse_id
from app.auth import ALGORITHM, Principal, principal_from_subject
from app.errors import InvalidInput
from app.settings import Settings

PUBLIC_PATHS = [r"^/health$", r"^/schema"]
USER_ID = "user_id"
_OWNER_KEY = "movierec.owner_id"  # where the guard leaves the id it authorised, in the request's scope state


def retrieve_principal(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """None (so 401) for a well-signed token whose subject we do not issue."""
    try:
        return principal_from_subject(token.sub)
    except ValueError:
        return None


def jwt_auth(settings: Settings) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        retrieve_user_handler=retrieve_principal,
        token_secret=settings.secret_key,
        algorithm=ALGORITHM,
        exclude=PUBLIC_PATHS,
        description="`movierec token create --admin` or `--user ID`: an admin token, or one user's token.",
    )


def requested_user_id(connection: ASGIConnection[Any, Any, Any, Any]) -> int:
    """The one user id a request names, or 400 naming `user_id`.

    Litestar hands a handler the path's `user_id` when the route has one, else the query's (keys
    percent-decoded; a repeated key gives one of its values). So anything that could make those two
    readings differ is refused: a repeated `user_id`, a `user_id` in the query of a route whose path
    has one, and keys that differ from `user_id` only in case (`User_Id`), which some proxies and
    frameworks fold together.
    """
    query = connection.query_params
    variants = sorted({key for key in query if key.lower() == USER_ID and key != USER_ID})
    if variants:
        raise InvalidInput(f"{USER_ID} must be spelled in lower case, got {variants[0]!r}", field=USER_ID)
    values = query.getall(USER_ID, [])
    if USER_ID in connection.path_params:
        if values:
            raise InvalidInput(f"{USER_ID} is in the path: it may not be repeated in the query", field=USER_ID)
        raw = connection.path_params[USER_ID]
    else:
        if len(values) > 1:
            raise InvalidInput(f"{USER_ID} must be given once, got {len(values)} values", field=USER_ID)
        raw = values[0] if values else None
    return parse_id(None if raw is None else str(raw), USER_ID)


def owner_or_admin(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
    """The route's `user_id` (path or query) must be the caller's own, unless the caller is an admin.

    Guards run before Litestar parses parameters, so the id is read here by `requested_user_id`, which
    refuses every request whose id the handler could read differently. The id authorised is kept for
    `provide_owner`, through which handlers receive it.
    """
    user_id = requested_user_id(connection)
    if not connection.user.may_act_for(user_id):
        raise PermissionDeniedException(detail=f"this token may not access user {user_id}'s data")
    connection.scope.setdefault("state", {})[_OWNER_KEY] = user_id


def provide_owner(request: Request[Principal, Any, Any], user_id: UserIdPath) -> int:
    """The `owner` dependency: the user id the handler acts on, which is the one `owner_or_admin`
    authorised. `user_id` is Litestar's own parse of the same parameter (so the spec types it); a
    route without the guard, or a parse that disagrees with it, is refused rather than served."""
    authorised = request.scope.get("state", {}).get(_OWNER_KEY)
    if authorised is None or authorised != user_id:
        raise PermissionDeniedException(detail=f"user {user_id}'s data is not authorised for this request")
    return user_id
