"""Files: writing one all at once (the one write-then-rename the project uses), copying a tree
of them without filling their holes, and a lock that only one process at a time may hold."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
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


class LockHeldError(Exception):
    """Another process holds the lock; `pid`: its process id, when the lock file says it."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"held by process {pid}" if pid else "held by another process")
        self.pid = pid


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (`flock`) on `path` for the block; the file (created, with its
    folder) then holds this process's id. The kernel releases the lock when the process ends,
    however it ends (SIGKILL included), so a killed holder never blocks the next one; the file stays.

    Raises LockHeldError, at once, when another process holds it; OSError when the file cannot be
    created or opened (a read-only folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeldError(_pid_in(fd)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


def _pid_in(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


COPY_CHUNK = 1 << 20  # bytes read and written at a time


def copy_sparse(src: str, dst: str) -> str:
    """Copy the file `src` to `dst` (metadata as `shutil.copy2`), writing only its data and leaving
    its holes holes. Returns `dst`; raises OSError from the file system.

    Why: the Qdrant engine preallocates its WAL and mmap chunks (32 MiB each) as sparse files, so a
    demo index holds ~6 MB of data in ~300 MB of length; `shutil.copy2` writes every zero, which made
    each index generation copy (and each test world) cost 300 MB of disk instead of 6. Uses
    lseek(SEEK_DATA / SEEK_HOLE) (Linux >= 3.1, most file systems); where a file system does not know
    holes, the whole file reads as data and this is a plain copy."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        size = os.fstat(fin.fileno()).st_size
        offset = 0
        while offset < size:
            try:
                start = os.lseek(fin.fileno(), offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # nothing but a hole up to the end
                    break
                raise
            end = os.lseek(fin.fileno(), start, os.SEEK_HOLE)
            fin.seek(start)
            fout.seek(start)
            while start < end:
                chunk = fin.read(min(COPY_CHUNK, end - start))
                fout.write(chunk)
                start += len(chunk)
            offset = end
        fout.truncate(size)
    shutil.copystat(src, dst)
    return dst


def copy_tree_sparse(src: Path, dst: Path, ignore: str | None = None) -> None:
    """`shutil.copytree(src, dst)` with `copy_sparse` for every file; `ignore`: a glob pattern of names
    left out. Raises OSError (FileExistsError when `dst` exists)."""
    shutil.copytree(src, dst, copy_function=copy_sparse, ignore=shutil.ignore_patterns(ignore) if ignore else None)


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists (another user's counts: signalling it is refused)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
