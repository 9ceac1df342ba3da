"""Operations: health (no auth) and embedding metrics."""

from __future__ import annotations

import contextlib

from litestar import Controller, Response, get
from litestar.openapi import ResponseSpec
from sqlalchemy import text

from app.api.schemas import EmbeddingMetricsOut, HealthOut, error_responses
from app.api.state import Services
from app.errors import IndexUnavailable, MovieRecError
from app.status import index_metrics


class HealthController(Controller):
    path = "/health"
    tags = ["system"]

    @get(
        "/",
        operation_id="health",
        summary="Database and index reachable",
        description="200 when both answer, 503 otherwise. Needs no token.",
        responses={
            503: ResponseSpec(
                data_container=HealthOut,
                description="The database or the index is unreachable; `detail` says which",
                generate_examples=False,
            )
        },
        security=[{}],
        exclude_from_auth=True,
        sync_to_thread=True,
    )
    def health(self, services: Services) -> Response[HealthOut]:
        database, problem = _database_ok(services), None
        try:
            services.live.current()
            index, problem = True, services.live.problem  # a problem here: the last good index serves
        except MovieRecError as exc:
            index, problem = False, str(exc)
        except Exception:  # noqa: BLE001  an unreachable server raises its client's own errors
            index, problem = False, "the index is unreachable"
        ok = database and index
        body = HealthOut(
            status=("degraded" if problem else "ok") if ok else "unavailable",
            database=database,
            index=index,
            index_generation=services.live.generation,
            detail=problem if database else "the database is unreachable",
        )
        return Response(body, status_code=200 if ok else 503)


def _database_ok(services: Services) -> bool:
    try:
        with services.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001  any failure means "unreachable" here; the body says so
        return False


class MetricsController(Controller):
    path = "/metrics"
    tags = ["system"]

    @get(
        "/embeddings",
        operation_id="embeddingMetrics",
        responses=error_responses(401),
        summary="Embedding coverage, device and models",
        description="What `movierec status` prints: movies in the database and in the index, coverage, models.",
        sync_to_thread=True,
    )
    def embeddings(self, services: Services) -> EmbeddingMetricsOut:
        live = services.live
        with contextlib.suppress(IndexUnavailable):  # none served: the metrics say 0 in the index
            live.current()  # the index this API serves, as /health reports it, not merely the published one
        return EmbeddingMetricsOut.from_metrics(index_metrics(services.engine, live.manifest(), live.generation,
                                                              services.device))
