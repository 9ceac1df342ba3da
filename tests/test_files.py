"""app.files: atomic_write (the one write-then-rename) and the hole-keeping copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.files import atomic_write, copy_tree_sparse


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


def test_a_tree_copy_keeps_the_data_and_the_holes(tmp_path: Path) -> None:
    """The engine preallocates 32 MiB sparse files; a copy must not write their zeros out."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    sparse = src / "sub" / "chunk_0.mmap"
    with sparse.open("wb") as f:
        f.write(b"head")
        f.seek(16 << 20)
        f.write(b"middle")
        f.truncate(32 << 20)  # ends in a hole
    (src / "small.json").write_text('{"a": 1}')
    (src / "skip.tmp").write_text("left out")

    copy_tree_sparse(src, tmp_path / "dst", ignore="*.tmp")

    copied = tmp_path / "dst" / "sub" / "chunk_0.mmap"
    assert copied.read_bytes() == sparse.read_bytes()
    assert (tmp_path / "dst" / "small.json").read_text() == '{"a": 1}'
    assert not (tmp_path / "dst" / "skip.tmp").exists()
    if sparse.stat().st_blocks * 512 < 1 << 20:  # the file system keeps holes (ext4, xfs, tmpfs...)
        assert copied.stat().st_blocks * 512 < 1 << 20, "the copy wrote the holes out"
