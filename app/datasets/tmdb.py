"""Users' own catalogues in TMDB / "The Movies Dataset" shape: JSON list, JSONL or CSV, plus a ratings CSV.

Rows whose values cannot be parsed become RowErrors here (with file and line); rows that parse but are
out of range (rating 7, unknown movie, empty title) pass through for `base.validate` to judge, so one
place decides what a valid movie or rating is.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from app.catalog.models import Movie
from app.datasets.base import RatingRow, RowError, SourceCatalogue, SourceMovie, make_movie, movie_counts, rows_read
from app.datasets.files import UnusableFileError, csv_records, detect_encoding, json_records

NAME = "tmdb"
_URL = re.compile(r"^https?://", re.IGNORECASE)
_LEADING_YEAR = re.compile(r"^\s*(\d{4})\b")
_ANY_YEAR = re.compile(r"\b(\d{4})\b")
_DECIMAL_COMMA = re.compile(r"\s*-?\d+,\d+\s*")
_THOUSANDS = re.compile(r"\s*[-+]?\d{1,3}(,\d{3})+\s*")
RATING_COLUMNS = ("userId", "movieId", "rating")  # timestamp is optional (the import time when absent)


class BadFieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# --- reading records ----------------------------------------------------------------------------

MOVIE_COLUMNS = (("id", "movieId"), ("title",))
GROUPLENS_COLUMNS = {"movieId", "title", "genres"}
# The optional fields, so that a header spelling one another way ('Release Date', 'vote average') is read.
MOVIE_FIELDS = (
    *("year", "release_date", "genres", "overview", "tagline", "keywords", "cast", "director", "crew", "writer"),
    *(
        "runtime",
        "country",
        "production_countries",
        "language",
        "original_language",
        "popularity",
        "vote_average",
        "vote_count",
    ),
    *("poster_path", "poster_url", "imdb_id", "tmdb_id", "original_title"),
)


def _records(
    path: Path, errors: list[RowError], warnings: list[str]
) -> Iterator[tuple[int, Any, Literal["line", "record"]]]:
    """(position, record, unit) from a CSV or a JSON list / JSON Lines file, told apart by the text,
    whatever the file's name: JSON starts with '[' or '{'. A MovieLens .dat file is refused with the
    source that reads it."""
    if path.suffix.lower() == ".dat":
        raise UnusableFileError(
            path.name, "a MovieLens .dat file (the ml-1m / ml-10m layout)", "give its folder: --source movielens --dir"
        )
    if not _starts_like_json(path):
        for line, row in csv_records(path, MOVIE_COLUMNS, warnings, errors, optional=MOVIE_FIELDS):
            yield line, row, "line"
    else:
        yield from json_records(path, errors, warnings)


def _starts_like_json(path: Path) -> bool:
    """True when the file's first non-blank character is '[' or '{' (UnusableFileError: unreadable)."""
    with path.open(encoding=detect_encoding(path).name, errors="replace") as f:
        while chunk := f.read(4096):
            if text := chunk.lstrip():
                return text[0] in "[{"
    return path.suffix.lower() in (".json", ".jsonl")  # empty: the reader its name suggests says so


# --- field parsers: None for absent values, BadFieldError for present but unparseable ones ------------


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return isinstance(value, str) and value.strip().lower() in {"", "nan", "null", "none"}


def parse_text(value: Any) -> str | None:
    return None if _missing(value) else str(value).strip() or None


def parse_float(value: Any, field: str) -> float | None:
    if _missing(value):
        return None
    if isinstance(value, str) and _DECIMAL_COMMA.fullmatch(value):
        value = value.replace(",", ".")  # "4,5" from a European spreadsheet
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadFieldError(field, f"not a number: {value!r}") from None
    if isinstance(value, bool) or math.isinf(number):
        raise BadFieldError(field, f"not a number: {value!r}")
    return None if math.isnan(number) else number


def parse_int(value: Any, field: str) -> int | None:
    """Exact for integers of any size (10**18 - 1 through a float would become 10**18); a whole
    number grouped in thousands by commas ('1,234', as spreadsheets write counts) is that number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    if isinstance(value, str) and _THOUSANDS.fullmatch(value):
        return int(value.replace(",", ""))
    number = parse_float(value, field)
    if number is None:
        return None
    if not number.is_integer():
        raise BadFieldError(field, f"not an integer: {value!r}")
    return int(number)


def parse_names(value: Any, field: str, separators: str = "|") -> list[str]:
    """Lists of strings or of {"name": ...}; in CSV also JSON / Python-literal text of those, or text
    split on the first of `separators` it contains ('A|B', or for genres also 'A, B' and 'A; B')."""
    if _missing(value):
        return []
    if isinstance(value, str):
        value = _parse_list_text(value.strip(), field, separators)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise BadFieldError(field, f"expected a list, got {type(value).__name__}")
    names = [item.get("name") if isinstance(item, dict) else item for item in value]
    return [str(n).strip() for n in names if not _missing(n)]


def _parse_list_text(text: str, field: str, separators: str = "|") -> Any:
    if not text.startswith(("[", "{")):
        return text.split(next((sep for sep in separators if sep in text), "|"))
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)  # The Movies Dataset writes Python reprs: [{'id': 28, ...}]
    except (ValueError, SyntaxError):
        raise BadFieldError(field, f"unparseable list: {text[:60]!r}") from None


def _year(record: dict[str, Any]) -> int | None:
    if not _missing(record.get("year")):
        return parse_int(record["year"], "year")
    date = parse_text(record.get("release_date"))
    if date is None:
        return None
    m = _LEADING_YEAR.match(date) or _ANY_YEAR.search(date)
    if m is None:
        raise BadFieldError("release_date", f"no year in {date!r}")
    return int(m.group(1))


def _unnest_appended(record: dict[str, Any]) -> dict[str, Any]:
    """TMDB's API response with `append_to_response=credits,keywords` as flat fields: `credits:
    {cast, crew}` gives cast and crew where the record has none of its own, and `keywords:
    {keywords: [...]}` ({results: [...]} for TV) the keyword list."""
    flat = dict(record)
    credits = record.get("credits")
    if isinstance(credits, dict):
        for key in ("cast", "crew"):
            if _missing(flat.get(key)):
                flat[key] = credits.get(key)
    keywords = record.get("keywords")
    if isinstance(keywords, dict) and "name" not in keywords:
        flat["keywords"] = keywords.get("keywords", keywords.get("results"))
    return flat


def _cast(record: dict[str, Any]) -> list[str]:
    """The cast's names, in billing order: TMDB's cast entries carry `order` (0 = top billed), and a
    list written in another order is sorted by it."""
    cast = record.get("cast")
    if isinstance(cast, str) and cast.strip().startswith("["):
        cast = _parse_list_text(cast.strip(), "cast")
    if isinstance(cast, list) and all(isinstance(c, dict) and isinstance(c.get("order"), int) for c in cast):
        cast = sorted(cast, key=lambda c: c["order"])
    return parse_names(cast, "cast")


def _country(record: dict[str, Any]) -> str | None:
    """`country` as given, else the first of TMDB's `production_countries` ({iso_3166_1, name}
    objects, or JSON / Python-list text of them in CSV): Movie.country is one name, shown as is."""
    given = parse_text(record.get("country"))
    if given is not None:
        return given
    countries = parse_names(record.get("production_countries"), "production_countries")
    return countries[0] if countries else None


def _director(record: dict[str, Any]) -> str | None:
    direct = record.get("director")
    if isinstance(direct, list):
        return ", ".join(parse_names(direct, "director")) or None
    if not _missing(direct):
        return parse_text(direct)
    # The Movies Dataset keeps directors in credits' crew list, job "Director".
    crew = record.get("crew")
    if isinstance(crew, str) and not _missing(crew):
        crew = _parse_list_text(crew.strip(), "crew")
    if isinstance(crew, list):
        names = [c.get("name") for c in crew if isinstance(c, dict) and c.get("job") == "Director"]
        return ", ".join(n for n in names if n) or None
    return None


def resolve_poster(record: dict[str, Any], base_dir: Path, poster_base: str | None = None) -> str | None:
    """http(s) URLs as they are; an existing absolute file as it is; any other path, TMDB's
    '/abc.jpg' included, joined to `poster_base` (a URL or a folder: MOVIEREC_POSTER_BASE) when
    set, else to the movies file's folder. A missing file is kept: the poster stage reports it."""
    for key in ("poster_url", "poster_path"):
        value = parse_text(record.get(key))
        if value is None:
            continue
        if _URL.match(value):
            return value
        candidate = Path(value)
        if candidate.is_absolute() and candidate.exists():
            return str(candidate)
        relative = value.lstrip("/\\")
        if poster_base and _URL.match(poster_base):
            return f"{poster_base.rstrip('/')}/{relative}"
        return str((Path(poster_base or base_dir) / relative).resolve())
    return None


# --- movies -------------------------------------------------------------------------------------


def parse_movie(record: Any, base_dir: Path, poster_base: str | None = None) -> Movie:
    """One record to a Movie; BadFieldError names the first unparseable field."""
    if not isinstance(record, dict):
        raise BadFieldError("row", f"expected an object, got {type(record).__name__}")
    mid = parse_int(record.get("id"), "id")
    if mid is None:
        raise BadFieldError("id", "missing id")
    record = _unnest_appended(record)
    return make_movie(
        id=mid,
        # TMDB's daily id exports and API pages of other languages may give only original_title.
        title=parse_text(record.get("title"))
        or parse_text(record.get("original_title"))
        or "",  # "": validate reports it
        year=_year(record),
        overview=parse_text(record.get("overview")),
        tagline=parse_text(record.get("tagline")),
        genres=parse_names(record.get("genres"), "genres", separators="|,;"),  # no genre's name holds one
        keywords=parse_names(record.get("keywords"), "keywords"),
        cast=_cast(record),
        director=_director(record),
        writer=parse_text(record.get("writer")),
        runtime=parse_int(record.get("runtime"), "runtime"),
        country=_country(record),
        language=parse_text(record.get("language") or record.get("original_language")),
        popularity=parse_float(record.get("popularity"), "popularity"),
        vote_average=parse_float(record.get("vote_average"), "vote_average"),
        vote_count=parse_int(record.get("vote_count"), "vote_count"),
        poster=resolve_poster(record, base_dir, poster_base),
        imdb_id=parse_text(record.get("imdb_id")),
        tmdb_id=parse_int(record.get("tmdb_id"), "tmdb_id"),
    )


def credits_beside(path: Path) -> Path | None:
    """The credits file beside a movies file: its name with the last "movies" replaced by "credits"
    (Kaggle's TMDB 5000: tmdb_5000_movies.csv, tmdb_5000_credits.csv), a CSV, when it exists."""
    name = path.name
    at = name.lower().rfind("movies")
    if at < 0:
        return None
    beside = path.with_name(f"{name[:at]}credits{name[at + len('movies') :]}")
    return beside if beside.suffix.lower() == ".csv" and beside.is_file() else None


def read_credits(path: Path, errors: list[RowError], warnings: list[str]) -> dict[int, dict[str, Any]]:
    """{movie id: {"cast", "crew"}} from a credits CSV (movie_id or id, cast, crew: JSON lists of
    TMDB's objects); the first row of an id wins, a bad id is a row error."""
    return rows_by_id(path, [("movieId", "id"), ("cast", "crew")], ("cast", "crew"), errors, warnings, "movie_id")


def rows_by_id(
    path: Path,
    required: Sequence[Sequence[str]],
    columns: Sequence[str],
    errors: list[RowError],
    warnings: list[str],
    id_field: str = "id",
) -> dict[int, dict[str, Any]]:
    """{movie id: {column: value for `columns`}} of a side file (credits, keywords) joined to the
    movies by id. `required` (csv_records' groups): its first group names the id column, the first
    present wins. The first row of an id wins; a bad id is a row error on `id_field`."""
    rows: dict[int, dict[str, Any]] = {}
    for line, row in csv_records(path, required, warnings, errors, optional=columns):
        try:
            mid = parse_int(next((row[c] for c in required[0] if c in row), None), id_field)
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
            continue
        if mid is not None:
            rows.setdefault(mid, {c: row.get(c) for c in columns})
    return rows


def _with_credits(record: Any, credits: dict[int, dict[str, Any]]) -> Any:
    """`record` with the credits file's cast and crew where it has none of its own."""
    if not credits or not isinstance(record, dict):
        return record
    try:
        mid = parse_int(record.get("id", record.get("movieId")), "id")
    except BadFieldError:
        return record  # parse_movie reports it
    found = credits.get(mid) if mid is not None else None
    if not found:
        return record
    return {**record, **{k: v for k, v in found.items() if _missing(record.get(k)) and not _missing(v)}}


def read_movies(
    path: Path,
    errors: list[RowError],
    warnings: list[str],
    poster_base: str | None = None,
    credits: dict[int, dict[str, Any]] | None = None,
) -> list[SourceMovie]:
    """Movies from a JSON list, JSON Lines or CSV file. A CSV in GroupLens's MovieLens layout
    (movieId, title with the year in it, genres, and no other column) is read as the movielens
    source reads it; `movieId` beside other TMDB fields is the id. `credits` (read_credits): cast
    and crew by movie id, for the records without their own."""
    from app.datasets import movielens  # movielens imports this module

    base_dir = path.resolve().parent
    movies, grouplens = [], False
    for line, record, unit in _records(path, errors, warnings):
        record = _with_credits(record, credits or {})
        try:
            if isinstance(record, dict) and "id" not in record and "movieId" in record:
                if set(record) <= GROUPLENS_COLUMNS:
                    grouplens = True
                    movie = movielens.parse_movie(record)
                else:  # TMDB's fields under MovieLens's id name: its year, overview... are read
                    movie = parse_movie({**record, "id": record["movieId"]}, base_dir, poster_base)
            else:
                movie = parse_movie(record, base_dir, poster_base)
            movies.append(SourceMovie(movie, line=line, file=path.name, unit=unit))
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc), unit))
    if grouplens:
        warnings.append(f"{path.name}: GroupLens MovieLens layout (movieId, title, genres); read as --source movielens")
    return movies


# --- ratings ------------------------------------------------------------------------------------


T = TypeVar("T")


def _required(value: T | None, column: str) -> T:
    if value is None:
        raise BadFieldError(column, "missing value")
    return value


def _rating_row(row: dict[str, str], line: int, file: str) -> RatingRow:
    # In RATING_COLUMNS order, so the first bad column is the one reported.
    user_id = _required(parse_int(row.get("userId"), "userId"), "userId")
    movie_id = _required(parse_int(row.get("movieId"), "movieId"), "movieId")
    rating = _required(parse_float(row.get("rating"), "rating"), "rating")
    return RatingRow(
        user_id=user_id,
        movie_id=movie_id,
        rating=rating,
        timestamp=parse_int(row.get("timestamp"), "timestamp"),  # None: not given; the import stores the import time
        line=line,
        file=file,
    )


def read_ratings(path: Path, errors: list[RowError], warnings: list[str] | None = None) -> list[RatingRow]:
    """userId, movieId, rating (0.5-5), timestamp (optional) rows; UnusableFileError when a column is missing."""
    ratings = []
    notes = [] if warnings is None else warnings  # csv_records appends an encoding it had to guess
    for line, row in csv_records(path, [(c,) for c in RATING_COLUMNS], notes, errors, optional=("timestamp",)):
        try:
            ratings.append(_rating_row(row, line, path.name))
        except BadFieldError as exc:
            errors.append(RowError(path.name, line, exc.field, str(exc)))
    return ratings


def load(movies: Path, ratings: Path | None = None, poster_base: str | None = None) -> SourceCatalogue:
    errors: list[RowError] = []
    warnings: list[str] = []
    # Kaggle's TMDB 5000 keeps cast and crew in a second file: read when it sits beside the movies.
    credits_path = credits_beside(Path(movies))
    credits = read_credits(credits_path, errors, warnings) if credits_path is not None else None
    before = len(errors)
    items = read_movies(Path(movies), errors, warnings, poster_base, credits)
    read = rows_read(items, errors[before:])
    rows = read_ratings(Path(ratings), errors, warnings) if ratings is not None else []
    stats: dict[str, float | int | str] = {
        "movies_read": read,
        "ratings": len(rows),
        **movie_counts(items, "with_poster_source"),
    }
    if credits_path is not None:  # which file gave the cast and directors, and to how many movies
        stats |= {"credits_file": credits_path.name, **movie_counts(items, "with_credits")}
    return SourceCatalogue(NAME, items, rows, errors, stats, warnings, movies_file=Path(movies).name)


__all__ = [
    "UnusableFileError",
    "credits_beside",
    "load",
    "parse_movie",
    "read_credits",
    "read_movies",
    "read_ratings",
    "resolve_poster",
    "rows_by_id",
]
