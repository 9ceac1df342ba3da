"""Issue 13, the ingest side: the scale benchmark's generator, the ratings checksum, and an unchanged
re-ingest that reads no ratings and re-embeds and re-fits nothing."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.csv as pacsv
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.datasets import load_catalogue
from app.embedding.factory import build_manifest
from app.vectorstore import open_store
from ingest.pipeline import index_movies, store_catalogue
from tests.helpers.worlds import make_settings

BENCH = Path(__file__).resolve().parents[1] / "bench"
TMDB = Path(__file__).parent / "fixtures" / "tmdb"


@pytest.fixture(scope="module")
def gen_ratings() -> Any:
    sys.path.insert(0, str(BENCH))  # the bench scripts import their helpers as top-level modules
    try:
        return importlib.import_module("gen_ratings")
    finally:
        sys.path.remove(str(BENCH))


def test_the_generator_is_seeded_and_movielens_shaped(gen_ratings: Any, tmp_path: Path) -> None:
    movies, users, ratings = 2_000, 300, 20_000
    first = gen_ratings.generate(tmp_path / "a", movies, users, ratings, seed=5)
    gen_ratings.generate(tmp_path / "b", movies, users, ratings, seed=5)
    gen_ratings.generate(tmp_path / "c", movies, users, ratings, seed=6)
    for name in ("movies.jsonl", "ratings.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()

    table = pacsv.read_csv(tmp_path / "a" / "ratings.csv")
    assert table.num_rows == first.num_rows == ratings
    user, movie = table["userId"].to_numpy(), table["movieId"].to_numpy()
    assert len(np.unique(user * (movies + 1) + movie)) == ratings  # each pair once
    assert user.min() >= 1 and user.max() <= users and movie.min() >= 1 and movie.max() <= movies
    stars = table["rating"].to_numpy()
    assert set(np.unique(stars * 2)) <= set(range(1, 11))  # half stars, 0.5-5
    ts = table["timestamp"].to_numpy()
    assert ts.min() >= gen_ratings.START and ts.max() <= gen_ratings.END
    # Power-law activity: the busiest tenth of the movies hold far more than a tenth of the ratings,
    # and no user is expected to rate more than USER_CAP of the catalogue.
    per_movie = np.sort(np.bincount(movie, minlength=movies + 1)[1:])[::-1]
    assert per_movie[: movies // 10].sum() > 0.3 * ratings
    per_user = np.bincount(user, minlength=users + 1)[1:]
    assert per_user.max() <= gen_ratings.USER_CAP * movies * 1.2
    assert per_user.max() > 5 * np.median(per_user)

    record = json.loads((tmp_path / "a" / "movies.jsonl").read_text().splitlines()[0])
    for field in ("title", "release_date", "genres", "overview", "tagline", "keywords", "cast", "director"):
        assert record[field], field
    catalogue = load_catalogue("tmdb", movies=tmp_path / "a" / "movies.jsonl")
    assert len(catalogue.movies) == movies and not catalogue.errors
    assert catalogue.movies[0].movie.director == record["director"]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(make_settings(tmp_path / "data").sqlalchemy_url)
    yield eng
    eng.dispose()


def test_the_ratings_checksum_follows_the_set_of_pairs(engine: Engine) -> None:
    catalogue = load_catalogue("tmdb", movies=TMDB / "movies.json")
    store_catalogue(engine, catalogue, TMDB / "ratings.csv")
    with Session(engine) as session:
        before = repo.ratings_checksum(session)
        pairs = repo.rated_pair_array(session)
        assert pairs.shape == (len(repo.rated_pairs(session)), 2) and pairs.dtype == np.int64
        assert [tuple(p) for p in pairs.tolist()] == repo.rated_pairs(session)
        user, movie = (int(x) for x in pairs[-1])
        newcomer = int(pairs[:, 0].max()) + 1
        # A new value for a pair already there: the same set of pairs, the same checksum.
        repo.rate(session, user, movie, 0.5, timestamp=1)
        assert repo.ratings_checksum(session) == before
        repo.rate(session, newcomer, movie, 4.0)
        added = repo.ratings_checksum(session)
        assert added != before
        repo.unrate(session, newcomer, movie)
        assert repo.ratings_checksum(session) == before
        repo.unrate(session, user, movie)
        assert repo.ratings_checksum(session) not in (before, added)


def test_an_unchanged_reingest_reads_no_ratings_and_refits_nothing(tmp_path: Path, text_encoder: Any) -> None:
    from app.embedding.movie import MovieEmbedder
    from app.embedding.posters import PosterLoader

    settings = make_settings(tmp_path / "data")
    engine = make_engine(settings.sqlalchemy_url)
    store_catalogue(engine, load_catalogue("tmdb", movies=TMDB / "movies.json"), TMDB / "ratings.csv")
    reads: list[int] = []

    def rated() -> np.ndarray:
        with Session(engine) as session:
            pairs = repo.rated_pair_array(session)
        reads.append(len(pairs))
        return pairs

    def ingest() -> Any:
        with Session(engine) as session:
            movies, checksum = repo.all_movies(session), repo.ratings_checksum(session)
        return index_movies(
            movies,
            open_store(settings),
            build_manifest(settings),
            lambda _: MovieEmbedder(text_encoder, None, PosterLoader(settings.poster_cache_dir)),
            batch_size=64,
            progress=False,
            ratings=rated,
            ratings_checksum=checksum,
        )

    first = ingest()
    assert first.embedded == first.movies > 0 and first.collab_fitted > 0 and reads == [58]
    again = ingest()
    assert (again.embedded, again.collab_seconds, reads) == (0, 0.0, [58])  # nothing read, fitted or embedded
    assert (again.collab_vectors, again.collab_fitted) == (first.collab_vectors, first.collab_fitted)
    with Session(engine) as session:  # a user's new rating changes the pairs: the collab step runs again
        user, movie = (int(x) for x in repo.rated_pair_array(session)[-1])
        repo.rate(session, user + 1, movie, 5.0)
        session.commit()
    third = ingest()
    assert third.embedded == 0 and third.collab_seconds > 0 and reads == [58, 59]
    engine.dispose()
