"""A seeded synthetic catalogue and ratings file in the tmdb source's format (MovieLens-shaped).

- movies.jsonl: id, title, release_date, genres, overview, popularity, vote_average, vote_count;
- ratings.csv: userId,movieId,rating,timestamp (epoch seconds), half-star ratings.

Item and user activity follow power laws (Zipf-like weights, exponents ITEM_ALPHA and USER_ALPHA),
timestamps are spread over 1996-2023 and each user's ratings lie in their own active window. A
(user, movie) pair appears at most once. The same seed gives the same bytes.

    .venv/bin/python bench/gen_ratings.py --out /tmp/scale --movies 5000 --users 50000 --ratings 4.1m
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from _common import log, parse_ints

ITEM_ALPHA, USER_ALPHA = 1.0, 0.8
GENRES = ["Action", "Comedy", "Drama", "Thriller", "Romance", "Horror", "Documentary", "Animation", "Crime"]
START, END = 820_454_400, 1_700_000_000  # 1996-01-01 .. 2023-11-14
CHUNK = 1_000_000


def zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities proportional to rank^-alpha, ranks shuffled over the ids."""
    w = 1.0 / np.arange(1, n + 1) ** alpha
    rng.shuffle(w)
    return w / w.sum()


def write_movies(path: Path, n: int, rng: np.random.Generator) -> None:
    with path.open("w") as f:
        for i in range(1, n + 1):
            record = {
                "id": i,
                "title": f"Synthetic Movie {i}",
                "release_date": f"{1950 + i % 74}-01-01",
                "genres": [GENRES[i % len(GENRES)], GENRES[(i * 7) % len(GENRES)]],
                "overview": f"A generated film number {i} about {GENRES[i % len(GENRES)].lower()}.",
                "popularity": round(float(rng.pareto(1.5)) + 1.0, 3),
                "vote_average": round(float(rng.uniform(4, 9)), 1),
                "vote_count": int(rng.integers(10, 20_000)),
            }
            f.write(json.dumps(record) + "\n")


def ratings_table(movies: int, users: int, ratings: int, seed: int) -> pa.Table:
    """`ratings` distinct (user, movie) pairs with power-law activity, half-star ratings, timestamps."""
    rng = np.random.default_rng(seed)
    item_p, user_p = zipf_weights(movies, ITEM_ALPHA, rng), zipf_weights(users, USER_ALPHA, rng)
    keys = np.zeros(0, dtype=np.int64)
    while len(keys) < ratings:  # draw more than needed, drop repeated pairs, until enough are distinct
        n = int((ratings - len(keys)) * 1.3) + 1000
        u = rng.choice(users, size=n, p=user_p).astype(np.int64) + 1
        m = rng.choice(movies, size=n, p=item_p).astype(np.int64) + 1
        keys = np.unique(np.concatenate([keys, u * (movies + 1) + m]))
    keys = rng.permutation(keys)[:ratings]
    user, movie = keys // (movies + 1), keys % (movies + 1)
    start = rng.integers(START, END - 86_400 * 365, size=users + 1)  # each user's first day
    ts = start[user] + rng.integers(0, 86_400 * 365, size=ratings)
    stars = np.clip(np.round(rng.normal(3.6, 1.0, size=ratings) * 2) / 2, 0.5, 5.0)
    order = np.lexsort((ts, user))  # MovieLens files are ordered by user, then time
    return pa.table({"userId": user[order], "movieId": movie[order], "rating": stars[order], "timestamp": ts[order]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Folder for movies.jsonl and ratings.csv.")
    parser.add_argument("--movies", type=int, default=5000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--ratings", default="4.1m", help="How many ratings, e.g. 1m, 4.1m, 25m.")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    n = round(float(args.ratings.lower().rstrip("m")) * 1_000_000) if args.ratings.lower().endswith("m") else None
    n = n or parse_ints(args.ratings)[0]
    args.out.mkdir(parents=True, exist_ok=True)
    write_movies(args.out / "movies.jsonl", args.movies, np.random.default_rng(args.seed))
    table = ratings_table(args.movies, args.users, n, args.seed)
    pacsv.write_csv(table, args.out / "ratings.csv", pacsv.WriteOptions(quoting_style="none"))
    log(f"{args.out}: {args.movies} movies, {table.num_rows} ratings of {args.users} users")


if __name__ == "__main__":
    main()
