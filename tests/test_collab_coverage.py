"""Collab at scale (issue 13 part 4): every movie with at least MOVIEREC_COLLAB_MIN_RATINGS ratings
gets a rating-fitted collab vector; beyond EASE's core, by the fold-in. Real numpy fits on small
synthetic matrices, and a real ingest (text model, Edge index, database) of a demo slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlmodel import Session

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.datasets import load_catalogue
from app.embedding import collab
from app.settings import Settings
from app.vectorstore import open_store
from ingest.pipeline import store_catalogue
from tests.helpers.ingest import index_stored
from tests.helpers.worlds import make_settings


def _two_tastes(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Users 0-99 rate among movies 0-29, users 100-199 among movies 30-59; tail movie 100 is rated
    by 8 of the first group only, tail movie 101 by 8 of the second."""
    users, movies = [], []
    for user in range(200):
        own = np.arange(30) if user < 100 else np.arange(30, 60)
        picked = rng.choice(own, size=12, replace=False)
        users += [user] * len(picked)
        movies += picked.tolist()
    for tail, group in ((100, range(0, 100)), (101, range(100, 200))):
        for user in rng.choice(list(group), size=8, replace=False):
            users.append(int(user))
            movies.append(tail)
    return np.array(users), np.array(movies)


def test_every_movie_with_enough_ratings_gets_a_vector() -> None:
    users, movies = _two_tastes(np.random.default_rng(1))
    users = np.append(users, [0, 1, 2, 0])  # movie 102: 3 raters (one pair listed twice)
    movies = np.append(movies, [102, 102, 102, 102])
    vectors = collab.item_vectors(users, movies, dim=9, l2=5.0, min_ratings=4, core_items=40)
    assert set(vectors) == set(range(60)) | {100, 101}  # 102 has 3 distinct raters: below 4
    np.testing.assert_allclose(np.linalg.norm(np.stack(list(vectors.values())), axis=1), 1.0, atol=1e-5)
    with_three = collab.item_vectors(users, movies, dim=9, l2=5.0, min_ratings=3, core_items=40)
    assert 102 in with_three


def test_folded_in_movies_sit_with_the_movies_their_raters_like() -> None:
    users, movies = _two_tastes(np.random.default_rng(2))
    # A core of 40 holds neither tail movie (8 raters each, the others about 40): both are folded in.
    vectors = collab.item_vectors(users, movies, dim=9, l2=5.0, min_ratings=5, core_items=40)
    first = collab.factor_part(np.stack([vectors[m] for m in range(30) if m in vectors])).sum(axis=0)
    second = collab.factor_part(np.stack([vectors[m] for m in range(30, 60) if m in vectors])).sum(axis=0)
    tail_a, tail_b = collab.factor_part(vectors[100]), collab.factor_part(vectors[101])
    # A user of the first taste scores its tail movie above the other taste's, and vice versa.
    assert first @ tail_a > first @ tail_b and second @ tail_b > second @ tail_a
    assert first @ tail_a > 0 and second @ tail_b > 0


def test_the_setting_default_is_the_measured_one() -> None:
    assert Settings.model_fields["collab_min_ratings"].default == collab.MIN_RATINGS


def test_ingest_fits_every_movie_with_min_ratings(tmp_path: Path, text_encoder) -> None:
    settings = make_settings(tmp_path)
    engine = make_engine(settings.sqlalchemy_url)
    store_catalogue(engine, load_catalogue("demo", limit=120))
    with Session(engine) as session:
        movies, rated = repo.all_movies(session), repo.rated_pairs(session)
    engine.dispose()
    ids, counts = np.unique([m for _, m in set(rated)], return_counts=True)
    min_ratings = 20
    eligible = set(ids[counts >= min_ratings].tolist())
    assert 0 < len(eligible) < len(movies)
    summary = index_stored(settings, text_encoder, collab_min_ratings=min_ratings)
    index = open_store(settings).open()
    try:
        stored = index.retrieve([m.id for m in movies], vectors=("collab",))
    finally:
        index.close()
    source = {m.id: m.payload.get("collab_source") for m in stored}
    assert {m for m, s in source.items() if s == "ratings"} == eligible
    assert {m for m, s in source.items() if s == "content"} == {m.id for m in movies} - eligible
    assert summary.collab_vectors == len(movies)
    # The same catalogue and ratings with another threshold: nothing to embed, but the collab fit
    # is part of the index's identity, so it runs again instead of keeping the old coverage.
    again = index_stored(settings, text_encoder, collab_min_ratings=1)
    assert again.embedded == 0 and again.collab_fitted == len(ids) > len(eligible)
