"""Collab vectors at ingest and the collab and hybrid strategies: real text model, real Edge index,
the first demo movies and their real ratings."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlmodel import Session

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.repository import UserRating
from app.datasets import load_catalogue
from app.embedding import collab
from app.recommend import Recommender
from app.recommend.tuning import TUNED
from app.vectorstore import COLLAB_DIM, content_hashes, open_store
from ingest.pipeline import store_catalogue
from tests.helpers.ingest import index_stored
from tests.helpers.worlds import copy_settings, make_settings

LIMIT = 150
NEW = 9_000_000  # ids of movies added without ratings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, text_encoder):
    settings = make_settings(tmp_path_factory.mktemp("collab"))
    engine = make_engine(settings.sqlalchemy_url)
    store_catalogue(engine, load_catalogue("demo", limit=LIMIT))
    with Session(engine) as session:  # three new movies that nobody has rated yet
        firsts = repo.all_movies(session)[:3]
        repo.upsert_movies(
            session, [m.model_copy(update={"id": NEW + i, "title": f"{m.title} II"}) for i, m in enumerate(firsts)]
        )
        session.commit()
    engine.dispose()
    summary = index_stored(settings, text_encoder)
    return settings, summary


def _stored(settings) -> dict:
    index = open_store(settings).open()
    try:
        return {m.id: m for m in index.retrieve(sorted(content_hashes(index)), vectors=("text", "collab"))}
    finally:
        index.close()


def _rated_movies(settings) -> set[int]:
    with Session(make_engine(settings.sqlalchemy_url)) as session:
        return {m for _, m in repo.rated_pairs(session)}


def test_ingest_sets_collab_vectors_from_ratings_or_content(world) -> None:
    # Issue 11: a movie nobody rated gets factors predicted from its content (it used to get none).
    settings, summary = world
    stored, rated = _stored(settings), _rated_movies(settings)
    assert summary.embedded == summary.movies == len(stored)
    with_collab = {mid for mid, m in stored.items() if "collab" in m.vectors}
    assert with_collab == set(stored) and summary.collab_vectors == len(stored)
    by_ratings = {mid for mid, m in stored.items() if m.payload.get("collab_source") == "ratings"}
    by_content = {mid for mid, m in stored.items() if m.payload.get("collab_source") == "content"}
    assert by_ratings == rated & set(stored) and len(by_ratings) > 0.8 * len(stored)
    assert by_content == set(stored) - by_ratings and {NEW, NEW + 1, NEW + 2} <= by_content
    for movie in stored.values():
        assert "text" in movie.vectors  # the collab step keeps the content vectors
        if "collab" in movie.vectors:
            assert movie.vectors["collab"].shape == (COLLAB_DIM,)
    manifest = open_store(settings).manifest()
    assert manifest is not None and manifest.collab_dim == COLLAB_DIM
    assert manifest.stats["collab_vectors"] == summary.collab_vectors


def test_new_ratings_alone_restage_collab(tmp_path: Path, world, text_encoder) -> None:
    settings = copy_settings(world[0], tmp_path / "data")
    again = index_stored(settings, text_encoder)
    assert again.embedded == 0 and again.skipped_unchanged == again.movies  # nothing changed: nothing staged
    before = _stored(settings)
    unrated = sorted(mid for mid, m in before.items() if m.payload.get("collab_source") == "content")
    assert unrated, "the demo slice has movies nobody rated"
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        for user in (1, 2, 3):
            repo.rate(session, user, unrated[0], 4.0)
        session.commit()
    engine.dispose()
    third = index_stored(settings, text_encoder)
    assert third.embedded == 0  # content unchanged: nothing re-embedded
    assert third.collab_vectors == again.collab_vectors  # every movie has one, from ratings or content
    after = _stored(settings)
    assert after[unrated[0]].payload["collab_source"] == "ratings"
    for mid, movie in before.items():
        np.testing.assert_allclose(after[mid].vectors["text"], movie.vectors["text"], atol=1e-6)


def _user(settings, min_ratings: int = 20) -> list[UserRating]:
    with Session(make_engine(settings.sqlalchemy_url)) as session:
        users = {u for u, _ in repo.rated_pairs(session)}
        for user in sorted(users):
            ratings = repo.user_ratings(session, user)
            if len(ratings) >= min_ratings:
                return ratings
    raise AssertionError("no user with enough ratings")


@pytest.fixture(scope="module")
def recommender(world):
    settings, _ = world
    index = open_store(settings).open()
    yield Recommender(index=lambda: index, encode_query=lambda _: np.zeros(384, dtype=np.float32))
    index.close()


@pytest.mark.parametrize("strategy", ["content", "collab", "hybrid"])
def test_strategies_answer_on_their_path(world, recommender: Recommender, strategy: str) -> None:
    ratings = _user(world[0])
    result = recommender.recommend(ratings, limit=8, strategy=strategy)  # type: ignore[arg-type]
    assert (result.strategy, result.path) == (strategy, strategy)
    assert len(result.items) == 8
    assert not {i.id for i in result.items} & {r.movie_id for r in ratings}
    cold = recommender.recommend(ratings[:2], limit=8, strategy=strategy)  # type: ignore[arg-type]
    # 1-2 ratings: collab blended with the popularity prior (issue 11); content keeps its cold start.
    assert cold.path == ("content_cold_start" if strategy == "content" else "collab_popular")
    assert recommender.recommend([], limit=5, strategy=strategy).path == "popular"  # type: ignore[arg-type]


def test_a_movie_added_without_ratings_is_recommended(world, recommender) -> None:
    """The world adds three movies nobody rated (issue 11): their collab vectors come from content at
    ingest, the best one for the user is in a collab list (on its own score, or in the exploration
    place), and only_new ranks among them alone."""
    ratings = _user(world[0])
    fresh = recommender.recommend(ratings, limit=10, strategy="collab", only_new=True)
    assert {i.id for i in fresh.items} == {NEW, NEW + 1, NEW + 2}
    for strategy in ("collab", "hybrid"):
        full = recommender.recommend(ratings, limit=10, strategy=strategy)  # type: ignore[arg-type]
        assert len(full.items) == 10
        shown = {i.id: i for i in full.items}
        assert fresh.items[0].id in shown  # the best new movie for this user
        assert all("nobody has rated" in i.reason for i in full.items if i.id >= NEW)
        assert len(shown) == 10  # each movie once, a new one on its own score included


def test_movies_nobody_rated_still_give_a_collab_answer(recommender: Recommender) -> None:
    # Issue 11: their factors are predicted from content, so a user who rated only them gets collab
    # (this used to fall back to content).
    ratings = [UserRating(NEW + i, 4.0 + i * 0.5, 1_000_000 - i) for i in range(3)]  # nobody else rated these
    for strategy in ("collab", "hybrid"):
        result = recommender.recommend(ratings, limit=5, strategy=strategy)  # type: ignore[arg-type]
        assert result.path == "collab_popular" and len(result.items) == 5


def test_hybrid_reaches_a_new_movie_through_content(tmp_path: Path, world, text_encoder) -> None:
    """A movie with no ratings has content-predicted factors and the content prefetch: it reaches users."""
    settings = copy_settings(world[0], tmp_path / "data")
    ratings = _user(settings)
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        liked = repo.get_movie(session, max(ratings, key=lambda r: r.rating).movie_id)
        twin = liked.model_copy(update={"id": 10_000_000, "title": liked.title + " (director's cut)"})
        repo.upsert_movies(session, [twin])
        session.commit()
        liked_id, twin_id = liked.id, twin.id
    engine.dispose()
    assert index_stored(settings, text_encoder).embedded == 1
    index = open_store(settings).open()
    try:
        assert index.retrieve([twin_id], vectors=("collab",))[0].payload["collab_source"] == "content"
        disliked = [r._replace(rating=1.0) for r in ratings if r.movie_id != liked_id][:4]
        history = [UserRating(liked_id, 5.0, ratings[0].timestamp + 1), *disliked]  # newest first
        rec = Recommender(
            index=lambda: index,
            encode_query=lambda _: np.zeros(384, dtype=np.float32),
            tuning=replace(TUNED, content_weight=1.0, new_user_max=0),
        )  # 5 ratings: no prior
        result = rec.recommend(history, limit=10, strategy="hybrid", popularity=0.0, diversity=0.0)
        assert result.path == "hybrid"
        assert twin_id in [i.id for i in result.items]
    finally:
        index.close()


def test_similar_by_collab(world, recommender: Recommender) -> None:
    from app.errors import InvalidInputError

    ratings = _user(world[0])
    movie = ratings[0].movie_id
    similar = recommender.similar(movie, limit=5, vector="collab")
    assert len(similar) == 5 and movie not in {s.id for s in similar}
    assert [s.score for s in similar] == sorted((s.score for s in similar), reverse=True)
    # Issue 11: a new movie has content-predicted factors, so it has collab neighbours too.
    assert len(recommender.similar(NEW, limit=5, vector="collab")) == 5
    with pytest.raises(InvalidInputError, match="no usable poster"):
        recommender.similar(NEW, vector="image")


def test_content_inputs_add_genres_and_decade() -> None:
    """The map's input: `combined`, then genres multi-hot / √count (over the genres the movies
    name) and the decade one-hot, years outside 1920-2029 at the nearest end, none when unknown."""
    combined = {1: np.array([1.0, 0.0]), 2: np.array([0.0, 1.0]), 3: np.array([0.6, 0.8])}
    genres = {1: ["Drama", "Comedy"], 2: ["Horror"], 3: []}
    inputs = collab.content_inputs(combined, genres, {1: 1995, 2: 1895, 3: None})
    decades = (collab.LAST_DECADE - collab.FIRST_DECADE) // 10 + 1
    assert all(v.shape == (2 + 3 + decades,) for v in inputs.values())
    comedy, drama, horror = 2, 3, 4  # the genre columns, sorted by name
    np.testing.assert_allclose(inputs[1][[comedy, drama, horror]], [2**-0.5, 2**-0.5, 0.0], rtol=1e-6)
    assert inputs[1][5 + (1990 - 1920) // 10] == 1.0 and inputs[1][5:].sum() == 1.0
    assert inputs[2][5] == 1.0 and inputs[2][horror] == 1.0  # 1895: the first decade
    assert not inputs[3][2:].any()
    np.testing.assert_array_equal(inputs[3][:2], combined[3].astype(np.float32))


def test_from_content_predicts_a_new_movie_from_its_genre() -> None:
    """Rated movies whose factors follow their genre (their `combined` vectors are noise): a new
    horror movie gets a unit collab vector whose factor part points at the horror movies'."""
    rng = np.random.default_rng(0)
    directions = {"Horror": np.eye(8)[0], "Comedy": np.eye(8)[1]}
    ids = list(range(40))
    genre = {m: ["Horror" if m % 2 else "Comedy"] for m in ids} | {100: ["Horror"], 101: ["Comedy"]}
    combined = {m: rng.standard_normal(16) / 4 for m in [*ids, 100, 101]}
    rated = {}
    for m in ids:
        f = 0.5 * directions[genre[m][0]] + 0.02 * rng.standard_normal(8)
        rated[m] = np.append(f, np.sqrt(1 - f @ f)).astype(np.float32)
    predicted = collab.from_content(rated, collab.content_inputs(combined, genre, dict.fromkeys(genre, 1990)))
    assert set(predicted) == {100, 101}
    for movie, own, other in ((100, "Horror", "Comedy"), (101, "Comedy", "Horror")):
        vector = predicted[movie]
        assert vector.shape == (9,) and abs(np.linalg.norm(vector) - 1) < 1e-5
        factors = collab.factor_part(vector)
        assert factors @ directions[own] > 0.25 and factors @ directions[own] > 3 * abs(factors @ directions[other])
