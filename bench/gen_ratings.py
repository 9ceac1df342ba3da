"""A seeded synthetic catalogue and ratings file in the tmdb source's format (MovieLens-shaped).

- movies.jsonl: id, title, release_date, genres, overview, tagline, keywords, cast, director,
  runtime, original_language, popularity, vote_average, vote_count;
- ratings.csv: userId,movieId,rating,timestamp (epoch seconds), half-star ratings.

Item and user activity follow power laws (Zipf-like weights, exponents ITEM_ALPHA and USER_ALPHA);
no user's expected activity exceeds USER_CAP of the catalogue (MovieLens 25M's heaviest user rated
about half of it). Timestamps are spread over 1996-2023 and each user's ratings lie in their own
active window. A (user, movie) pair appears at most once. The same seed gives the same bytes.

    .venv/bin/python bench/gen_ratings.py --out /tmp/scale --movies 5000 --users 50000 --ratings 4.1m

`--movielens-dat` writes the same catalogue and ratings in MovieLens 1M's layout beside them too
(`movielens/movies.dat`, `movielens/ratings.dat`: `::`-separated, no header), for the `movielens` source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
from common import log, parse_ints

ITEM_ALPHA, USER_ALPHA = 1.0, 0.8
GENRES = ["Action", "Comedy", "Drama", "Thriller", "Romance", "Horror", "Documentary", "Animation", "Crime"]
START, END = 820_454_400, 1_700_000_000  # 1996-01-01 .. 2023-11-14
USER_CAP = 0.5  # the most a user is expected to rate, as a share of the catalogue
MARGIN = 0.02  # distinct pairs drawn beyond the target, in expectation, then trimmed at random
SLICE_CELLS = 200_000_000  # (user, movie) cells marked at once: a 200 MB boolean array
WORDS = [
    "love",
    "war",
    "city",
    "night",
    "river",
    "secret",
    "last",
    "long",
    "road",
    "heart",
    "king",
    "shadow",
    "summer",
    "winter",
    "dream",
    "family",
    "stranger",
    "house",
    "island",
    "storm",
    "fire",
    "ghost",
    "game",
    "ship",
    "train",
    "letter",
    "garden",
    "mirror",
    "empire",
    "journey",
    "song",
]
FIRST = [
    "Anna",
    "Ben",
    "Clara",
    "David",
    "Elena",
    "Frank",
    "Grace",
    "Hugo",
    "Ines",
    "Jack",
    "Kate",
    "Leo",
    "Maria",
    "Nina",
    "Omar",
    "Paul",
    "Rosa",
    "Sam",
    "Tara",
    "Victor",
]
LAST = [
    "Adams",
    "Brown",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jensen",
    "Kim",
    "Lopez",
    "Moreau",
    "Novak",
    "Olsen",
    "Park",
    "Rossi",
]


def zipf_weights(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities proportional to rank^-alpha, ranks shuffled over the ids."""
    w = 1.0 / np.arange(1, n + 1) ** alpha
    rng.shuffle(w)
    return w / w.sum()


def _name(rng: np.random.Generator) -> str:
    return f"{FIRST[rng.integers(len(FIRST))]} {LAST[rng.integers(len(LAST))]}"


def movie_record(i: int, rng: np.random.Generator) -> dict:
    """One movie in the tmdb source's format: every field it reads, from the seeded `rng`."""
    words = [WORDS[k] for k in rng.integers(len(WORDS), size=6)]
    genres = sorted({GENRES[k] for k in rng.integers(len(GENRES), size=int(rng.integers(1, 4)))})
    director = _name(rng)
    return {
        "id": i,
        "title": " ".join(w.capitalize() for w in words[: int(rng.integers(1, 4))]),
        "release_date": f"{int(1920 + 104 * rng.beta(4, 1.5))}-{int(rng.integers(1, 13)):02d}-01",
        "genres": genres,
        "overview": f"{genres[0]} story of a {words[3]} and a {words[4]}, directed by {director}; "
        f"the {words[5]} changes everything for those who remember it.",
        "tagline": f"Every {words[1]} has a {words[2]}.",
        "keywords": words[3:6],
        "cast": [_name(rng) for _ in range(int(rng.integers(2, 6)))],
        "director": director,
        "runtime": int(rng.integers(75, 180)),
        "original_language": "en" if rng.random() < 0.7 else str(rng.choice(["fr", "de", "ja", "es", "ko"])),
        "popularity": round(float(rng.pareto(1.5)) + 1.0, 3),
        "vote_average": round(float(rng.uniform(4, 9)), 1),
        "vote_count": int(rng.integers(10, 20_000)),
    }


