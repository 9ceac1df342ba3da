"""Time the collab fit alone (app/embedding/collab.py::item_vectors) on a ratings file or on a
synthetic matrix from bench/gen_ratings.py, and report its coverage: how many movies have at least
MOVIEREC_COLLAB_MIN_RATINGS ratings, and whether every one of them got a rating-fitted vector.

    .venv/bin/python bench/collab_fit.py --csv /tmp/scale/ratings.csv
    .venv/bin/python bench/collab_fit.py --movies 62000 --users 162000 --ratings 25m
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
from common import log, parse_ints
from gen_ratings import ITEM_ALPHA, USER_ALPHA, zipf_weights

from app.embedding import collab
from app.settings import get_settings
from app.vectorstore import COLLAB_DIM


def pairs(movies: int, users: int, ratings: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`ratings` distinct (user, movie) pairs drawn from gen_ratings.py's power laws. One oversized
    draw, deduplicated: gen_ratings.py redraws until every pair is distinct, which at 25M ratings
    and 162k users takes far longer than the fit (the heaviest users' pairs repeat)."""
    rng = np.random.default_rng(seed)
    item_p, user_p = zipf_weights(movies, ITEM_ALPHA, rng), zipf_weights(users, USER_ALPHA, rng)
    draw = int(ratings * 2.0)
    keys = np.unique(
        rng.choice(users, size=draw, p=user_p).astype(np.int64) * (movies + 1)
        + rng.choice(movies, size=draw, p=item_p)
        + 1
    )
    keys = rng.permutation(keys)[:ratings]
    return keys // (movies + 1) + 1, keys % (movies + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", type=Path, help="A ratings.csv (userId,movieId,...); else a synthetic one.")
    parser.add_argument("--movies", type=int, default=62_000)
    parser.add_argument("--users", type=int, default=162_000)
    parser.add_argument("--ratings", default="25m", help="Synthetic size, e.g. 1m, 25m.")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    if args.csv:
        table = pacsv.read_csv(args.csv, convert_options=pacsv.ConvertOptions(include_columns=["userId", "movieId"]))
        users, movies = table["userId"].to_numpy(), table["movieId"].to_numpy()
        del table
    else:
        users, movies = pairs(args.movies, args.users, parse_ints(args.ratings)[0], args.seed)
    min_ratings = get_settings().collab_min_ratings
    started = time.perf_counter()
    vectors = collab.item_vectors(users, movies, COLLAB_DIM, min_ratings=min_ratings)
    seconds = time.perf_counter() - started
    ids, counts = np.unique(movies, return_counts=True)  # the generator writes each pair once
    eligible = set(ids[counts >= min_ratings].tolist())
    at20 = set(ids[counts >= 20].tolist())
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    log(
        f"{len(movies):,} ratings, {len(ids):,} rated movies: fit {seconds:.1f} s, peak RSS {peak_gb:.1f} GB; "
        f"rating-fitted vectors {len(vectors):,} (>= {min_ratings} ratings: {len(eligible):,}, all covered: "
        f"{eligible <= vectors.keys()}; >= 20 ratings: {len(at20):,}, all covered: {at20 <= vectors.keys()})"
    )


if __name__ == "__main__":
    main()
