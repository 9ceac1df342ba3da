"""A user's taste as one vector: the weighted average of their recent movies' vectors.

weight = rating weight x recency weight
- The rating weight is centred on the user's own mean, so dislikes push away; a short history's mean
  says little, so it is shrunk towards the scale's midpoint (`rating_centre`, a damped mean).
- The recency weight halves every `half_life_days`, measured back from the newest rating (the
  average is normalised, so only relative age matters, and old datasets do not underflow).

The collab vector uses the same weights (without centring where that measured better, see
app/recommend/tuning.py), the newest few boosted (`boost_recent`), each scaled mildly by its stars
(`star_weights`) and discounted by its factor norm (`norm_weights`), over the factor part of the
movies' collab vectors; see `collab_vector`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.catalog.repository import UserRating, rating_column
from app.embedding import collab

SCALE_MIDPOINT = 2.75  # of 0.5-5.0: 3 stars and up count as liked for a brand-new user
# rating_centre: the scale's midpoint counts as this many ratings beside the user's own. Four favourites
# at 4-5 stars (a Letterboxd import) centre at 3.2, so the 4-star one still counts as liked (their own
# mean, 4.5, made it a dislike); a 500-rating history centres within 0.03 stars of its own mean.
MEAN_PRIOR_RATINGS = 10.0
SECONDS_PER_DAY = 86_400.0
STAR_CENTRE = 3.0  # star_weights: the rating that weighs 1 in the collab vector
# star_weights: a rating this low (a guest's "disliked" is 1) weighs nothing in the collab vector, so
# disliking a movie never draws its neighbours in. Validation NDCG@10 (bench/tune_first_contact.py
# --part warm, seeds 1-3, paired difference ± standard error): ml-100k item split -0.0003±0.0006,
# demo -0.0006±0.0005; cutting at 2 stars cost -0.0016 / -0.0018.
DISLIKED_MAX = 1.0
# norm_weights: a factor norm below this (of the largest, 1 as stored) weighs as if it were this, so a
# movie with a tiny vector (content-predicted, or rated by nearly no one) cannot outweigh the rest.
NORM_FLOOR = 0.1


def mean_rating(ratings: Sequence[UserRating]) -> float:
    """The mean of the ratings' stars (NaN for none), as float64 over their column (rating_column)."""
    return float(rating_column(ratings, "rating").mean())


@dataclass(frozen=True)
class TasteWeights:
    movie_ids: list[int]
    weights: np.ndarray  # one per movie id, signed


def rating_centre(n_ratings: int, mean: float) -> float:
    """The stars that weigh 0 for a user with `n_ratings` ratings of `mean` stars: their mean damped
    towards SCALE_MIDPOINT, (n mean + m midpoint) / (n + m) with m = MEAN_PRIOR_RATINGS (the damped
    mean of Funk's and Koren's baseline predictors). Above it a rating is a like, below a dislike."""
    return (n_ratings * mean + MEAN_PRIOR_RATINGS * SCALE_MIDPOINT) / (n_ratings + MEAN_PRIOR_RATINGS)


def taste_weights(
    history: Sequence[UserRating], all_ratings_mean: float, half_life_days: float | None, centre: bool = True
) -> TasteWeights:
    """Weights for the (newest-first) history; the mean is over all the user's ratings.
    `centre=False`: every rated movie counts as liked (weight 1 x recency); `half_life_days=None`: no decay.
    The fields are read as columns (rating_column: a heavy user's 1,000-rating collab history), and the
    ages only when they decay; float64 throughout, so the weights are the per-record arithmetic's."""
    n = len(history)
    if not n:
        return TasteWeights([], np.zeros(0, dtype=np.float32))
    ratings = rating_column(history, "rating")
    midpoint = rating_centre(n, all_ratings_mean)
    rating_w = ratings - midpoint if centre else np.ones_like(ratings)
    if not np.any(np.abs(rating_w) > 1e-9):
        rating_w = np.ones_like(ratings)  # a user who rates everything alike likes it all alike
    if half_life_days:
        stamps = rating_column(history, "timestamp").astype(np.float64)  # exact: unix seconds < 2^53
        rating_w = rating_w * np.power(0.5, (stamps.max() - stamps) / SECONDS_PER_DAY / half_life_days)
    return TasteWeights(rating_column(history, "movie_id").tolist(), rating_w.astype(np.float32))


def boost_recent(weights: np.ndarray, recent: int, boost: float) -> np.ndarray:
    """The weights of a newest-first history with its first `recent` scaled by 1 + `boost`: the
    latest ratings say most about the next ones (order, not age: ratings come in sessions)."""
    out = weights.astype(np.float32).copy()
    out[:recent] *= 1.0 + boost
    return out


def star_weights(weights: np.ndarray, stars: np.ndarray, slope: float, centre: float = STAR_CENTRE) -> np.ndarray:
    """`weights` x (1 + slope x (stars - centre)), never below 0: every rated movie still counts
    as evidence of taste (uncentred collab), a loved one a little more than a disliked one; one
    rated DISLIKED_MAX or less counts for nothing (an explicit dislike must not attract)."""
    given = np.asarray(stars, dtype=np.float64)
    factor = np.maximum(1.0 + slope * (given - centre), 0.0)
    factor[given <= DISLIKED_MAX] = 0.0
    return (weights.astype(np.float64) * factor).astype(np.float32)


def norm_weights(weights: np.ndarray, stored: np.ndarray, power: float, floor: float = NORM_FLOOR) -> np.ndarray:
    """`weights` x max(|f_i|, floor)^-power, f_i the factor part of each movie's stored collab vector
    (rows): an IDF on the query side. A broadly liked movie has long factors (log |f| and log rating
    count correlate 0.99 on ml-100k) and says less about this user's taste than a rarer one."""
    if power == 0:  # no discount (short histories): skip the norms of up to 1,000 stored vectors
        return weights.astype(np.float32)
    norms: np.ndarray = np.linalg.norm(np.asarray(collab.factor_part(stored), dtype=np.float64), axis=-1)
    out: np.ndarray = (weights.astype(np.float64) * np.maximum(norms, floor) ** -power).astype(np.float32)
    return out


def balance(weights: np.ndarray, dislike_weight: float) -> np.ndarray:
    """Rocchio's weighting: likes and dislikes each normalised to their own total, dislikes then
    scaled by `dislike_weight`. A user who rates most movies below their mean would otherwise get a
    vector that mostly points away from the typical movie, and every candidate would score below 0."""
    out = weights.astype(np.float64).copy()
    pos, neg = out > 0, out < 0
    if pos.any():
        out[pos] /= out[pos].sum()
    if neg.any():
        out[neg] *= dislike_weight / -out[neg].sum()
    return out.astype(np.float32)


def weighted_mean(vectors: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """Unit-length weighted sum of row vectors; None when they cancel out."""
    if len(vectors) == 0:
        return None
    v = (weights[:, None] * vectors).sum(axis=0)
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 1e-6 else None


def collab_vector(stored: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The user's collab query from their movies' stored collab vectors (rows): the weighted sum of
    the factor parts, with 0 in the norm coordinate, so the engine's cosine ranks movies by
    Σ w_i v_i·v_j, i.e. EASE's score (app/embedding/collab.py). None when the sum vanishes."""
    if len(stored) == 0:
        return None
    return collab.as_query(weights.astype(np.float64) @ collab.factor_part(stored).astype(np.float64))
