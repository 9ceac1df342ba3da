"""A disk too full for a new index generation: the ingest stops before staging it, with one line
naming the folder and the bytes needed and free, and the published index stays as it was (the
engine writes through mmap, so running out of disk mid-build used to kill the ingest with SIGBUS).

A real small file system: a tmpfs mounted for the test (root only; skipped where mounting is not
allowed), filled with a real file."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from app.settings import Settings
from movierec.cli import cli
from tests.helpers.ingest import build_index
from tests.helpers.worlds import cli_environment, make_settings

TMDB = Path(__file__).parent / "fixtures" / "tmdb" / "movies.json"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 MiB tmpfs of its own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def world(small_disk: Path, text_encoder: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A published index of the TMDB fixture on the small disk; the CLI's settings point at it."""
    settings = make_settings(small_disk / "data")
    build_index(settings, text_encoder, "tmdb", movies=TMDB)
    with cli_environment(settings, monkeypatch):
        yield settings


def fill(disk: Path, leave: int) -> Path:
    """Write a file that leaves `leave` bytes free on `disk`."""
    fs = os.statvfs(disk)
    ballast = disk / "ballast"
    with ballast.open("wb") as f:
        chunk = b"\xff" * (1 << 20)
        left = fs.f_bavail * fs.f_frsize - leave
        while left > 0:
            left -= f.write(chunk[: min(len(chunk), left)])
    return ballast


def snapshot(index_dir: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(index_dir)): (p.stat().st_size, p.stat().st_mtime_ns) for p in index_dir.rglob("*")}


def test_a_full_disk_stops_the_ingest_before_staging(world: Settings, small_disk: Path, text_encoder: Any) -> None:
    index_dir = world.index_dir
    before = snapshot(index_dir)
    ballast = fill(small_disk, leave=1 << 20)
    result = CliRunner().invoke(cli, ["ingest", "--source", "tmdb", "--movies", str(TMDB), "--rebuild"])
    assert result.exit_code == 2, result.output
    *skipped, line = result.stderr.strip().splitlines()  # the fixture's one bad row, then the error
    assert all(s.startswith("skipped: ") for s in skipped), result.stderr
    assert line.startswith(f"error: not enough free disk for a new index generation in {index_dir}"), line
    assert "bytes" in line and "MiB) free" in line and "the published index is unchanged" in line, line
    assert snapshot(index_dir) == before  # CURRENT, the generation, every file: untouched; no staging
    ballast.unlink()
    first = (index_dir / "CURRENT").read_text()
    build_index(world, text_encoder, "tmdb", movies=TMDB, rebuild=True)  # with the space back, it publishes
    assert (index_dir / "CURRENT").read_text() != first
