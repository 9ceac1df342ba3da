"""What every catalogue source produces, and the one validation all sources share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from app.catalog.genres import clean_genres, genre_key
from app.catalog.models import MAX_ID, Movie
from app.catalog.rating_rules import RULE, valid_ratings


@dataclass(frozen=True)
class RowError:
    """A bad input row: reported with where it came from, then skipped. `line` is the file line
    where the row starts (header = line 1), or, with unit "record", the 1-based index of a JSON
    list's object or of a packaged dataset's row."""

    file: str
    line: int
    field: str
    message: str
    unit: Literal["line", "record"] = "line"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.unit == "line" else f"{self.file}: record {self.line}"
        return f"{where}: {self.field}: {self.message}"


class RowErrorSink(Protocol):
    """Where a reader puts the rows it refuses, in file order: a list, or a collector that counts
    them and keeps only the first few (app.datasets.history's)."""

    def append(self, error: RowError, /) -> None: ...


@dataclass(frozen=True)
class RatingRow:
    user_id: int
    movie_id: int
    rating: float
    timestamp: int | None  # unix seconds (or ms, converted on import); None: not given, the import time
    line: int = 0  # 1-based line in the source file (header = line 1), 0 when not from a file
    file: str = ""
    unit: Literal["line", "record"] = "line"  # "record": `line` is the row's index in a packaged dataset


@dataclass(frozen=True)
class RatingsLayout:
    """How a ratings file without a header is written (MovieLens's older `ratings.dat`, `u.data`):
    the separator as written ('::', a tab; never quoted) and the columns in file order, named as a
    ratings CSV's header names them (userId, movieId, rating, timestamp)."""

    separator: str
    columns: tuple[str, ...] = ("userId", "movieId", "rating", "timestamp")


@dataclass
class SourceMovie:
    movie: Movie
    line: int = 0
    file: str = ""
    unit: Literal["line", "record"] = "line"


# The per-movie figures a source reports in its stats, defined once: `apply_limit` recounts them
# over the movies a --limit keeps.
MOVIE_COUNTS: dict[str, Callable[[Movie], bool]] = {
    "linked_imdb": lambda m: bool(m.imdb_id),
    "linked_tmdb": lambda m: bool(m.tmdb_id),
    "with_keywords": lambda m: bool(m.keywords),
    "with_credits": lambda m: bool(m.cast or m.director),
    "with_poster_source": lambda m: bool(m.poster),
}


def rows_read(movies: Sequence[SourceMovie], bad_rows: Sequence[RowError]) -> int:
    """A movies file's data rows (its `movies_read`): the movies parsed, and the rows refused while
    parsing (`bad_rows`: the RowErrors reading that file added; a row reported twice counts once).
    Kaggle's rows with a date in `id` are rows read: 6 rows, one of them bad, are 6 read."""
    return len(movies) + len({(e.file, e.line, e.unit) for e in bad_rows})


def movie_counts(movies: Sequence[SourceMovie], *names: str) -> dict[str, int]:
    """{name: how many of `movies` have it} for names of MOVIE_COUNTS."""
    return {name: sum(1 for item in movies if MOVIE_COUNTS[name](item.movie)) for name in names}


@dataclass
class SourceCatalogue:
    """A source's movies and ratings, before validation."""

    name: str
    movies: list[SourceMovie]
    ratings: list[RatingRow]
    errors: list[RowError] = field(default_factory=list)
    # match rates and other facts the ingest summary reports, e.g. {"metadata_match_rate": 0.79}
    stats: dict[str, float | int | str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # file-level notes, e.g. an encoding guessed
    movies_file: str | None = None  # the movies file's name, for messages about it as a whole
    # A ratings CSV (userId, movieId, rating[, timestamp]) the ingest streams through its bulk path
    # (ingest/ratings.py) instead of `ratings`: a folder source's ratings.csv, 25M rows in ml-25m.
    ratings_file: Path | None = None
    limited: bool = False  # `--limit` kept some movies: ratings_file's rows of the others are dropped
    # ratings_file's movie ids are MovieLens ids, mapped to the catalogue's through these links
    # ({MovieLens id: catalogue id}: movies-dataset's links.csv); an id without one is a row error.
    ratings_links: dict[int, int] | None = None
    # ratings_file has no header: how it is written (ml-1m's `ratings.dat`: '::'). None: a CSV with a header.
    ratings_layout: RatingsLayout | None = None
    # ratings_file's scale as the source defines it: 5 (0.5-5 stars: MovieLens, and the movies-dataset's
    # MovieLens ratings), a rating outside it a row error, never rescaled. None: a file of unknown
    # origin (`--ratings`), its scale given (`--rating-scale`) or detected from its first block.
    rating_scale: int | None = None


def validate(catalogue: SourceCatalogue) -> tuple[list[Movie], list[RatingRow], list[RowError]]:
    """Drop bad rows, each reported once with where it came from, in file order.

    Movies: an id outside 1..MAX_ID (what the API, the database and the index can all hold), a
    missing title (named by the movie's id) or a repeated id is a row error. Genres are cleaned
    (see app.catalog.genres) and spelled the same across the catalogue: the first spelling seen of
    each case- and space-insensitive name wins. TMDB's vote_average 0 with no votes means "no votes":
    None. Nothing is filled from the ratings: local statistics are the database's (repository).
    """
    errors = list(catalogue.errors)
    movies: dict[int, Movie] = {}
    spelling: dict[str, str] = {}
    for item in catalogue.movies:
        if (problem := _movie_problem(item.movie, movies)) is not None:
            errors.append(RowError(item.file, item.line, problem[0], problem[1], item.unit))
            continue
        m = item.movie
        m.genres = [spelling.setdefault(genre_key(g), g) for g in clean_genres(m.genres)]
        if m.vote_average == 0 and not m.vote_count:
            m.vote_average = None
        movies[m.id] = m
    ratings: list[RatingRow] = []
    stars = np.array([r.rating if isinstance(r.rating, int | float) else np.nan for r in catalogue.ratings])
    for r, ok in zip(catalogue.ratings, valid_ratings(stars), strict=True):
        if not ok:
            errors.append(RowError(r.file, r.line, "rating", f"{RULE}: {r.rating!r}", r.unit))
        elif not 1 <= r.user_id <= MAX_ID:
            errors.append(RowError(r.file, r.line, "userId", f"user id {r.user_id} outside 1..{MAX_ID}", r.unit))
        elif r.movie_id not in movies:
            errors.append(RowError(r.file, r.line, "movieId", f"unknown movie id {r.movie_id}", r.unit))
        else:
            ratings.append(r)
    return list(movies.values()), ratings, errors


def _movie_problem(m: Movie, seen: dict[int, Movie]) -> tuple[str, str] | None:
    """(field, message) of what makes a movie unusable, or None."""
    if not 1 <= m.id <= MAX_ID:
        return "id", f"movie id {m.id} outside 1..{MAX_ID}"
    if not (m.title or "").strip():
        return "title", f"missing title (movie id {m.id})"
    if m.id in seen:
        return "id", f"duplicate movie id {m.id}"
    return None


def make_movie(**fields: Any) -> Movie:
    """Movie(...) with its list fields always passed: left to SQLModel's default_factory, each one
    costs a signature inspection, about 0.3 ms per movie, seconds on a full catalogue."""
    for name in ("genres", "keywords", "cast"):
        fields.setdefault(name, [])
    return Movie(**fields)
