"""The recommender's pieces on hand-computed cases, then the whole Recommender on a real index."""

from __future__ import annotations

import numpy as np
import pytest
from sqlmodel import Session, func, select

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.models import Rating
from app.catalog.repository import HiddenMovie, UserRating
from app.errors import InvalidInputError, NotFoundError
from app.recommend import Recommender
from app.recommend.rerank import contenders, popularity_boost, rerank
from app.recommend.user_vector import (
    SCALE_MIDPOINT,
    boost_recent,
    norm_weights,
    rating_centre,
    star_weights,
    taste_weights,
    weighted_mean,
)
from app.vectorstore import Hit, MovieFilter, content_hashes, open_store
from app.vectorstore.live import LiveIndex
from tests.helpers.ingest import build_index
from tests.helpers.worlds import DEMO_LIMIT, make_settings

DAY = 86_400


def test_taste_weights_centre_on_the_user_mean_and_halve_per_half_life() -> None:
    history = [UserRating(1, 5.0, 1000 * DAY), UserRating(2, 1.0, 900 * DAY), UserRating(3, 3.0, 800 * DAY)]
    w = taste_weights(history, all_ratings_mean=3.0, half_life_days=100)
    assert w.movie_ids == [1, 2, 3]
    centre = rating_centre(3, 3.0)
    assert np.allclose(w.weights, [5.0 - centre, (1.0 - centre) * 0.5, (3.0 - centre) * 0.25])


def test_the_centre_is_the_users_mean_damped_towards_the_scale_midpoint() -> None:
    assert rating_centre(0, 4.0) == SCALE_MIDPOINT
    assert rating_centre(1, 4.0) == pytest.approx(SCALE_MIDPOINT + (4.0 - SCALE_MIDPOINT) / 11)
    assert abs(rating_centre(500, 4.2) - 4.2) < 0.03  # a long history keeps its own scale
    w = taste_weights([UserRating(1, 4.0, 0)], all_ratings_mean=4.0, half_life_days=100)
    assert np.allclose(w.weights, [4.0 - rating_centre(1, 4.0)])


def test_a_history_of_favourites_counts_every_one_as_liked() -> None:
    """Four favourites (a Letterboxd import): centred on their own mean, 4.5, the 4-star one was a
    dislike and pushed its neighbours away."""
    stars = [5.0, 4.5, 4.5, 4.0]
    history = [UserRating(i, r, 0) for i, r in enumerate(stars)]
    w = taste_weights(history, float(np.mean(stars)), None)
    assert (w.weights > 0).all() and w.weights[0] > w.weights[3]


def test_uniform_ratings_count_as_equal_likes() -> None:
    history = [UserRating(i, 4.0, 0) for i in range(5)]
    w = taste_weights(history, 4.0, 100).weights
    assert (w > 0).all() and np.allclose(w, w[0])


def test_boost_recent_scales_only_the_newest_weights_of_a_newest_first_history() -> None:
    weights = np.array([1.0, 2.0, 1.0, 1.0], dtype=np.float32)
    assert np.allclose(boost_recent(weights, 2, 0.25), [1.25, 2.5, 1.0, 1.0])
    assert np.allclose(boost_recent(weights, 10, 0.5), 1.5 * weights)  # a history shorter than the boost
    assert np.allclose(weights, [1.0, 2.0, 1.0, 1.0])  # the caller's weights are left alone


def test_weighted_mean_pushes_away_from_dislikes_and_detects_cancellation() -> None:
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    v = weighted_mean(np.stack([a, b]), np.array([1.0, -1.0]))
    assert v is not None and np.allclose(v, np.array([1, -1]) / np.sqrt(2))
    assert weighted_mean(np.stack([a, a]), np.array([1.0, -1.0])) is None


def _hit(mid: int, score: float, vec: list[float], pop: float = 1.0) -> Hit:
    return Hit(mid, score, {"local_rating_count": pop}, {"combined": np.array(vec, dtype=np.float32)})


def test_rerank_demotes_near_duplicates_when_diversity_is_on() -> None:
    hits = [_hit(1, 0.9, [1, 0]), _hit(2, 0.89, [1, 0.01]), _hit(3, 0.8, [0, 1])]
    assert [h.id for h, _ in rerank(hits, "combined", 3, popularity=0, diversity=0)] == [1, 2, 3]
    assert [h.id for h, _ in rerank(hits, "combined", 3, popularity=0, diversity=0.5)] == [1, 3, 2]


