"""Prometheus metrics: `GET /metrics` in the text exposition format, through prometheus-client.

Several uvicorn workers serve, so `movierec serve` runs prometheus-client in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, see app/multiproc.py): each worker writes its samples to
files there and a scrape, answered by any worker, adds them up. Without that variable (tests, one
in-process app) the process's own registry answers.

What is exported:
- `movierec_requests_total` and `movierec_request_duration_seconds` (histogram), labelled by
  method, route template (`path`) and status: Litestar's own Prometheus middleware;
- `movierec_recommendation_paths_total{strategy, path}`: which `path` answered recommendations;
- `movierec_errors_total{kind}`: requests that failed on the database or the index;
- `movierec_answer_memo_lookups_total{kind, outcome}`: the answer memo's hits and misses
  (app/recommend/memo.py) by kind of answer: recommend, similar, search;
- `movierec_workers`: live API worker processes;
- read at scrape time from the published manifest: `movierec_index_info{generation, engine}`,
  `movierec_index_points`, `movierec_index_collab_vectors`, `movierec_index_built_timestamp_seconds`
  and `movierec_model_info{text_model, image_model, ...}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
from litestar import Controller, Litestar, Response, get
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import Scope
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from app.api.schemas import GuestRecommendationsOut, RecommendationsOut
from app.api.state import Services
from app.errors import IndexUnavailableError
from app.multiproc import MULTIPROC_ENV

PREFIX = "movierec"
REQUEST_DURATION = f"{PREFIX}_request_duration_seconds"
# Latency buckets (seconds): the API answers in ms; a slow ingest-time reopen takes seconds.
# Litestar appends the charset to a text/* media type itself.
MEDIA_TYPE = CONTENT_TYPE_LATEST.split("; charset")[0]
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

PROMETHEUS = PrometheusConfig(
    app_name=PREFIX, prefix=PREFIX, group_path=True, buckets=list(BUCKETS), exclude=[r"^/static/"]
)
RECOMMENDATION_PATHS = Counter(
    f"{PREFIX}_recommendation_paths", "Recommendation answers by the path that made them", ["strategy", "path"]
)
ERRORS = Counter(f"{PREFIX}_errors", "Requests that failed on the database or the index", ["kind"])
MEMO_LOOKUPS = Counter(
    f"{PREFIX}_answer_memo_lookups", "Answer memo lookups by kind of answer and outcome", ["kind", "outcome"]
)
WORKERS = Gauge(f"{PREFIX}_workers", "Live API worker processes", multiprocess_mode="livesum")


def registry() -> CollectorRegistry:
    """Every worker's samples in multiprocess mode; this process's otherwise."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    merged = CollectorRegistry()
    prom_multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]  # an unannotated __init__
    return merged


class IndexCollector(Collector):
    """The published index and the models that built it, read from its manifest at scrape time."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Any]:
        store = self.services.store
        manifest = store.manifest()
        engine = "server" if self.services.settings.qdrant_url else "edge"
        info = InfoMetricFamily(f"{PREFIX}_index", "The published index generation and its engine")
        info.add_metric([], {"generation": store.generation() or "", "engine": engine})
        yield info
        if manifest is None:
            return
        stats = manifest.stats
        for name, key, doc in (
            ("index_points", "points", "Points (movies) in the published index"),
            ("index_collab_vectors", "collab_vectors", "Movies with a collab vector"),
            ("index_built_timestamp_seconds", "built_at", "When the published index was built (Unix time)"),
        ):
            yield GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=float(stats.get(key) or 0))
        model = InfoMetricFamily(f"{PREFIX}_model", "The models behind the index and the serving device")
        model.add_metric(
            [],
            {
                "text_model": manifest.text_model,
                "image_model": manifest.image_model,
                "collab_dim": str(manifest.collab_dim),
                "projection_seed": str(manifest.projection_seed),
                "schema_version": str(manifest.schema_version),
                "device": self.services.device,
            },
        )
        yield model


def exposition(services: Services) -> bytes:
    """The whole scrape: the request metrics of every worker, then the index's."""
    index = CollectorRegistry(auto_describe=False)
    index.register(IndexCollector(services))
    return generate_latest(registry()) + generate_latest(index)


