"""GET /metrics: the Prometheus exposition, parsed with prometheus_client.parser, rises with requests;
database and index errors are counted; `movierec serve` sums every worker's samples (multiprocess)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.api import create_app
from app.catalog.db import make_engine
from app.settings import Settings
from app.vectorstore import open_store
from tests.helpers.api import bearer
from tests.helpers.server import serve
from tests.helpers.worlds import DEMO_LIMIT, copy_settings, make_settings

ROOT = Path(__file__).resolve().parent.parent


def scrape(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of GET /metrics, keyed by (name, labels)."""
    response = httpx.get(base_url + "/metrics")  # no token: Prometheus scrapes it like /health
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum over the samples named `name` whose labels include `labels` (0 when there are none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture(scope="module")
def world(demo_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # A copy: one test breaks its database on purpose.
    return copy_settings(demo_settings, tmp_path_factory.mktemp("metrics") / "data")


@pytest.fixture(scope="module")
def base_url(world: Settings, text_encoder: Any) -> Iterator[str]:
    with serve(create_app(world, text_encoder=text_encoder)) as url:
        yield url


@pytest.fixture(scope="module")
def admin(world: Settings) -> dict[str, str]:
    return bearer(world, admin=True)


def test_counters_and_histograms_rise_after_requests(base_url: str, admin: dict[str, str]) -> None:
    route = {"path": "/movies/recommendations", "method": "GET"}
    before = scrape(base_url)
    for user, strategy in ((15, "hybrid"), (16, "hybrid"), (15, "content")):
        answer = httpx.get(f"{base_url}/movies/recommendations?user_id={user}&strategy={strategy}", headers=admin)
        assert answer.status_code == 200
    assert httpx.get(f"{base_url}/movies/recommendations?user_id=x", headers=admin).status_code == 400
    guest = httpx.post(f"{base_url}/recommendations", json={"liked": [1], "strategy": "collab"}, headers=admin)
    assert guest.status_code == 200, guest.text
    after = scrape(base_url)

    def rise(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert rise("movierec_requests_total", **route, status_code="200") == 3
    assert rise("movierec_requests_total", **route, status_code="400") == 1
    assert rise("movierec_request_duration_seconds_count", **route) == 4
    assert rise("movierec_request_duration_seconds_bucket", **route, le="+Inf") == 4
    assert rise("movierec_request_duration_seconds_sum", **route) > 0
    assert rise("movierec_recommendation_paths_total", strategy="hybrid") == 2
    assert rise("movierec_recommendation_paths_total", strategy="content", path="content") == 1
    assert rise("movierec_recommendation_paths_total", strategy="collab", path=guest.json()["path"]) == 1


def test_answer_memo_hits_and_misses_are_counted(base_url: str, admin: dict[str, str]) -> None:
    before = scrape(base_url)
    url = f"{base_url}/movies/recommendations?user_id=17&strategy=content&limit=7"
    first, second = (httpx.get(url, headers=admin) for _ in range(2))
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    after = scrape(base_url)
    name = "movierec_answer_memo_lookups_total"
    for outcome in ("miss", "hit"):  # one process: the second request finds the first one's answer
        assert (
            value(after, name, kind="recommend", outcome=outcome)
            - value(before, name, kind="recommend", outcome=outcome)
            == 1
        )


def test_index_model_and_worker_gauges(base_url: str, world: Settings) -> None:
    samples = scrape(base_url)
    assert value(samples, "movierec_index_points") == DEMO_LIMIT
    assert value(samples, "movierec_index_collab_vectors") > 0
    assert value(samples, "movierec_index_info", generation=open_store(world).generation(), engine="edge") == 1
    assert value(samples, "movierec_model_info", text_model="all-MiniLM-L6-v2", image_model="efficientnet-lite0") == 1
    assert value(samples, "movierec_workers") == 1
    # The JSON metrics keep their place and their token.
    assert httpx.get(base_url + "/metrics/embeddings").status_code == 401


def test_database_and_index_errors_are_counted(
    base_url: str, world: Settings, admin: dict[str, str], text_encoder: Any, tmp_path: Path
) -> None:
    before = scrape(base_url)
    engine = make_engine(world.sqlalchemy_url)
    with engine.begin() as conn:  # last test of the module on this world: break its database
        conn.execute(text("DROP TABLE ratings"))
    engine.dispose()
    assert httpx.get(f"{base_url}/users/15/ratings", headers=admin).status_code >= 500
    assert (
        value(scrape(base_url), "movierec_errors_total", kind="database")
        - value(before, "movierec_errors_total", kind="database")
        == 1
    )

    empty = make_settings(tmp_path / "empty")  # no index published: the API answers 503
    with serve(create_app(empty, text_encoder=text_encoder)) as url:
        before = scrape(url)
        token = bearer(empty, admin=True)
        assert httpx.get(f"{url}/movies/1/similar", headers=token).status_code == 503
        after = scrape(url)
    assert (
        value(after, "movierec_errors_total", kind="index") - value(before, "movierec_errors_total", kind="index") == 1
    )


def test_serve_sums_every_workers_samples(demo_settings: Settings, tmp_path: Path) -> None:
    """`movierec serve --workers 2`: whichever worker answers a scrape, it reports both workers'
    requests, and the metrics folder is emptied at start."""
    world = copy_settings(demo_settings, tmp_path / "data")
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_99999.db").write_bytes(b"left by a previous server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "MOVIEREC_DATA_DIR": str(world.data_dir),
        "MOVIEREC_METRICS_DIR": str(metrics_dir),
        "MOVIEREC_DEVICE": "cpu",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if world.database_url:
        env["DATABASE_URL"] = world.database_url
    cmd = [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_workers(url, server, 2)
        assert not (metrics_dir / "counter_99999.db").exists()
        before = value(scrape(url), "movierec_requests_total", path="/health")
        for _ in range(20):
            assert httpx.get(url + "/health").status_code == 200
        # Each scrape may be answered by either worker; each must report all 20.
        for _ in range(4):
            samples = scrape(url)
            assert value(samples, "movierec_requests_total", path="/health") - before == 20
            assert value(samples, "movierec_workers") == 2
    finally:
        server.terminate()
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err.decode()[-2000:]


def test_serve_keeps_its_own_default_folder_and_removes_it_on_ctrl_c(demo_settings: Settings, tmp_path: Path) -> None:
    """Without MOVIEREC_METRICS_DIR the samples go to $TMPDIR/movierec-metrics-<port>-<pid>. A second
    `movierec serve` on the same port fails to bind and leaves the running server's folder and
    /metrics alone (it used to empty the folder: /metrics then answered 500); a dead server's folder
    is swept at the next start; Ctrl-C (SIGINT) leaves no folder behind."""
    world = copy_settings(demo_settings, tmp_path / "data")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = tmp_path / f"movierec-metrics-{port}-999999999"  # no such process
    dead.mkdir()
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(world.data_dir), "TMPDIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "MOVIEREC_METRICS_DIR"):
        env.pop(name, None)
    if world.database_url:
        env["DATABASE_URL"] = world.database_url
    cmd = [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", "1"]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_workers(f"http://127.0.0.1:{port}", server, 1)
        own = tmp_path / f"movierec-metrics-{port}-{server.pid}"
        assert own.is_dir() and not dead.exists()
        second = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, timeout=240)
        assert second.returncode != 0
        assert own.is_dir()
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).status_code == 200
    finally:
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=60)
    assert not list(tmp_path.glob(f"movierec-metrics-{port}*")), err.decode()[-2000:]


def test_serve_sets_the_folder_before_prometheus_client_is_imported() -> None:
    """With one worker uvicorn serves in the process of `movierec serve` itself: preparing the folder
    must not import prometheus_client, which fixes its storage (per process or shared) at import."""
    code = (
        "import sys; import movierec.cli; from app.multiproc import prepare_multiprocess_dir; "
        "assert 'prometheus_client' not in sys.modules, 'imported too early'"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _wait_for_workers(url: str, server: subprocess.Popen[bytes], workers: int, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read().decode()[-2000:] if server.stderr else ""
        try:
            if value(scrape(url), "movierec_workers") == workers:
                return
        except (httpx.HTTPError, AssertionError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{workers} workers did not start within {timeout_s} s")
