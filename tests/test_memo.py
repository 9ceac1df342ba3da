"""The answer memo (app/recommend/memo.py): a memoised Recommender answers exactly as one without a
memo, a changed input (a rating, a hidden movie, another index generation, a parameter) is never
answered from an older entry, pages cut from one kept ranking never overlap, and the memo stays
within its bounds."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, select

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.models import Rating
from app.catalog.repository import HiddenMovie, RatingColumns, UserRating
from app.recommend import Recommender
from app.recommend.memo import KEY_BYTES, AnswerMemo, digest_ids, digest_rows
from app.recommend.recommender import RecommendationList
from app.settings import Settings
from app.vectorstore import MovieFilter, MovieIndex, open_store
from app.vectorstore.cache import CachedIndex
from app.vectorstore.live import LiveIndex

DAY = 86_400
PAGE_DEPTH = 50  # the API's depth (app/api/controllers/recommendations.py)


def _answer(result: RecommendationList) -> tuple[Any, ...]:
    return result.path, [(i.id, i.score, i.reason, i.title, i.year, i.genres) for i in result.items]


# ---- the memo alone ------------------------------------------------------------------------------
def test_the_memo_keeps_at_most_its_entries_and_bytes_least_recently_used_out_first() -> None:
    memo = AnswerMemo(max_entries=3, max_bytes=10**6)
    index = object()
    keys = [memo.key("k", index, n) for n in range(4)]
    for k in keys[:3]:
        memo.put(k, k[-1], 100)
    assert memo.get(keys[0]) == 0  # now the most recently used
    memo.put(keys[3], 3, 100)
    assert len(memo) == 3 and memo.get(keys[1]) is None and memo.get(keys[0]) == 0
    assert memo.hits["k"] == 2 and memo.misses["k"] == 1

    memo = AnswerMemo(max_entries=100, max_bytes=3 * (KEY_BYTES + 1_000))
    keys = [memo.key("k", index, n) for n in range(4)]
    for k in keys:
        memo.put(k, k[-1], 1_000)
        assert memo.bytes <= memo.max_bytes
    assert len(memo) == 3 and memo.get(keys[0]) is None and memo.get(keys[3]) == 3
    memo.put(memo.key("k", index, "huge"), "x", memo.max_bytes)  # larger than the memo with its key: never kept
    assert memo.get(memo.key("k", index, "huge")) is None and len(memo) == 3


def test_another_index_empties_the_memo_and_a_key_made_before_it_is_dropped() -> None:
    memo = AnswerMemo(max_entries=10, max_bytes=10_000)
    old, new = object(), object()
    before = memo.key("k", old, 1)
    memo.put(before, "old answer", 10)
    assert memo.get(memo.key("k", old, 1)) == "old answer"
    assert memo.get(memo.key("k", new, 1)) is None and len(memo) == 0
    memo.put(before, "old answer", 10)  # computed on the old generation while the new one arrived
    assert len(memo) == 0
    assert memo.get(memo.key("k", old, 1)) is None  # the old one back: a new number, nothing kept


def test_digests_see_every_field_and_the_order_of_the_rows() -> None:
    rows = [UserRating(10, 4.0, 1_000), UserRating(20, 3.5, 900)]
    hidden = [HiddenMovie(30, 950)]
    base = digest_rows(rows, hidden)
    assert digest_rows(list(rows), list(hidden)) == base
    changed = [
        digest_rows([UserRating(10, 4.5, 1_000), rows[1]], hidden),  # stars
        digest_rows([UserRating(10, 4.0, 1_001), rows[1]], hidden),  # timestamp
        digest_rows([UserRating(11, 4.0, 1_000), rows[1]], hidden),  # movie
        digest_rows(rows[::-1], hidden),
        digest_rows(rows, []),
        digest_rows(rows[:1], [*hidden, HiddenMovie(20, 900)]),  # a row moved between the tables
        digest_rows([], [HiddenMovie(10, 4), HiddenMovie(1_000, 20), HiddenMovie(3, 900), *hidden]),
    ]
    assert len({base, *changed}) == len(changed) + 1
    assert digest_ids(None) is None and digest_ids(frozenset()) == b""
    assert digest_ids({1, 2}) == digest_ids(frozenset([2, 1])) != digest_ids({1, 3})


def test_ids_past_2_to_the_53_never_share_a_digest() -> None:
    """Ids run to 10^18 - 1: two a float64 cannot tell apart (2^53 and 2^53 + 1) are two keys, read
    as records or as columns, rated or hidden."""
    big = 2**53
    assert float(big) == float(big + 1)
    one, other = [UserRating(big, 4.0, 1_000)], [UserRating(big + 1, 4.0, 1_000)]
    assert digest_rows(one, []) != digest_rows(other, [])
    assert digest_rows(RatingColumns.of(one), []) != digest_rows(RatingColumns.of(other), [])
    assert digest_rows(RatingColumns.of(one), []) == digest_rows(one, [])
    assert digest_rows([], [HiddenMovie(big, 5)]) != digest_rows([], [HiddenMovie(big + 1, 5)])
    assert digest_ids({big}) != digest_ids({big + 1})


# ---- a memoised Recommender on the real demo index ------------------------------------------------
@pytest.fixture(scope="module")
def live(demo_settings: Settings) -> Iterator[LiveIndex]:
    live = LiveIndex(open_store(demo_settings))
    yield live
    live.close()


@pytest.fixture(scope="module")
def users(demo_settings: Settings) -> list[list[UserRating]]:
    engine = make_engine(demo_settings.sqlalchemy_url)
    with Session(engine) as session:
        ids = session.exec(
            select(Rating.user_id).group_by(Rating.user_id).having(func.count() >= 20).order_by(Rating.user_id).limit(4)
        ).all()
        return [repo.user_ratings(session, uid) for uid in ids]


def _pair(live: LiveIndex, text_encoder: Any, memo: AnswerMemo) -> tuple[Recommender, Recommender]:
    def encode(q: str) -> Any:
        return text_encoder.encode([q])[0]

    return Recommender(live.current, encode), Recommender(live.current, encode, memo=memo)


def test_memoised_answers_are_the_answers(live: LiveIndex, text_encoder: Any, users: list[list[UserRating]]) -> None:
    memo = AnswerMemo(1_000, 10**8)
    plain, memoised = _pair(live, text_encoder, memo)
    hidden = [HiddenMovie(users[0][0].movie_id + 1, users[0][0].timestamp)]
    cases: list[dict[str, Any]] = [
        {"strategy": "hybrid"},
        {"strategy": "content", "filter": MovieFilter(genres=("Drama", "Comedy"), year_min=1990)},
        {"strategy": "collab", "diversity": 0.0, "popularity": 0.5},
        {"strategy": "hybrid", "hidden": hidden, "only_new": True},
        {"strategy": "hybrid", "limit": 80},  # deeper than the depth: its own ranking
    ]
    for ratings in [*users, users[0][:1], users[0][:5], []]:
        for case in cases:
            kwargs = {"limit": 10, "depth": PAGE_DEPTH, **case}
            want = _answer(plain.recommend(ratings, **kwargs))
            assert _answer(memoised.recommend(ratings, **kwargs)) == want  # a miss: computed
            assert _answer(memoised.recommend(ratings, **kwargs)) == want  # a hit
    assert memo.hits["recommend"] == memo.misses["recommend"] > 0
    movie = users[0][0].movie_id
    for vector in ("combined", "collab"):
        for exclude in (frozenset(), frozenset({movie + 1})):
            want_similar = plain.similar(movie, limit=7, vector=vector, exclude=exclude)
            for _ in range(2):
                assert memoised.similar(movie, limit=7, vector=vector, exclude=exclude) == want_similar
    for popularity in (0.0, 0.6):
        want_found = plain.search("heist thriller", limit=5, popularity=popularity)
        for _ in range(2):
            assert memoised.search("heist thriller", limit=5, popularity=popularity) == want_found
    assert memo.hits["similar"] == memo.misses["similar"] == 4
    assert memo.hits["search"] == memo.misses["search"] == 2


def test_a_new_rating_a_hidden_movie_or_a_new_generation_is_never_answered_from_before(
    live: LiveIndex, text_encoder: Any, users: list[list[UserRating]]
) -> None:
    memo = AnswerMemo(1_000, 10**8)
    plain, memoised = _pair(live, text_encoder, memo)
    ratings = users[1]
    before = memoised.recommend(ratings, limit=10, depth=PAGE_DEPTH)
    top = before.items[0].id
    # the same rows the next request reads after a write: one more rating, newest first
    rated = [UserRating(top, 0.5, ratings[0].timestamp + DAY), *ratings]
    after = memoised.recommend(rated, limit=10, depth=PAGE_DEPTH)
    assert top not in {i.id for i in after.items}
    assert _answer(after) == _answer(plain.recommend(rated, limit=10, depth=PAGE_DEPTH))
    # a rating changed in place (same movie, other stars) is another answer's key too
    restarred = [UserRating(ratings[0].movie_id, 5.5 - ratings[0].rating, ratings[0].timestamp), *ratings[1:]]
    assert _answer(memoised.recommend(restarred, limit=10, depth=PAGE_DEPTH)) == _answer(
        plain.recommend(restarred, limit=10, depth=PAGE_DEPTH)
    )
    hidden = [HiddenMovie(top, ratings[0].timestamp)]
    unwanted = memoised.recommend(ratings, limit=10, depth=PAGE_DEPTH, hidden=hidden)
    assert top not in {i.id for i in unwanted.items}
    assert memo.hits.get("recommend", 0) == 0 and memo.misses["recommend"] == 4
    # another generation (here the same points behind another index object): asked again, never reused
    index = live.current()
    serving: list[MovieIndex] = [index]
    switching = Recommender(lambda: serving[0], lambda q: text_encoder.encode([q])[0], memo=memo)
    first = switching.recommend(ratings, limit=10, depth=PAGE_DEPTH)
    assert memo.hits["recommend"] == 1  # the same generation: the entry made above
    serving[0] = CachedIndex.wrap(index, max_points=10_000)
    assert serving[0] is not index
    assert _answer(switching.recommend(ratings, limit=10, depth=PAGE_DEPTH)) == _answer(first)
    assert memo.hits["recommend"] == 1 and memo.misses["recommend"] == 5


def test_pages_cut_from_one_kept_ranking_never_overlap(
    live: LiveIndex, text_encoder: Any, users: list[list[UserRating]]
) -> None:
    memo = AnswerMemo(1_000, 10**8)
    plain, memoised = _pair(live, text_encoder, memo)
    for ratings in users[:2]:
        for strategy in ("hybrid", "content"):
            seen: list[int] = []
            # a deep page first keeps 40 places; the pages above it are cut from them
            for offset, limit in ((30, 10), (0, 10), (10, 20), (40, 10), (0, 5)):
                kwargs: dict[str, Any] = {"limit": limit, "offset": offset, "depth": PAGE_DEPTH, "strategy": strategy}
                page = memoised.recommend(ratings, **kwargs)
                assert _answer(page) == _answer(plain.recommend(ratings, **kwargs))
                if (offset, limit) != (0, 5):
                    seen += [i.id for i in page.items]
            assert len(seen) == len(set(seen)) == PAGE_DEPTH
    # per user and strategy: (30, 10) and (40, 10) computed; (0, 10), (10, 20), (0, 5) cut from the kept ranking
    assert memo.misses["recommend"] == 2 * 2 * 2 and memo.hits["recommend"] == 2 * 2 * 3


def test_a_small_memo_stays_small(live: LiveIndex, text_encoder: Any, users: list[list[UserRating]]) -> None:
    memo = AnswerMemo(max_entries=3, max_bytes=10**8)
    _, memoised = _pair(live, text_encoder, memo)
    for limit in range(1, 9):
        memoised.recommend(users[2], limit=limit, depth=None, strategy="content")
        assert len(memo) <= 3
    assert len(memo) == 3


def test_the_settings_size_the_memo_and_a_server_collection_gets_none(tmp_path: Any) -> None:
    from app.api.state import _answer_memo

    memo = _answer_memo(Settings(data_dir=tmp_path, answer_memo_entries=7, answer_memo_mb=2), None)
    assert memo is not None and (memo.max_entries, memo.max_bytes) == (7, 2 * 1024 * 1024)
    assert _answer_memo(Settings(data_dir=tmp_path, answer_memo_entries=0), None) is None
    assert _answer_memo(Settings(data_dir=tmp_path, answer_memo_mb=0), None) is None
    assert _answer_memo(Settings(data_dir=tmp_path, qdrant_url="http://127.0.0.1:6333"), None) is None
