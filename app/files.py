"""Writing a file all at once: the one write-then-rename the project uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path: Path, *, suffix: str = ".tmp", fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path` (`path`'s name + `suffix`, in the same folder, which is
    created) for the caller to write; when the block ends without an error, that file replaces
    `path` in one `os.replace`, else it is deleted. A reader sees the old file or the new one, never
    half of one, and a killed writer leaves the old file (and at most its temporary one, overwritten
    by the next write).

    `suffix`: keep the extension a writer insists on (np.savez appends `.npz` otherwise).
    `fsync`: force the data to disk before the rename, so that an OS crash cannot leave a renamed
    but empty file (a process kill cannot anyway). Raises OSError from the write or the rename.
    For files only: a folder is published by its own rename (see its callers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
