"""First contact (issue 11): unknown users, short histories, new movies, honest explanations.
Through the real API on a copy of the demo fixture, and the Recommender on hand-built indexes."""

from __future__ import annotations

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.helpers.api import NEW_USER, assert_error, recommend

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
    assert "no ratings yet" in explained.json()["sentence"]
    for item in body["items"]:  # explain gives each movie the list's own reason
        why = (await client.get(f"/movies/explain/{ghost}/{item['movie_id']}", headers=admin)).json()["sentence"]
        assert why.startswith(f"{item['title']}: {item['reason']}; you have no ratings yet"), why


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


# -- honest explanations, on a hand-built index -----------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _axis(i: int, dim: int, other: int | None = None, mix: float = 0.0) -> np.ndarray:
    v = np.zeros(dim)
    v[i] = 1.0
    if other is not None:
        v[other] = mix
    return _unit(v)


@pytest.fixture()
def handmade(tmp_path):
    """Five movies with chosen vectors. Liked (5★) and Disliked (1★) are rated; Twin's collab and text
    vectors lie next to Disliked's and orthogonal to Liked's; Kin's lie next to Liked's; Loner is
    orthogonal to both, in text and in collab."""
    from app.embedding.factory import build_manifest
    from app.settings import Settings
    from app.vectorstore import MoviePoint, payload_for
    from app.vectorstore.edge import EdgeIndex

    index = EdgeIndex.create(tmp_path / "shard", build_manifest(Settings(data_dir=tmp_path)))
    axes = {1: (0, None), 2: (1, None), 3: (1, 2), 4: (0, 3), 5: (5, None)}  # id -> (axis, second axis)
    names = {1: "Liked", 2: "Disliked", 3: "Twin", 4: "Kin", 5: "Loner"}
    points = []
    for mid, (axis, other) in axes.items():
        text = _axis(axis, 384, other, 0.3)
        collab_factors = _axis(axis, 255, other, 0.3) * 0.8
        collab_vec = np.append(collab_factors, np.sqrt(1 - 0.64)).astype(np.float32)
        payload = payload_for(
            title=names[mid],
            year=2000,
            genres=["Drama"],
            popularity=None,
            vote_average=None,
            vote_count=0,
            has_poster=False,
            content_hash="",
            local_rating_count=10 * mid,  # rated, by enough viewers to be cited: these are not new movies
        )
        payload["collab_source"] = "ratings"
        vectors = {"text": text, "combined": np.append(text, np.zeros(384)).astype(np.float32), "collab": collab_vec}
        points.append(MoviePoint(mid, vectors, payload))
    index.upsert(points)
    yield index
    index.close()


def test_reasons_never_cite_a_disliked_movie_nor_call_noise_a_match(handmade) -> None:
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    rec = Recommender(index=lambda: handmade, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(1, 5.0, 2_000), UserRating(2, 1.0, 1_000)]  # newest first
    for strategy in ("content", "collab", "hybrid"):
        result = rec.recommend(ratings, limit=3, strategy=strategy, popularity=0.0, diversity=0.0)
        reasons = {i.title: i.reason for i in result.items}
        assert set(reasons) == {"Twin", "Kin", "Loner"}, (strategy, result.path)
        assert all("Disliked" not in r for r in reasons.values()), reasons  # never the 1★ movie
        assert reasons["Twin"] == reasons["Loner"] == "a popular pick", reasons  # cosine to Liked: ~0
        cited = (
            "people who liked Liked (you: 5.0★) also liked this"
            if strategy != "content"
            else "because you liked Liked (5.0★)"
        )
        assert reasons["Kin"] == cited
        for item in result.items:  # the list and the explanation say the same thing
            why = rec.explain(ratings, item.id, strategy=strategy)
            assert why.sentence.startswith(f"{item.title}: {item.reason};"), why.sentence
            assert "Disliked" not in why.sentence
    far = rec.explain(ratings, 5, strategy="hybrid")
    assert "matches your taste" not in far.sentence and "not close" in far.sentence


