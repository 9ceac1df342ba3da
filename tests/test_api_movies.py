"""The REST API end to end, movies (explain, similar, search, one movie, metrics) and ratings:
a real database and Edge index (tests/conftest.py's `settings`: a private copy of the demo fixture),
the real text model, Litestar's AsyncTestClient. One app per module; tests that write use fresh user ids."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.engine import Engine

from tests.helpers.api import NEW_USER, assert_error, rated_by, recommend

pytestmark = pytest.mark.anyio


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
    for nothing_to_search in ("\u200b", "🎬🍿", "?!", " \u2060 "):  # zero-width, emoji, punctuation
        assert_error(await client.get("/movies/search", params={"q": nothing_to_search}, headers=admin), 400, "q")
    found = await client.get("/movies/search", params={"q": "🎬 Toy Story"}, headers=admin)
    assert found.status_code == 200 and found.json()["items"][0]["title"] == "Toy Story"
    assert_error(await client.get("/movies/search", headers=admin), 400)


async def test_get_movie(client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int]) -> None:
    resp = await client.get(f"/movies/{movie_ids[0]}", headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["movie_id"] == movie_ids[0] and body["title"] and isinstance(body["genres"], list)


async def test_the_dashboard_and_the_movie_agree_on_tmdb_fields(
    client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int]
) -> None:
    """One truth: a source without TMDB's popularity or votes is null in both, never 0 in the index."""
    nulls = 0
    for movie in movie_ids[:20]:
        shown = (await client.get(f"/movies/{movie}", headers=admin)).json()
        indexed = (await client.get(f"/dashboard/api/movies/{movie}", headers=admin)).json()["payload"]
        for field in ("popularity", "vote_average", "vote_count"):
            assert indexed[field] == shown[field], (movie, field, indexed[field], shown[field])
            nulls += shown[field] is None
    assert nulls, "the demo fixture has movies without TMDB fields: the case this checks"


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
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int], db: Engine
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
    client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int], db: Engine
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
