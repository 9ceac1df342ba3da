"""Bearer JWT auth (tokens from app.auth) and the ownership check that keeps a user to their own data."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import jwt
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException, ServiceUnavailableException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from app.api.deps import UserIdPath, parse_id
from app.api.state import Services, services_from
from app.auth import ALGORITHM, Principal, principal_from_subject, signing_key, token_version_of
from app.catalog.tokens import ADMIN_TOKENS
from app.errors import InvalidInputError
from app.settings import Settings

PUBLIC_PATHS = [r"^/health$", r"^/schema"]
VERIFIED_TOKENS = 1024  # verified tokens kept per route stack of a worker (BearerAuthenticationMiddleware), ~1 KB each
USER_ID = "user_id"
NEW_TOKEN = "ask for a new one (`movierec token create`)"
_OWNER_KEY = "movierec.owner_id"  # where the guard leaves the id it authorised, in the request's scope state


async def retrieve_principal(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """None (so 401) for a well-signed token whose subject we do not issue. Async, though it never
    waits: Litestar runs a sync user handler in a worker thread, a thread hop on every request."""
    try:
        return principal_from_subject(token.sub)
    except ValueError:
        return None


async def token_revoked(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """A token older than its holder's token version (`movierec token revoke --user ID` or
    `--admin`) is refused.

    Versions come from the copy each worker rereads every MOVIEREC_TOKEN_REFRESH_S, so a check costs
    no database round trip and routes that need no database keep answering while it is down. Until
    a first read succeeds, user tokens are answered 503 rather than trusted unchecked; admin tokens
    are accepted, so that an operator can still reach the index routes and the dashboard.
    """
    try:
        principal = principal_from_subject(token.sub)
    except ValueError:
        return False  # retrieve_principal has refused it already
    holder = ADMIN_TOKENS if principal.admin else principal.user_id
    if holder is None:
        return False
    versions = services_from(connection.app.state).token_versions.versions
    if versions is None:
        if principal.admin:
            return False
        raise ServiceUnavailableException(detail="user tokens cannot be checked yet: the database is unavailable")
    return token_version_of(token) < versions.get(holder, 0)


class BearerAuthenticationMiddleware(JWTAuthenticationMiddleware):
    """Litestar's JWT middleware reads the token after any scheme (`Basic <jwt>` works); this one
    accepts only `Bearer` (case-insensitive, RFC 7235 2.1).

    A client sends the same token with every request, and verifying its signature and parsing its
    claims took about a sixth of a recommendation's CPU in a worker (py-spy under bench/api.py). So
    each worker keeps the last VERIFIED_TOKENS tokens that verified, keyed by their exact text;
    expiry is checked on every use, and revocation (`token_revoked`) and the principal still per request.
    A token that fails verification is never kept.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verified = lru_cache(maxsize=VERIFIED_TOKENS)(self._verify)

    def _verify(self, encoded_token: str) -> Token:
        """Litestar's own checks (signature, claims, expiry): NotAuthorizedException when one fails."""
        return self.token_cls.decode(
            encoded_token=encoded_token,
            secret=self.token_secret,
            algorithm=self.algorithm,
            audience=self.token_audience,
            issuer=self.token_issuer,
            require_claims=self.require_claims,
            verify_exp=self.verify_expiry,
            verify_nbf=self.verify_not_before,
            strict_audience=self.strict_audience,
        )

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """As JWTAuthenticationMiddleware.authenticate_token, with the verification kept per token."""
        try:
            token = self._verified(encoded_token)
        except NotAuthorizedException:
            if _expired(encoded_token, self.token_secret, self.algorithm):  # else a bad signature or claim
                raise NotAuthorizedException(f"the token has expired: {NEW_TOKEN}") from None
            raise
        if self.verify_expiry and token.exp <= datetime.now(UTC):  # PyJWT's rule: expired once exp <= now
            raise NotAuthorizedException(f"the token has expired: {NEW_TOKEN}")
        user = await self.retrieve_user_handler(token, connection)
        if not user:
            raise NotAuthorizedException("Invalid token")
        if self.revoked_token_handler and await self.revoked_token_handler(token, connection):
            raise NotAuthorizedException(f"the token was revoked (`movierec token revoke`): {NEW_TOKEN}")
        return AuthenticationResult(user=user, auth=token)

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get(self.auth_header)
        if not header:
            raise NotAuthorizedException("No JWT token found in request header")
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise NotAuthorizedException("the Authorization header must be `Bearer <token>`")
        return await self.authenticate_token(encoded_token=credentials.strip(), connection=connection)