def test_a_dislike_never_draws_in_its_neighbours(handmade) -> None:
    """Disliking a movie (1★, a guest's "disliked") must not answer like liking it: Twin lies next to
    Disliked in collab and text. With nothing liked there is no taste to follow, so every strategy
    answers the popular list without the disliked movie, the dislike pulling nothing in or out."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    rec = Recommender(index=lambda: handmade, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    for strategy in ("content", "collab", "hybrid"):
        disliked = rec.recommend([UserRating(2, 1.0, 1_000)], limit=4, strategy=strategy, popularity=0, diversity=0)
        liked = rec.recommend([UserRating(2, 5.0, 1_000)], limit=4, strategy=strategy, popularity=0, diversity=0)
        assert liked.items[0].title == "Twin", (strategy, liked.path)
        popular = rec.recommend([], limit=5, strategy=strategy, popularity=0, diversity=0)
        assert disliked.path == "popular", (strategy, disliked.path)
        assert [i.id for i in disliked.items] == [i.id for i in popular.items if i.id != 2][:4]


def test_a_user_who_liked_nothing_gets_no_citation(handmade) -> None:
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    rec = Recommender(index=lambda: handmade, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(2, 2.0, 3_000), UserRating(1, 2.0, 2_000), UserRating(5, 2.0, 1_000)]  # all alike, low
    result = rec.recommend(ratings, limit=2, strategy="hybrid", popularity=0.0, diversity=0.0)
    assert result.items and all(i.reason == "a popular pick" for i in result.items)


def _taste_world(tmp_path, movies: int, rated: int, text_floor: float = 0.0):
    """An index of `movies` movies whose collab factors lie near one taste; the first `rated` have
    ratings, the others are new (nobody rated them: content-predicted vectors). `text_floor`: the
    weight of one direction every text vector shares, giving their cosines a floor as MiniLM's have."""
    from app.embedding.factory import build_manifest
    from app.settings import Settings
    from app.vectorstore import MoviePoint, payload_for
    from app.vectorstore.edge import EdgeIndex

    rng = np.random.default_rng(7)
    taste = _unit(rng.normal(size=255))
    shared = _unit(np.random.default_rng(8).normal(size=384))  # its own generator: the worlds stay as they were
    index = EdgeIndex.create(tmp_path / "shard", build_manifest(Settings(data_dir=tmp_path)))
    points = []
    for mid in range(1, movies + 1):
        unrated = mid > rated
        factors = _unit(taste + rng.normal(scale=0.6, size=255)) * 0.8
        text = _unit(text_floor * shared + (1 - text_floor) * _unit(rng.normal(size=384)))
        payload = payload_for(
            title=f"Movie {mid}",
            year=2000,
            genres=["Drama"],
            popularity=None,
            vote_average=None,
            vote_count=0,
            has_poster=False,
            content_hash="",
            local_rating_count=0 if unrated else 100 - mid,
        )
        payload["collab_source"] = "content" if unrated else "ratings"
        vectors = {
            "text": text,
            "combined": np.append(text, np.zeros(384)).astype(np.float32),
            "collab": np.append(factors, np.sqrt(1 - 0.64)).astype(np.float32),
        }
        points.append(MoviePoint(mid, vectors, payload))
    index.upsert(points)
    return index


def test_pages_of_any_size_cut_one_ranking_with_its_new_movies(tmp_path) -> None:
    """New movies (nobody rated them) take every 10th place of the ranking; pages shorter than that
    spacing must still be slices of one list (a page of 5, then the next, never repeat a movie)."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    index = _taste_world(tmp_path, movies=60, rated=48)  # 12 new movies, close to the taste like the rated ones
    rec = Recommender(index=lambda: index, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(mid, 5.0 if mid % 2 else 4.0, 10_000 - mid) for mid in range(1, 13)]  # 12: warm
    deep = rec.recommend(ratings, limit=30, strategy="collab", popularity=0.0, diversity=0.0, depth=30)
    flat = [i.id for i in deep.items]
    assert deep.path == "collab" and len(flat) == 30 == len(set(flat))
    assert any(mid > 48 for mid in flat), flat  # the new movies' places are in use
    assert all(i.reason.startswith("new:") == (i.id > 48) for i in deep.items)  # "new" means unrated
    for size in (3, 5, 7):
        pages = [
            rec.recommend(ratings, limit=size, offset=o, strategy="collab", popularity=0.0, diversity=0.0, depth=30)
            for o in range(0, 30 - size + 1, size)
        ]
        cut = [i.id for page in pages for i in page.items]
        assert cut == flat[: len(cut)], size
    index.close()


@pytest.mark.parametrize("strategy", ["collab", "hybrid"])
def test_a_catalogue_nobody_rated_yet_fills_the_list_best_first(tmp_path, strategy: str) -> None:
    """A new catalogue: 3 movies rated, 9 nobody rated. Every one of the 9 is a candidate, so a list
    of 10 holds all 9, best first, however deep the ranking is cut (the API cuts 50 deep)."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    index = _taste_world(tmp_path, movies=12, rated=3)
    rec = Recommender(index=lambda: index, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(1, 5.0, 3_000), UserRating(2, 4.0, 2_000), UserRating(3, 2.0, 1_000)]
    for depth in (None, 10, 50):
        got = rec.recommend(ratings, limit=10, strategy=strategy, popularity=0.0, diversity=0.0, depth=depth)
        assert sorted(i.id for i in got.items) == list(range(4, 13)), (depth, got.path)
        scores = [i.score for i in got.items]
        assert scores == sorted(scores, reverse=True), depth
        assert all(i.reason.startswith("new:") for i in got.items)
    fresh = rec.recommend([], limit=10, strategy=strategy, only_new=True)  # a new user's "new for you"
    assert fresh.path == "popular" and sorted(i.id for i in fresh.items) == list(range(4, 13))
    assert all(i.reason.startswith("new:") for i in fresh.items)  # nobody rated them: not "popular"
    index.close()


