"""Issue 10.5: auth configuration fails closed.

No shared default key (a generated one per data dir, mode 0600, used by both `token create` and the
API), no short keys, bounded token lifetimes, per-user revocation without rotating the key, and only
the `Bearer` scheme. Real API on an index-less data dir (these routes need only the database).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import jwt
import pytest
from litestar import Litestar
from litestar.security.jwt import Token
from litestar.testing import AsyncTestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from app.api import create_app
from app.auth import issue_token, signing_key
from app.settings import Settings
from movierec.cli import cli as movierec_cli
from tests.helpers.worlds import make_settings

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]
OLD_PUBLIC_KEY = "dev-insecure-secret-key-change-me-in-production"  # the default this issue removed


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # No MOVIEREC_SECRET_KEY: the key is generated into the data dir.
    return make_settings(tmp_path_factory.mktemp("auth") / "data", secret_key=None, token_refresh_s=0.1)


@pytest.fixture(scope="module")
async def client(settings: Settings, text_encoder: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as c:
        yield c


def cli(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MOVIEREC_") and k != "DATABASE_URL"}
    environ.update(MOVIEREC_DATA_DIR=str(settings.data_dir), PYTHONPATH=str(ROOT), **env)
    if settings.database_url:
        environ["DATABASE_URL"] = settings.database_url
    return subprocess.run(
        [sys.executable, "-m", "movierec.cli", *args], capture_output=True, text=True, env=environ, timeout=120
    )


def auth(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


async def test_the_generated_key_is_private_and_shared_by_cli_and_api(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    key_file = settings.secret_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key.encode()) >= 32 and signing_key(settings) == key  # created once, then reused
    made_by_cli = cli(settings, "token", "create", "--admin")
    assert made_by_cli.returncode == 0, made_by_cli.stderr
    assert "warning" not in made_by_cli.stderr  # the key was there: the API's own
    resp = await client.get("/metrics/embeddings", headers=auth(made_by_cli.stdout.strip()))
    assert resp.status_code == 200, resp.text
    # Another data dir gets another key: no two installations share one.
    other = make_settings(settings.data_dir.parent / "other", secret_key=None)
    assert signing_key(other) != key


def test_a_new_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """The store of record holds every user's ratings and hidden movies: like the key, a SQLite file
    the service creates is mode 0600 whatever the umask (it was 0644 under the usual 022: any local
    account could read everyone's ratings). SQLite gives its -wal and -shm files the same mode."""
    from sqlmodel import Session

    from app.catalog import repository as repo
    from app.catalog.db import make_engine
    from app.catalog.models import Movie

    path = tmp_path / "data" / "movierec.db"
    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{path}")
        with Session(engine) as session:
            session.add(Movie(id=1, title="Toy Story", year=1995))
            session.commit()
            repo.rate(session, 15, 1, 4.5)
            files = [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm"))]
            assert all(f.exists() for f in files), files  # WAL mode: all three while a connection is open
            assert {f.name: stat.S_IMODE(f.stat().st_mode) & 0o077 for f in files} == dict.fromkeys(
                (f.name for f in files), 0
            )
        engine.dispose()
    finally:
        os.umask(old)


def test_a_token_made_for_a_data_dir_without_a_key_warns(tmp_path: Path) -> None:
    """`token create` run where no API has run (outside the repository root: ./data) makes a new key:
    the token it prints only works there, and it says so instead of leaving a 401 to puzzle over."""
    made = cli(make_settings(tmp_path / "elsewhere", secret_key=None), "token", "create", "--admin")
    assert made.returncode == 0 and made.stdout.strip(), made.stderr
    assert "warning: no signing key" in made.stderr and "MOVIEREC_DATA_DIR" in made.stderr


async def test_a_token_signed_with_the_old_public_key_is_refused(client: AsyncTestClient[Litestar]) -> None:
    forged = Token(sub="admin", exp=datetime.now(UTC) + timedelta(hours=1)).encode(OLD_PUBLIC_KEY, "HS256")
    resp = await client.get("/metrics/embeddings", headers=auth(forged))
    assert resp.status_code == 401, resp.text


def test_short_keys_are_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        Settings(data_dir=tmp_path, secret_key="x" * 31)
    Settings(data_dir=tmp_path, secret_key="x" * 32)
    settings = make_settings(tmp_path / "data")
    result = cli(settings, "token", "create", "--admin", MOVIEREC_SECRET_KEY="k")
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "MOVIEREC_SECRET_KEY" in lines[0] and "32 bytes" in lines[0], result.stderr


@pytest.mark.parametrize("ttl", ["0", "-1", str(24 * 365 + 1)])
def test_token_lifetimes_are_validated(tmp_path: Path, ttl: str) -> None:
    result = cli(make_settings(tmp_path / "data"), "token", "create", "--admin", "--ttl-hours", ttl)
    assert result.returncode == 2 and result.stdout == "", result
    assert "--ttl-hours" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["create", "revoke"])
@pytest.mark.parametrize("whose", [[], ["--admin", "--user", "3"]])
def test_token_commands_take_exactly_one_of_admin_or_user(command: str, whose: list[str]) -> None:
    result = CliRunner().invoke(movierec_cli, ["token", command, *whose])
    assert result.exit_code == 2, result.output
    assert "give exactly one of --admin or --user ID" in " ".join(result.stderr.split()), result.stderr


async def test_an_expired_token_is_told_apart_from_a_bad_one(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """A client whose token ran out is told so (and how to get another), not "Invalid token"."""
    past = datetime.now(UTC) - timedelta(minutes=1)
    claims = {"sub": "admin", "iat": past - timedelta(hours=1), "exp": past}  # Token() refuses a past exp
    resp = await client.get("/metrics/embeddings", headers=auth(jwt.encode(claims, signing_key(settings), "HS256")))
    assert resp.status_code == 401 and "expired" in resp.json()["detail"], resp.text
    assert "token create" in resp.json()["detail"]
    forged = jwt.encode(claims, OLD_PUBLIC_KEY, "HS256")  # a bad signature says nothing of expiry
    resp = await client.get("/metrics/embeddings", headers=auth(forged))
    assert resp.status_code == 401 and resp.json()["detail"] == "Invalid token", resp.text
    unknown = Token(sub="robot", exp=datetime.now(UTC) + timedelta(minutes=5)).encode(signing_key(settings), "HS256")
    resp = await client.get("/metrics/embeddings", headers=auth(unknown))
    assert resp.status_code == 401 and resp.json()["detail"] == "Invalid token", resp.text


def test_a_token_lives_as_long_as_asked(settings: Settings) -> None:
    token = Token.decode(issue_token(settings, user_id=None, admin=True, ttl_hours=2), signing_key(settings), "HS256")
    assert timedelta(hours=1, minutes=59) < token.exp - datetime.now(UTC) <= timedelta(hours=2)


@pytest.mark.parametrize("scheme", ["Basic", "Token", "JWT", "", "Bearer:"])
async def test_only_the_bearer_scheme_is_accepted(
    client: AsyncTestClient[Litestar], settings: Settings, scheme: str
) -> None:
    token = issue_token(settings, user_id=None, admin=True)
    header = f"{scheme} {token}" if scheme else token
    resp = await client.get("/metrics/embeddings", headers={"Authorization": header})
    assert resp.status_code == 401, (scheme, resp.text)
    for ok in ("Bearer", "bearer", "BEARER"):
        assert (await client.get("/metrics/embeddings", headers=auth(token, ok))).status_code == 200


async def test_one_users_tokens_are_revoked_without_rotating_the_key(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    victim, bystander = 7_100_001, 7_100_002
    before = cli(settings, "token", "create", "--user", str(victim)).stdout.strip()
    bystander_token = issue_token(settings, user_id=bystander, admin=False)
    admin = issue_token(settings, user_id=None, admin=True)
    url = f"/users/{victim}/ratings"
    assert (await client.get(url, headers=auth(before))).status_code not in (401, 403)

    result = cli(settings, "token", "revoke", "--user", str(victim))
    assert result.returncode == 0 and f"user {victim}" in result.stdout, result
    with anyio.fail_after(30):  # workers reread revocations every token_refresh_s (0.1 s here)
        while (refused := await client.get(url, headers=auth(before))).status_code != 401:
            await anyio.sleep(0.1)
    assert "revoked" in refused.json()["detail"] and "token create" in refused.json()["detail"], refused.text

    after = cli(settings, "token", "create", "--user", str(victim)).stdout.strip()
    assert (await client.get(url, headers=auth(after))).status_code not in (401, 403)
    assert (await client.get(f"/users/{bystander}/ratings", headers=auth(bystander_token))).status_code != 401
    assert (await client.get(url, headers=auth(admin))).status_code != 401
    assert settings.secret_key_file.read_text().strip() == signing_key(settings)  # the key did not change


async def test_admin_tokens_are_revoked_without_rotating_the_key(tmp_path: Path, text_encoder: Any) -> None:
    """An admin token reads every user's ratings for up to a year (--ttl-hours 8760), and rotating the
    key, the only way to stop a leaked one, also ends every user's tokens. `token revoke --admin`
    refuses every admin token issued so far, those from before admin tokens carried a version too;
    user tokens keep working. A world of its own: the module's other tests use admin tokens."""
    settings = make_settings(tmp_path / "data", secret_key=None, token_refresh_s=0.1)
    before = cli(settings, "token", "create", "--admin").stdout.strip()
    unversioned = Token(sub="admin", exp=datetime.now(UTC) + timedelta(hours=1)).encode(signing_key(settings), "HS256")
    user = cli(settings, "token", "create", "--user", "7100003").stdout.strip()
    url = "/users/7100004/ratings"  # another user's data: an admin's
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        for token in (before, unversioned):
            assert (await client.get(url, headers=auth(token))).status_code == 200
        result = cli(settings, "token", "revoke", "--admin")
        assert result.returncode == 0 and "admin" in result.stdout, result
        for token in (before, unversioned):
            with anyio.fail_after(30):  # workers reread revocations every token_refresh_s (0.1 s here)
                while (refused := await client.get(url, headers=auth(token))).status_code != 401:
                    await anyio.sleep(0.1)
            assert "revoked" in refused.json()["detail"], refused.text
        after = cli(settings, "token", "create", "--admin").stdout.strip()
        assert (await client.get(url, headers=auth(after))).status_code == 200
        assert (await client.get("/users/7100003/ratings", headers=auth(user))).status_code == 200
    both = cli(settings, "token", "revoke", "--admin", "--user", "1")
    assert both.returncode == 2 and "exactly one" in both.stderr, both
