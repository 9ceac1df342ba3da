"""A real Qdrant server for the server adapter's tests: QDRANT_URL if set, else a testcontainer.

Where neither exists (no Docker daemon), the tests that need it skip with one line saying why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# qdrant-client 1.20 supports servers of the same minor version (and ±1, with fewer features).
# compose.yaml runs this same image.
QDRANT_IMAGE = "qdrant/qdrant:v1.20.0"


@pytest.fixture(scope="session")
def qdrant_server() -> Iterator[str]:
    """The URL of a Qdrant server that lives as long as the test session."""
    url = os.environ.get("QDRANT_URL")
    if url:
        yield url
        return
    from docker.errors import DockerException
    from testcontainers.community.qdrant import QdrantContainer

    try:
        container = QdrantContainer(QDRANT_IMAGE)  # connects to the Docker daemon at once
    except DockerException as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        pytest.skip(f"no Qdrant server: set QDRANT_URL or run Docker ({reason[:120]})")
    with container:
        yield f"http://{container.get_container_host_ip()}:{container.exposed_rest_port}"