@pytest.mark.parametrize("ratings", [[], [(2, 1.0)]], ids=["no-ratings", "dislikes-only"])
def test_popular_path_explains_each_movie_as_its_list_does(tmp_path, ratings: list[tuple[int, float]]) -> None:
    """A user whose list is the popular one (no ratings, or only dislikes): explain gives each movie the
    list's own reason, and "popular" only for a movie enough viewers rated. It called every movie "a
    popular pick", the new ones nobody rated and those with one rating included."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    index = _taste_world(tmp_path, movies=12, rated=8)  # ratings: 99 - id for 1-8 (movie 8: 91); 9-12: none
    rec = Recommender(index=lambda: index, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    history = [UserRating(mid, stars, 1_000) for mid, stars in ratings]
    for only_new in (False, True):
        listed = rec.recommend(history, limit=12, only_new=only_new, popularity=0.0, diversity=0.0)
        assert listed.path == "popular" and listed.items, only_new
        for item in listed.items:
            why = rec.explain(history, item.id)
            assert why.sentence.startswith(f"{item.title}: {item.reason};"), why.sentence
            assert ("popular" in item.reason) == (item.id <= 8), item.reason
            assert "no ratings yet" in why.sentence if not ratings else "nothing you rated" in why.sentence
    index.close()


def test_a_movie_rated_by_few_is_never_called_popular() -> None:
    """Payload rating counts under the popular lists' floor (MIN_RATERS): the reason says how few."""
    from app.recommend.recommender import NEW_REASON, popular_reason

    assert popular_reason({"local_rating_count": 0}) == popular_reason({}) == NEW_REASON
    assert popular_reason({"local_rating_count": 1}) == "rated by only 1 viewer"
    assert popular_reason({"local_rating_count": 4}) == "rated by only 4 viewers"
    assert popular_reason({"local_rating_count": 5}) == "popular with viewers"


def test_a_rated_movie_is_compared_with_the_other_ratings_taste(handmade) -> None:
    """explain on a movie the user rated 1★ leaves that rating out of the taste it compares with; the
    sentence said its content "matches your taste" (the README's own example: a 2★ Toy Story)."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    rec = Recommender(index=lambda: handmade, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(1, 5.0, 2_000), UserRating(2, 1.0, 1_000)]
    why = rec.explain(ratings, 2).sentence
    assert why.startswith("Disliked: you rated it 1.0★, so it is not recommended to you; "), why
    assert "your taste" not in why and "the taste of your other ratings" in why, why
    assert "matches your taste" in rec.explain(ratings, 4).sentence  # an unrated movie: the whole taste


def test_a_content_pick_with_nothing_liked_is_not_called_popular(handmade) -> None:
    """One 3★ rating (nothing liked: below LIKED_MIN) still makes a content taste, and the content
    list ranks by it: Kin, next to the rated movie, came with "a popular pick". It is close to what
    the user rated, and explain says the same; movies the taste does not reach stay a popular pick."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender
    from app.recommend.recommender import CLOSE_REASON

    rec = Recommender(index=lambda: handmade, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(1, 3.0, 1_000)]
    listed = rec.recommend(ratings, limit=4, strategy="content", popularity=0.0, diversity=0.0)
    reasons = {i.title: i.reason for i in listed.items}
    assert listed.path == "content_cold_start" and reasons["Kin"] == CLOSE_REASON, reasons
    assert reasons["Loner"] == "a popular pick", reasons  # orthogonal to the taste
    for item in listed.items:
        why = rec.explain(ratings, item.id, strategy="content")
        assert why.sentence.startswith(f"{item.title}: {item.reason};"), why.sentence


