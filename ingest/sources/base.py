"""What every catalogue source produces, and the one validation all sources share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from app.catalog.models import Movie
from app.catalog.rating_rules import RULE, valid_ratings


@dataclass(frozen=True)
class RowError:
    """A bad input row: reported with where it came from, then skipped."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class RatingRow:
    user_id: int
    movie_id: int
    rating: float
    timestamp: int | None  # unix seconds (or ms, converted on import); None: not given, the import time
    line: int = 0  # 1-based line in the source file (header = line 1), 0 when not from a file
    file: str = ""


@dataclass
class SourceMovie:
    movie: Movie
    line: int = 0
    file: str = ""


@dataclass
class Catalogue:
    """A source's movies and ratings, before validation."""

    name: str
    movies: list[SourceMovie]
    ratings: list[RatingRow]
    errors: list[RowError] = field(default_factory=list)
    # match rates and other facts the ingest summary reports, e.g. {"metadata_match_rate": 0.79}
    stats: dict[str, float | int] = field(default_factory=dict)


def validate(
    catalogue: Catalogue, rating_totals: Callable[[list[int]], Mapping[int, tuple[int, float]]] | None = None
) -> tuple[list[Movie], list[RatingRow], list[RowError]]:
    """Drop bad rows (each reported with its line), fill popularity from ratings where a source has none.
    `rating_totals`: given the valid movie ids, {movie id: (count, sum of stars)} of ratings read
    elsewhere (a streamed ratings file, ingest/ratings.py), used instead of `catalogue.ratings`."""
    errors = list(catalogue.errors)
    movies: dict[int, Movie] = {}
    for item in catalogue.movies:
        m = item.movie
        if not (m.title or "").strip():
            errors.append(RowError(item.file, item.line, "title", "missing title"))
            continue
        if m.id in movies:
            errors.append(RowError(item.file, item.line, "id", f"duplicate movie id {m.id}"))
            continue
        movies[m.id] = m
    ratings: list[RatingRow] = []
    ok = valid_ratings(np.array([r.rating for r in catalogue.ratings], dtype=np.float64))
    for r, valid in zip(catalogue.ratings, ok, strict=True):
        if not valid:
            errors.append(RowError(r.file, r.line, "rating", f"{RULE}: {r.rating!r}"))
        elif r.movie_id not in movies:
            errors.append(RowError(r.file, r.line, "movieId", f"unknown movie id {r.movie_id}"))
        else:
            ratings.append(r)
    totals = rating_totals(list(movies)) if rating_totals is not None else _totals(ratings)
    _fill_popularity(movies, totals)
    return list(movies.values()), ratings, errors


def _totals(ratings: list[RatingRow]) -> dict[int, tuple[int, float]]:
    total: dict[int, float] = defaultdict(float)
    count: dict[int, int] = defaultdict(int)
    for r in ratings:
        total[r.movie_id] += r.rating
        count[r.movie_id] += 1
    return {mid: (n, total[mid]) for mid, n in count.items()}


def _fill_popularity(movies: dict[int, Movie], totals: Mapping[int, tuple[int, float]]) -> None:
    """MovieLens has no TMDB popularity: use the rating count and mean instead."""
    for mid, m in movies.items():
        n, total = totals.get(mid, (0, 0.0))
        if m.vote_count is None:
            m.vote_count = n
        if m.vote_average is None and n:
            m.vote_average = round(total / n, 3)
        if m.popularity is None:
            m.popularity = float(n)


def make_movie(**fields: object) -> Movie:
    """Movie(...) with its list fields always passed: left to SQLModel's default_factory, each one
    costs a signature inspection, about 0.3 ms per movie, seconds on a full catalogue."""
    for name in ("genres", "keywords", "cast"):
        fields.setdefault(name, [])
    return Movie(**fields)
