"""The REST API end to end, health, auth and recommendations: a real database and Edge index
(tests/conftest.py's `settings`: a private copy of the demo fixture), the real text model,
Litestar's AsyncTestClient. One app per module; tests that write use fresh user ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from litestar import Litestar
from litestar.security.jwt import Token
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.catalog import repository as repo
from app.settings import Settings
from tests.helpers.api import NEW_USER, assert_error, bearer, rated_by, recommend

pytestmark = pytest.mark.anyio


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
    head = await client.head("/health")  # uptime monitors that send HEAD: the status, no body
    assert head.status_code == 200 and head.content == b"", head.text
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


async def test_a_head_request_answers_as_get_without_a_body(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """`curl -I` on a read endpoint: the GET's status and headers (Content-Length included), no
    body; the token checked as for GET; a path without GET answers HEAD as it answers GET."""
    admin = bearer(settings, admin=True)
    for url in ("/health", "/movies/1", "/movies/1/similar?limit=3", "/movies/999999999", "/movies/1?limit=1"):
        get, head = await client.get(url, headers=admin), await client.head(url, headers=admin)
        assert head.status_code == get.status_code and head.content == b"", (url, head.status_code)
        assert head.headers["content-length"] == str(len(get.content)), url
        assert head.headers["content-type"] == get.headers["content-type"], url
    for url, status in (("/movies/1", 401), ("/recommendations", 405)):
        head = await client.head(url, headers=admin if status == 405 else {})
        assert head.status_code == status and head.content == b"", (url, head.status_code)


@pytest.mark.parametrize(("method", "url"), PROTECTED)
async def test_every_endpoint_needs_a_valid_token(
    client: AsyncTestClient[Litestar], settings: Settings, method: str, url: str
) -> None:
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    foreign = Token(sub="admin", exp=in_an_hour).encode("another-secret-of-at-least-32-bytes", "HS256")
    odd_subject = Token(sub="robot", exp=in_an_hour).encode(settings.secret_key, "HS256")
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
    client: AsyncTestClient[Litestar], settings: Settings, real_users: list[int], movie_ids: list[int]
) -> None:
    me, other = real_users[0], real_users[1]
    mine = bearer(settings, user_id=me)
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
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int], db: Engine
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
    client: AsyncTestClient[Litestar], settings: Settings, real_users: list[int]
) -> None:
    user = real_users[4]
    mine = bearer(settings, user_id=user)  # a user may write its own ratings
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
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int], db: Engine, strategy: str
) -> None:

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
