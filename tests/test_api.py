"""The REST API end to end: a real database and Edge index (a copy of the demo fixture), the real
text model, Litestar's AsyncTestClient. One app per module; tests that write use fresh user ids."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.security.jwt import Token
from litestar.testing import AsyncTestClient
from sqlalchemy import func
from sqlmodel import Session, select

from app.api import create_app
from app.auth import issue_token
from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.models import Movie, Rating
from app.settings import Settings
from tests.conftest import copy_settings, make_settings

pytestmark = pytest.mark.anyio

NEW_USER = 9_000_000  # ids above every MovieLens user: tests that create users start here


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def api_settings(demo_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The demo data dir is shared by the session and these tests write ratings: work on a copy.
    return copy_settings(demo_settings, tmp_path_factory.mktemp("api") / "data")


@pytest.fixture(scope="module")
def db(api_settings: Settings) -> Iterator[Any]:
    engine = make_engine(api_settings.sqlalchemy_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def app(api_settings: Settings, text_encoder: Any) -> Litestar:
    return create_app(api_settings, text_encoder=text_encoder)


@pytest.fixture(scope="module")
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as c:  # runs the lifespan: services open, and close at the end
        yield c


@pytest.fixture(scope="module")
def real_users(db: Any) -> list[int]:
    """Five MovieLens users with 20+ ratings among the fixture's movies."""
    with Session(db) as s:
        rows = s.exec(
            select(Rating.user_id)
            .group_by(Rating.user_id)
            .having(func.count() >= 20)
            .order_by(func.count().desc(), Rating.user_id)
            .limit(5)
        ).all()
    assert len(rows) == 5, "the demo fixture should hold users with 20+ ratings"
    return list(rows)


@pytest.fixture(scope="module")
def movie_ids(db: Any) -> list[int]:
    with Session(db) as s:
        return list(s.exec(select(Movie.id).order_by(Movie.id)))


@pytest.fixture(scope="module")
def admin(api_settings: Settings) -> dict[str, str]:
    return bearer(api_settings, admin=True)


# -- helpers --------------------------------------------------------------------------------------
def bearer(settings: Settings, *, user_id: int | None = None, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(settings, user_id=user_id, admin=admin)}"}


def rated_by(db: Any, user_id: int) -> set[int]:
    with Session(db) as s:
        return {r.movie_id for r in repo.user_ratings(s, user_id)}


