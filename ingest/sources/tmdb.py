"""Users' own catalogues in TMDB / "The Movies Dataset" shape: JSON list, JSONL or CSV, plus a ratings CSV.

Rows whose values cannot be parsed become RowErrors here (with file and line); rows that parse but are
out of range (rating 7, unknown movie, empty title) pass through for `base.validate` to judge, so one
place decides what a valid movie or rating is.
"""

from __future__ import annotations

import ast
import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.catalog.models import Movie
from ingest.sources.base import Catalogue, RatingRow, RowError, SourceMovie, make_movie

NAME = "tmdb"
_URL = re.compile(r"^https?://", re.IGNORECASE)
_LEADING_YEAR = re.compile(r"^\s*(\d{4})\b")
_ANY_YEAR = re.compile(r"\b(\d{4})\b")
RATING_COLUMNS = ("userId", "movieId", "rating")  # timestamp is optional (the import time when absent)


class _BadField(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --- reading records ----------------------------------------------------------------------------


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(line where the record starts, row): quoted fields may span lines, so count physical lines."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        start = reader.line_num + 1
        for values in reader:
            if values:
                yield start, dict(zip(header, values, strict=False))
            start = reader.line_num + 1


def _json_records(path: Path, errors: list[RowError]) -> Iterator[tuple[int, Any]]:
    """A JSON list (line = 1-based index of the object) or JSONL (line = file line)."""
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        yield from enumerate(json.loads(text), start=1)
        return
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield line, json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(RowError(path.name, line, "json", f"invalid JSON: {exc.msg}"))


def _records(path: Path, errors: list[RowError]) -> Iterator[tuple[int, Any]]:
    if path.suffix.lower() == ".csv":
        return _csv_records(path)
    return _json_records(path, errors)


# --- field parsers: None for absent values, _BadField for present but unparseable ones ------------


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in {"", "nan", "null", "none"}


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value).strip() or None


def _float(value: Any, field: str) -> float | None:
    if _missing(value):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _BadField(field, f"not a number: {value!r}") from None
    if isinstance(value, bool) or math.isinf(number):
        raise _BadField(field, f"not a number: {value!r}")
    return None if math.isnan(number) else number


def _int(value: Any, field: str) -> int | None:
    number = _float(value, field)
    if number is None:
        return None
    if not number.is_integer():
        raise _BadField(field, f"not an integer: {value!r}")
    return int(number)


def _names(value: Any, field: str) -> list[str]:
    """Lists of strings or of {"name": ...}; in CSV also JSON / Python-literal text of those, or 'A|B'."""
    if _missing(value):
        return []
    if isinstance(value, str):
        value = _parse_list_text(value.strip(), field)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise _BadField(field, f"expected a list, got {type(value).__name__}")
    names = [item.get("name") if isinstance(item, dict) else item for item in value]
    return [str(n).strip() for n in names if not _missing(n)]


def _parse_list_text(text: str, field: str) -> Any:
    if not text.startswith(("[", "{")):
        return text.split("|")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)  # The Movies Dataset writes Python reprs: [{'id': 28, ...}]
    except (ValueError, SyntaxError):
        raise _BadField(field, f"unparseable list: {text[:60]!r}") from None


def _year(record: dict[str, Any]) -> int | None:
    if not _missing(record.get("year")):
        return _int(record["year"], "year")
    date = _text(record.get("release_date"))
    if date is None:
        return None
    m = _LEADING_YEAR.match(date) or _ANY_YEAR.search(date)
    if m is None:
        raise _BadField("release_date", f"no year in {date!r}")
    return int(m.group(1))


def _director(record: dict[str, Any]) -> str | None:
    direct = record.get("director")
    if isinstance(direct, list):
        return ", ".join(_names(direct, "director")) or None
    if not _missing(direct):
        return _text(direct)
    # The Movies Dataset keeps directors in credits' crew list, job "Director".
    crew = record.get("crew")
    if isinstance(crew, str) and not _missing(crew):
        crew = _parse_list_text(crew.strip(), "crew")
    if isinstance(crew, list):
        names = [c.get("name") for c in crew if isinstance(c, dict) and c.get("job") == "Director"]
        return ", ".join(n for n in names if n) or None
    return None


