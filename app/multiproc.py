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

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(chosen: Path | None, port: int) -> Path:
    """Point prometheus-client at an empty per-server folder; returns it.

    `chosen` (the setting MOVIEREC_METRICS_DIR or PROMETHEUS_MULTIPROC_DIR), else
    `$TMPDIR/movierec-metrics-<port>`: one folder per listening server, so a server's samples never
    mix with another's. It is emptied here, at start, not at exit: uvicorn ends on SIGTERM by
    re-raising the signal, so no clean-up code of ours runs then, and a killed server's samples
    must not add to the next one's."""
    folder = chosen if chosen is not None else Path(tempfile.gettempdir()) / f"movierec-metrics-{port}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder
