"""Heavy users and the serving hot path (issue 13.5-6): the faster mechanics give the same answers.

Real SQLite or PostgreSQL (MOVIEREC_TEST_DB=postgres), the real 300-movie demo index."""

from __future__ import annotations

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
from app.recommend import Recommender
from app.vectorstore import MovieFilter, open_store
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
    short = Token(sub="admin", exp=datetime.now(UTC) + timedelta(seconds=2)).encode(key, ALGORITHM)
    tampered = short[:-2] + ("A" if short[-2] != "A" else "B") + short[-1]
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        for _ in range(2):  # the second use is answered from the kept verification
            assert (await client.get("/metrics/embeddings", headers=_bearer(short))).status_code == 200
        assert (await client.get("/metrics/embeddings", headers=_bearer(tampered))).status_code == 401
        await anyio.sleep(max(0.0, (Token.decode(short, key, ALGORITHM).exp - datetime.now(UTC)).total_seconds()) + 0.1)
        assert (await client.get("/metrics/embeddings", headers=_bearer(short))).status_code == 401
        assert (await client.get("/metrics/embeddings", headers=_bearer(tampered))).status_code == 401


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
