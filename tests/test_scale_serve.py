"""Heavy users and the serving hot path (issue 13.5-6): the faster mechanics give the same answers.

Real SQLite or PostgreSQL (MOVIEREC_TEST_DB=postgres), the real 300-movie demo index."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import numpy as np
import pytest
import qdrant_edge as qe
from litestar.security.jwt import Token
from litestar.testing import AsyncTestClient
from sqlmodel import Session, col, select

from app.api import create_app
from app.auth import ALGORITHM, signing_key
from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.models import Hidden, Movie, Rating
from app.embedding import collab
from app.recommend import Recommender
from app.recommend.history import with_hidden
from app.recommend.memo import digest_rows
from app.vectorstore import MemoryIndex, MovieFilter, open_store
from app.vectorstore.cache import CachedIndex
from app.vectorstore.edge import PAYLOAD_INDEXES, EdgeIndex
from tests.helpers.worlds import copy_settings, make_settings

HEAVY = 900_000  # a user id no demo user has


@pytest.fixture(scope="module")
def heavy_world(demo_settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, int]]:
    """A copy of the demo world with one user who rated 240 of its 300 movies (ties in time
    included, so the order's second key matters) and hid 10 more."""
    settings = copy_settings(demo_settings, tmp_path_factory.mktemp("heavy") / "data")
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        ids = list(session.exec(select(Movie.id).order_by(Movie.id)))
    rng = np.random.default_rng(13)
    picked = [int(i) for i in rng.permutation(ids)]
    rated, hidden = picked[:240], picked[240:250]
    rows = [
        (HEAVY, m, float(rng.choice(np.arange(1, 11) / 2)), 1_600_000_000 + int(rng.integers(0, 40))) for m in rated
    ]
    with Session(engine) as session:
        repo.upsert_ratings(session, rows)
        for k, m in enumerate(hidden):
            repo.hide(session, HEAVY, m, timestamp=1_700_000_000 + k % 3)
        session.commit()
    yield settings, engine
    engine.dispose()


def test_user_ratings_are_the_stored_rows_newest_first(heavy_world) -> None:
    """The driver-level fetch returns exactly what the ORM reads, with the same Python types, in
    the documented order (timestamp, then movie id, both descending)."""
    _, engine = heavy_world
    with Session(engine) as session:
        got = repo.user_ratings(session, HEAVY)
        orm = session.exec(select(Rating).where(Rating.user_id == HEAVY)).all()
        hidden = repo.hidden_movies(session, HEAVY)
        orm_hidden = session.exec(select(Hidden).where(col(Hidden.user_id) == HEAVY)).all()
    expected = sorted(((r.movie_id, r.rating, r.timestamp) for r in orm), key=lambda r: (r[2], r[0]), reverse=True)
    assert [tuple(r) for r in got] == expected and len(got) == 240
    assert all(type(r.movie_id) is int and type(r.rating) is float and type(r.timestamp) is int for r in got)
    assert got[0].movie_id == expected[0][0]  # attribute access: still UserRating records
    hid = sorted(((h.movie_id, h.timestamp) for h in orm_hidden), key=lambda h: (h[1], h[0]), reverse=True)
    assert [tuple(h) for h in hidden] == hid and len(hidden) == 10
    with Session(engine) as session:
        assert repo.user_ratings(session, HEAVY + 1) == [] and repo.hidden_movies(session, HEAVY + 1) == []


def test_rating_columns_hold_the_rows_user_ratings_reads(heavy_world) -> None:
    """The columnar read is the record read, row for row and type for type; slices, takes and the
    hidden merge keep columns and give what the records give, and the memo's digest is the same."""
    _, engine = heavy_world
    with Session(engine) as session:
        records, columns = repo.user_ratings(session, HEAVY), repo.user_rating_columns(session, HEAVY)
        hidden = repo.hidden_movies(session, HEAVY)
        assert len(repo.user_rating_columns(session, HEAVY + 1)) == 0
    assert isinstance(columns, repo.RatingColumns) and columns == records and len(columns) == 240
    assert [type(v) for v in columns[0]] == [int, float, int] and columns[-1] == records[-1]
    assert list(columns[10:60]) == records[10:60] and isinstance(columns[:50], repo.RatingColumns)
    assert list(columns.take([5, 0, 7])) == [records[5], records[0], records[7]]
    for name in ("movie_id", "rating", "timestamp"):
        assert repo.rating_column(columns, name).tolist() == repo.rating_column(records, name).tolist()
    merged = with_hidden(columns, hidden)
    assert isinstance(merged, repo.RatingColumns) and list(merged) == with_hidden(records, hidden)
    assert len(merged) == 250 and with_hidden(columns, []) is columns
    assert digest_rows(columns, hidden) == digest_rows(records, hidden)
    # Read-only: what they hand out is shared, so nobody writes another request's rows through it.
    for shared in (columns, columns[:50], columns.take([5, 0]), merged):
        for name in ("movie_id", "rating", "timestamp"):
            with pytest.raises(ValueError, match="read-only"):
                repo.rating_column(shared, name)[0] = 1


@pytest.mark.parametrize("strategy", ["content", "collab", "hybrid"])
def test_a_heavy_user_gets_the_same_answer_from_columns_and_records(heavy_world, strategy: str) -> None:
    """Recommend from RatingColumns (the API's read) and from a list of UserRatings: the same items,
    scores and reasons, with the hidden movies merged into the taste and excluded."""
    settings, engine = heavy_world
    with Session(engine) as session:
        records, columns = repo.user_ratings(session, HEAVY), repo.user_rating_columns(session, HEAVY)
        hidden = repo.hidden_movies(session, HEAVY)
    index = open_store(settings).open()
    try:
        cached = CachedIndex.wrap(index, 10_000)
        rec = Recommender(index=lambda: cached, encode_query=lambda _: np.zeros(0))
        answers = [
            rec.recommend(given, limit=20, depth=50, strategy=strategy, hidden=hidden, filter=MovieFilter())
            for given in (columns, records)
        ]
    finally:
        index.close()
    from_columns, from_records = ([(i.id, i.score, i.reason) for i in a.items] for a in answers)
    assert answers[0].path == answers[1].path and from_columns == from_records and len(from_columns) == 20


@pytest.mark.parametrize("strategy", ["content", "collab", "hybrid"])
def test_heavy_user_gets_the_same_answer_from_the_cache_and_the_engine(heavy_world, strategy: str) -> None:
    """A user who rated most of the catalogue: the served path (vector cache, reasons stacked once per
    answer) and the engine alone agree item for item, reasons included; nothing rated or hidden comes back."""
    settings, engine = heavy_world
    with Session(engine) as session:
        ratings, hidden = repo.user_ratings(session, HEAVY), repo.hidden_movies(session, HEAVY)
    index = open_store(settings).open()
    try:
        cached = CachedIndex.wrap(index, 10_000)
        answers = []
        for served in (cached, index):
            rec = Recommender(index=lambda served=served: served, encode_query=lambda _: np.zeros(0))
            answers.append(rec.recommend(ratings, limit=20, strategy=strategy, hidden=hidden, filter=MovieFilter()))
    finally:
        index.close()
    with_cache, engine_only = answers
    assert with_cache.path == engine_only.path
    assert [(i.id, i.score, i.reason) for i in with_cache.items] == [
        (i.id, i.score, i.reason) for i in engine_only.items
    ]
    assert len(with_cache.items) == 20
    assert not {i.id for i in with_cache.items} & ({r.movie_id for r in ratings} | {h.movie_id for h in hidden})


def test_every_payload_index_is_built_new_or_added_to_an_older_shard(tmp_path: Path, demo_settings) -> None:
    """collab_source (the exploration share's filter) is indexed in a new index, and a shard built
    without it (an older version's generation) gets it when an incremental build loads it."""
    published = open_store(demo_settings).open()
    try:
        assert set(PAYLOAD_INDEXES) <= set(published.payload_schema())
    finally:
        published.close()
    config = qe.EdgeConfig(vectors={"text": qe.EdgeVectorParams(size=4, distance=qe.Distance.Cosine)})
    qe.EdgeShard.create(str(tmp_path / "shard"), config).close()
    old = EdgeIndex.load(tmp_path / "shard")
    try:
        assert "collab_source" not in old.payload_schema()
        old.ensure_payload_indexes()
        assert old.payload_schema()["collab_source"] == "keyword"
        assert set(PAYLOAD_INDEXES) <= set(old.payload_schema())
    finally:
        old.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_verified_token_is_refused_once_it_expires(tmp_path: Path, text_encoder) -> None:
    """Workers keep the tokens that verified (app/api/security.py): a kept token still expires on
    time, a tampered copy of it is refused, and a token that failed is not let in later."""
    settings = make_settings(tmp_path / "data")
    key = signing_key(settings)
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        # Made once the app is up: its start (a PostgreSQL database's creation) must not eat the 5 s.
        short = Token(sub="admin", exp=datetime.now(UTC) + timedelta(seconds=5)).encode(key, ALGORITHM)
        tampered = short[:-2] + ("A" if short[-2] != "A" else "B") + short[-1]
        for _ in range(2):  # the second use is answered from the kept verification
            assert (await client.get("/metrics/embeddings", headers=_bearer(short))).status_code == 200
        assert (await client.get("/metrics/embeddings", headers=_bearer(tampered))).status_code == 401
        await anyio.sleep(max(0.0, (Token.decode(short, key, ALGORITHM).exp - datetime.now(UTC)).total_seconds()) + 0.1)
        assert (await client.get("/metrics/embeddings", headers=_bearer(short))).status_code == 401
        assert (await client.get("/metrics/embeddings", headers=_bearer(tampered))).status_code == 401


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("cached", [False, True], ids=["engine", "cache"])
@pytest.mark.parametrize("strategy", ["content", "collab", "hybrid"])
def test_a_heavy_user_never_gets_a_rated_or_hidden_movie_back_under_filters(
    heavy_world, strategy: str, cached: bool
) -> None:
    """A user who rated 80% of the catalogue, under genre, year and exclusion filters, with and
    without only_new: every answer keeps to the filter and holds nothing rated or hidden (the
    exploration share drops the excluded after the engine's query, the fused query filters its
    prefetches only)."""
    settings, engine = heavy_world
    with Session(engine) as session:
        ratings, hidden = repo.user_ratings(session, HEAVY), repo.hidden_movies(session, HEAVY)
    seen = {r.movie_id for r in ratings} | {h.movie_id for h in hidden}
    index = open_store(settings).open()
    try:
        served = CachedIndex.wrap(index, 10_000) if cached else index
        rec = Recommender(index=lambda: served, encode_query=lambda _: np.zeros(0))
        unseen = [h for h in served.popular(300) if h.id not in seen]
        genre = Counter(g for h in unseen for g in h.payload["genres"]).most_common(1)[0][0]
        some = frozenset(h.id for h in unseen[:5])
        filters = [MovieFilter(genres=(genre,)), MovieFilter(year_min=1990), MovieFilter(exclude_ids=some)]
        answered = 0
        for f in filters:
            for only_new in (False, True):
                items = rec.recommend(
                    ratings, limit=20, depth=50, strategy=strategy, hidden=hidden, filter=f, only_new=only_new
                ).items
                answered += len(items)
                assert not {i.id for i in items} & (seen | f.exclude_ids)
                assert all(genre in i.genres for i in items) if f.genres else True
                assert all(i.year is not None and i.year >= 1990 for i in items) if f.year_min else True
    finally:
        index.close()
    assert answered >= 3 * 10  # not vacuous: the filters leave movies to recommend


def test_the_exploration_share_is_what_the_excluding_query_answers(heavy_world) -> None:
    """The exploration query asks without the user's exclusions and drops them after; on the exact
    index its answer is the excluding query's, whether none, some or all of the best new movies are
    excluded (then it asks again, excluding)."""
    settings, _ = heavy_world
    index = open_store(settings).open()
    try:
        exact = MemoryIndex.copy_of(index)
    finally:
        index.close()
    # 30 movies become new (nobody rated them): the demo world's 300 all have ratings
    exact.set_payload([h.id for h in exact.popular(300)[-30:]], {"local_rating_count": 0, "collab_source": "content"})
    rec = Recommender(index=lambda: exact, encode_query=lambda _: np.zeros(0))
    new = MovieFilter(unrated=True)
    top = exact.popular(1)[0].id  # the most rated movie's neighbours: a user's typical collab query
    query = collab.as_query(collab.factor_part(exact.stacked([top], "collab").rows[0]))
    assert query is not None
    order = [h.id for h in exact.query(query, "collab", 300, new)]
    assert len(order) == 30
    for excluded in ([], order[:1], order[1:4], order[:-1], order):
        f = MovieFilter(exclude_ids=frozenset(excluded) | {1_000_000})
        want = [h.id for h in exact.query(query, "collab", 2, MovieFilter(exclude_ids=f.exclude_ids, unrated=True))]
        got = rec._new_movies(exact, query, 2, f)
        assert [h.id for h in got] == want
        assert all("collab" in h.vectors for h in got)