def test_star_weights_lean_mildly_towards_loved_movies_and_never_turn_negative() -> None:
    weights = np.array([1.25, 1.0, 1.0, 1.0], dtype=np.float32)
    out = star_weights(weights, np.array([5.0, 3.0, 2.0, 1.5]), 0.2)
    assert np.allclose(out, [1.25 * 1.4, 1.0, 0.8, 0.7])
    assert (star_weights(weights, np.array([2.0, 2.0, 2.0, 2.0]), 1.0) >= 0).all()  # a steep slope stops at 0
    assert np.allclose(star_weights(weights, np.array([5.0, 1.5, 2.0, 4.0]), 0.0), weights)
    # An explicit dislike (1 star or less; a guest's "disliked") weighs nothing, whatever the slope.
    assert np.allclose(star_weights(weights, np.array([1.0, 0.5, 5.0, 3.0]), 0.0), [0.0, 0.0, 1.0, 1.0])


def test_norm_weights_discount_long_factors_and_bound_tiny_ones() -> None:
    # Stored collab vectors: factor parts of norm 0.64, 0.16 and 0 (the last coordinate pads to length 1).
    stored = np.array([[0.64, 0.0, 0.768], [0.0, 0.16, 0.987], [0.0, 0.0, 1.0]], dtype=np.float32)
    weights = np.array([1.0, 1.0, 2.0], dtype=np.float32)
    out = norm_weights(weights, stored, 0.5)
    assert np.allclose(out[:2], [0.64**-0.5, 0.16**-0.5], rtol=1e-5)  # the rarer movie weighs twice as much
    assert np.isclose(out[2], 2.0 * 0.1**-0.5)  # a zero-length factor part weighs as the floor, never inf
    assert np.allclose(norm_weights(weights, stored, 0.0), weights)


def test_rerank_popularity_boost_reorders_close_calls() -> None:
    hits = [_hit(1, 0.80, [1, 0], pop=1), _hit(2, 0.79, [0, 1], pop=1000)]
    assert [h.id for h, _ in rerank(hits, "combined", 2, popularity=0, diversity=0)] == [1, 2]
    assert [h.id for h, _ in rerank(hits, "combined", 2, popularity=0.5, diversity=0)] == [2, 1]


def _plain_mmr(hits: list[Hit], limit: int, popularity: float, diversity: float) -> list[tuple[int, float]]:
    """rerank's greedy MMR over every candidate, with no candidate left out (the reference)."""
    relevance = np.array([h.score for h in hits]) * popularity_boost(hits, popularity)
    vectors = np.array([h.vectors["combined"] for h in hits])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    max_sim, picks = np.zeros(len(hits)), []
    for _ in range(min(limit, len(hits))):
        scores = relevance - diversity * np.minimum(max_sim, 1.0) * np.abs(relevance)
        scores[[i for i, _ in picks]] = -np.inf
        best = int(np.argmax(scores))
        picks.append((best, float(scores[best])))
        max_sim = np.maximum(max_sim, vectors @ vectors[best])
    return [(hits[i].id, score) for i, score in picks]


@pytest.mark.parametrize("seed", range(12))
def test_rerank_leaving_out_hits_that_cannot_be_picked_changes_no_pick(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, dim = int(rng.integers(20, 300)), 8
    scores = np.sort(rng.uniform(-0.2, 1.0, n))[::-1] if seed % 2 else 1.0 / (60 + np.arange(n))  # cosines, RRF
    close = rng.normal(size=dim)  # a cluster of near duplicates makes the diversity penalty bite
    hits = [
        _hit(
            i + 1,
            float(s),
            list(close + 0.05 * rng.normal(size=dim) if i % 3 == 0 else rng.normal(size=dim)),
            pop=float(rng.integers(0, 500)),
        )
        for i, s in enumerate(scores)
    ]
    for limit in (1, 5, 10, 50):
        for popularity, diversity in ((0.0, 0.2), (0.1, 0.2), (0.5, 0.05), (0.1, 1.0)):
            got = [(h.id, score) for h, score in rerank(hits, "combined", limit, popularity, diversity)]
            want = _plain_mmr(hits, limit, popularity, diversity)
            assert [i for i, _ in got] == [i for i, _ in want]
            # float32 vectors: BLAS sums a shorter matrix's rows in another order, by CPU kind (up to
            # 3e-9 seen on Sapphire Rapids); an answer shows 6 decimals.
            assert np.allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-7)
    relevance = np.array([h.score for h in hits]) * popularity_boost(hits, 0.1)
    kept, _ = contenders(hits, relevance, 10, 0.2)  # the API's defaults
    assert [h.id for h in kept] == sorted(h.id for h in kept)  # in their order
    assert len(kept) < n / 2 or n < 40  # most candidates never reach the loop


