"""Kaggle's "The Movies Dataset": a folder of CSV files joined by id.

- movies_metadata.csv: TMDB's fields, `id` = the TMDB id (our movie id), genres as a Python list
  of {'id', 'name'} dicts, vote_average 0-10, vote_count, popularity (TMDB's score), poster_path
  in TMDB's '/abc.jpg' form. Known malformed rows (a date in `id`, repeated ids) are row errors.
- keywords.csv: id, keywords (the same list-of-dicts form). Optional.
- credits.csv: cast, crew (lists of dicts; directors are the crew with job "Director"), id. Optional.
- links.csv (or links_small.csv): movieId (MovieLens), imdbId, tmdbId. Needed to read ratings.
- ratings.csv (or ratings_small.csv): userId, movieId (MovieLens ids, mapped to TMDB ids through
  links), rating 0.5-5, timestamp (unix seconds). Optional; streamed by the ingest's bulk path
  (`SourceCatalogue.ratings_file`, mapped through `ratings_links`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.datasets.base import RowError, SourceCatalogue, SourceMovie, movie_counts, rows_read
from app.datasets.files import UnusableFileError, csv_records
from app.datasets.tmdb import BadFieldError, parse_int, parse_movie, rows_by_id

NAME = "movies-dataset"
METADATA = "movies_metadata.csv"


def _first(directory: Path, *names: str) -> Path | None:
    return next((directory / n for n in names if (directory / n).is_file()), None)


def _by_id(
    path: Path | None, columns: tuple[str, ...], errors: list[RowError], warnings: list[str]
) -> dict[int, dict[str, Any]]:
    """{id: {column: value}} of an optional side file (none: {}); see tmdb.rows_by_id."""
    return {} if path is None else rows_by_id(path, [("id",)], columns, errors, warnings)


def _movielens_to_tmdb(path: Path, errors: list[RowError], warnings: list[str]) -> dict[int, int]:
    mapping = {}
    for line, row in csv_records(path, [("movieId",), ("tmdbId",)], warnings, errors):
        try:
            ml, tmdb = parse_int(row.get("movieId"), "movieId"), parse_int(row.get("tmdbId"), "tmdbId")
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
            continue
        if ml is not None and tmdb is not None:
            mapping[ml] = tmdb
    return mapping


def load(directory: Path, poster_base: str | None = None) -> SourceCatalogue:
    directory = Path(directory)
    meta = directory / METADATA
    if not meta.is_file():
        raise UnusableFileError(
            str(directory), f"no {METADATA} in this folder", "give the folder Kaggle's archive unpacks to"
        )
    errors: list[RowError] = []
    warnings: list[str] = []
    keywords = _by_id(_first(directory, "keywords.csv"), ("keywords",), errors, warnings)
    credits = _by_id(_first(directory, "credits.csv"), ("cast", "crew"), errors, warnings)
    movies, before = [], len(errors)
    for line, row in csv_records(meta, [("id",), ("title",)], warnings, errors):
        try:
            mid = parse_int(row.get("id"), "id")
            record = {**row, **keywords.get(mid or 0, {}), **credits.get(mid or 0, {}), "tmdb_id": mid}
            movies.append(SourceMovie(parse_movie(record, directory, poster_base), line=line, file=meta.name))
        except BadFieldError as exc:
            errors.append(RowError(meta.name, line, exc.field, str(exc)))
    read = rows_read(movies, errors[before:])
    to_tmdb: dict[int, int] | None = None
    ratings_path = _first(directory, "ratings.csv", "ratings_small.csv")
    links_path = _first(directory, "links.csv", "links_small.csv")
    if ratings_path is not None:
        if links_path is None:
            raise UnusableFileError(
                ratings_path.name,
                "ratings need links.csv to map MovieLens ids to TMDB ids",
                "add links.csv to the folder, or remove the ratings file",
            )
        to_tmdb = _movielens_to_tmdb(links_path, errors, warnings)
    stats: dict[str, float | int | str] = {
        "movies_read": read,
        **movie_counts(movies, "with_keywords", "with_credits", "with_poster_source"),
    }
    # The ratings file (26M rows in the full dataset) is streamed by the ingest's bulk path, its
    # MovieLens ids mapped through links.csv there.
    return SourceCatalogue(
        NAME,
        movies,
        [],
        errors,
        stats,
        warnings,
        movies_file=meta.name,
        ratings_file=ratings_path,
        ratings_links=to_tmdb,
        rating_scale=5,
    )  # its ratings are MovieLens's: 0.5-5 stars
