"""A user's own rating history from Letterboxd or IMDb, imported as their own ratings.

Formats (CSV exports, header row first):
- letterboxd `ratings.csv`: Date (YYYY-MM-DD, when rated), Name, Year, Letterboxd URI, Rating (0.5-5);
- imdb `ratings.csv`: Const (tt...), Your Rating (1-10, halved here), Date Rated (YYYY-MM-DD), Title,
  URL, Title Type, IMDb Rating, Runtime (mins), Year, Genres, Num Votes, Release Date, Directors.

The file is read as every source's CSV is (app/datasets/files.py: encoding, `,` `;` or tab, quotes,
the same file errors) and its numbers as the tmdb source's are (a decimal comma is a number).
Movies are matched by imdb_id where both the row and the catalogue have one, else by title
(app/datasets/titles.match_keys: accents, case, punctuation and an article ignored, "Title, The"
read as "The Title", every trailing parenthesised group of a title an alternate of it) and year,
then year +-1 when that alone is unique. A catalogue movie's own title beats another's alternate.
The imported ratings are the user's own (provenance user, app/catalog/models.RatingEdit): no import
of a source overwrites them. Within the user's own writes the latest timestamp wins, so sending the
same file again changes nothing, and a rating written or deleted later through the API stays.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import get_args

import numpy as np
from sqlmodel import Session, select

from app.catalog import repository as repo
from app.catalog.models import Movie
from app.catalog.rating_rules import RULE, valid_ratings
from app.datasets.base import RowError
from app.datasets.files import MemoryFile, csv_records
from app.datasets.titles import match_keys
from app.datasets.tmdb import BadFieldError, parse_float, parse_int
from app.errors import InvalidInputError
from app.names import HistoryFormat

FORMATS: tuple[HistoryFormat, ...] = get_args(HistoryFormat)


@dataclass(frozen=True)
class _Format:
    label: str  # how people write its name, with its article
    title: str  # columns
    year: str
    rating: str
    date: str
    imdb_id: str | None
    scale: float  # divide the file's rating by this to get 0.5-5 stars


_FORMATS: dict[str, _Format] = {
    "letterboxd": _Format("a Letterboxd", "Name", "Year", "Rating", "Date", None, 1.0),
    "imdb": _Format("an IMDb", "Title", "Year", "Your Rating", "Date Rated", "Const", 2.0),
}


@dataclass(frozen=True)
class HistoryRow:
    line: int  # 1-based line of the file where the row starts (header = line 1)
    title: str
    year: int | None
    rating: float  # 0.5-5 stars, after the format's scale
    timestamp: int  # unix seconds (midnight UTC of the date)
    imdb_id: str | None = None


@dataclass
class HistoryReport:
    """What an import did. `matched` = `imported` + `unchanged` + `kept_newer`."""

    rows: int = 0
    matched: int = 0
    imported: int = 0  # written: new, or newer than what the user had
    unchanged: int = 0  # the same rating and date already stored (the file sent again)
    kept_newer: int = 0  # the user wrote or deleted this movie's rating later: kept
    unmatched: list[dict[str, object]] = field(default_factory=list)  # {line, title, year}
    skipped: list[dict[str, object]] = field(default_factory=list)  # {line, field, message}
    warnings: list[str] = field(default_factory=list)  # file-level notes, e.g. an encoding guessed


@dataclass
class HistoryFile:
    """An export read, before any matching: its rows, the rows skipped ({line, field, message}, in
    file order) and file-level notes (an encoding guessed)."""

    rows: list[HistoryRow]
    skipped: list[dict[str, object]]
    warnings: list[str]


def read_history(data: bytes, fmt: HistoryFormat, name: str = "body") -> HistoryFile:
    """A Letterboxd or IMDb export's bytes, read; `name` is what messages call the file.

    Raises UnusableFileError (an InvalidInputError, field "file") when the bytes are not such a CSV
    (empty, a column missing, a quote never closed), InvalidInputError(field="format") for an unknown format."""
    if fmt not in _FORMATS:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}", field="format")
    spec = _FORMATS[fmt]
    others = "; ".join(f"{_FORMATS[f].label} export takes format {f}" for f in FORMATS if f != fmt)
    hint = f"is the file {spec.label} ratings export? ({others})"
    required = [[spec.title], [spec.year], [spec.rating], [spec.date]]
    errors: list[RowError] = []  # rows the CSV reader refused (a stray quote, too many cells)
    warnings: list[str] = []
    rows: list[HistoryRow] = []
    for line, record in csv_records(MemoryFile(name, data), required, warnings, errors, hint):
        try:
            rows.append(_row(record, line, spec))
        except BadFieldError as exc:
            errors.append(RowError(name, line, exc.field, str(exc)))
    skipped = [{"line": e.line, "field": e.field, "message": e.message} for e in sorted(errors, key=lambda e: e.line)]
    return HistoryFile(rows, skipped, warnings)


def _row(record: dict[str, str], line: int, spec: _Format) -> HistoryRow:
    """One record; BadFieldError names the column that makes it unusable."""
    title = record.get(spec.title, "").strip()
    if not title:
        raise BadFieldError(spec.title, "missing title")
    stars = parse_float(record.get(spec.rating), spec.rating)
    if stars is None:
        raise BadFieldError(spec.rating, "no rating (a logged or watched movie without stars)")
    rating = stars / spec.scale
    if not valid_ratings(np.array([rating]))[0]:
        raise BadFieldError(spec.rating, f"{RULE} (read {record[spec.rating].strip()!r})")
    year = parse_int(record.get(spec.year), spec.year)
    if year is not None and not 1800 <= year <= 3000:
        raise BadFieldError(spec.year, f"not a year: {record[spec.year].strip()!r}")
    date = record.get(spec.date, "").strip()
    try:
        when = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC) if date else datetime.now(UTC)
    except ValueError:
        raise BadFieldError(spec.date, f"not a YYYY-MM-DD date: {date!r}") from None
    imdb_id = record.get(spec.imdb_id, "").strip() or None if spec.imdb_id else None
    return HistoryRow(line, title, year, rating, int(when.timestamp()), imdb_id)


class _Matcher:
    """Catalogue lookup: external ids first, then by year (exact, then +-1): the row's title keys
    against the catalogue's own titles, then against their alternates; a key must name one movie."""

    def __init__(self, session: Session) -> None:
        self.by_imdb: dict[str, int] = {}
        self.own: dict[tuple[str, int | None], set[int]] = defaultdict(set)
        self.alternate: dict[tuple[str, int | None], set[int]] = defaultdict(set)
        for movie_id, title, year, imdb_id in session.exec(select(Movie.id, Movie.title, Movie.year, Movie.imdb_id)):
            if imdb_id:
                self.by_imdb[imdb_id] = movie_id
            own, alternates = match_keys(title)
            for key in own:
                self.own[(key, year)].add(movie_id)
            for key in alternates:
                self.alternate[(key, year)].add(movie_id)

    def match(self, row: HistoryRow) -> int | None:
        if row.imdb_id and row.imdb_id in self.by_imdb:
            return self.by_imdb[row.imdb_id]
        own, alternates = match_keys(row.title)
        keys = own + alternates
        nearby = [] if row.year is None else [row.year - 1, row.year + 1]
        for years in ([row.year], nearby):
            for index in (self.own, self.alternate):
                for key in keys:
                    for year in years:
                        found = index.get((key, year), set())
                        if len(found) == 1:
                            return next(iter(found))
        return None