# ---- the Recommender on the real demo index ------------------------------------------------------
@pytest.fixture(scope="module")
def live_index(demo_settings):
    live = LiveIndex(open_store(demo_settings))  # an Edge shard opens once per process: share it
    yield live
    live.close()


@pytest.fixture(scope="module")
def recommender(live_index, text_encoder):
    return Recommender(live_index.current, lambda q: text_encoder.encode([q])[0], history_size=50)


@pytest.fixture(scope="module")
def heavy_users(demo_settings) -> list[list[UserRating]]:
    engine = make_engine(demo_settings.sqlalchemy_url)
    with Session(engine) as session:
        ids = session.exec(
            select(Rating.user_id).group_by(Rating.user_id).having(func.count() >= 20).order_by(Rating.user_id).limit(5)
        ).all()
        return [repo.user_ratings(session, uid) for uid in ids]


def test_no_rated_movie_is_ever_recommended(recommender, heavy_users) -> None:
    for ratings in heavy_users:
        result = recommender.recommend(ratings, limit=20, strategy="content")
        assert result.path == "content" and len(result.items) == 20
        assert not {i.id for i in result.items} & {r.movie_id for r in ratings}
        assert all(i.reason.startswith("because you liked") for i in result.items)


def test_filters_hold_for_every_result(recommender, heavy_users) -> None:
    f = MovieFilter(genres=("Comedy", "Horror"), year_min=1990, year_max=1999)
    result = recommender.recommend(heavy_users[0], limit=15, strategy="content", filter=f)
    assert result.items
    for item in result.items:
        assert set(item.genres) & {"Comedy", "Horror"} and 1990 <= item.year <= 1999


def test_cold_start_paths(recommender, heavy_users) -> None:
    assert recommender.recommend([], limit=5, strategy="content").path == "popular"
    popular = recommender.recommend([], limit=5, strategy="content").items
    # ordered by the local rating count (popular()'s score), never by TMDB's popularity
    assert [i.score for i in popular] == sorted((i.score for i in popular), reverse=True)
    assert popular[-1].score > 0
    one = recommender.recommend(heavy_users[0][:1], limit=5, strategy="content")
    assert one.path == "content_cold_start"
    assert heavy_users[0][0].movie_id not in {i.id for i in one.items}


def test_a_new_rating_changes_the_answer(recommender, heavy_users) -> None:
    ratings = heavy_users[1]
    before = recommender.recommend(ratings, limit=10, strategy="content")
    top = before.items[0]
    newer = [UserRating(top.id, 0.5, ratings[0].timestamp + DAY), *ratings]
    after = recommender.recommend(newer, limit=10, strategy="content")
    assert top.id not in {i.id for i in after.items}
    assert [i.id for i in after.items] != [i.id for i in before.items]


def test_similar_excludes_itself_and_search_finds_by_meaning(recommender) -> None:
    found = recommender.search("toys that come alive when nobody is watching", limit=5)
    assert found and found[0].title.startswith("Toy Story")
    similar = recommender.similar(found[0].id, limit=5)
    assert found[0].id not in {s.id for s in similar}
    assert [s.score for s in similar] == sorted((s.score for s in similar), reverse=True)
    with pytest.raises(InvalidInputError):
        recommender.similar(found[0].id, vector="image")  # the demo has no posters
    with pytest.raises(NotFoundError):
        recommender.similar(10**9)


def test_explain_splits_similarity_into_text_and_image(recommender, heavy_users) -> None:
    ratings = heavy_users[2]
    target = recommender.recommend(ratings, limit=1, strategy="content").items[0]
    why = recommender.explain(ratings, target.id, strategy="content")
    assert why.similarity > 0
    assert why.text_share + why.image_share == pytest.approx(1.0)
    assert 3 <= len(why.related) <= 5
    assert [r.similarity for r in why.related] == sorted((r.similarity for r in why.related), reverse=True)
    assert target.title in why.sentence


