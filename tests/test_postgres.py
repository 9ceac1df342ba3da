"""PostgreSQL as the store of record: schema, upserts, ordering, and many clients writing at once.

Needs a PostgreSQL server: MOVIEREC_TEST_POSTGRES_URL, else postgres@127.0.0.1:5432/test. Every run
creates its own database (movierec_test_<uuid>) and drops it at the end, so parallel runs never
share tables. Without a reachable server these tests skip with one line saying why.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlmodel import Session, SQLModel, select

from app.catalog import repository as repo
from app.catalog.db import DbTimeouts, make_engine
from app.catalog.models import Movie, Rating, User
from app.errors import NotFoundError

pytestmark = pytest.mark.postgres

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_S = 3
CLIENTS = 20
BIG = 2**40  # beyond PostgreSQL's INTEGER: ids are 64-bit


def _admin_url() -> URL:
    raw = os.environ.get("MOVIEREC_TEST_POSTGRES_URL") or DEFAULT_URL
    if raw.startswith(("postgres://", "postgresql://")):  # a libpq URL: name the driver
        raw = "postgresql+psycopg://" + raw.split("://", 1)[1]
    return make_url(raw)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    """An autocommit engine on the server's maintenance database; skips when none answers."""
    url = _admin_url()
    engine = create_engine(
        url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        engine.dispose()
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__])[0]
        pytest.skip(f"no PostgreSQL at {url.render_as_string(hide_password=True)}: {first[:150]}")
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def new_database(pg_admin: Engine) -> Iterator[Callable[[], str]]:
    """A factory of fresh, uniquely named databases; each is dropped when the session ends."""
    created: list[str] = []

    def create() -> str:
        name = f"movierec_test_{uuid.uuid4().hex}"
        with pg_admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return pg_admin.url.set(database=name).render_as_string(hide_password=False)

    yield create
    with pg_admin.connect() as conn:
        for name in created:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_url(new_database: Callable[[], str]) -> str:
    return new_database()


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db(pg_engine: Engine) -> Engine:
    """The session's engine, with empty tables."""
    with pg_engine.begin() as conn:
        # Every table at once: one left out would still reference the others (hidden -> users, movies).
        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in SQLModel.metadata.sorted_tables)))
    return pg_engine


def _movies(engine: Engine, ids: range | list[int]) -> None:
    with Session(engine) as session:
        repo.upsert_movies(session, [Movie(id=i, title=f"Movie {i}", genres=["Drama"]) for i in ids])
        session.commit()


def _all_ratings(engine: Engine) -> list[tuple[int, int, float, int]]:
    with Session(engine) as session:
        rows = session.exec(select(Rating).order_by(Rating.user_id, Rating.movie_id))
        return [(r.user_id, r.movie_id, r.rating, r.timestamp) for r in rows]


def _run_concurrently(n: int, work: Callable[[int, threading.Barrier], Any]) -> list[Any]:
    """Run work(i, barrier) in n threads at once; re-raise the first failure."""
    barrier = threading.Barrier(n)
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(work, i, barrier) for i in range(n)]
        return [f.result(timeout=120) for f in futures]


# -- schema ------------------------------------------------------------------------------------
def test_schema_creation_is_idempotent(pg_url: str, db: Engine) -> None:
    _movies(db, [1])
    with Session(db) as session:
        repo.upsert_ratings(session, [(1, 1, 4.0, 10)])
        session.commit()

    again = make_engine(pg_url)  # the schema exists: nothing is created, nothing is lost
    try:
        assert {"movies", "users", "ratings"} <= set(inspect(again).get_table_names())
        assert _all_ratings(again) == [(1, 1, 4.0, 10)]
        columns = {c["name"]: c["type"].__class__.__name__ for c in inspect(again).get_columns("ratings")}
        assert columns["user_id"] == columns["movie_id"] == columns["timestamp"] == "BIGINT"
    finally:
        again.dispose()


