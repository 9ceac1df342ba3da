"""Operations: health (no auth) and embedding metrics."""

from __future__ import annotations

import contextlib

from litestar import Controller, Response, get
from litestar.di import Provide
from litestar.openapi import ResponseSpec
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.api.schemas import EmbeddingMetricsOut, HealthOut, error_responses
from app.api.state import Services
from app.errors import DatabaseUnavailableError, IndexUnavailableError, MovieRecError
from app.status import index_metrics


async def check_database(services: Services) -> str | None:
    """None when the database answers `SELECT 1` (through the worker's DatabaseGate, within the
    DbTimeouts), else why not, in words that carry no URL, path or driver message."""
    try:
        await services.db_gate.run(_select_one, services.engine)
    except DatabaseUnavailableError as exc:
        return str(exc)
    except SQLAlchemyError:
        return "the database is unreachable or not answering in time (check DATABASE_URL)"
    return None


def _select_one(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


class HealthController(Controller):
    path = "/health"
    tags = ["system"]
    dependencies = {"database_problem": Provide(check_database)}

    @get(
        "/",
        operation_id="health",
        summary="Database and index reachable",
        description="200 when both answer, 503 otherwise (also when the data folder the API writes is read-only). "
        "Needs no token.",
        responses={
            503: ResponseSpec(
                data_container=HealthOut,
                description="The database or the index is unreachable, or the data folder is not writable; "
                "`detail` says which",
                generate_examples=False,
            )
        },
        security=[{}],
        exclude_from_auth=True,
        sync_to_thread=True,
    )
    def health(self, services: Services, database_problem: str | None) -> Response[HealthOut]:
        body = _health(services, database_problem)
        return Response(body, status_code=503 if body.status == "unavailable" else 200)


def _health(services: Services, database_problem: str | None) -> HealthOut:
    """What /health reports: `unavailable` when the database or the index cannot answer, or the data
    folder the API writes is not writable (`detail` then says that, whatever else fails with it),
    `degraded` when the last good index serves because the newest cannot be opened, `ok` otherwise."""
    database, problem = database_problem is None, None
    folder = services.data_dir_problem  # probed in the background: at most MOVIEREC_TOKEN_REFRESH_S old
    try:
        services.live.current()
        index, problem = True, services.live.problem  # a problem here: the last good index serves
    except MovieRecError as exc:
        index, problem = False, str(exc)
    except Exception:  # an unreachable server raises its client's own errors
        index, problem = False, "the index is unreachable"
    ok = database and index and folder is None
    return HealthOut(
        status=("degraded" if problem else "ok") if ok else "unavailable",
        database=database,
        index=index,
        index_generation=services.live.generation,
        detail=folder or (problem if database else database_problem),
    )


class MetricsController(Controller):
    path = "/metrics"
    tags = ["system"]

    @get(
        "/embeddings",
        operation_id="embeddingMetrics",
        responses=error_responses(401, 503),
        summary="Embedding coverage, device and models",
        description="What `movierec status` prints: movies in the database and in the index, coverage, models.",
        sync_to_thread=True,
    )
    def embeddings(self, services: Services) -> EmbeddingMetricsOut:
        live = services.live
        with contextlib.suppress(IndexUnavailableError):  # none served: the metrics say 0 in the index
            live.current()  # the index this API serves, as /health reports it, not merely the published one
        metrics = index_metrics(services.engine, live.manifest(), live.generation, services.device)
        return EmbeddingMetricsOut.from_metrics(metrics)
