"""Checks shared by the evaluation tests: a split is a partition of the ratings."""

from __future__ import annotations

import pandas as pd

from app.evaluation import splits


def rating_pairs(frame: pd.DataFrame) -> set[tuple[int, int]]:
    """The (user_id, movie_id) pairs of a ratings frame."""
    return set(zip(frame["user_id"], frame["movie_id"], strict=True))


def check_partition(ratings: pd.DataFrame, split: splits.Split) -> None:
    """Assert that train and test split `ratings` with no rating in both."""
    assert len(split.train) + len(split.test) == len(ratings)
    assert not rating_pairs(split.train) & rating_pairs(split.test)  # no test rating leaks into training
    assert rating_pairs(split.train) | rating_pairs(split.test) == rating_pairs(ratings)