def write_movies(path: Path, n: int, rng: np.random.Generator) -> None:
    """Movies 1..n as JSON Lines."""
    with path.open("w") as f:
        f.writelines(json.dumps(movie_record(i, rng)) + "\n" for i in range(1, n + 1))


def ratings_table(movies: int, users: int, ratings: int, seed: int) -> pa.Table:
    """`ratings` distinct (user, movie) pairs with power-law activity, half-star ratings, timestamps.

    Pairs are drawn with replacement from the product of the user and item weights, repeated pairs
    dropped, and `ratings` of the distinct ones kept at random. The number of draws is computed
    beforehand (`_draws_for`: MARGIN more distinct pairs than needed, in expectation), so the draws
    are made in one vectorised pass, slice by slice, with no redraw loop."""
    rng = np.random.default_rng(seed)
    item_p, user_p = zipf_weights(movies, ITEM_ALPHA, rng), zipf_weights(users, USER_ALPHA, rng)
    if ratings * user_p.max() > USER_CAP * movies:  # cap the heaviest users, give the rest what they lose
        user_p = capped(user_p, USER_CAP * movies / ratings)
    keys = _distinct_pairs(_draws_for(ratings * (1 + MARGIN), user_p, item_p), user_p, item_p, rng)
    if len(keys) < ratings:
        raise ValueError(f"{users} users x {movies} movies gave {len(keys)} distinct pairs, not {ratings}")
    keys = keys[np.sort(rng.choice(len(keys), size=ratings, replace=False))]
    user, movie = keys // (movies + 1), keys % (movies + 1)
    start = rng.integers(START, END - 86_400 * 365, size=users + 1)  # each user's first day
    ts = start[user] + rng.integers(0, 86_400 * 365, size=ratings)
    stars = np.clip(np.round(rng.normal(3.6, 1.0, size=ratings) * 2) / 2, 0.5, 5.0)
    order = np.lexsort((ts, user))  # MovieLens files are ordered by user, then time
    return pa.table({"userId": user[order], "movieId": movie[order], "rating": stars[order], "timestamp": ts[order]})


def _draws_for(distinct: float, user_p: np.ndarray, item_p: np.ndarray) -> int:
    """The number of pair draws whose expected count of distinct pairs is `distinct`.

    E(D) = sum_u g(D p_u) with g(c) = sum_m 1 - exp(-c q_m) (Poisson approximation, one user's
    c draws); g is tabulated once on a geometric grid, D found by bisection."""
    grid = np.geomspace(1e-3, 1e4 * len(item_p), 4096)
    g = np.array([len(item_p) - np.exp(-c * item_p).sum() for c in grid])

    def expected(draws: float) -> float:
        c = draws * user_p
        return float(np.where(c < grid[0], c, np.interp(c, grid, g)).sum())

    if expected(1e4 * len(item_p) / user_p.max() * 0.99) < distinct:
        raise ValueError(f"{len(user_p)} users x {len(item_p)} movies cannot give {distinct:.0f} distinct pairs")
    lo, hi = distinct, distinct
    while expected(hi) < distinct:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) < distinct else (lo, mid)
    return int(np.ceil(hi))


