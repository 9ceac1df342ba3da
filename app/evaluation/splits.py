"""Train/test splits of a ratings table (columns user_id, movie_id, rating, timestamp), seeded.

- stratified: each user's ratings shuffled, round(25%) of them held out (Microsoft Recommenders'
  `python_stratified_split`, the split behind the published ml-100k numbers);
- temporal: each user's latest round(25%) held out. Ratings that share a second with the last
  training rating stay in training, so every test rating is strictly later than all of that
  user's training ratings;
- cold start: a sample of users whose training history is cut to a few random ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from app.names import SplitBy

TEST_RATIO = 0.25
SEED = 42
COLD_START_KEEP = 5
COLD_START_SHARE = 0.2  # of the evaluated users
NEW_USER_LENGTHS = (1, 2, 3, 5, 10)  # the new-user sweep: training histories cut to these lengths
NEW_MOVIE_SHARE = 0.15  # the new-movies protocol: this share of the movies loses its training ratings


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame


def stratified_split(
    ratings: pd.DataFrame, test_ratio: float = TEST_RATIO, seed: int = SEED, by: SplitBy = "user"
) -> Split:
    """`by="user"`: round(25%) of each user's ratings held out; `by="item"`: of each movie's (MSR's
    benchmark notebook, `python_stratified_split(filter_by="item")`)."""
    column = {"user": "user_id", "item": "movie_id"}[by]
    rng = np.random.default_rng(seed)
    order = ratings.assign(_key=rng.random(len(ratings)))
    position = order.groupby(column)["_key"].rank(method="first").to_numpy() - 1
    return _split_by_position(ratings, position, test_ratio, column=column)


def new_movies_split(
    ratings: pd.DataFrame, movie_ids: np.ndarray, share: float = NEW_MOVIE_SHARE, seed: int = SEED
) -> tuple[Split, set[int]]:
    """The user-stratified split, then a seeded `share` of the catalogue loses all its training
    ratings (the movies stay in the catalogue; their test ratings stay). Returns the split and them."""
    parts = stratified_split(ratings, seed=seed)
    ids = np.unique(movie_ids)
    new = np.random.default_rng(seed + 2).choice(ids, size=round(share * len(ids)), replace=False)
    return Split(parts.train[~parts.train["movie_id"].isin(new)].reset_index(drop=True), parts.test), set(new.tolist())


def temporal_split(ratings: pd.DataFrame, test_ratio: float = TEST_RATIO) -> Split:
    ordered = ratings.sort_values(["user_id", "timestamp", "movie_id"], kind="stable")
    position = ordered.groupby("user_id").cumcount().reindex(ratings.index).to_numpy()
    split = _split_by_position(ratings, position, test_ratio, from_end=True)
    # Ties at the boundary move to training: "later" must mean strictly later.
    last_train = split.train.groupby("user_id")["timestamp"].max()
    later = split.test["timestamp"].to_numpy() > split.test["user_id"].map(last_train).fillna(-np.inf).to_numpy()
    tied = split.test[~later]
    return Split(_sorted(pd.concat([split.train, tied])), _sorted(split.test[later]))


def _split_by_position(
    ratings: pd.DataFrame, position: np.ndarray, test_ratio: float, from_end: bool = False, column: str = "user_id"
) -> Split:
    """Hold out round(test_ratio x n) ratings per user (or movie): those of lowest position, or highest."""
    n = ratings.groupby(column)[column].transform("size").to_numpy()
    n_test = np.round(n * test_ratio)
    held_out = position >= n - n_test if from_end else position < n_test
    return Split(_sorted(ratings[~held_out]), _sorted(ratings[held_out]))


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["user_id", "timestamp", "movie_id"], kind="stable").reset_index(drop=True)


def sample_users(users: np.ndarray, n: int, seed: int = SEED) -> np.ndarray:
    """n of the users (all when n >= len), drawn reproducibly, sorted."""
    users = np.unique(users)
    if n >= len(users):
        return users
    return np.sort(np.random.default_rng(seed).choice(users, size=n, replace=False))


def cold_start(
    train: pd.DataFrame, candidates: np.ndarray, n_users: int, keep: int = COLD_START_KEEP, seed: int = SEED
) -> tuple[pd.DataFrame, np.ndarray]:
    """Cut the training history of `n_users` of the candidates (those with more than `keep`
    training ratings) to `keep` random ones. Returns the new training table and those users."""
    counts = train.groupby("user_id").size()
    eligible = np.intersect1d(candidates, counts[counts > keep].index.to_numpy())
    users = sample_users(eligible, n_users, seed)
    rng = np.random.default_rng(seed + 1)
    mine = train["user_id"].isin(users).to_numpy()
    key = pd.Series(rng.random(int(mine.sum())), index=train.index[mine])
    rank = key.groupby(train.loc[mine, "user_id"]).rank(method="first")
    dropped = rank.index[rank.to_numpy() > keep]
    return train.drop(index=dropped).reset_index(drop=True), users
