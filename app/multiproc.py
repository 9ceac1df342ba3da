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


def prepare_multiprocess_dir(chosen: Path | None) -> Path:
    """Point prometheus-client at an empty per-server folder; returns it.

    `chosen` (the setting MOVIEREC_METRICS_DIR or PROMETHEUS_MULTIPROC_DIR) is emptied first: the
    samples of a previous server would add to this one's. Without it, a fresh temporary folder."""
    if chosen is not None:
        shutil.rmtree(chosen, ignore_errors=True)
        chosen.mkdir(parents=True)
        folder = chosen
    else:
        folder = Path(tempfile.mkdtemp(prefix="movierec-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    return folder