def assert_error(resp: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["status_code"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    if field is not None:
        assert body.get("field") == field, body
        assert field in body["detail"], body
    return body  # type: ignore[no-any-return]


async def recommend(client: AsyncTestClient[Litestar], headers: dict[str, str], user_id: int, **params: Any) -> Any:
    resp = await client.get("/movies/recommendations", params={"user_id": user_id, **params}, headers=headers)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- no auth: health and OpenAPI ------------------------------------------------------------------
async def test_health_and_schema_need_no_token(client: AsyncTestClient[Litestar]) -> None:
    health = await client.get("/health")
    assert health.status_code == 200, health.text
    assert health.json() | {"index_generation": None} == {
        "status": "ok",
        "database": True,
        "index": True,
        "index_generation": None,
        "detail": None,
    }
    assert (await client.get("/schema")).status_code == 200
    spec = (await client.get("/schema/openapi.json")).json()
    assert "BearerToken" in spec["components"]["securitySchemes"]
    for path in (
        "/movies/recommendations",
        "/movies/{movie_id}/similar",
        "/movies/explain/{user_id}/{movie_id}",
        "/movies/search",
        "/movies/{movie_id}",
        "/users/{user_id}/ratings",
        "/users/{user_id}/ratings/{movie_id}",
        "/metrics/embeddings",
        "/health",
    ):
        assert path in spec["paths"], path
    operations = [op for item in spec["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert all(op.get("operationId") for op in operations)


# -- auth -----------------------------------------------------------------------------------------
PROTECTED = [
    ("GET", "/movies/recommendations?user_id=1"),
    ("GET", "/movies/1/similar"),
    ("GET", "/movies/explain/1/1"),
    ("GET", "/movies/search?q=space"),
    ("GET", "/movies/1"),
    ("GET", "/users/1/ratings"),
    ("POST", "/users/1/ratings"),
    ("DELETE", "/users/1/ratings/1"),
    ("GET", "/metrics/embeddings"),
]


@pytest.mark.parametrize(("method", "url"), PROTECTED)
async def test_every_endpoint_needs_a_valid_token(
    client: AsyncTestClient[Litestar], api_settings: Settings, method: str, url: str
) -> None:
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    foreign = Token(sub="admin", exp=in_an_hour).encode("another-secret-of-at-least-32-bytes", "HS256")
    odd_subject = Token(sub="robot", exp=in_an_hour).encode(api_settings.secret_key, "HS256")
    for headers in (
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": f"Bearer {foreign}"},
        {"Authorization": f"Bearer {odd_subject}"},
    ):
        resp = await client.request(method, url, headers=headers, json={"movie_id": 1, "rating": 4})
        assert_error(resp, 401)
        assert resp.headers["www-authenticate"] == "Bearer"


async def test_user_token_reaches_only_its_own_data(
    client: AsyncTestClient[Litestar], api_settings: Settings, real_users: list[int], movie_ids: list[int]
) -> None:
    me, other = real_users[0], real_users[1]
    mine = bearer(api_settings, user_id=me)
    for method, url in [
        ("GET", f"/movies/recommendations?user_id={other}"),
        ("GET", f"/movies/explain/{other}/{movie_ids[0]}"),
        ("GET", f"/users/{other}/ratings"),
        ("POST", f"/users/{other}/ratings"),
        ("DELETE", f"/users/{other}/ratings/{movie_ids[0]}"),
    ]:
        resp = await client.request(method, url, headers=mine, json={"movie_id": movie_ids[0], "rating": 4})
        assert_error(resp, 403)
    assert (await client.get(f"/users/{me}/ratings", headers=mine)).status_code == 200
    assert (await client.get(f"/movies/explain/{me}/{movie_ids[0]}", headers=mine)).status_code == 200
    await recommend(client, mine, me)
    # The catalogue and the metrics are not per-user data: any valid token reads them.
    assert (await client.get(f"/movies/{movie_ids[0]}", headers=mine)).status_code == 200
    assert (await client.get("/metrics/embeddings", headers=mine)).status_code == 200


# -- recommendations ------------------------------------------------------------------------------
async def test_recommendation_shape(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]
) -> None:
    body = await recommend(client, admin, real_users[0], limit=7)
    assert body["user_id"] == real_users[0]
    assert (body["strategy"], body["path"]) == ("hybrid", "hybrid")  # the default, once collab landed
    assert len(body["items"]) == 7
    for item in body["items"]:
        assert set(item) == {"movie_id", "title", "year", "genres", "score", "reason"}
        assert item["title"] and item["reason"]
    assert len({i["movie_id"] for i in body["items"]}) == 7


async def test_rated_movies_are_never_recommended(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int], db: Any
) -> None:
    for user in real_users:
        seen = rated_by(db, user)
        for params in ({}, {"use_embeddings": "false"}, {"diversity": 0, "popularity": 1}):
            body = await recommend(client, admin, user, limit=100, **params)
            got = {i["movie_id"] for i in body["items"]}
            assert got and not got & seen, (user, params, got & seen)


async def test_filters_hold_for_every_result(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]
) -> None:
    wanted = {"Comedy", "Romance"}
    for use_embeddings in ("true", "false"):
        body = await recommend(
            client,
            admin,
            real_users[2],
            limit=50,
            genres="Comedy, Romance",
            year_min=1990,
            year_max=1999,
            use_embeddings=use_embeddings,
        )
        assert body["items"], body
        for item in body["items"]:
            assert 1990 <= item["year"] <= 1999, item
            assert wanted & set(item["genres"]), item
    exact_year = await recommend(client, admin, real_users[2], year_min=1995, year_max=1995)
    assert exact_year["items"] and {i["year"] for i in exact_year["items"]} == {1995}


async def test_genres_are_listed_and_matched_in_any_case(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]
) -> None:
    resp = await client.get("/genres", headers=admin)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    counts = [i["movies"] for i in items]
    assert counts == sorted(counts, reverse=True) and all(n > 0 for n in counts)
    names = [i["genre"] for i in items]
    assert {"Comedy", "Drama"} <= set(names)
    exact = await recommend(client, admin, real_users[1], genres="Comedy,Drama")
    assert await recommend(client, admin, real_users[1], genres=" comedy, DRAMA ,,") == exact
    unknown = assert_error(await client.get("/movies/search?q=space&genres=sci-fy", headers=admin), 400, "genres")
    assert "'sci-fy'" in unknown["detail"] and "Comedy" in unknown["detail"]


