"""Bearer JWT auth (tokens from app.auth) and the guard that keeps a user to their own data."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from app.api.deps import parse_id
from app.auth import ALGORITHM, Principal, principal_from_subject
from app.settings import Settings

PUBLIC_PATHS = [r"^/health$", r"^/schema"]


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


def owner_or_admin(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
    """The route's `user_id` (path or query) must be the caller's own, unless the caller is an admin.

    Guards run before Litestar parses parameters, so the id is parsed here with the same function the
    handler uses: what this guard authorises is exactly what the handler acts on.
    """
    raw = connection.path_params.get("user_id", connection.query_params.get("user_id"))
    user_id = parse_id(raw, "user_id")
    if not connection.user.may_act_for(user_id):
        raise PermissionDeniedException(detail=f"this token may not access user {user_id}'s data")
