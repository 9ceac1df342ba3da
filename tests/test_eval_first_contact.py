"""The evaluation protocols of issue 11 leak nothing: the item-stratified split, the new-movies
protocol, the new-user sweep's cut histories; and the EASE baseline and seed averaging."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.evaluation import baselines, splits
from app.evaluation.runner import _mean_rows
from tests.helpers.evaluation import check_partition, rating_pairs


def test_item_split_holds_out_a_quarter_of_each_movie(ml100k: pd.DataFrame) -> None:
    split = splits.stratified_split(ml100k, by="item")
    check_partition(ml100k, split)  # a partition: no test rating in training
    n = ml100k.groupby("movie_id").size()
    held = split.test.groupby("movie_id").size().reindex(n.index, fill_value=0)
    assert (held == np.round(n * splits.TEST_RATIO)).all()
    assert not split.test.equals(splits.stratified_split(ml100k).test)  # not the user split


def test_new_movies_lose_every_training_rating_and_keep_their_test_ones(ml100k: pd.DataFrame) -> None:
    parts, new = splits.new_movies_split(ml100k, ml100k["movie_id"].to_numpy())
    movies = ml100k["movie_id"].nunique()
    assert len(new) == round(splits.NEW_MOVIE_SHARE * movies)
    assert not set(parts.train["movie_id"]) & new  # no training rating on a new movie
    assert not rating_pairs(parts.train) & rating_pairs(parts.test)
    user_split = splits.stratified_split(ml100k)
    assert parts.test.equals(user_split.test)  # the test part is the user split's, new movies included
    assert set(parts.test["movie_id"]) & new
    again, new_again = splits.new_movies_split(ml100k, ml100k["movie_id"].to_numpy())
    assert new_again == new and again.train.equals(parts.train)  # seeded
    assert splits.new_movies_split(ml100k, ml100k["movie_id"].to_numpy(), seed=1)[1] != new


@pytest.mark.parametrize("keep", splits.NEW_USER_LENGTHS)
def test_new_user_sweep_cuts_histories_from_training_only(ml100k: pd.DataFrame, keep: int) -> None:
    split = splits.stratified_split(ml100k)
    users = np.array(sorted(split.test["user_id"].unique()))
    cut, chosen = splits.cold_start(split.train, users, 40, keep=keep)
    sizes = cut[cut["user_id"].isin(chosen)].groupby("user_id").size()
    assert len(chosen) == 40 and (sizes == keep).all()
    assert rating_pairs(cut) <= rating_pairs(split.train)  # a subset of training: nothing of the test part


def test_ease_baseline_ranks_unrated_movies_and_beats_popularity(ml100k: pd.DataFrame) -> None:
    from app.evaluation.metrics import ndcg_at_k

    split = splits.stratified_split(ml100k)
    cat = baselines.CandidatePool(sorted(ml100k["movie_id"].unique()), split.train)
    users = [int(u) for u in splits.sample_users(np.array(sorted(split.test["user_id"].unique())), 150)]
    relevant = {int(u): set(g) for u, g in split.test.groupby("user_id")["movie_id"]}
    ease, pop = baselines.ease(cat, users, 10), baselines.popularity(cat, users, 10)
    for u in users:
        assert len(ease[u]) == 10 and not set(ease[u]) & set(split.train.loc[split.train["user_id"] == u, "movie_id"])
    score = {name: np.mean([ndcg_at_k(r[u], relevant[u], 10) for u in users]) for name, r in (("e", ease), ("p", pop))}
    assert score["e"] > 1.5 * score["p"]


def test_seed_means_and_deviations() -> None:
    runs = [[{"strategy": "x", "ndcg": 0.4, "history": 1}], [{"strategy": "x", "ndcg": 0.6, "history": 1}]]
    assert _mean_rows(runs) == [{"strategy": "x", "ndcg": 0.5, "ndcg_std": 0.1, "history": 1}]