async def test_search_takes_the_recommendation_filters(
    client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    params = {"q": "a love story", "limit": 20, "genres": "romance", "year_min": 1990, "year_max": 1999}
    resp = await client.get("/movies/search", params=params, headers=admin)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert items and all("Romance" in i["genres"] and 1990 <= i["year"] <= 1999 for i in items), items
    unfiltered = (await client.get("/movies/search", params={"q": "a love story", "limit": 20}, headers=admin)).json()
    assert [i["movie_id"] for i in items] != [i["movie_id"] for i in unfiltered["items"]]


async def test_use_embeddings_false_answers_from_popularity(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]
) -> None:
    body = await recommend(client, admin, real_users[0], use_embeddings="false")
    assert body["path"] == "popular" and len(body["items"]) == 10
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


async def test_cold_start_paths(client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int]) -> None:
    user = NEW_USER + 1
    # POST then DELETE leaves a known user with no ratings: popular, not 404.
    assert (
        await client.post(f"/users/{user}/ratings", json={"movie_id": movie_ids[0], "rating": 5}, headers=admin)
    ).status_code == 201
    assert (await client.delete(f"/users/{user}/ratings/{movie_ids[0]}", headers=admin)).status_code == 204
    assert (await recommend(client, admin, user))["path"] == "popular"

    for n, path in ((1, "collab_popular"), (20, "hybrid")):
        user = NEW_USER + 1 + n
        for i, movie in enumerate(movie_ids[:n]):
            resp = await client.post(
                f"/users/{user}/ratings", json={"movie_id": movie, "rating": 4.5 - (i % 4)}, headers=admin
            )
            assert resp.status_code == 201, resp.text
        body = await recommend(client, admin, user, limit=15)
        assert body["path"] == path and len(body["items"]) == 15
        assert not {i["movie_id"] for i in body["items"]} & set(movie_ids[:n])


async def test_a_new_rating_changes_the_next_answer(
    client: AsyncTestClient[Litestar], api_settings: Settings, real_users: list[int]
) -> None:
    user = real_users[4]
    mine = bearer(api_settings, user_id=user)  # a user may write its own ratings
    before = await recommend(client, mine, user)
    top = before["items"][0]["movie_id"]
    resp = await client.post(f"/users/{user}/ratings", json={"movie_id": top, "rating": 0.5}, headers=mine)
    assert resp.status_code == 201, resp.text
    assert resp.json()["rating"] == 0.5 and resp.json()["movie_id"] == top
    after = await recommend(client, mine, user)
    assert top not in {i["movie_id"] for i in after["items"]}
    assert after["items"] != before["items"]


@pytest.mark.parametrize("strategy", ["content", "collab", "hybrid"])
async def test_every_strategy_answers_by_its_own_path(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int], db: Any, strategy: str
) -> None:
    from sqlmodel import Session

    from app.catalog import repository as repo

    for user in real_users[:3]:
        body = await recommend(client, admin, user, strategy=strategy, limit=10)
        assert (body["strategy"], body["path"]) == (strategy, strategy)
        with Session(db) as session:
            rated = {r.movie_id for r in repo.user_ratings(session, user)}
        assert len(body["items"]) == 10 and not {i["movie_id"] for i in body["items"]} & rated


async def test_strategies_disagree_where_they_should(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]
) -> None:
    user = real_users[0]
    lists = {
        s: [i["movie_id"] for i in (await recommend(client, admin, user, strategy=s, limit=10))["items"]]
        for s in ("content", "collab", "hybrid")
    }
    assert lists["content"] != lists["collab"]
    # The tuned fusion leans on collab: most of its list is collab's.
    assert len(set(lists["hybrid"]) & set(lists["collab"])) >= 5


# -- explain, similar, search, movie --------------------------------------------------------------
async def test_explain(client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]) -> None:
    user = real_users[0]
    pick = (await recommend(client, admin, user, limit=1))["items"][0]
    resp = await client.get(f"/movies/explain/{user}/{pick['movie_id']}", headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user_id"] == user and body["movie_id"] == pick["movie_id"] and body["title"] == pick["title"]
    assert body["related"] and body["sentence"].startswith(pick["title"])
    assert abs(body["text_share"] + body["image_share"] - 1) < 1e-3


async def test_similar(client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int]) -> None:
    movie = movie_ids[0]
    for vector in ("combined", "text"):
        resp = await client.get(f"/movies/{movie}/similar", params={"limit": 5, "vector": vector}, headers=admin)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["movie_id"] == movie and body["vector"] == vector and len(body["items"]) == 5
        assert movie not in {i["movie_id"] for i in body["items"]}
    # The demo fixture fetches no posters offline: a movie without an image vector is a 400, not a 500.
    image = await client.get(f"/movies/{movie}/similar", params={"vector": "image"}, headers=admin)
    if image.status_code != 200:
        assert_error(image, 400, "vector")