def test_schema_creation_races_safely(new_database: Callable[[], str]) -> None:
    """API workers and the ingest worker may all start on an empty database at once."""
    url = new_database()

    def start(_: int, barrier: threading.Barrier) -> None:
        barrier.wait(timeout=30)
        make_engine(url).dispose()

    _run_concurrently(8, start)
    engine = make_engine(url)
    try:
        assert {"movies", "users", "ratings"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# -- round trips --------------------------------------------------------------------------------
def test_movies_upsert_round_trip_with_json_lists(db: Engine) -> None:
    first = Movie(
        id=BIG,
        title='Amélie "Le Fabuleux Destin"',
        year=2001,
        overview="A shy waitress…",
        genres=["Comedy", "Romance"],
        keywords=["paris", "café", "garden gnome", "it's"],
        cast=["Audrey Tautou", "Mathieu Kassovitz"],
        director="Jean-Pierre Jeunet",
        runtime=122,
        popularity=12.5,
        vote_average=7.9,
        vote_count=1000,
        poster="https://example.org/amelie.jpg",
    )
    bare = Movie(id=2, title="No lists")  # empty lists and NULLs
    with Session(db) as session:
        repo.upsert_movies(session, [first, bare])
        session.commit()
    with Session(db) as session:
        stored = {m.id: m.model_dump() for m in repo.all_movies(session)}
    assert stored == {BIG: first.model_dump(), 2: bare.model_dump()}
    assert stored[2]["genres"] == stored[2]["keywords"] == stored[2]["cast"] == []
    assert stored[2]["year"] is None and stored[2]["poster"] is None

    changed = first.model_copy(update={"title": "Amélie", "genres": ["Comedy"], "cast": [], "poster": None})
    with Session(db) as session:
        repo.upsert_movies(session, [changed])
        session.commit()
    with Session(db) as session:
        assert repo.get_movie(session, BIG).model_dump() == changed.model_dump()
        assert set(repo.movies_by_id(session, [BIG, 2, 999])) == {BIG, 2}
        assert repo.count_movies(session) == (2, 0)
        with pytest.raises(NotFoundError):
            repo.get_movie(session, 999)


def test_ratings_upsert_round_trip(db: Engine) -> None:
    _movies(db, [1, 2, BIG])
    ms = 1_700_000_000_123  # a millisecond timestamp: still fits
    with Session(db) as session:
        # The same pair twice in one batch: the last one wins (PostgreSQL refuses a naive upsert).
        repo.upsert_ratings(session, [(BIG, 1, 2.0, 10), (BIG, 1, 4.5, 20), (BIG, BIG, 3.0, ms), (7, 2, 1.0, 5)])
        session.commit()
    assert _all_ratings(db) == [(7, 2, 1.0, 5), (BIG, 1, 4.5, 20), (BIG, BIG, 3.0, ms)]
    with Session(db) as session:
        assert {u.id for u in session.exec(select(User))} == {7, BIG}  # users created on their first rating
        repo.rate(session, BIG, 1, 1.5, timestamp=30)  # rating again replaces
        repo.unrate(session, 7, 2)
        session.commit()
        with pytest.raises(NotFoundError):
            repo.unrate(session, 7, 2)
        with pytest.raises(NotFoundError):
            repo.rate(session, 7, 999, 3.0)  # no such movie
    assert _all_ratings(db) == [(BIG, 1, 1.5, 30), (BIG, BIG, 3.0, ms)]


def test_user_ratings_newest_first(db: Engine) -> None:
    _movies(db, range(1, 7))
    with Session(db) as session:
        repo.upsert_ratings(
            session,
            [(1, 1, 3.0, 100), (1, 2, 4.0, 300), (1, 3, 5.0, 200), (1, 4, 2.0, 300), (2, 5, 1.0, 999)],
        )
        repo.ensure_users(session, [3])
        session.commit()
    with Session(db) as session:
        got = [(r.movie_id, r.rating, r.timestamp) for r in repo.user_ratings(session, 1)]
        # Newest first; equal timestamps by movie id, descending, so the order is total.
        assert got == [(4, 2.0, 300), (2, 4.0, 300), (3, 5.0, 200), (1, 3.0, 100)]
        assert repo.user_ratings(session, 3) == []


# -- concurrency --------------------------------------------------------------------------------
def test_concurrent_clients_every_rating_is_stored(db: Engine) -> None:
    """20 clients, each with its own Session and one transaction per rating, as the API does.
    Each rates movies as its own new user, and all of them rate as one shared new user at the
    same moment, so ensure_users races on the same id."""
    per_client = 5
    shared_user = 10**12
    _movies(db, range(1, CLIENTS + per_client + 1))

    def client(i: int, barrier: threading.Barrier) -> list[tuple[int, int, float, int]]:
        user = 1000 + i
        written = []
        with Session(db) as session:
            barrier.wait(timeout=30)
            repo.rate(session, shared_user, i + 1, 0.5 + (i % 10) * 0.5, timestamp=i)
            session.commit()
            written.append((shared_user, i + 1, 0.5 + (i % 10) * 0.5, i))
            for j in range(per_client):
                rating = 0.5 + ((i + j) % 10) * 0.5
                repo.rate(session, user, i + j + 1, rating, timestamp=1000 * i + j)
                session.commit()
                written.append((user, i + j + 1, rating, 1000 * i + j))
        return written

    expected = sorted(row for rows in _run_concurrently(CLIENTS, client) for row in rows)
    assert len(expected) == CLIENTS * (per_client + 1)
    assert _all_ratings(db) == expected
    with Session(db) as session:
        users = [u.id for u in session.exec(select(User))]
    assert sorted(users) == sorted([shared_user, *(1000 + i for i in range(CLIENTS))])


def test_concurrent_writes_to_one_pair_leave_one_row(db: Engine) -> None:
    _movies(db, [1])

    def client(i: int, barrier: threading.Barrier) -> tuple[float, int]:
        rating = 0.5 + (i % 10) * 0.5
        with Session(db) as session:
            barrier.wait(timeout=30)
            repo.rate(session, 42, 1, rating, timestamp=i)
            session.commit()
        return rating, i

    written = _run_concurrently(CLIENTS, client)
    rows = _all_ratings(db)
    assert len(rows) == 1
    user, movie, rating, ts = rows[0]
    assert (user, movie) == (42, 1)
    assert (rating, ts) in written  # one whole write won; never a mix of two
    with Session(db) as session:
        assert [u.id for u in session.exec(select(User))] == [42]


def test_concurrent_batches_over_the_same_pairs_do_not_deadlock(db: Engine) -> None:
    """Ingest workers upserting overlapping batches in different orders: PostgreSQL would deadlock
    if rows were locked in batch order."""
    users, movies, writers = 10, 50, 6
    _movies(db, range(1, movies + 1))
    pairs = [(u, m) for u in range(1, users + 1) for m in range(1, movies + 1)]

    def writer(i: int, barrier: threading.Barrier) -> None:
        rnd = random.Random(i)
        for round_ in range(3):
            rows = [(u, m, 3.0, 100 * round_ + i) for u, m in pairs]
            rnd.shuffle(rows)
            barrier.wait(timeout=30)
            with Session(db) as session:
                repo.upsert_ratings(session, rows)
                session.commit()

    _run_concurrently(writers, writer)
    rows = _all_ratings(db)
    assert [(u, m) for u, m, _, _ in rows] == pairs
    assert {ts for *_, ts in rows} <= {200 + i for i in range(writers)}  # each pair holds a last-round write


def test_a_schema_chosen_in_the_url_is_the_apis_too(new_database: Callable[[], str]) -> None:
    """`DATABASE_URL=...?options=-csearch_path%3Dmine` (or PGOPTIONS): the ingest and the API use
    that schema. The API adds its own `-c statement_timeout`; it replaced the URL's options, so the
    API created empty tables in `public` and answered 404 for every movie the ingest had written."""
    url = new_database()
    with create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool).connect() as conn:
        conn.execute(text("CREATE SCHEMA mine"))
    scoped = f"{url}?options=-csearch_path%3Dmine"
    for timeouts in (None, DbTimeouts()):  # the ingest's engine, the API's
        engine = make_engine(scoped, timeouts)
        with engine.connect() as conn:
            assert conn.execute(text("SHOW search_path")).scalar() == "mine"
            if timeouts is not None:
                assert conn.execute(text("SHOW statement_timeout")).scalar() == "5s"
        assert "movies" in inspect(engine).get_table_names(schema="mine")
        assert inspect(engine).get_table_names(schema="public") == []
        engine.dispose()


def test_pgoptions_is_kept_beside_the_apis_statement_timeout(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_database()
    with create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool).connect() as conn:
        conn.execute(text("CREATE SCHEMA mine"))
    monkeypatch.setenv("PGOPTIONS", "-c search_path=mine")
    engine = make_engine(url, DbTimeouts())
    with engine.connect() as conn:
        assert conn.execute(text("SHOW search_path")).scalar() == "mine"
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "5s"
    engine.dispose()