def _expired(encoded_token: str, secret: str, algorithm: str) -> bool:
    """True when the token is well signed and its only fault is its `exp`: Litestar's Token refuses an
    expired one with the same "Invalid token" as a forged one, and the client should know which."""
    try:
        jwt.decode(encoded_token, secret, algorithms=[algorithm], options={"verify_aud": False})
    except jwt.ExpiredSignatureError:  # raised only once the signature has verified
        return True
    except jwt.InvalidTokenError:
        return False
    return False


def jwt_auth(settings: Settings) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        retrieve_user_handler=retrieve_principal,
        revoked_token_handler=token_revoked,
        token_secret=signing_key(settings),
        algorithm=ALGORITHM,
        exclude=PUBLIC_PATHS,
        authentication_middleware_class=BearerAuthenticationMiddleware,
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
        raise InvalidInputError(f"{USER_ID} must be spelled in lower case, got {variants[0]!r}", field=USER_ID)
    values = query.getall(USER_ID, [])
    if USER_ID in connection.path_params:
        if values:
            raise InvalidInputError(f"{USER_ID} is in the path: it may not be repeated in the query", field=USER_ID)
        raw = connection.path_params[USER_ID]
    else:
        if len(values) > 1:
            raise InvalidInputError(f"{USER_ID} must be given once, got {len(values)} values", field=USER_ID)
        raw = values[0] if values else None
    return parse_id(None if raw is None else str(raw), USER_ID)


def _automatic_options(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """An OPTIONS request: authentication skips it (Litestar's default; a CORS preflight carries no
    token), so it has no user to check, and Litestar's automatic OPTIONS handler, which the route's
    guards also cover, answers only `Allow` (204, no body). No route here defines an OPTIONS handler."""
    return connection.scope.get("method") == "OPTIONS"


async def owner_or_admin(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
    """The route's `user_id` (path or query) must be the caller's own, unless the caller is an admin.
    Async, though it never waits: Litestar runs a sync guard in a worker thread.

    Guards run before Litestar parses parameters, so the id is read here by `requested_user_id`, which
    refuses every request whose id the handler could read differently. The id authorised is kept for
    `provide_owner`, through which handlers receive it.
    """
    if _automatic_options(connection):
        return
    user_id = requested_user_id(connection)
    if not connection.user.may_act_for(user_id):
        raise PermissionDeniedException(detail=f"this token may not access user {user_id}'s data")
    connection.scope.setdefault("state", {})[_OWNER_KEY] = user_id


def provide_owner(request: Request[Principal, Any, Any], user_id: UserIdPath, services: Services) -> int:
    """The `owner` dependency: the user id the handler acts on, which is the one `owner_or_admin`
    authorised. `user_id` is Litestar's own parse of the same parameter (so the spec types it); a
    route without the guard, or a parse that disagrees with it, is refused rather than served.

    `services` goes unused: taking it makes Litestar resolve it first, then this, in turn. The
    handlers take both, and Litestar resolves independent dependencies in an anyio task group,
    which cost about 6 % of a recommendation's time on the event loop (py-spy under bench/api.py)."""
    del services
    authorised = request.scope.get("state", {}).get(_OWNER_KEY)
    if authorised is None or authorised != user_id:
        raise PermissionDeniedException(detail=f"user {user_id}'s data is not authorised for this request")
    return user_id


async def admin_only(connection: ASGIConnection[Any, Principal, Any, Any], _: BaseRouteHandler) -> None:
    """Only an admin token: the dashboard's JSON shows every user's data. Async: see owner_or_admin."""
    if _automatic_options(connection):
        return
    if not connection.user.admin:
        raise PermissionDeniedException(detail="the dashboard needs an admin token")
