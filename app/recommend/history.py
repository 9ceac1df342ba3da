"""The rating records the Recommender takes, made from choices that are not star ratings.

The Recommender knows one kind of history: `UserRating`s, newest first (as
`repository.user_ratings` returns them). A guest's liked and disliked movies and a user's hidden
("not interested") movies become such records here, so that they go through exactly the code a
stored user's ratings go through.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from app.catalog.repository import HiddenMovie, RatingColumns, UserRating, rating_column

LIKED_RATING = 5.0  # a guest's "liked": the top of the 0.5-5 scale
DISLIKED_RATING = 1.0  # a guest's "disliked": as a user who rates a film they dislike one star
# A hidden movie is a mild dislike: this many stars below the user's mean rating (a typical
# explicit dislike is 2-3 stars below it), never below the scale's 0.5 and never above
# HIDDEN_MAX_RATING, under the 2.75 midpoint that centres a short history (user_vector.SCALE_MIDPOINT):
# it must count as a dislike whichever centre the taste vector uses.
HIDDEN_BELOW_MEAN = 1.0
HIDDEN_MAX_RATING = 2.5
MIN_RATING = 0.5


def newest_first(records: Iterable[UserRating]) -> list[UserRating]:
    """The order `repository.user_ratings` returns: timestamp, then movie id, both descending."""
    return sorted(records, key=lambda r: (r.timestamp, r.movie_id), reverse=True)


def guest_history(liked: Sequence[int], disliked: Sequence[int], timestamp: int) -> list[UserRating]:
    """A visitor's choices as the ratings a stored user would have: liked = LIKED_RATING,
    disliked = DISLIKED_RATING, all at `timestamp` (unix seconds), so recency weighs them alike.
    A movie named twice counts once, as a stored user's rating of it would: a choice is a set."""
    rows = [UserRating(m, LIKED_RATING, timestamp) for m in dict.fromkeys(liked)]
    rows += [UserRating(m, DISLIKED_RATING, timestamp) for m in dict.fromkeys(disliked)]
    return newest_first(rows)


def with_hidden(ratings: Sequence[UserRating], hidden: Sequence[HiddenMovie]) -> Sequence[UserRating]:
    """`ratings` (newest first) plus each hidden movie the user has not rated, as a rating
    HIDDEN_BELOW_MEAN stars below the mean of their ratings (within MIN_RATING..HIDDEN_MAX_RATING),
    at the time it was hidden.

    A user without ratings gets no taste from hidden movies alone (a taste made only of
    dislikes points away from one film, not towards anything): their history stays empty, and
    the caller excludes the hidden movies from the answer, as it does for every user.

    The caller's own `ratings` object, not a copy, when nothing is added (no ratings, no hidden
    movie, or every hidden movie rated): do not change the result in place. RatingColumns stay
    columns (a heavy user's 5,000 rows are not turned into objects to merge a few hidden movies)."""
    if not ratings or not hidden:
        return ratings
    rated = set(rating_column(ratings, "movie_id").tolist())
    mean = sum(rating_column(ratings, "rating").tolist()) / len(ratings)  # Python's sum, as per record
    stars = max(MIN_RATING, min(mean - HIDDEN_BELOW_MEAN, HIDDEN_MAX_RATING))
    extra = [UserRating(h.movie_id, stars, h.timestamp) for h in hidden if h.movie_id not in rated]
    if not isinstance(ratings, RatingColumns):
        return newest_first([*ratings, *extra])
    if not extra:
        return ratings
    merged = np.concatenate([ratings.table, RatingColumns.of(extra).table])
    # newest_first's order: timestamp, then movie id, both descending (no two rows share a movie)
    return RatingColumns(merged[np.lexsort((merged["movie_id"], merged["timestamp"]))[::-1]])
