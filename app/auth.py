"""Bearer tokens: HS256 JWTs in Litestar's own Token format, signed with the service's secret key.

The key is MOVIEREC_SECRET_KEY, or else one generated at random on first use and kept in
`<data_dir>/secret_key` (mode 0600), so `movierec token create` and `movierec serve` on the same data
dir agree without any key being shared between installations. A user token carries its user's
token version (`extras.ver`, app/catalog/tokens.py), an admin token the admins' one; raising the
version revokes older tokens.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from litestar.security.jwt import Token

from app.settings import MIN_SECRET_KEY_BYTES, Settings

ALGORITHM = "HS256"
ADMIN_SUBJECT = "admin"
VERSION_CLAIM = "ver"


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
    if kind != "user" or not (raw.isascii() and raw.isdigit()):
        raise ValueError(f"unknown token subject {sub!r}")
    return Principal(admin=False, user_id=int(raw))


def token_version_of(token: Token) -> int:
    """The token version a token was issued with (0 for tokens from before versions existed)."""
    version = token.extras.get(VERSION_CLAIM, 0)
    return version if isinstance(version, int) else -1  # a forged non-integer is older than anything


def signing_key(settings: Settings) -> str:
    """MOVIEREC_SECRET_KEY, else the data dir's generated key (created on first call, mode 0600).

    Raises ValueError when the key file exists but holds fewer than MIN_SECRET_KEY_BYTES bytes.
    """
    if settings.secret_key is not None:
        return settings.secret_key
    path = settings.secret_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: when two processes start together, one creates the key and the other reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = _read_key(path)
    else:
        key = secrets.token_urlsafe(48)  # 64 characters, 384 random bits
        with os.fdopen(fd, "w") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
    if len(key.encode()) < MIN_SECRET_KEY_BYTES:
        raise ValueError(f"{path} holds a key under {MIN_SECRET_KEY_BYTES} bytes: delete it to have one generated")
    return key


def _read_key(path: os.PathLike[str]) -> str:
    for _ in range(50):  # a concurrent creator may not have written it yet: it writes 65 bytes at once
        with open(path) as f:
            key = f.read().strip()
        if key:
            return key
        time.sleep(0.02)
    return ""


def issue_token(
    settings: Settings, *, user_id: int | None, admin: bool, ttl_hours: int | None = None, version: int = 0
) -> str:
    """A signed token. `version` is the current token version of the user, or of admin tokens
    (app/catalog/tokens.py)."""
    now = datetime.now(UTC)
    token = Token(
        sub=subject_for(user_id, admin),
        exp=now + timedelta(hours=ttl_hours or settings.token_ttl_hours),
        iat=now,
        extras={VERSION_CLAIM: version},
    )
    return token.encode(secret=signing_key(settings), algorithm=ALGORITHM)
