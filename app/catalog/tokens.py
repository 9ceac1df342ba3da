"""Per-user token versions: revoking a user's tokens without rotating the signing key.

A user token carries the version current when it was issued; `revoke_tokens` raises the user's
version, and every token with a lower one is refused from then on. Users never revoked have no
row (version 0). Admin tokens have the row of ADMIN_TOKENS, an id no user has.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Integer
from sqlmodel import Field, Session, SQLModel, select

BIGINT = BigInteger().with_variant(Integer(), "sqlite")
ADMIN_TOKENS = 0  # the token_versions row of every admin token: user ids start at 1


def _now() -> datetime:
    return datetime.now(UTC)


class TokenVersion(SQLModel, table=True):
    __tablename__ = "token_versions"

    user_id: int = Field(primary_key=True, sa_type=BIGINT)  # no foreign key: any id may be revoked
    version: int = 0
    revoked_at: datetime = Field(default_factory=_now)


def token_version(session: Session, user_id: int) -> int:
    """The version a new token for `user_id` carries (0 when never revoked)."""
    row = session.get(TokenVersion, user_id)
    return row.version if row else 0


def revoke_tokens(session: Session, user_id: int) -> int:
    """Invalidate every token issued to `user_id` so far; returns the new version. Commits."""
    row = session.get(TokenVersion, user_id, with_for_update=True) or TokenVersion(user_id=user_id)
    row.version += 1
    row.revoked_at = _now()
    session.add(row)
    session.commit()
    return row.version


def all_token_versions(session: Session) -> dict[int, int]:
    """{user_id: version} of every user ever revoked: small, read whole by API workers."""
    return {row.user_id: row.version for row in session.exec(select(TokenVersion))}
