"""Operations: health (no auth) and embedding metrics."""

from __future__ import annotations

from litestar import Controller, Response, get
from litestar.di import Provide
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.api.schemas import ERROR_RESPONSES, EmbeddingMetricsOut, HealthOut
from app.api.state import Services
from app.errors import DatabaseUnavailable, MovieRecError
from app.status import embedding_metrics


async def check_database(services: Services) -> str | None:
    """None when the database answers `SELECT 1` (through the worker's DatabaseGate, within the
    DbTimeouts), else why not, in words that carry no URL, path or driver message."""
    try:
        await services.db_gate.run(_select_one, services.engine)
    except DatabaseUnavailable as exc:
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
        description="200 when both answer, 503 otherwise. Needs no token.",
        security=[{}],
        exclude_from_auth=True,
        sync_to_thread=True,
    )
    def health(self, services: Services, database_problem: str | None) -> Response[HealthOut]:
        database, problem = database_problem is None, None
        try:
            services.live.current()
            index = True
        except MovieRecError as exc:
            index, problem = False, str(exc)
        except Exception:  # noqa: BLE001  an unreachable server raises its client's own errors
            index, problem = False, "the index is unreachable"
        ok = database and index
        body = HealthOut(
            status="ok" if ok else "unavailable",
            database=database,
            index=index,
            index_generation=services.live.generation,
            detail=problem if database else database_problem,
        )
        return Response(body, status_code=200 if ok else 503)


class MetricsController(Controller):
    path = "/metrics"
    tags = ["system"]

    @get(
        "/embeddings",
        operation_id="embeddingMetrics",
        responses={401: ERROR_RESPONSES[401]},
        summary="Embedding coverage, device and models",
        sync_to_thread=True,
    )
    def embeddings(self, services: Services) -> EmbeddingMetricsOut:
        return EmbeddingMetricsOut.from_metrics(embedding_metrics(services.engine, services.store, services.device))
