"""MovieLens as GroupLens ships it: a folder with movies.csv, ratings.csv, links.csv and tags.csv.

- movies.csv: movieId, title ("American President, The (1995)": article moved, year inside), genres
  ("A|B", "(no genres listed)").
- ratings.csv: userId, movieId, rating (0.5-5 stars), timestamp (unix seconds). Optional.
- links.csv: movieId, imdbId (digits, kept as "tt" + 7 digits), tmdbId. Optional.
- tags.csv: userId, movieId, tag, timestamp: a movie's distinct tags, most used first, become its
  keywords (at most MAX_KEYWORDS). Optional.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from app.catalog.models import Movie
from app.datasets.base import RowError, SourceCatalogue, SourceMovie, make_movie
from app.datasets.files import UnusableFileError, csv_records
from app.datasets.titles import display_title
from app.datasets.tmdb import BadFieldError, parse_int, parse_names, parse_text, read_ratings

NAME = "movielens"
MAX_KEYWORDS = 20
# "Toy Story (1995)"; a range "(2008–2009)" keeps its first year.
_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")


def parse_title(raw: str) -> tuple[str, int | None]:
    """('Toy Story (1995)') -> ('Toy Story', 1995); the article put back in front."""
    m = _YEAR_IN_TITLE.search(raw)
    title, year = (raw[: m.start()], int(m.group(1))) if m else (raw, None)
    return display_title(title) if title.strip() else "", year


def parse_movie(row: dict[str, Any]) -> Movie:
    """One movies.csv row; BadFieldError names an unparseable field."""
    mid = parse_int(row.get("movieId"), "movieId")
    if mid is None:
        raise BadFieldError("movieId", "missing id")
    title, year = parse_title(parse_text(row.get("title")) or "")
    return make_movie(id=mid, title=title, year=year, genres=parse_names(row.get("genres"), "genres"))


def _links(path: Path, errors: list[RowError], warnings: list[str]) -> dict[int, tuple[str | None, int | None]]:
    links = {}
    for line, row in csv_records(path, [("movieId",)], warnings, errors):
        try:
            mid = parse_int(row.get("movieId"), "movieId")
            imdb = parse_int(row.get("imdbId"), "imdbId")
            tmdb = parse_int(row.get("tmdbId"), "tmdbId")
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
            continue
        if mid is not None:
            links[mid] = (f"tt{imdb:07d}" if imdb is not None else None, tmdb)
    return links


def _tags(path: Path, errors: list[RowError], warnings: list[str]) -> dict[int, list[str]]:
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    spelling: dict[tuple[int, str], str] = {}
    for line, row in csv_records(path, [("movieId",), ("tag",)], warnings, errors):
        try:
            mid = parse_int(row.get("movieId"), "movieId")
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
            continue
        tag = " ".join((row.get("tag") or "").split())
        if mid is not None and tag:
            key = tag.casefold()  # "Pixar" and "pixar" are one keyword, first spelling kept
            spelling.setdefault((mid, key), tag)
            counts[mid][key] += 1
    return {mid: [spelling[mid, key] for key, _ in c.most_common(MAX_KEYWORDS)] for mid, c in counts.items()}


def load(directory: Path) -> SourceCatalogue:
    """Read a GroupLens folder; UnusableFileError when movies.csv is missing or unreadable."""
    directory = Path(directory)
    if not (directory / "movies.csv").is_file():
        raise UnusableFileError(
            str(directory), "no movies.csv in this folder", "give the folder GroupLens's zip unpacks to"
        )
    errors: list[RowError] = []
    warnings: list[str] = []
    movies = []
    path = directory / "movies.csv"
    for line, row in csv_records(path, [("movieId",), ("title",)], warnings, errors):
        try:
            movies.append(SourceMovie(parse_movie(row), line=line, file=path.name))
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
    optional = {name: directory / f"{name}.csv" for name in ("links", "tags", "ratings")}
    links = _links(optional["links"], errors, warnings) if optional["links"].is_file() else {}
    tags = _tags(optional["tags"], errors, warnings) if optional["tags"].is_file() else {}
    for item in movies:
        item.movie.imdb_id, item.movie.tmdb_id = links.get(item.movie.id, (None, None))
        item.movie.keywords = tags.get(item.movie.id, [])
    ratings = read_ratings(optional["ratings"], errors, warnings) if optional["ratings"].is_file() else []
    stats: dict[str, float | int | str] = {
        "movies_read": len(movies),
        "ratings": len(ratings),
        "linked_imdb": sum(1 for m in movies if m.movie.imdb_id),
        "linked_tmdb": sum(1 for m in movies if m.movie.tmdb_id),
        "with_keywords": sum(1 for m in movies if m.movie.keywords),
    }
    return SourceCatalogue(NAME, movies, ratings, errors, stats, warnings)