def resolve_poster(record: dict[str, Any], base_dir: Path) -> str | None:
    """http(s) URLs as they are; a path relative to the movies file, TMDB's leading '/' included,
    unless it names an existing absolute file. A missing file is kept: the poster stage reports it."""
    for key in ("poster_url", "poster_path"):
        value = _text(record.get(key))
        if value is None:
            continue
        if _URL.match(value):
            return value
        candidate = Path(value)
        if candidate.is_absolute() and candidate.exists():
            return str(candidate)
        return str((base_dir / value.lstrip("/\\")).resolve())
    return None


# --- movies -------------------------------------------------------------------------------------


def parse_movie(record: Any, base_dir: Path) -> Movie:
    """One record to a Movie; _BadField names the first unparseable field."""
    if not isinstance(record, dict):
        raise _BadField("row", f"expected an object, got {type(record).__name__}")
    mid = _int(record.get("id"), "id")
    if mid is None:
        raise _BadField("id", "missing id")
    return make_movie(
        id=mid,
        title=_text(record.get("title")) or "",  # empty title: validate reports it
        year=_year(record),
        overview=_text(record.get("overview")),
        tagline=_text(record.get("tagline")),
        genres=_names(record.get("genres"), "genres"),
        keywords=_names(record.get("keywords"), "keywords"),
        cast=_names(record.get("cast"), "cast"),
        director=_director(record),
        writer=_text(record.get("writer")),
        runtime=_int(record.get("runtime"), "runtime"),
        country=_text(record.get("country")),
        language=_text(record.get("language") or record.get("original_language")),
        popularity=_float(record.get("popularity"), "popularity"),
        vote_average=_float(record.get("vote_average"), "vote_average"),
        vote_count=_int(record.get("vote_count"), "vote_count"),
        poster=resolve_poster(record, base_dir),
    )


def read_movies(path: Path, errors: list[RowError]) -> list[SourceMovie]:
    base_dir = path.resolve().parent
    movies = []
    for line, record in _records(path, errors):
        try:
            movies.append(SourceMovie(parse_movie(record, base_dir), line=line, file=path.name))
        except _BadField as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
    return movies


# --- ratings ------------------------------------------------------------------------------------


def _rating_row(row: dict[str, str], line: int, file: str) -> RatingRow:
    values = {}
    for column in (*RATING_COLUMNS, "timestamp"):
        parse = _float if column == "rating" else _int
        values[column] = parse(row.get(column), column)
        if values[column] is None and column != "timestamp":
            raise _BadField(column, "missing value")
    return RatingRow(
        user_id=values["userId"],
        movie_id=values["movieId"],
        rating=values["rating"],
        timestamp=values["timestamp"],  # None: not given; the import stores the import time
        line=line,
        file=file,
    )


def read_ratings(path: Path, errors: list[RowError]) -> list[RatingRow]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = [h.strip() for h in next(csv.reader(f), [])]
    if missing := [c for c in RATING_COLUMNS if c not in header]:
        raise ValueError(f"{path}: ratings CSV lacks column(s) {', '.join(missing)}")
    ratings = []
    for line, row in _csv_records(path):
        try:
            ratings.append(_rating_row(row, line, path.name))
        except _BadField as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
    return ratings


def load(movies: Path, ratings: Path | None = None) -> Catalogue:
    errors: list[RowError] = []
    items = read_movies(Path(movies), errors)
    rows = read_ratings(Path(ratings), errors) if ratings is not None else []
    with_poster = sum(1 for m in items if m.movie.poster)
    stats = {"movies": len(items), "ratings": len(rows), "with_poster": with_poster}
    return Catalogue(NAME, items, rows, errors, stats)
