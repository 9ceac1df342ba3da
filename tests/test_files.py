"""app.files.atomic_write: the one write-then-rename."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.files import atomic_write


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "CURRENT"
    with atomic_write(target, fsync=True) as tmp:
        tmp.write_text("first")
    with atomic_write(target, fsync=True) as tmp:
        tmp.write_text("second")
        assert target.read_text() == "first"  # until the block ends, readers see the old file
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["CURRENT"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "cache.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target, suffix=".tmp.npz") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npz"]