def _distinct_pairs(draws: int, user_p: np.ndarray, item_p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted distinct keys user * (movies + 1) + movie (ids from 1) of `draws` draws from user_p x
    item_p. Each user's number of draws is one multinomial; the users are then taken in slices of
    about SLICE_CELLS (user, movie) cells, where a boolean mark per cell drops the repeated pairs
    (no sort of all the draws)."""
    movies = len(item_p)
    per_user = rng.multinomial(draws, user_p)
    item_cdf = np.cumsum(item_p)
    step = max(1, SLICE_CELLS // (movies + 1))
    parts = []
    for lo in range(0, len(user_p), step):
        counts = per_user[lo : lo + step]
        user = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        movie = np.minimum(np.searchsorted(item_cdf, rng.random(len(user)) * item_cdf[-1], side="right"), movies - 1)
        seen = np.zeros(len(counts) * (movies + 1), dtype=bool)
        seen[user * (movies + 1) + movie + 1] = True
        parts.append(np.flatnonzero(seen) + (lo + 1) * (movies + 1))
    return np.concatenate(parts)


def capped(p: np.ndarray, cap: float) -> np.ndarray:
    """Probabilities `p` with none above `cap` (when cap * len(p) >= 1), the excess spread over the rest
    in proportion; shape as `p`."""
    p = p.copy()
    for _ in range(50):  # water filling: each pass caps the ones the last spread pushed over
        over = p > cap
        if not over.any():
            break
        excess = (p[over] - cap).sum()
        p[over] = cap
        free = p < cap
        p[free] += excess * p[free] / p[free].sum()
    return p / p.sum()


def generate(out: Path, movies: int, users: int, ratings: int, seed: int) -> pa.Table:
    """Write `out`/movies.jsonl and `out`/ratings.csv; returns the ratings table."""
    out.mkdir(parents=True, exist_ok=True)
    write_movies(out / "movies.jsonl", movies, np.random.default_rng(seed))
    table = ratings_table(movies, users, ratings, seed)
    pacsv.write_csv(table, out / "ratings.csv", pacsv.WriteOptions(quoting_style="none"))
    return table


def write_movielens_dat(out: Path, movies_jsonl: Path, table: pa.Table) -> None:
    """`out`/movies.dat (MovieID::Title (Year)::Genres, Latin-1) and `out`/ratings.dat
    (UserID::MovieID::Rating::Timestamp) of the same movies and ratings, as ml-1m writes them."""
    out.mkdir(parents=True, exist_ok=True)
    with movies_jsonl.open() as f, (out / "movies.dat").open("w", encoding="latin-1", errors="replace") as dat:
        for line in f:
            m = json.loads(line)
            year = str(m.get("release_date") or "")[:4]
            dat.write(f"{m['id']}::{m['title']}{f' ({year})' if year else ''}::{'|'.join(m.get('genres') or [])}\n")
    options = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    with (out / "ratings.dat").open("wb") as dat:
        for start in range(0, table.num_rows, 1_000_000):  # a million rows through memory at a time
            buffer = pa.BufferOutputStream()
            pacsv.write_csv(table.slice(start, 1_000_000), buffer, options)
            dat.write(buffer.getvalue().to_pybytes().replace(b"\t", b"::"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="Folder for movies.jsonl and ratings.csv.")
    parser.add_argument("--movies", type=int, default=5000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--ratings", default="4.1m", help="How many ratings, e.g. 1m, 4.1m, 25m.")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--movielens-dat", action="store_true", help="Also write OUT/movielens in ml-1m's layout.")
    args = parser.parse_args()
    n = round(float(args.ratings.lower().rstrip("m")) * 1_000_000) if args.ratings.lower().endswith("m") else None
    n = n or parse_ints(args.ratings)[0]
    table = generate(args.out, args.movies, args.users, n, args.seed)
    log(f"{args.out}: {args.movies} movies, {table.num_rows} ratings of {args.users} users")
    if args.movielens_dat:
        write_movielens_dat(args.out / "movielens", args.out / "movies.jsonl", table)


if __name__ == "__main__":
    main()
