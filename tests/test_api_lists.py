"""GET /movies/popular, /movies/top-rated and /movies/new, end to end on a copy of the demo fixture.
Each list is checked against the same list computed here in plain Python from the database rows."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import Session, select

from app.catalog.lists import MIN_RATERS, PRIOR_VOTES, SECONDS_PER_DAY
from app.catalog.models import Movie, Rating
from app.settings import Settings
from tests.helpers.api import assert_error, bearer

pytestmark = pytest.mark.anyio


def rows(db: Any) -> tuple[dict[int, Movie], list[Rating]]:
    with Session(db) as s:
        return {m.id: m for m in s.exec(select(Movie))}, list(s.exec(select(Rating)))


def votes_in(ratings: list[Rating], window_days: int | None) -> dict[int, list[float]]:
    newest = max(r.timestamp for r in ratings)
    since = newest - window_days * SECONDS_PER_DAY if window_days else None
    by_movie: dict[int, list[float]] = defaultdict(list)
    for r in ratings:
        if since is None or r.timestamp >= since:
            by_movie[r.movie_id].append(r.rating)
    return by_movie


def keep(movie: Movie, genres: set[str], year_min: int, year_max: int) -> bool:
    if genres and not genres & set(movie.genres):
        return False
    return movie.year is not None and year_min <= movie.year <= year_max


async def get_list(client: AsyncTestClient[Litestar], headers: dict[str, str], name: str, **params: Any) -> Any:
    resp = await client.get(f"/movies/{name}", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["kind"] == name and body["limit"] == params.get("limit", 10)
    return body


def ids(body: dict[str, Any]) -> list[int]:
    return [i["movie_id"] for i in body["items"]]


@pytest.mark.parametrize("window_days", [None, 365, 30])
async def test_popular_is_the_most_rated_in_the_window(
    client: AsyncTestClient[Litestar], admin: dict[str, str], db: Any, window_days: int | None
) -> None:
    movies, ratings = rows(db)
    votes = votes_in(ratings, window_days)
    expected = sorted((m for m in votes if len(votes[m]) >= MIN_RATERS), key=lambda m: (-len(votes[m]), -m))
    params = {"limit": 20} | ({"window_days": window_days} if window_days else {})
    body = await get_list(client, admin, "popular", **params)
    assert body["total"] == len(expected) and ids(body) == expected[:20]
    for item in body["items"]:
        mid = item["movie_id"]
        assert item["votes"] == len(votes[mid]) == item["score"]
        assert item["average"] == round(sum(votes[mid]) / len(votes[mid]), 4)
        assert item["title"] == movies[mid].title and item["genres"] == movies[mid].genres
    if window_days == 30:  # the window really narrows the count
        assert body["total"] < len(votes_in(ratings, None))


async def test_top_rated_is_the_bayesian_average(
    client: AsyncTestClient[Litestar], admin: dict[str, str], db: Any
) -> None:
    _, ratings = rows(db)
    votes = votes_in(ratings, None)
    prior = sum(r.rating for r in ratings) / len(ratings)
    for min_votes in (1, 10, 40):
        score = {
            m: (sum(v) + PRIOR_VOTES * prior) / (len(v) + PRIOR_VOTES)
            for m, v in votes.items()
            if len(v) >= max(min_votes, MIN_RATERS)
        }
        expected = sorted(score, key=lambda m: (-score[m], -len(votes[m]), -m))
        body = await get_list(client, admin, "top-rated", min_votes=min_votes, limit=15)
        assert body["total"] == len(expected)
        assert ids(body) == expected[:15], min_votes
        for item in body["items"]:
            assert item["score"] == pytest.approx(score[item["movie_id"]], abs=1e-6)
            assert item["votes"] >= min_votes and 0.5 <= item["score"] <= 5


async def test_new_is_latest_year_then_latest_added(
    client: AsyncTestClient[Litestar], admin: dict[str, str], db: Any
) -> None:
    movies, ratings = rows(db)
    votes = votes_in(ratings, None)
    expected = sorted(movies, key=lambda m: (-(movies[m].year or 0), -m))
    body = await get_list(client, admin, "new", limit=25)
    assert body["total"] == len(movies) and ids(body) == expected[:25]
    assert [i["score"] for i in body["items"]] == [float(movies[m].year or 0) for m in expected[:25]]
    for item in body["items"]:  # an average only from MIN_RATERS ratings on
        few = votes.get(item["movie_id"], [])
        assert item["votes"] == len(few) and (item["average"] is None) == (len(few) < MIN_RATERS)


async def test_one_users_fresh_rating_cannot_be_read_off_the_lists(
    client: AsyncTestClient[Litestar], settings: Settings, admin: dict[str, str], db: Any
) -> None:
    """The lists are live: one user's new rating of a movie nobody else rated in the window was readable by
    any token holder (popular?window_days=1: votes 1, average = their stars). A movie needs
    MIN_RATERS ratings in the window to be listed, and its average MIN_RATERS to be shown."""
    _, ratings = rows(db)
    votes = votes_in(ratings, None)
    newest_first = ids(await get_list(client, admin, "new", limit=100))
    unrated = min(newest_first, key=lambda m: len(votes.get(m, [])))  # the API's ratings alone fill the window
    before = len(votes.get(unrated, []))
    assert before + 1 < MIN_RATERS  # so its average is hidden at first, then shown
    users = range(9_300_000, 9_300_000 + MIN_RATERS)
    for n, user in enumerate(users, start=1):
        resp = await client.post(
            f"/users/{user}/ratings", json={"movie_id": unrated, "rating": 0.5}, headers=bearer(settings, user_id=user)
        )
        assert resp.status_code == 201, resp.text
        lists = [
            await get_list(client, admin, "popular", window_days=1, limit=100),
            await get_list(client, admin, "top-rated", window_days=1, min_votes=1, limit=100),
        ]
        listed = [i for body in lists for i in body["items"] if i["movie_id"] == unrated]
        assert bool(listed) == (n >= MIN_RATERS), (n, listed)
        new = await get_list(client, admin, "new", limit=100)
        shown = next(i for i in new["items"] if i["movie_id"] == unrated)
        assert (shown["average"] is None) == (before + n < MIN_RATERS), (n, shown)


@pytest.mark.parametrize("name", ["popular", "top-rated", "new"])
async def test_lists_take_the_recommendation_filters_and_pages(
    client: AsyncTestClient[Litestar], admin: dict[str, str], db: Any, name: str
) -> None:
    movies, _ = rows(db)
    extra = {"min_votes": 1} if name == "top-rated" else {}
    filters = {"genres": "comedy, DRAMA", "year_min": 1980, "year_max": 1999, **extra}
    full = await get_list(client, admin, name, limit=100, **filters)
    assert full["items"], full
    for item in full["items"]:
        assert keep(movies[item["movie_id"]], {"Comedy", "Drama"}, 1980, 1999)
    unfiltered = await get_list(client, admin, name, limit=100, **extra)
    assert full["total"] < unfiltered["total"]
    # Pages are slices of one order: no overlap, nothing skipped.
    pages = [await get_list(client, admin, name, limit=7, offset=o, **filters) for o in (0, 7, 14)]
    assert [m for p in pages for m in ids(p)] == ids(full)[:21]
    assert all(p["total"] == full["total"] for p in pages)
    beyond = await get_list(client, admin, name, offset=full["total"], **filters)
    assert beyond["items"] == []


async def test_a_new_rating_moves_popular_at_once(
    client: AsyncTestClient[Litestar], settings: Settings, admin: dict[str, str], db: Any
) -> None:
    """From the store of record: no reindex between a rating and the list."""
    first = (await get_list(client, admin, "popular", limit=1))["items"][0]
    runner_up = (await get_list(client, admin, "popular", limit=2))["items"][1]
    lift = first["votes"] - runner_up["votes"] + 1
    for user in range(9_200_000, 9_200_000 + lift):
        resp = await client.post(
            f"/users/{user}/ratings",
            json={"movie_id": runner_up["movie_id"], "rating": 4},
            headers=bearer(settings, user_id=user),
        )
        assert resp.status_code == 201, resp.text
    top = (await get_list(client, admin, "popular", limit=1))["items"][0]
    assert top["movie_id"] == runner_up["movie_id"] and top["votes"] == runner_up["votes"] + lift


@pytest.mark.parametrize("name", ["popular", "top-rated", "new"])
async def test_bad_list_parameters_are_400_naming_the_field(
    client: AsyncTestClient[Litestar], admin: dict[str, str], name: str
) -> None:
    url = f"/movies/{name}"
    assert_error(await client.get(url, params={"genres": "nope"}, headers=admin), 400, "genres")
    assert_error(await client.get(url, params={"year_min": 2000, "year_max": 1990}, headers=admin), 400, "year_min")
    assert_error(await client.get(url, params={"limit": 0}, headers=admin), 400, "limit")
    assert_error(await client.get(url, params={"offset": -1}, headers=admin), 400, "offset")
    assert_error(await client.get(url), 401)
    if name != "new":
        assert_error(await client.get(url, params={"window_days": 0}, headers=admin), 400, "window_days")
    if name == "top-rated":
        assert_error(await client.get(url, params={"min_votes": "x"}, headers=admin), 400, "min_votes")