async def test_search(client: AsyncTestClient[Litestar], admin: dict[str, str]) -> None:
    resp = await client.get("/movies/search", params={"q": "animated toys come to life", "limit": 3}, headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["query"] == "animated toys come to life" and len(body["items"]) == 3
    assert "Toy Story" in body["items"][0]["title"]
    assert_error(await client.get("/movies/search", params={"q": "   "}, headers=admin), 400, "q")
    assert_error(await client.get("/movies/search", params={"q": ""}, headers=admin), 400, "q")
    assert_error(await client.get("/movies/search", headers=admin), 400)


async def test_get_movie(client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int]) -> None:
    resp = await client.get(f"/movies/{movie_ids[0]}", headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["movie_id"] == movie_ids[0] and body["title"] and isinstance(body["genres"], list)


async def test_embedding_metrics(
    client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int]
) -> None:
    resp = await client.get("/metrics/embeddings", headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert {"total_movies", "movies_in_index", "coverage", "poster_coverage", "device", "models"} <= set(body)
    assert body["total_movies"] == len(movie_ids) and body["movies_in_index"] == len(movie_ids)
    assert body["coverage"] == 1.0 and body["device"] == "cpu"
    assert body["models"]["text"]["name"] == "all-MiniLM-L6-v2"


# -- ratings --------------------------------------------------------------------------------------
async def test_ratings_are_paginated(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int], db: Any
) -> None:
    user = real_users[1]
    total = len(rated_by(db, user))
    first = (await client.get(f"/users/{user}/ratings", params={"limit": 5}, headers=admin)).json()
    second = (await client.get(f"/users/{user}/ratings", params={"limit": 5, "offset": 5}, headers=admin)).json()
    assert first["total"] == second["total"] == total
    assert (first["limit"], first["offset"], second["offset"]) == (5, 0, 5)
    assert len(first["items"]) == len(second["items"]) == 5
    assert not {i["movie_id"] for i in first["items"]} & {i["movie_id"] for i in second["items"]}
    stamps = [i["timestamp"] for i in first["items"] + second["items"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert all(i["title"] for i in first["items"])
    past_end = (await client.get(f"/users/{user}/ratings", params={"offset": total}, headers=admin)).json()
    assert past_end["items"] == []


async def test_rate_and_unrate(
    client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int], db: Any
) -> None:
    user, movie = NEW_USER + 100, movie_ids[3]
    resp = await client.post(f"/users/{user}/ratings", json={"movie_id": movie, "rating": 3.5}, headers=admin)
    assert resp.status_code == 201, resp.text
    assert resp.json() | {"timestamp": 0} == {"user_id": user, "movie_id": movie, "rating": 3.5, "timestamp": 0}
    assert rated_by(db, user) == {movie}  # committed: another connection sees it
    listed = (await client.get(f"/users/{user}/ratings", headers=admin)).json()
    assert [(i["movie_id"], i["rating"]) for i in listed["items"]] == [(movie, 3.5)]
    assert (await client.delete(f"/users/{user}/ratings/{movie}", headers=admin)).status_code == 204
    assert rated_by(db, user) == set()
    assert_error(await client.delete(f"/users/{user}/ratings/{movie}", headers=admin), 404)


# -- errors ---------------------------------------------------------------------------------------
async def test_unknown_movie_is_404(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int], movie_ids: list[int]
) -> None:
    no_movie = 999_999_999  # an unknown user is a new user, never a 404: tests/test_first_contact.py
    assert_error(await client.get(f"/movies/{no_movie}", headers=admin), 404)
    assert_error(await client.get(f"/movies/{no_movie}/similar", headers=admin), 404)
    assert_error(await client.get(f"/movies/explain/{real_users[0]}/{no_movie}", headers=admin), 404)
    resp = await client.post(f"/users/{real_users[0]}/ratings", json={"movie_id": no_movie, "rating": 4}, headers=admin)
    assert_error(resp, 404)
    assert_error(await client.get("/no/such/route", headers=admin), 404)
    assert_error(await client.put(f"/movies/{movie_ids[0]}", headers=admin), 405)


