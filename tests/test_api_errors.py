"""The REST API's errors: unknown ids are 404, bad parameters and bodies a 400 naming the field;
a real database and Edge index (tests/conftest.py's `settings`: a private copy of the demo fixture),
the real text model, Litestar's AsyncTestClient. One app per module; tests that write use fresh user ids."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.helpers.api import NEW_USER, assert_error

pytestmark = pytest.mark.anyio


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
