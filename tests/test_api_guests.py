"""Guests, exclusions, hidden ("not interested") movies and paged recommendations, end to end:
a real database and Edge index (a copy of the demo fixture), the real text model."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import Session, select

from app.catalog import repository as repo
from app.catalog.models import Hidden
from app.catalog.repository import HiddenMovie, UserRating
from app.recommend.history import (
    DISLIKED_RATING,
    HIDDEN_BELOW_MEAN,
    HIDDEN_MAX_RATING,
    LIKED_RATING,
    guest_history,
    with_hidden,
)
from app.recommend.user_vector import SCALE_MIDPOINT, taste_weights
from app.settings import Settings
from tests.helpers.api import assert_error, bearer, rated_by, recommend
from tests.helpers.worlds import DEMO_LIMIT

pytestmark = pytest.mark.anyio

NEW_USER = 9_100_000  # above every MovieLens user, and apart from tests/test_api.py's


@pytest.fixture(scope="module")
def users(real_users: list[int]) -> list[int]:
    """Three real users with 20+ ratings, most ratings first."""
    return real_users[:3]


def ids(body: dict[str, Any]) -> list[int]:
    return [i["movie_id"] for i in body["items"]]


# -- history records (domain) ---------------------------------------------------------------------
def test_hidden_movies_are_mild_dislikes_merged_newest_first() -> None:
    ratings = [UserRating(3, 4.0, 300), UserRating(1, 2.0, 100)]  # mean 3.0
    hidden = [HiddenMovie(7, 200), HiddenMovie(3, 50)]  # 3 is rated: its rating wins
    merged = with_hidden(ratings, hidden)
    assert merged == [UserRating(3, 4.0, 300), UserRating(7, 3.0 - HIDDEN_BELOW_MEAN, 200), UserRating(1, 2.0, 100)]
    assert with_hidden([], hidden) == []  # no taste from dislikes alone; the caller still excludes them
    # A generous rater's hidden movie is still a dislike for a short history, centred on 2.75.
    short = with_hidden([UserRating(3, 5.0, 300)], [HiddenMovie(7, 200)])
    assert short[1].movie_id == 7 and short[1].rating == HIDDEN_MAX_RATING < SCALE_MIDPOINT
    weights = taste_weights(short, 5.0, half_life_days=None).weights
    assert weights[0] > 0 > weights[1]


def test_guest_choices_are_the_ratings_a_user_would_have() -> None:
    history = guest_history([5, 9], [7], timestamp=1000)
    assert history == [
        UserRating(9, LIKED_RATING, 1000),
        UserRating(7, DISLIKED_RATING, 1000),
        UserRating(5, LIKED_RATING, 1000),
    ]
    assert history == repo_order(history)
    # A choice is a set: naming a movie again changes nothing (it weighed triple before).
    assert guest_history([5, 9, 5, 5], [7, 7], timestamp=1000) == history


def repo_order(rows: list[UserRating]) -> list[UserRating]:
    return sorted(rows, key=lambda r: (-r.timestamp, -r.movie_id))


# -- hidden ---------------------------------------------------------------------------------------
async def test_hide_list_unhide(client: AsyncTestClient[Litestar], settings: Settings, db: Any) -> None:
    user = NEW_USER + 1
    mine = bearer(settings, user_id=user)
    movie_ids = await _some_movies(client, mine, 3)
    for mid in movie_ids:
        resp = await client.post(f"/users/{user}/hidden", json={"movie_id": mid}, headers=mine)
        assert resp.status_code == 201, resp.text
        assert resp.json()["movie_id"] == mid and resp.json()["title"]
    # Hiding again is idempotent: still one row.
    again = await client.post(f"/users/{user}/hidden", json={"movie_id": movie_ids[0]}, headers=mine)
    assert again.status_code == 201
    page = (await client.get(f"/users/{user}/hidden", params={"limit": 2}, headers=mine)).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["user_id"] == user
    rest = (await client.get(f"/users/{user}/hidden", params={"limit": 2, "offset": 2}, headers=mine)).json()
    assert {i["movie_id"] for i in page["items"] + rest["items"]} == set(movie_ids)
    with Session(db) as s:  # in the database of record
        assert {h.movie_id for h in s.exec(select(Hidden).where(Hidden.user_id == user))} == set(movie_ids)
    assert (await client.delete(f"/users/{user}/hidden/{movie_ids[1]}", headers=mine)).status_code == 204
    assert_error(await client.delete(f"/users/{user}/hidden/{movie_ids[1]}", headers=mine), 404)
    page = (await client.get(f"/users/{user}/hidden", headers=mine)).json()
    assert {i["movie_id"] for i in page["items"]} == {movie_ids[0], movie_ids[2]}


async def test_hidden_follows_the_ratings_ownership_rules(
    client: AsyncTestClient[Litestar], settings: Settings, users: list[int]
) -> None:
    me, other = users[0], users[1]
    mine = bearer(settings, user_id=me)
    for method, url in [
        ("GET", f"/users/{other}/hidden"),
        ("POST", f"/users/{other}/hidden"),
        ("DELETE", f"/users/{other}/hidden/1"),
    ]:
        assert_error(await client.request(method, url, headers=mine, json={"movie_id": 1}), 403)
        assert_error(await client.request(method, url, json={"movie_id": 1}), 401)
    assert (await client.get(f"/users/{me}/hidden", headers=mine)).status_code == 200
    admin = bearer(settings, admin=True)
    assert (await client.get(f"/users/{other}/hidden", headers=admin)).status_code == 200


async def test_bad_hidden_requests_are_4xx_naming_the_field(
    client: AsyncTestClient[Litestar], admin: dict[str, str], users: list[int]
) -> None:
    user = users[0]
    assert_error(await client.post(f"/users/{user}/hidden", json={"movie_id": 999_999_999}, headers=admin), 404)
    assert_error(await client.post(f"/users/{user}/hidden", json={"movie_id": 0}, headers=admin), 400, "movie_id")
    assert_error(await client.post(f"/users/{user}/hidden", json={"movie": 1}, headers=admin), 400)
    assert_error(await client.delete(f"/users/{user}/hidden/abc", headers=admin), 400, "movie_id")
    assert_error(await client.get("/users/x/hidden", headers=admin), 400, "user_id")
    # an unknown user is a new one, as for ratings and recommendations: an empty list, not a 404
    resp = await client.get(f"/users/{NEW_USER + 99}/hidden", headers=admin)
    assert resp.status_code == 200 and resp.json()["total"] == 0 and resp.json()["items"] == [], resp.text


async def test_the_explanation_gives_the_lists_reason_for_a_user_who_hid_a_movie(
    client: AsyncTestClient[Litestar], settings: Settings, movie_ids: list[int]
) -> None:
    """A hidden movie is a mild dislike in the content taste: with two ratings (5 and 4 stars) and one
    hidden movie the history is three long, centred on the user's mean damped towards the scale's
    midpoint (about 3.2), so both rated movies are liked and may be cited, the hidden one never. Each
    listed movie's explanation must give the list's own reason, on every strategy (collab tastes
    read the ratings alone)."""
    user = NEW_USER + 40
    mine = bearer(settings, user_id=user)
    toy_story, jumanji, heat = 1, 2, 6
    assert {toy_story, jumanji, heat} <= set(movie_ids)
    for movie_id, stars in ((toy_story, 5.0), (heat, 4.0)):
        rated = await client.post(f"/users/{user}/ratings", json={"movie_id": movie_id, "rating": stars}, headers=mine)
        assert rated.status_code == 201, rated.text
    hidden = await client.post(f"/users/{user}/hidden", json={"movie_id": jumanji}, headers=mine)
    assert hidden.status_code == 201, hidden.text
    for strategy in ("content", "collab", "hybrid"):
        listed = await recommend(client, mine, user, strategy=strategy, limit=20)
        for item in listed["items"]:
            url = f"/movies/explain/{user}/{item['movie_id']}"
            why = (await client.get(url, params={"strategy": strategy}, headers=mine)).json()
            assert why["sentence"].startswith(f"{item['title']}: {item['reason']};"), (strategy, why["sentence"])
            assert jumanji not in {r["movie_id"] for r in why["related"]}  # hidden, not rated
        if strategy == "content":  # the content taste holds the hidden movie; collab reads ratings only
            reasons = {item["reason"] for item in listed["items"]}
            assert reasons <= {"because you liked Toy Story (5.0★)", "because you liked Heat (4.0★)"}, reasons


async def test_a_hidden_movie_is_never_recommended(
    client: AsyncTestClient[Litestar], admin: dict[str, str], users: list[int]
) -> None:
    user = users[2]
    before = await recommend(client, admin, user, limit=20)
    top = ids(before)[:3]
    for mid in top:
        assert (await client.post(f"/users/{user}/hidden", json={"movie_id": mid}, headers=admin)).status_code == 201
    for params in (
        {},
        {"strategy": "content"},
        {"strategy": "collab"},
        {"use_embeddings": "false"},
        {"diversity": 0, "popularity": 1},
    ):
        got = ids(await recommend(client, admin, user, limit=100, **params))
        assert got and not set(got) & set(top), params
    # ... and they weigh as mild dislikes in the content taste: it moved, beyond losing the hidden movies.
    after = await recommend(client, admin, user, limit=20, diversity=0, popularity=0, strategy="content")
    assert ids(after) != ids(await _without_hidden(client, admin, user, top))
    for mid in top:
        await client.delete(f"/users/{user}/hidden/{mid}", headers=admin)


async def _without_hidden(
    client: AsyncTestClient[Litestar], admin: dict[str, str], user: int, hidden: list[int]
) -> dict[str, Any]:
    """The same user's recommendations with the movies excluded but not hidden."""
    for mid in hidden:
        await client.delete(f"/users/{user}/hidden/{mid}", headers=admin)
    body = await recommend(
        client, admin, user, limit=20, diversity=0, popularity=0, strategy="content", exclude=",".join(map(str, hidden))
    )
    for mid in hidden:
        await client.post(f"/users/{user}/hidden", json={"movie_id": mid}, headers=admin)
    return body