BAD_QUERIES = [
    ("/movies/recommendations?user_id={u}&limit=0", "limit"),
    ("/movies/recommendations?user_id={u}&limit=101", "limit"),
    ("/movies/recommendations?user_id={u}&limit=ten", "limit"),
    ("/movies/recommendations?user_id=abc", "user_id"),
    ("/movies/recommendations?user_id=-3", "user_id"),
    ("/movies/recommendations?user_id=99999999999999999999999", "user_id"),
    ("/movies/recommendations", "user_id"),
    ("/movies/recommendations?user_id={u}&year_min=2000&year_max=1990", "year_min"),
    ("/movies/recommendations?user_id={u}&year_min=old", "year_min"),
    ("/movies/recommendations?user_id={u}&strategy=magic", "strategy"),
    ("/movies/recommendations?user_id={u}&popularity=1.5", "popularity"),
    ("/movies/recommendations?user_id={u}&popularity=nan", "popularity"),
    ("/movies/recommendations?user_id={u}&limit=99999999999999999999999", "limit"),
    ("/movies/recommendations?user_id={u}&year_max=99999999999999999999", "year_max"),
    ("/movies/recommendations?user_id={u}&diversity=-0.1", "diversity"),
    ("/movies/recommendations?user_id={u}&use_embeddings=maybe", "use_embeddings"),
    ("/movies/{m}/similar?limit=0", "limit"),
    ("/movies/{m}/similar?limit=101", "limit"),
    ("/movies/{m}/similar?vector=sound", "vector"),
    ("/movies/abc/similar", "movie_id"),
    ("/movies/search?q=x&limit=0", "limit"),
    ("/movies/search?q=x&limit=101", "limit"),
    ("/movies/search?q=" + "x" * 1001, "q"),
    ("/movies/search?q=x&genres=Comedy,Westerns-in-space", "genres"),
    ("/movies/search?q=x&year_min=2000&year_max=1990", "year_min"),
    ("/movies/recommendations?user_id={u}&genres=comdy", "genres"),
    ("/movies/abc", "movie_id"),
    ("/movies/1.5", "movie_id"),
    ("/movies/explain/abc/{m}", "user_id"),
    ("/movies/explain/{u}/abc", "movie_id"),
    ("/users/abc/ratings", "user_id"),
    ("/users/{u}/ratings?limit=0", "limit"),
    ("/users/{u}/ratings?limit=101", "limit"),
    ("/users/{u}/ratings?offset=-1", "offset"),
]


@pytest.mark.parametrize(("url", "field"), BAD_QUERIES)
async def test_bad_parameters_are_400_naming_the_field(
    client: AsyncTestClient[Litestar],
    admin: dict[str, str],
    real_users: list[int],
    movie_ids: list[int],
    url: str,
    field: str,
) -> None:
    resp = await client.get(url.format(u=real_users[0], m=movie_ids[0]), headers=admin)
    assert_error(resp, 400, field)


BAD_RATINGS = [
    ({"movie_id": 1, "rating": 7}, "rating"),
    ({"movie_id": 1, "rating": 3.3}, "rating"),
    ({"movie_id": 1, "rating": 0}, "rating"),
    ({"movie_id": 1, "rating": "four"}, "rating"),
    ({"movie_id": "abc", "rating": 4}, "movie_id"),
    ({"movie_id": 0, "rating": 4}, "movie_id"),
    ({"rating": 4}, None),
    ([1, 2], None),
]


@pytest.mark.parametrize(("body", "field"), BAD_RATINGS)
async def test_bad_ratings_are_400(
    client: AsyncTestClient[Litestar], admin: dict[str, str], body: Any, field: str | None
) -> None:
    resp = await client.post(f"/users/{NEW_USER + 200}/ratings", json=body, headers=admin)
    assert_error(resp, 400, field)


