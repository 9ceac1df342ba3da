"""The folder prometheus-client's multiprocess mode shares between API workers.

Kept outside app/api on purpose (importing app.api imports the app, its metrics and so
prometheus_client): this must run before prometheus_client is imported by a serving process, since
the library reads PROMETHEUS_MULTIPROC_DIR at import. With one worker, uvicorn serves in the very
process that runs `movierec serve`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from app.files import process_alive

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_PREFIX = "movierec-metrics-"  # + "<port>-<pid>" under $TMPDIR


def prepare_multiprocess_dir(chosen: Path | None, port: int) -> Path:
    """Point prometheus-client at an empty folder for this server's workers; returns it.

    `chosen` (the setting MOVIEREC_METRICS_DIR or PROMETHEUS_MULTIPROC_DIR), emptied; else
    `$TMPDIR/movierec-metrics-<port>-<pid>`: one folder per server process, so a server's samples
    never mix with another's, and a second `movierec serve` on a port in use (which fails to bind)
    never empties the running server's folder. uvicorn ends on SIGTERM by re-raising the signal, so
    no clean-up code of ours runs then: the folders of servers no longer running are removed here,
    at start (Ctrl-C's own clean-up is in `movierec serve`)."""
    if chosen is not None:
        folder = chosen
        shutil.rmtree(folder, ignore_errors=True)
    else:
        base = Path(tempfile.gettempdir())
        _sweep_dead_servers(base, port)
        folder = base / f"{DEFAULT_PREFIX}{port}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder


def _sweep_dead_servers(base: Path, port: int) -> None:
    """Remove the default folders of `port` whose server process is gone (killed by SIGTERM or worse)."""
    for folder in base.glob(f"{DEFAULT_PREFIX}{port}-*"):
        pid = folder.name.rsplit("-", 1)[1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