def test_matching_your_taste_means_closer_than_most_of_the_catalogue(tmp_path) -> None:
    """Text cosines with a floor (MiniLM's: a one-movie taste's median cosine to a demo movie is
    0.17-0.24): every movie clears MATCH_MIN, and explain said each "matches your taste". Now only
    those at least as close as MATCH_SHARE of the catalogue do, the closest among them."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender
    from app.recommend.recommender import MATCH_MIN, MATCH_SHARE

    index = _taste_world(tmp_path, movies=41, rated=41, text_floor=0.4)
    rec = Recommender(index=lambda: index, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(1, 5.0, 1_000)]
    said = {mid: rec.explain(ratings, mid, strategy="content") for mid in range(2, 42)}
    assert all(why.similarity >= MATCH_MIN for why in said.values()), "the floor is above MATCH_MIN"
    matching = {mid for mid, why in said.items() if "matches your taste" in why.sentence}
    assert 0 < len(matching) <= round(41 * (1 - MATCH_SHARE)) + 1, len(matching)
    by_similarity = sorted(said, key=lambda mid: -said[mid].similarity)
    assert matching == set(by_similarity[: len(matching)])  # the closest ones
    far = said[by_similarity[-1]].sentence
    assert "not close to your taste" in far and "of the catalogue is closer" in far, far
    index.close()


def test_a_new_movie_due_at_its_own_place_is_listed_once() -> None:
    """The 10th place is a new movie's; when the pick for that place is the new movie itself (it
    ranked there on its own), it was listed twice, 10th and 11th (2 of 20 seeded worlds of
    test_pages_of_any_size... did so; a catalogue nobody rated much of fills lists with new movies)."""
    from app.recommend.recommender import _interleave_new
    from app.vectorstore import Hit

    query = _axis(0, 256)
    picks = [(Hit(mid, 1.0 - mid / 100, {}, {"collab": query}), 1.0 - mid / 100) for mid in range(1, 16)]
    new = picks[9][0]  # the 10th pick is the new movie: nobody rated it
    ranking = [h.id for h, _ in _interleave_new(picks, [new], query, every=10, min_ratio=0.5)]
    assert ranking == list(range(1, 16)), ranking


def test_people_who_liked_a_movie_few_rated_are_not_cited(handmade) -> None:
    """A collab reason speaks for other viewers ("people who liked X also liked this"): X is cited
    only from MIN_RATERS ratings on. A content reason is the user's own: "because you liked X" stays."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    rec = Recommender(index=lambda: handmade, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(1, 5.0, 2_000), UserRating(2, 1.0, 1_000)]
    cited = rec.recommend(ratings, limit=3, strategy="collab", popularity=0.0, diversity=0.0)
    assert {i.title: i.reason for i in cited.items}["Kin"] == "people who liked Liked (you: 5.0★) also liked this"
    handmade.set_payload([1], {"local_rating_count": 1})  # Liked: rated by this user alone
    for strategy, kin in (("collab", "a popular pick"), ("content", "because you liked Liked (5.0★)")):
        listed = rec.recommend(ratings, limit=3, strategy=strategy, popularity=0.0, diversity=0.0)
        assert {i.title: i.reason for i in listed.items}["Kin"] == kin, (strategy, listed.items)
        assert rec.explain(ratings, 4, strategy=strategy).sentence.startswith(f"Kin: {kin};")


def test_a_movie_few_rated_is_neither_popular_nor_liked_by_people(handmade) -> None:
    """The recommended movie's own raters count too: with one rating it is "rated by only 1 viewer",
    in the list and in explain, not "a popular pick" and not "people who liked X also liked this" (one
    3★ rating placed a film near Toy Story's fans, and the reason spoke for people who were not there)."""
    from app.catalog.repository import UserRating
    from app.recommend import Recommender

    rec = Recommender(index=lambda: handmade, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    ratings = [UserRating(1, 5.0, 2_000), UserRating(2, 1.0, 1_000)]
    handmade.set_payload([3, 4], {"local_rating_count": 1})  # Twin and Kin: one viewer each
    for strategy in ("collab", "hybrid"):
        listed = rec.recommend(ratings, limit=3, strategy=strategy, popularity=0.0, diversity=0.0)
        reasons = {i.title: i.reason for i in listed.items}
        assert reasons["Kin"] == reasons["Twin"] == "rated by only 1 viewer", (strategy, reasons)
        assert rec.explain(ratings, 4, strategy=strategy).sentence.startswith("Kin: rated by only 1 viewer;")