async def test_malformed_json_and_bad_ids_on_writes_are_400(
    client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    resp = await client.post(f"/users/{NEW_USER}/ratings", content=b"{not json", headers=admin)
    assert_error(resp, 400)
    assert_error(
        await client.post("/users/abc/ratings", json={"movie_id": 1, "rating": 4}, headers=admin), 400, "user_id"
    )
    assert_error(await client.delete(f"/users/{NEW_USER}/ratings/abc", headers=admin), 400, "movie_id")


async def test_lifespan_releases_the_index(demo_settings: Settings, tmp_path: Any, text_encoder: Any) -> None:
    # An Edge shard locks its directory until it is closed: after the lifespan, the published
    # generation must open in place again (a reader that finds it locked reads a copy instead).
    from app.vectorstore.edge import EdgeIndex

    settings = copy_settings(demo_settings, tmp_path / "data")
    for _ in range(2):
        async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
            assert (await client.get("/health")).status_code == 200
        generation = settings.index_dir / (settings.index_dir / "CURRENT").read_text().strip()
        EdgeIndex.load(generation / "shard").close()  # raises ShardLockedError if the app kept it open


async def test_a_query_model_unlike_the_index_is_reported(
    demo_settings: Settings, tmp_path: Any, text_encoder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from app.embedding.text import TextEncoder

    settings = copy_settings(demo_settings, tmp_path / "data")
    warning = "another text model than the index's"
    int8 = TextEncoder("cpu", backend="onnx-int8", cache_dir=settings.model_cache_dir)
    for encoder, warned in ((text_encoder, False), (int8, True)):
        caplog.clear()
        async with AsyncTestClient(create_app(settings, text_encoder=encoder)) as client:
            assert (await client.get("/movies/search?q=space", headers=bearer(settings, admin=True))).status_code == 200
        assert any(warning in r.getMessage() for r in caplog.records) is warned


# -- no index -------------------------------------------------------------------------------------
async def test_missing_index_is_503(tmp_path: Any, text_encoder: Any) -> None:
    settings = make_settings(tmp_path / "empty")
    headers = bearer(settings, admin=True)
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        health = await client.get("/health")
        assert health.status_code == 503
        assert (health.json()["database"], health.json()["index"]) == (True, False)
        assert_error(await client.get("/movies/search?q=space", headers=headers), 503)
        assert_error(await client.get("/movies/1/similar", headers=headers), 503)
        metrics = await client.get("/metrics/embeddings", headers=headers)
        assert metrics.status_code == 200 and metrics.json()["movies_in_index"] == 0
        # A user with ratings but no index: the recommendation needs the index, so 503 too.
        with Session(make_engine(settings.sqlalchemy_url)) as s:
            s.add(Movie(id=1, title="Alone"))
            s.commit()
            repo.upsert_ratings(s, [(1, 1, 4.0, 1)])
            s.commit()
        assert_error(await client.get("/movies/recommendations?user_id=1", headers=headers), 503)


async def test_unreachable_qdrant_server_is_a_quick_503(tmp_path: Any, text_encoder: Any) -> None:
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = {"qdrant_url": f"http://127.0.0.1:{port}", "qdrant_timeout_s": 1.0}
    settings = make_settings(tmp_path / "data").model_copy(update=unreachable)
    headers = bearer(settings, admin=True)
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        started = time.monotonic()
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["index"] is False
        body = assert_error(await client.get("/movies/search?q=space", headers=headers), 503)
        assert str(port) in body["detail"]
        assert time.monotonic() - started < 30, "an unreachable server must fail fast, never hang"


# -- the served API, several worker processes ---------------------------------------------------------
def test_serve_with_two_workers(demo_settings: Settings, tmp_path: Any) -> None:
    """`movierec serve --workers 2` on an Edge index: the second worker finds the generation locked
    and reads a private copy; both answer alike, and the copy is gone after a graceful shutdown."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    settings = copy_settings(demo_settings, tmp_path / "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "QDRANT_URL")}
    env.update(MOVIEREC_DATA_DIR=str(settings.data_dir), MOVIEREC_SECRET_KEY=settings.secret_key, HF_HUB_OFFLINE="1")
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "movierec.cli", "serve", "--port", str(port), "--workers", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
    readers = settings.index_dir / "readers"
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while not (readers.exists() and any(readers.iterdir()) and log.read_text().count("api ready") == 2):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        with Session(make_engine(settings.sqlalchemy_url)) as s:
            user = s.exec(select(Rating.user_id).group_by(Rating.user_id).order_by(func.count().desc())).first()
        headers = bearer(settings, admin=True)
        # A new connection per request, so the kernel spreads them over both workers.
        answers = [httpx.get(f"{url}/movies/recommendations?user_id={user}", headers=headers) for _ in range(20)]
        assert all(a.status_code == 200 for a in answers), answers[0].text
        assert len({a.text for a in answers}) == 1, "both workers must give the same answer"
        assert httpx.get(f"{url}/health").json()["status"] == "ok"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    assert not any(readers.iterdir()), "a worker's copy must go when it shuts down"
