"""Whether the data folder (MOVIEREC_DATA_DIR) can be written: `ingest`, `serve` and GET /health
ask before anything else, so that a read-only folder is reported as such, naming it, rather than
as a database that cannot be reached or an index that looks damaged."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings

# What a process writes there besides its own new files: the SQLite store of record (and its
# journal), the embedded index's files, the ingest lock. The poster cache and eval reports are not
# checked: a failure there is reported where it happens.
_CHECKED_FILES = ("movierec.db", "movierec.db-wal", "movierec.db-shm", "ingest.lock")


def writes_data_dir(settings: Settings, *, serving: bool) -> bool:
    """Whether a process needs the data folder writable: an ingest always (its lock, its index);
    the API when it keeps its store of record (SQLite) or its index (Edge) there, or has no signing
    key yet (one is generated there)."""
    if not serving:
        return True
    local = settings.database_url is None or settings.qdrant_url is None
    return local or settings.needs_generated_key()


@dataclass(frozen=True)
class DataDirProblem:
    """Why the data folder `folder` cannot be written: `reason` (the OS's words, or which file is
    read-only), or None when the folder is a file."""

    folder: Path
    reason: str | None

    def says(self, *, public: bool = False) -> str:
        """One line naming the folder and what to do. `public` (GET /health, which needs no token):
        the folder is named by its setting, not by its path."""
        name = "(MOVIEREC_DATA_DIR)" if public else str(self.folder)
        if self.reason is None:
            return (
                f"the data folder {name} is a file, not a folder: move the file, or set MOVIEREC_DATA_DIR to a folder"
            )
        return (
            f"the data folder {name} is not writable ({self.reason}): make it writable (chmod -R u+w, or mount "
            "it read-write) or set MOVIEREC_DATA_DIR to a writable folder"
        )


def probe_data_dir(settings: Settings, *, serving: bool = False) -> DataDirProblem | None:
    """None when the data folder can be written (it is created if missing) or need not be
    (`writes_data_dir`). Writes and removes a probe file and walks the index folder: about 1.4 ms at
    2k movies, so the API probes in the background, not per request. Never raises OSError: the
    API's refresher runs it, and an exception would end the refresher."""
    folder = settings.data_dir.absolute()
    try:
        if not writes_data_dir(settings, serving=serving):
            return None
        if folder.exists() and not folder.is_dir():
            return DataDirProblem(folder, None)
        reason = _unwritable(folder, settings.index_dir.absolute())
    except OSError as exc:  # stat itself refused: a folder above it that this user cannot search
        reason = exc.strerror or type(exc).__name__
    return None if reason is None else DataDirProblem(folder, reason)


def _unwritable(folder: Path, index_dir: Path) -> str | None:
    """Why `folder` or a file in it that the service writes cannot be written; None when all can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    for path in _written_paths(folder, index_dir):
        # A file gone since the walk is no read-only one: another worker's reader copy, a merged segment.
        if not os.access(path, os.W_OK) and os.path.lexists(path):
            return f"{path.relative_to(folder)} is read-only"
    return None


def _written_paths(folder: Path, index_dir: Path) -> list[Path]:
    """The files and folders of `folder` that the service writes in place, where they exist."""
    paths = [folder / name for name in _CHECKED_FILES if (folder / name).exists()]
    for root, dirs, files in os.walk(index_dir):
        paths += [Path(root) / name for name in [*dirs, *files]]
    return [index_dir, *paths] if index_dir.exists() else paths
