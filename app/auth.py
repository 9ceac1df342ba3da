"""Bearer tokens: HS256 JWTs in Litestar's own Token format, signed with MOVIEREC_SECRET_KEY."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from litestar.security.jwt import Token

from app.settings import Settings

ALGORITHM = "HS256"
ADMIN_SUBJECT = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an admin, or one user."""

    admin: bool
    user_id: int | None

    def may_act_for(self, user_id: int) -> bool:
        return self.admin or self.user_id == user_id


def subject_for(user_id: int | None, admin: bool) -> str:
    return ADMIN_SUBJECT if admin else f"user:{user_id}"


def principal_from_subject(sub: str) -> Principal:
    if sub == ADMIN_SUBJECT:
        return Principal(admin=True, user_id=None)
    kind, _, raw = sub.partition(":")
    if kind != "user" or not raw.isdigit():
        raise ValueError(f"unknown token subject {sub!r}")
    return Principal(admin=False, user_id=int(raw))


def issue_token(settings: Settings, *, user_id: int | None, admin: bool, ttl_hours: int | None = None) -> str:
    now = datetime.now(UTC)
    token = Token(
        sub=subject_for(user_id, admin),
        exp=now + timedelta(hours=ttl_hours or settings.token_ttl_hours),
        iat=now,
    )
    return token.encode(secret=settings.secret_key, algorithm=ALGORITHM)
