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