async def test_hidden_movies_survive_a_later_import(
    client: AsyncTestClient[Litestar], admin: dict[str, str], db: Any, users: list[int]
) -> None:
    """What a user wrote through the API is not the import's to touch: a re-import of the source
    (as `movierec ingest` runs it) keeps every hidden movie, and they stay out of the answers."""
    from app.datasets import load_catalogue
    from ingest.pipeline import store_catalogue

    user = users[1]
    hidden = ids(await recommend(client, admin, user, limit=2))
    for mid in hidden:
        assert (await client.post(f"/users/{user}/hidden", json={"movie_id": mid}, headers=admin)).status_code == 201
    store_catalogue(db, load_catalogue("demo", limit=DEMO_LIMIT))
    page = (await client.get(f"/users/{user}/hidden", headers=admin)).json()
    assert {i["movie_id"] for i in page["items"]} == set(hidden)
    assert not set(ids(await recommend(client, admin, user, limit=20))) & set(hidden)
    for mid in hidden:
        await client.delete(f"/users/{user}/hidden/{mid}", headers=admin)


async def test_a_new_user_who_hid_a_movie_gets_popular_movies_without_it(
    client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    user = NEW_USER + 2
    first = ids(await recommend_new(client, admin, user))
    assert (await client.post(f"/users/{user}/hidden", json={"movie_id": first[0]}, headers=admin)).status_code == 201
    body = await recommend(client, admin, user, limit=10)
    assert body["path"] == "popular" and first[0] not in ids(body)
    assert ids(body)[:9] == first[1:10]


async def recommend_new(client: AsyncTestClient[Litestar], admin: dict[str, str], user: int) -> dict[str, Any]:
    """A user with no data yet answers from popularity: read the popular list as a guest does."""
    resp = await client.post("/recommendations", json={"limit": 10}, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == "popular"
    return resp.json()  # type: ignore[no-any-return]


# -- exclude --------------------------------------------------------------------------------------
async def test_exclude_on_recommendations_and_similar(
    client: AsyncTestClient[Litestar], admin: dict[str, str], users: list[int]
) -> None:
    base = ids(await recommend(client, admin, users[0], limit=10))
    drop = base[:4]
    got = ids(await recommend(client, admin, users[0], limit=10, exclude=",".join(map(str, drop))))
    assert len(got) == 10 and not set(got) & set(drop)
    movie = base[0]
    similar = (await client.get(f"/movies/{movie}/similar", params={"limit": 10}, headers=admin)).json()
    drop = ids(similar)[:3]
    exclude = f"{drop[0]}, {drop[1]},{drop[2]}"  # blanks around the commas are fine
    resp = await client.get(f"/movies/{movie}/similar", params={"limit": 10, "exclude": exclude}, headers=admin)
    assert resp.status_code == 200, resp.text
    assert len(ids(resp.json())) == 10 and not set(ids(resp.json())) & set(drop)
    assert ids(resp.json())[:7] == ids(similar)[3:10]
    for url, params in ((f"/movies/{movie}/similar", {}), ("/movies/recommendations", {"user_id": users[0]})):
        assert_error(await client.get(url, params={**params, "exclude": "1,x"}, headers=admin), 400, "exclude")
        assert_error(await client.get(url, params={**params, "exclude": "0"}, headers=admin), 400, "exclude")


# -- offset ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["hybrid", "content", "collab"])
async def test_pages_do_not_overlap(
    client: AsyncTestClient[Litestar], admin: dict[str, str], users: list[int], db: Any, strategy: str
) -> None:
    user = users[1]
    pages = [ids(await recommend(client, admin, user, limit=10, offset=o, strategy=strategy)) for o in (0, 10, 20, 30)]
    flat = [m for page in pages for m in page]
    assert len(flat) == 40 and len(set(flat)) == 40, pages
    assert not set(flat) & rated_by(db, user)
    # The pages are one ranking cut in slices, whatever the page size.
    deep = ids(await recommend(client, admin, user, limit=40, strategy=strategy))
    assert deep == flat
    odd = ids(await recommend(client, admin, user, limit=7, offset=13, strategy=strategy))
    assert odd == flat[13:20]
    # Pages shorter than the new movies' spacing (every 10th place) are cut from the same ranking too.
    fives = [ids(await recommend(client, admin, user, limit=5, offset=o, strategy=strategy)) for o in range(0, 40, 5)]
    assert [m for page in fives for m in page] == flat
    short = ids(await recommend(client, admin, user, limit=3, strategy=strategy))
    assert short == flat[:3]


async def test_popular_pages_do_not_overlap(
    client: AsyncTestClient[Litestar], admin: dict[str, str], users: list[int]
) -> None:
    pages = [
        ids(await recommend(client, admin, users[0], limit=5, offset=o, use_embeddings="false")) for o in (0, 5, 10)
    ]
    flat = [m for page in pages for m in page]
    assert len(set(flat)) == 15


async def test_bad_offset_is_400(client: AsyncTestClient[Litestar], admin: dict[str, str], users: list[int]) -> None:
    for offset in ("-1", "x", "100"):
        assert_error(
            await client.get("/movies/recommendations", params={"user_id": users[0], "offset": offset}, headers=admin),
            400,
            "offset",
        )
    resp = await client.get(
        "/movies/recommendations", params={"user_id": users[0], "offset": 45, "limit": 10}, headers=admin
    )
    assert_error(resp, 400, "offset")


# -- guests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["hybrid", "content", "collab"])
async def test_guest_recommendations_equal_a_stored_users_with_the_same_ratings(
    client: AsyncTestClient[Litestar], settings: Settings, db: Any, users: list[int], strategy: str
) -> None:
    # Take a real user's choices: what they rated 4+ is liked, 2- disliked.
    with Session(db) as s:
        history = repo.user_ratings(s, users[0])
    liked = [r.movie_id for r in history if r.rating >= 4][:15]
    disliked = [r.movie_id for r in history if r.rating <= 2][:5]
    assert liked and disliked
    # A stored user with exactly those ratings, all given at one moment (as a guest's are).
    twin = NEW_USER + 10 + ["hybrid", "content", "collab"].index(strategy)
    with Session(db) as s:
        rows = [(twin, m, LIKED_RATING, 1_700_000_000) for m in liked]
        rows += [(twin, m, DISLIKED_RATING, 1_700_000_000) for m in disliked]
        repo.upsert_ratings(s, rows)
        s.commit()
    guest_token = bearer(settings, user_id=NEW_USER + 50)  # any valid token: not the twin's
    body = {
        "liked": liked,
        "disliked": disliked,
        "limit": 12,
        "strategy": strategy,
        "genres": ["drama", "Comedy"],
        "year_min": 1980,
        "year_max": 2010,
    }
    resp = await client.post("/recommendations", json=body, headers=guest_token)
    assert resp.status_code == 200, resp.text
    guest = resp.json()
    stored = await recommend(
        client,
        bearer(settings, admin=True),
        twin,
        limit=12,
        strategy=strategy,
        genres="drama,Comedy",
        year_min=1980,
        year_max=2010,
    )
    assert guest["items"] == stored["items"] and guest["path"] == stored["path"] != "popular"
    assert set(guest) == {"strategy", "path", "items"} and guest["strategy"] == strategy
    assert len(guest["items"]) == 12
    for item in guest["items"]:
        assert item["movie_id"] not in liked + disliked
        assert 1980 <= item["year"] <= 2010 and {"Drama", "Comedy"} & set(item["genres"])


async def test_a_guest_without_choices_gets_popular_movies(
    client: AsyncTestClient[Litestar], admin: dict[str, str]
) -> None:
    resp = await client.post("/recommendations", json={}, headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["path"] == "popular" and len(resp.json()["items"]) == 10


@pytest.mark.parametrize("strategy", ["hybrid", "content", "collab"])
async def test_a_guest_with_dislikes_only_gets_popular_movies_without_them(
    client: AsyncTestClient[Litestar], admin: dict[str, str], strategy: str
) -> None:
    """Nothing liked: no taste to follow (not the "opposite" of the dislikes), so the popular list,
    labelled as such, without the disliked movies."""
    popular = ids((await client.post("/recommendations", json={"limit": 12}, headers=admin)).json())
    disliked = popular[:2]
    resp = await client.post("/recommendations", json={"disliked": disliked, "strategy": strategy}, headers=admin)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["path"] == "popular"
    assert ids(body) == [m for m in popular if m not in disliked][:10]
    assert all(item["reason"] == "popular with viewers" for item in body["items"])


async def test_bad_guest_requests_are_400_naming_the_field(
    client: AsyncTestClient[Litestar], admin: dict[str, str], users: list[int]
) -> None:
    movie = ids(await recommend(client, admin, users[0], limit=1))[0]
    cases = [
        ({"liked": [999_999_999]}, "liked"),
        ({"disliked": [999_999_998]}, "disliked"),
        ({"liked": [movie], "disliked": [movie]}, "disliked"),
        ({"liked": ["x"]}, "liked"),
        ({"limit": 0}, "limit"),
        ({"strategy": "magic"}, "strategy"),
        ({"genres": ["nope"]}, "genres"),
        ({"year_min": 2000, "year_max": 1990}, "year_min"),
        ({"liked": [movie], "colour": "red"}, None),
    ]
    for body, field in cases:
        resp = await client.post("/recommendations", json=body, headers=admin)
        err = assert_error(resp, 400)
        if field:
            assert field in err["detail"], (body, err)
    assert_error(await client.post("/recommendations", content=b"{", headers=admin), 400)
    assert_error(await client.post("/recommendations", json={}), 401)


async def _some_movies(client: AsyncTestClient[Litestar], headers: dict[str, str], n: int) -> list[int]:
    resp = await client.post("/recommendations", json={"limit": n}, headers=headers)
    assert resp.status_code == 200, resp.text
    return ids(resp.json())