def test_explaining_a_movie_the_user_rated_or_hid_says_so(recommender, heavy_users) -> None:
    """A movie the user rated is never recommended to them; asked why anyway (the dashboard's
    Users page, a client listing the user's ratings), the sentence says they rated it, not "a
    popular pick" beside a similarity computed without it (a 4.5★ movie read "not close to your
    taste"). The same for a hidden movie."""
    ratings = heavy_users[0]
    loved = next(r for r in ratings if r.rating >= 4.5)
    hidden_id = recommender.recommend(ratings, limit=1).items[0].id
    for strategy in ("content", "hybrid"):
        why = recommender.explain(ratings, loved.movie_id, strategy=strategy)
        assert f"you rated it {loved.rating:.1f}★" in why.sentence, why.sentence
        assert "popular pick" not in why.sentence
        hid = recommender.explain(ratings, hidden_id, strategy=strategy, hidden=[HiddenMovie(hidden_id, 1)])
        assert "you hid it" in hid.sentence and "liked" not in hid.sentence, hid.sentence
    only = recommender.explain([loved], loved.movie_id)  # their one rating: not "you have no ratings yet"
    assert f"you rated it {loved.rating:.1f}★" in only.sentence, only.sentence
    # Beside one dislike, nothing liked is left to compare with: no "similarity 0.00" clause.
    disliked = next(r for r in ratings if r.rating <= 1.5)
    beside = recommender.explain([loved, disliked], loved.movie_id)
    assert "similarity" not in beside.sentence and "you rated it" in beside.sentence, beside.sentence


def test_collab_strategies_fall_back_to_content_without_collab_vectors(tmp_path, text_encoder, heavy_users) -> None:
    settings = make_settings(tmp_path / "data")
    build_index(settings, text_encoder, "demo", limit=DEMO_LIMIT, collab=False)  # no collab vectors at all
    live = LiveIndex(open_store(settings))
    try:
        recommender = Recommender(live.current, lambda q: text_encoder.encode([q])[0])
        for strategy in ("collab", "hybrid"):
            result = recommender.recommend(heavy_users[0], strategy=strategy)
            assert (result.strategy, result.path) == (strategy, "content")
            assert result.items
    finally:
        live.close()


def test_collab_and_hybrid_use_the_collab_vectors(recommender, heavy_users) -> None:
    for strategy in ("collab", "hybrid"):
        result = recommender.recommend(heavy_users[0], strategy=strategy, limit=10)
        assert (result.strategy, result.path) == (strategy, strategy) and len(result.items) == 10


def test_balance_normalises_likes_and_dislikes_separately() -> None:
    from app.recommend.user_vector import balance

    w = balance(np.array([2.0, 1.0, -1.0, -1.0, -1.0, -1.0]), dislike_weight=0.5)
    assert np.allclose(w, [2 / 3, 1 / 3, -0.125, -0.125, -0.125, -0.125])
    # Many dislikes no longer outweigh a few likes: the vector still points towards what was liked.
    a, b = np.eye(2)
    vectors = np.stack([a, a, b, b, b, b])
    v = weighted_mean(vectors, balance(np.array([1.0, 1.0, -1.0, -1.0, -1.0, -1.0]), 0.5))
    assert v is not None and v @ a > 0 > v @ b


def test_vector_cache_answers_exactly_like_the_engine(live_index, text_encoder, heavy_users) -> None:
    from app.vectorstore.cache import CachedIndex

    index = live_index.current()  # shared with the other tests: not closed here
    cached = CachedIndex.wrap(index, max_points=10_000)
    assert isinstance(cached, CachedIndex)
    assert CachedIndex.wrap(index, max_points=10) is index  # too big to cache: served as is
    plain = Recommender(lambda: index, lambda q: text_encoder.encode([q])[0])
    fast = Recommender(lambda: cached, lambda q: text_encoder.encode([q])[0])
    for ratings in heavy_users:
        for strategy in ("content", "collab", "hybrid"):
            a = plain.recommend(ratings, strategy=strategy, filter=MovieFilter(year_min=1980))
            b = fast.recommend(ratings, strategy=strategy, filter=MovieFilter(year_min=1980))
            assert [(i.id, i.score, i.reason) for i in a.items] == [(i.id, i.score, i.reason) for i in b.items]
    ids = [r.movie_id for r in heavy_users[0][:20]] + [10**9]
    for got, want in zip(cached.retrieve(ids, ("combined",)), index.retrieve(ids, ("combined",)), strict=True):
        assert got.id == want.id and got.payload == want.payload
        assert np.array_equal(got.vectors["combined"], want.vectors["combined"])
    assert content_hashes(cached) == content_hashes(index)
    with pytest.raises(TypeError):
        cached.delete([1])
