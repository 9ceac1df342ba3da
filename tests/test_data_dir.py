"""A data folder that cannot be written (a read-only mount, no write permission): `ingest`, `serve`
and GET /health say so, naming the folder, rather than blaming the database or the index.

Read-only for real: `chmod a-w` where the tests run as a user; as root (whom permissions do not
stop) a read-only bind mount, or the test is skipped where root may not mount."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from typer.testing import CliRunner

from app.settings import Settings
from movierec.cli import cli
from tests.helpers.worlds import cli_environment, copy_settings

pytestmark = pytest.mark.anyio
TMDB = Path(__file__).parent / "fixtures" / "tmdb"


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """`folder` (and all below it) read-only for this process for the block."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for path in modes:
            path.chmod(modes[path] & ~0o222)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    mount = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"running as root without the right to mount: {mount.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
        yield
    finally:
        # Lazily: the API under test may have opened a file through the mount meanwhile (busy to a plain umount).
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


@pytest.fixture
def cli_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI's settings (from the environment) pointed at this module's copy of the demo world."""
    with cli_environment(settings, monkeypatch):
        yield settings


def one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    return line


def test_ingest_and_serve_say_the_data_folder_is_not_writable(cli_settings: Settings) -> None:
    folder = cli_settings.data_dir.absolute()
    movies = TMDB / "movies.json"
    with read_only(folder):
        for args in (["ingest", "--source", "tmdb", "--movies", str(movies)], ["serve", "--port", "8111"]):
            line = one_error_line(args)
            assert line.startswith(f"error: the data folder {folder} is not writable"), line
            assert "database" not in line and "index" not in line, line
    assert not list(folder.glob(".write-check-*"))


REFRESH_S = 0.1  # MOVIEREC_TOKEN_REFRESH_S here: how often the API probes its data folder again


@pytest.fixture
def world(settings: Settings) -> Settings:
    """A copy of the world whose data folder the test may make read-only."""
    world = copy_settings(settings, settings.data_dir.parent / "read-only" / "data")
    return world.model_copy(update={"token_refresh_s": REFRESH_S})


@pytest.fixture
async def client(world: Settings, text_encoder: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """The API over `world`, its data folder writable when it starts."""
    from app.api import create_app

    async with AsyncTestClient(create_app(world, text_encoder=text_encoder)) as client:
        assert (await client.get("/health")).json()["status"] == "ok"
        yield client


async def health_once_probed(client: AsyncTestClient[Litestar], status: int) -> dict[str, Any]:
    """GET /health's body once it answers `status`: the folder is probed in the background, every
    REFRESH_S, so a change shows within that period (30 s allowed for a loaded machine)."""
    with anyio.fail_after(30):
        while (response := await client.get("/health")).status_code != status:
            await anyio.sleep(REFRESH_S / 2)
    body: dict[str, Any] = response.json()
    return body


async def test_health_says_the_data_folder_is_not_writable(client: AsyncTestClient[Litestar], world: Settings) -> None:
    with read_only(world.data_dir):
        body = await health_once_probed(client, 503)
        assert body["status"] == "unavailable", body
        assert body["detail"].startswith("the data folder (MOVIEREC_DATA_DIR) is not writable"), body
        assert (await client.head("/health")).status_code == 503
    assert (await health_once_probed(client, 200))["status"] == "ok"


def test_a_data_folder_that_cannot_even_be_looked_up_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    """The API's refresher probes the folder every MOVIEREC_TOKEN_REFRESH_S: an OSError from stat
    itself (here a name over the file system's 255 bytes) would end it, and the token refresh with it."""
    from app.datadir import probe_data_dir

    problem = probe_data_dir(Settings(data_dir=tmp_path / ("x" * 300) / "data"))
    assert problem is not None and "(File name too long)" in problem.says(), problem
