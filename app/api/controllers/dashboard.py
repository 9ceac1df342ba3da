"""The dashboard: `GET /dashboard` (a static page) and the admin-only JSON it reads.

The page itself is public: it holds no data, only the code that asks for an admin token and calls
`/dashboard/api/*` (below) and the existing endpoints with it. Every JSON route here is for admins
only: a user token gets 403.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import numpy as np
from litestar import Controller, MediaType, Response, get
from litestar.datastructures import State
from litestar.params import Parameter

from app.api.assets import DASHBOARD_DIR
from app.api.deps import MovieIdPath, examples
from app.api.metrics import ServiceHistory
from app.api.schemas import error_responses
from app.api.security import admin_only
from app.api.state import Services
from app.catalog.text import PAYLOAD_ONLY_FIELDS
from app.errors import InvalidInputError, NotFoundError
from app.recommend.recommender import Recommender
from app.status import embedding_metrics
from app.vectorstore import VECTOR_NAMES, MovieIndex, content_hashes
from app.vectorstore.cache import cached_payload
from app.vectorstore.maps import MAP_SPACES

DISTANCE = "cosine"  # both adapters create every named vector with cosine distance
NEIGHBOURS = 10
PAYLOAD_SAMPLE = 256  # points whose payload keys list the payload fields


class DashboardPageController(Controller):
    path = "/dashboard"
    tags = ["dashboard"]

    @get(
        "/",
        operation_id="dashboardPage",
        summary="The dashboard (HTML)",
        description="A page that asks for an admin token and reads /dashboard/api/*. Needs no token itself.",
        media_type=MediaType.HTML,
        security=[{}],
        exclude_from_auth=True,
        include_in_schema=False,
        sync_to_thread=True,
    )
    def page(self) -> Response[bytes]:
        return Response((DASHBOARD_DIR / "index.html").read_bytes(), media_type=MediaType.HTML)


class DashboardController(Controller):
    path = "/dashboard/api"
    tags = ["dashboard"]
    guards = [admin_only]

    @get(
        "/index",
        operation_id="dashboardIndex",
        responses=error_responses(401, 403, 503),
        summary="The published index: generation, engine, vectors, payload fields, manifest, coverage",
        description="What the dashboard's Index page shows: the served generation, the engine, its point count, "
        "the named vectors (dimension, distance), the payload fields and which are indexed, the manifest, "
        "coverage and poster coverage, and collab vectors by source.",
        sync_to_thread=True,
    )
    def index(self, services: Services) -> dict[str, Any]:
        return index_overview(services)

    @get(
        "/movies/{movie_id:str}",
        operation_id="dashboardMovie",
        responses=error_responses(400, 401, 403, 404, 503),
        summary="One movie as indexed: payload, the norm of each vector, its 10 nearest under each vector",
        description="The Movies page: the movie's payload, the norm of each of its named vectors, and its 10 "
        "nearest neighbours under each named vector (text, image, combined, collab), side by side.",
        sync_to_thread=True,
    )
    def movie(self, services: Services, movie_id: MovieIdPath) -> dict[str, Any]:
        return movie_view(services.live.current(), services.recommender, movie_id)

    @get(
        "/map/{space:str}",
        operation_id="dashboardMap",
        responses=error_responses(400, 401, 403, 404, 503),
        summary="The 2-D map of a vector space computed at ingest, with each point's title and genre",
        description="The Map page: a PCA projection of `combined` or `collab`, stored with the generation at ingest.",
        sync_to_thread=True,
    )
    def map(
        self,
        services: Services,
        space: Annotated[
            str,
            Parameter(
                description="The vector space: combined or collab.",
                examples=examples("combined"),
                schema_extra={"enum": list(MAP_SPACES)},  # checked by map_view, which names the field
            ),
        ],
    ) -> dict[str, Any]:
        return map_view(services, space)

    @get(
        "/quality",
        operation_id="dashboardQuality",
        responses=error_responses(401, 403, 503),
        summary="The last `movierec eval --save` report",
        description='`{"report": <movierec eval --json>}`, or `{"report": null, "hint": ...}` when none is saved '
        "(a 200, not a 404: the page asks for it every time, and a missing report is not an error).",
        sync_to_thread=True,
    )
    def quality(self, services: Services) -> dict[str, Any]:
        path = services.settings.eval_report_path
        if not path.exists():
            return {
                "report": None,
                "hint": "no saved evaluation: run `.venv/bin/movierec eval --dataset demo --users 200 --save` "
                "(a few minutes; the default dataset is ml-100k)",
            }
        return {"report": json.loads(path.read_text())}

    @get(
        "/service",
        operation_id="dashboardService",
        responses=error_responses(401, 403, 503),
        summary="Request counts and latency buckets per route over the last minutes, and the live worker count",
        description="Cumulative snapshots of every worker's Prometheus request metrics, one every few seconds over "
        "the last five minutes, the last one taken now: rates and quantiles are differences between two.",
        sync_to_thread=True,
    )
    def service(self, state: State) -> dict[str, Any]:
        history: ServiceHistory = state.service_history
        return history.window()


def index_overview(services: Services) -> dict[str, Any]:
    """Everything the Index page shows, from the live index and the published manifest."""
    index = services.live.current()
    manifest = services.store.manifest()
    ids = sorted(content_hashes(index))
    payloads = [m.payload for m in _retrieve_all(index, ids)]
    fields = sorted({key for p in payloads[:PAYLOAD_SAMPLE] for key in p})
    indexed = index.payload_schema()
    dims = manifest.vector_dims() if manifest else {}
    sources: dict[str, int] = {}
    for p in payloads:
        if "collab_source" in p:
            sources[str(p["collab_source"])] = sources.get(str(p["collab_source"]), 0) + 1
    stats = dict(manifest.stats) if manifest else {}
    maps = stats.pop("maps", {})
    return {
        "generation": services.store.generation(),
        "engine": "server" if services.settings.qdrant_url else "edge",
        "points": index.count(),
        "vectors": [{"name": n, "dim": dims.get(n), "distance": DISTANCE} for n in VECTOR_NAMES],
        "payload_fields": [{"name": f, "indexed": f in indexed, "index_type": indexed.get(f)} for f in fields],
        "manifest": {**(manifest.to_dict() if manifest else {}), "stats": stats},
        "maps": {space: len(m.get("ids", [])) for space, m in maps.items()},
        "coverage": embedding_metrics(services.engine, services.store, services.device),
        "collab_sources": sources or None,
    }


def movie_view(index: MovieIndex, recommender: Recommender, movie_id: int) -> dict[str, Any]:
    """Payload, L2 norm per named vector, and the NEIGHBOURS nearest under each vector it has
    (Recommender.similar: the same neighbours `GET /movies/{id}/similar` answers); None where it has none."""
    found = index.retrieve([movie_id], vectors=VECTOR_NAMES)
    if not found:
        raise NotFoundError(f"movie {movie_id} is not in the index")
    movie = found[0]
    neighbours: dict[str, Any] = {}
    for name in VECTOR_NAMES:
        try:
            hits = recommender.similar(movie_id, limit=NEIGHBOURS, vector=name)
        except InvalidInputError:  # the movie has no such vector (no poster, no ratings)
            neighbours[name] = None
            continue
        neighbours[name] = [{"movie_id": h.id, "title": h.title, "year": h.year, "score": h.score} for h in hits]
    return {
        "movie_id": movie_id,
        # A field the source has no value for is null, as GET /movies/{id} says: a fresh index stores the
        # null, an in-place payload update (Edge's set_payload) drops the key. The keys a vector cache
        # leaves in the engine are left out on every path, so the page shows the same keys either way.
        "payload": cached_payload({**dict.fromkeys(PAYLOAD_ONLY_FIELDS), **movie.payload}),
        "norms": {n: round(float(np.linalg.norm(v)), 6) for n, v in movie.vectors.items()},
        "neighbours": neighbours,
    }


def map_view(services: Services, space: str) -> dict[str, Any]:
    """{"space", "explained_variance", "points": [[movie id, x, y, title, first genre], ...]}."""
    if space not in MAP_SPACES:
        raise InvalidInputError(f"space must be one of {', '.join(MAP_SPACES)}, got {space[:40]!r}", field="space")
    manifest = services.store.manifest()
    stored = (manifest.stats.get("maps") or {}).get(space) if manifest else None
    if not stored:
        raise NotFoundError(f"the index has no {space} map: run `movierec ingest --rebuild` to compute it")
    payloads = {m.id: m.payload for m in _retrieve_all(services.live.current(), stored["ids"])}
    points = []
    for movie_id, (x, y) in zip(stored["ids"], stored["xy"], strict=True):
        payload = payloads.get(movie_id, {})
        genres = payload.get("genres") or ["(none)"]
        points.append([movie_id, x, y, payload.get("title", ""), genres[0]])
    return {"space": space, "explained_variance": stored.get("explained_variance"), "points": points}


def _retrieve_all(index: MovieIndex, ids: list[int], chunk: int = 1024) -> list[Any]:
    return [m for start in range(0, len(ids), chunk) for m in index.retrieve(ids[start : start + chunk])]