def import_history(session: Session, user_id: int, history: HistoryFile) -> HistoryReport:
    """Import one user's export (read by read_history) as their own ratings; the caller commits."""
    rows = history.rows
    report = HistoryReport(
        rows=len(rows) + len(history.skipped), skipped=list(history.skipped), warnings=list(history.warnings)
    )
    matcher = _Matcher(session)
    latest: dict[int, HistoryRow] = {}
    for row in rows:
        movie_id = matcher.match(row)
        if movie_id is None:
            report.unmatched.append({"line": row.line, "title": row.title, "year": row.year})
            continue
        report.matched += 1
        if movie_id not in latest or row.timestamp >= latest[movie_id].timestamp:
            if movie_id in latest:
                report.unchanged += 1  # the same movie twice in one file: the later date wins
            latest[movie_id] = row
        else:
            report.unchanged += 1
    edits = repo.user_edits(session, user_id)
    current = {r.movie_id: r for r in repo.user_ratings(session, user_id)}
    writes = []
    for movie_id, row in latest.items():
        edit, have = edits.get(movie_id), current.get(movie_id)
        if edit is not None and edit.timestamp > row.timestamp:
            report.kept_newer += 1
        elif edit is not None and have is not None and (have.rating, have.timestamp) == (row.rating, row.timestamp):
            report.unchanged += 1
        else:
            writes.append((user_id, movie_id, row.rating, row.timestamp))
    repo.upsert_ratings(session, writes)
    repo.mark_user_edits(session, [(u, m, t) for u, m, _, t in writes], deleted=False)
    report.imported = len(writes)
    return report
