"""First contact (issue 11): unknown users, short histories, new movies, honest explanations.
Through the real API on a copy of the demo fixture, and the Recommender on hand-built indexes."""

# ruff: noqa: F811  (the module fixtures of test_api are imported by name, then requested as arguments)
from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.test_api import (  # noqa: F401  (module fixtures, shared by name)
    NEW_USER,
    admin,
    anyio_backend,
    api_settings,
    app,
    assert_error,
    client,
    db,
    movie_ids,
    real_users,
    recommend,
)
from tests.test_collab import NEW, _user, recommender, world  # noqa: F401

pytestmark = pytest.mark.anyio


async def test_unknown_user_is_a_new_user(
    client: AsyncTestClient[Litestar], admin: dict[str, str], movie_ids: list[int]
) -> None:
    ghost = NEW_USER + 77_777
    body = await recommend(client, admin, ghost, limit=5, genres="Drama")
    assert body["path"] == "popular"
    assert len(body["items"]) == 5 and all("Drama" in i["genres"] for i in body["items"])
    listed = await client.get(f"/users/{ghost}/ratings", headers=admin)
    assert listed.status_code == 200, listed.text
    assert listed.json()["total"] == 0 and listed.json()["items"] == []
    explained = await client.get(f"/movies/explain/{ghost}/{movie_ids[0]}", headers=admin)
    assert explained.status_code == 200, explained.text
    assert "popular" in explained.json()["sentence"]


async def test_similar_by_collab(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]
) -> None:
    listed = (await client.get(f"/users/{real_users[0]}/ratings", headers=admin)).json()
    movie = listed["items"][0]["movie_id"]  # rated, so it has rating-fitted factors
    resp = await client.get(f"/movies/{movie}/similar", params={"vector": "collab", "limit": 5}, headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["vector"] == "collab" and len(body["items"]) == 5
    assert movie not in [i["movie_id"] for i in body["items"]]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)


async def test_only_new_answers_over_http(
    client: AsyncTestClient[Litestar], admin: dict[str, str], real_users: list[int]
) -> None:
    # Every movie of the demo slice has ratings: "new for you" is empty, not an error.
    body = await recommend(client, admin, real_users[1], only_new="true")
    assert body["items"] == []
    assert_error(
        await client.get("/movies/recommendations", params={"user_id": 1, "only_new": "maybe"}, headers=admin),
        400,
        "only_new",
    )


def test_a_movie_added_without_ratings_is_recommended(world, recommender) -> None:
    """test_collab's world adds three movies nobody rated: their collab vectors come from content at
    ingest, one takes a collab list's exploration place, and only_new ranks among them alone."""
    ratings = _user(world[0])
    fresh = recommender.recommend(ratings, limit=10, strategy="collab", only_new=True)
    assert {i.id for i in fresh.items} == {NEW, NEW + 1, NEW + 2}
    for strategy in ("collab", "hybrid"):
        full = recommender.recommend(ratings, limit=10, strategy=strategy)  # type: ignore[arg-type]
        assert len(full.items) == 10
        assert full.items[-1].id == fresh.items[0].id  # the exploration place: the best new movie for this user
        assert "nobody has rated" in full.items[-1].reason
        assert len({i.id for i in full.items}) == 10  # another new movie may also earn a place of its own