class PrometheusController(Controller):
    path = "/metrics"
    tags = ["system"]

    @get(
        "/",
        operation_id="prometheusMetrics",
        summary="Prometheus metrics (text format)",
        description="Request counts and latency per route and status, recommendation paths, the index "
        "generation and size, model info, database and index errors. Needs no token, like /health.",
        media_type=MEDIA_TYPE,
        security=[{}],
        exclude_from_auth=True,
        sync_to_thread=True,
    )
    def scrape(self, services: Services) -> Response[bytes]:
        return Response(exposition(services), media_type=MEDIA_TYPE)


async def count_recommendation_path(response: Response[Any]) -> Response[Any]:
    """after_request hook: count which path answered, read from the answer itself."""
    body = getattr(response, "content", None)  # file responses (static assets) have none
    if isinstance(body, RecommendationsOut | GuestRecommendationsOut):
        RECOMMENDATION_PATHS.labels(body.strategy, body.path).inc()
    return response


def count_memo_lookup(kind: str, hit: bool) -> None:
    """The answer memo's observer: one lookup of a `kind` answer."""
    MEMO_LOOKUPS.labels(kind, "hit" if hit else "miss").inc()


def count_error(exc: Exception, _: Scope) -> None:
    """after_exception hook: errors of the two stores, whatever answer the mapper then gives."""
    if isinstance(exc, IndexUnavailableError):
        ERRORS.labels("index").inc()
    elif isinstance(exc, SQLAlchemyError):
        ERRORS.labels("database").inc()


def worker_started(app: Litestar) -> None:
    """on_startup: count this worker, and start sampling the request metrics for the dashboard."""
    WORKERS.set(1)
    history = ServiceHistory()
    app.state.service_history = history
    app.state.service_sampler = asyncio.get_running_loop().create_task(history.run())


async def worker_stopped(app: Litestar) -> None:
    """on_shutdown. A live gauge must forget a stopped worker: its files go (multiprocess mode)."""
    sampler = getattr(app.state, "service_sampler", None)
    if sampler is not None:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    if os.environ.get(MULTIPROC_ENV):
        prom_multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # unannotated
    else:
        WORKERS.set(0)


SERVICE_EVERY_S = 5.0
SERVICE_WINDOW_S = 300.0


class ServiceHistory:
    """Snapshots of every worker's request metrics (`service_snapshot`), one per SERVICE_EVERY_S over
    the last SERVICE_WINDOW_S, so the Service page shows rates and quantiles over the last minutes
    as soon as it opens. Each worker keeps its own: any of them may answer the page."""

    def __init__(self, every_s: float = SERVICE_EVERY_S, window_s: float = SERVICE_WINDOW_S) -> None:
        self.every_s = every_s
        self._samples: deque[dict[str, Any]] = deque(maxlen=int(window_s // every_s) + 1)

    def sample(self) -> None:
        self._samples.append({"t": time.time(), **service_snapshot()})

    def window(self) -> dict[str, Any]:
        """{"every_s", "samples": [{"t": Unix seconds, "workers", "routes"}, ...]}, oldest first, ending now."""
        now = {"t": time.time(), **service_snapshot()}
        return {"every_s": self.every_s, "samples": [*self._samples, now]}

    async def run(self) -> None:
        while True:
            await anyio.to_thread.run_sync(self.sample)  # reads the workers' files: off the event loop
            await asyncio.sleep(self.every_s)


def service_snapshot() -> dict[str, Any]:
    """Cumulative request counts and latency buckets per route, summed over statuses and workers,
    for the dashboard's Service page (it takes differences between two snapshots for rates and
    quantiles). Shape: {"workers": int, "routes": [{"method", "route", "count", "sum_s",
    "buckets": [[le_seconds, cumulative_count], ...]}]}."""
    routes: dict[tuple[str, str], dict[str, Any]] = {}
    workers = 0.0
    for metric in registry().collect():
        if metric.name == f"{PREFIX}_workers":
            workers = sum(s.value for s in metric.samples)
        if metric.name != REQUEST_DURATION:
            continue
        for sample in metric.samples:
            key = (sample.labels["method"], sample.labels["path"])
            row = routes.setdefault(key, {"method": key[0], "route": key[1], "count": 0, "sum_s": 0.0, "le": {}})
            if sample.name.endswith("_count"):
                row["count"] += int(sample.value)
            elif sample.name.endswith("_sum"):
                row["sum_s"] += sample.value
            elif sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                row["le"][le] = row["le"].get(le, 0) + int(sample.value)
    out = []
    for row in sorted(routes.values(), key=lambda r: (r["route"], r["method"])):
        row["buckets"] = sorted(row.pop("le").items())
        out.append(row)
    return {"workers": int(workers), "routes": out}
