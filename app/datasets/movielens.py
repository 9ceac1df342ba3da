"""MovieLens as GroupLens ships it: a folder with movies.csv, ratings.csv, links.csv and tags.csv
(ml-latest, ml-latest-small, ml-20m, ml-25m, ml-32m); the older layouts are read too:

- ml-1m and ml-10m: movies.dat (MovieID::Title::Genres) and ratings.dat
  (UserID::MovieID::Rating::Timestamp), `::`-separated, no header, Latin-1 in ml-1m;
- ml-100k: u.item (id|title|release date|video release date|IMDb URL|19 genre flags, Latin-1,
  genre names in u.genre) and u.data (user, item, rating, timestamp, tab-separated, no header).
  Their ratings files are streamed by the ingest's bulk path as ratings.csv is (`ratings_file`,
  its `ratings_layout` saying how it is written).

- movies.csv: movieId, title ("American President, The (1995)": article moved, year inside), genres
  ("A|B", "(no genres listed)").
- ratings.csv: userId, movieId, rating (0.5-5 stars), timestamp (unix seconds). Optional; handed
  to the ingest's bulk path as `ratings_file` (25M rows in ml-25m: never a Python object per row).
- links.csv: movieId, imdbId (digits, kept as "tt" + 7 digits), tmdbId. Optional.
- tags.csv: userId, movieId, tag, timestamp: a movie's distinct tags, most used first, become its
  keywords (at most MAX_KEYWORDS). Optional.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.catalog.models import Movie
from app.datasets.base import (
    RatingsLayout,
    RowError,
    SourceCatalogue,
    SourceMovie,
    make_movie,
    movie_counts,
    rows_read,
)
from app.datasets.files import UnusableFileError, csv_records, detect_encoding
from app.datasets.titles import display_title
from app.datasets.tmdb import BadFieldError, parse_int, parse_names, parse_text

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
    """Read a GroupLens folder (movies.csv, else movies.dat, else u.item); UnusableFileError when it
    has none of them or one cannot be read."""
    directory = Path(directory)
    if not (directory / "movies.csv").is_file():
        if (directory / "movies.dat").is_file():
            return _load_dat(directory)
        if (directory / "u.item").is_file():
            return _load_100k(directory)
        raise UnusableFileError(
            str(directory),
            "no movies.csv (ml-latest, ml-25m), movies.dat (ml-1m, ml-10m) or u.item (ml-100k) in this folder",
            "give the folder GroupLens's zip unpacks to",
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
    read = rows_read(movies, errors)  # before links' and tags' errors
    optional = {name: directory / f"{name}.csv" for name in ("links", "tags", "ratings")}
    links = _links(optional["links"], errors, warnings) if optional["links"].is_file() else {}
    tags = _tags(optional["tags"], errors, warnings) if optional["tags"].is_file() else {}
    for item in movies:
        item.movie.imdb_id, item.movie.tmdb_id = links.get(item.movie.id, (None, None))
        item.movie.keywords = tags.get(item.movie.id, [])
    stats: dict[str, float | int | str] = {
        "movies_read": read,
        **movie_counts(movies, "linked_imdb", "linked_tmdb", "with_keywords"),
    }
    ratings_file = optional["ratings"] if optional["ratings"].is_file() else None  # streamed by the ingest
    return SourceCatalogue(
        NAME, movies, [], errors, stats, warnings, movies_file=path.name, ratings_file=ratings_file, rating_scale=5
    )


# --- the older layouts: ml-1m / ml-10m (.dat) and ml-100k (u.*) ------------------------------------

# ML-100K's genre flags, in u.item's column order, when its u.genre is absent.
_ML100K_GENRES = [
    *("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama"),
    *("Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"),
]
# The older files spell one genre the way MovieLens latest no longer does: one vocabulary for filters.
_GENRE_NAMES = {"Children's": "Children"}


def _fields(
    path: Path, sep: str, width: int, errors: list[RowError], warnings: list[str]
) -> Iterator[tuple[int, list[str]]]:
    """(line, its `width` fields) of a header-less file split on `sep`; blank lines skipped, a line
    with another number of fields a row error. The encoding is detected as for every file (ml-1m
    and ml-100k are Latin-1: a warning says so)."""
    encoding = detect_encoding(path)
    if encoding.warning:
        warnings.append(encoding.warning)
    with path.open(encoding=encoding.name, newline="") as f:
        for line, raw in enumerate(f, start=1):
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            values = text.split(sep)
            if len(values) != width:
                errors.append(
                    RowError(path.name, line, "row", f"{len(values)} fields separated by {sep!r}, expected {width}")
                )
                continue
            yield line, values


def _genres(names: list[str]) -> list[str]:
    return [_GENRE_NAMES.get(g, g) for g in names if g and g not in ("unknown", "(no genres listed)")]


def _load_dat(directory: Path) -> SourceCatalogue:
    """ml-1m / ml-10m: movies.dat and ratings.dat."""
    errors: list[RowError] = []
    warnings: list[str] = []
    path = directory / "movies.dat"
    movies = []
    for line, (mid, raw_title, genres) in _fields(path, "::", 3, errors, warnings):
        try:
            movies.append(SourceMovie(_old_movie(mid, raw_title, genres.split("|")), line=line, file=path.name))
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
    stats: dict[str, float | int | str] = {"movies_read": rows_read(movies, errors), "layout": "ml-1m"}
    return _with_ratings(
        SourceCatalogue(NAME, movies, [], errors, stats, warnings, movies_file=path.name),
        directory / "ratings.dat",
        "::",
    )


def _load_100k(directory: Path) -> SourceCatalogue:
    """ml-100k: u.item (genre names from u.genre) and u.data."""
    errors: list[RowError] = []
    warnings: list[str] = []
    names = _ML100K_GENRES
    if (directory / "u.genre").is_file():
        names = [values[0] for _, values in _fields(directory / "u.genre", "|", 2, errors, warnings)]
    path = directory / "u.item"
    movies, before = [], len(errors)
    for line, values in _fields(path, "|", 5 + len(names), errors, warnings):
        flags = values[5:]
        genres = [name for name, flag in zip(names, flags, strict=True) if flag.strip() == "1"]
        try:
            movie = _old_movie(values[0], values[1], genres, release_date=values[2])
            imdb = re.search(r"tt\d{7,8}", values[4])
            movie.imdb_id = imdb.group(0) if imdb else None
            movies.append(SourceMovie(movie, line=line, file=path.name))
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
    stats: dict[str, float | int | str] = {"movies_read": rows_read(movies, errors[before:]), "layout": "ml-100k"}
    return _with_ratings(
        SourceCatalogue(NAME, movies, [], errors, stats, warnings, movies_file=path.name), directory / "u.data", "\t"
    )


def _with_ratings(catalogue: SourceCatalogue, path: Path, separator: str) -> SourceCatalogue:
    """`catalogue` with its header-less ratings file (if the folder has it) for the ingest's bulk
    path: streamed, never a Python object per row (ml-10m: 10M rows)."""
    if path.is_file():
        catalogue.ratings_file, catalogue.ratings_layout = path, RatingsLayout(separator)
    catalogue.rating_scale = 5  # every MovieLens release rates 0.5-5 (the older ones 1-5)
    return catalogue


def _old_movie(raw_id: str, raw_title: str, genres: list[str], release_date: str = "") -> Movie:
    """A movie of the older layouts; 'unknown' (ml-100k's placeholder row) is a missing title."""
    mid = parse_int(raw_id, "movieId")
    if mid is None:
        raise BadFieldError("movieId", "missing id")
    title, year = parse_title(raw_title.strip())
    if title.strip().lower() == "unknown":
        title = ""  # validate reports it as a missing title
    if year is None and (m := re.search(r"\b(\d{4})$", release_date.strip())):
        year = int(m.group(1))
    return make_movie(id=mid, title=title, year=year, genres=_genres(genres))
