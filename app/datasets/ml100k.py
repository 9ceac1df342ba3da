"""MovieLens 100K from recbole's example atomic files (the dataset of many published benchmark tables).

Atomic files are tab-separated with a typed header ('item_id:token', 'rating:float'). Read by column
name so a reordered header still works.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

from app.datasets.base import RatingRow, RowError, SourceCatalogue, SourceMovie, make_movie
from app.datasets.titles import display_title

NAME = "ml-100k"
_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*$")
# ML-100K spells one genre differently from MovieLens latest; use one vocabulary for filters.
_GENRE_NAMES = {"Children's": "Children"}


def data_dir() -> Path:
    # recbole itself needs torch and more: locate its files without importing it.
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package 'recbole' is not installed; the ml-100k source needs it")
    return Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {field name without its type: value}); the header is line 1."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        names = [h.split(":", 1)[0] for h in next(reader)]
        for line, values in enumerate(reader, start=2):
            yield line, dict(zip(names, values, strict=False))


def _title_year(raw_title: str, raw_year: str) -> tuple[str, int | None]:
    """One row has the year in its title and 'V' in the year column; one title is 'unkonwn'."""
    title = raw_title.strip()
    if title.lower() in {"unknown", "unkonwn"}:
        return "", None  # a placeholder, not a movie: validate reports and drops it
    if raw_year.strip().isdigit():
        return title, int(raw_year)
    m = _YEAR_IN_TITLE.search(title)
    return (title[: m.start()], int(m.group(1))) if m else (title, None)


def _genres(value: str) -> list[str]:
    return [_GENRE_NAMES.get(g, g) for g in value.split() if g != "unknown"]


def _movies(path: Path, errors: list[RowError]) -> list[SourceMovie]:
    movies = []
    for line, row in _rows(path):
        try:
            mid = int(row["item_id"])
        except (KeyError, ValueError):
            errors.append(RowError(path.name, line, "item_id", f"not an integer: {row.get('item_id')!r}"))
            continue
        title, year = _title_year(row.get("movie_title", ""), row.get("release_year", ""))
        movie = make_movie(id=mid, title=display_title(title), year=year, genres=_genres(row.get("class", "")))
        movies.append(SourceMovie(movie, line=line, file=path.name))
    return movies


def _ratings(path: Path, errors: list[RowError]) -> list[RatingRow]:
    ratings = []
    for line, row in _rows(path):
        try:
            ratings.append(
                RatingRow(
                    user_id=int(row["user_id"]),
                    movie_id=int(row["item_id"]),
                    rating=float(row["rating"]),
                    timestamp=int(float(row["timestamp"])),
                    line=line,
                    file=path.name,
                )
            )
        except (KeyError, ValueError) as exc:
            errors.append(RowError(path.name, line, "row", f"unparseable: {exc}"))
    return ratings


def load(directory: Path | None = None) -> SourceCatalogue:
    directory = directory or data_dir()
    errors: list[RowError] = []
    movies = _movies(directory / "ml-100k.item", errors)
    ratings = _ratings(directory / "ml-100k.inter", errors)
    return SourceCatalogue(NAME, movies, ratings, errors, stats={"movies_read": len(movies), "ratings": len(ratings)})
