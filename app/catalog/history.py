"""A user's own rating history from Letterboxd or IMDb, imported as their own ratings.

Formats (CSV exports, header row first):
- letterboxd `ratings.csv`: Date (YYYY-MM-DD, when rated), Name, Year, Letterboxd URI, Rating (0.5-5);
- imdb `ratings.csv`: Const (tt...), Your Rating (1-10, halved here), Date Rated (YYYY-MM-DD), Title,
  URL, Title Type, IMDb Rating, Runtime (mins), Year, Genres, Num Votes, Release Date, Directors.

Movies are matched by imdb_id / tmdb_id where both the row and the catalogue have one, else by
normalised title (accents, case, punctuation, a leading article ignored; a stored title's
parenthesised alternate also counts) and year, then year +-1 when that alone is unique.
The imported ratings are the user's own (provenance user, app/catalog/models.RatingEdit): no import
of a source overwrites them. Within the user's own writes the latest timestamp wins, so sending the
same file again changes nothing, and a rating written or deleted later through the API stays.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import get_args

import numpy as np
from sqlmodel import Session, select

from app.catalog import repository as repo
from app.catalog.models import Movie
from app.catalog.rating_rules import RULE, valid_ratings
from app.catalog.text import normalise_title
from app.errors import InvalidInputError
from app.names import HistoryFormat

FORMATS: tuple[HistoryFormat, ...] = get_args(HistoryFormat)
# per format: (title, year, rating, date, external id) columns; the rating scale's maximum
_COLUMNS: dict[str, tuple[str, str, str, str, str | None]] = {
    "letterboxd": ("Name", "Year", "Rating", "Date", None),
    "imdb": ("Title", "Year", "Your Rating", "Date Rated", "Const"),
}
_SCALE = {"letterboxd": 1.0, "imdb": 2.0}  # divide by this to get 0.5-5 stars
_ALTERNATE = re.compile(r"\s*\(([^()]*)\)\s*$")
_LEADING_ARTICLE = re.compile(r"^(the|a|an) ")


@dataclass(frozen=True)
class HistoryRow:
    line: int  # 1-based line of the file (header = line 1)
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


def parse_history(data: bytes, fmt: HistoryFormat) -> tuple[list[HistoryRow], list[dict[str, object]]]:
    """Rows of a Letterboxd or IMDb export, and the rows skipped ({line, field, message}).

    Raises InvalidInputError(field="file") when the bytes are not such a CSV (empty, wrong columns)."""
    if fmt not in _COLUMNS:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}", field="format")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    try:
        return _parse(csv.DictReader(io.StringIO(text)), fmt)
    except csv.Error as exc:  # a NUL byte, an endless quoted field: not a CSV export
        raise InvalidInputError(f"not a readable CSV: {exc}", field="file") from None


def _parse(reader: csv.DictReader[str], fmt: HistoryFormat) -> tuple[list[HistoryRow], list[dict[str, object]]]:
    needed = list(_COLUMNS[fmt][:4])
    if missing := [c for c in needed if c not in (reader.fieldnames or [])]:
        found = ", ".join(reader.fieldnames or []) or "nothing"
        raise InvalidInputError(
            f"not a {fmt} ratings export: lacks column(s) {', '.join(missing)}; found {found}", field="file"
        )
    rows, skipped = [], []
    for record in reader:
        line = reader.line_num
        try:
            rows.append(_row(record, line, fmt))
        except _SkippedRowError as exc:
            skipped.append({"line": line, "field": exc.field, "message": str(exc)})
    return rows, skipped


class _SkippedRowError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _row(record: dict[str, str | None], line: int, fmt: HistoryFormat) -> HistoryRow:
    title_col, year_col, rating_col, date_col, id_col = _COLUMNS[fmt]
    title = (record.get(title_col) or "").strip()
    if not title:
        raise _SkippedRowError(title_col, "missing title")
    raw = (record.get(rating_col) or "").strip()
    if not raw:
        raise _SkippedRowError(rating_col, "no rating (a logged or watched movie without stars)")
    try:
        rating = float(raw) / _SCALE[fmt]
    except ValueError:
        raise _SkippedRowError(rating_col, f"not a number: {raw!r}") from None
    if not valid_ratings(np.array([rating]))[0]:
        raise _SkippedRowError(rating_col, f"{RULE} (read {raw!r})")
    year_text = (record.get(year_col) or "").strip()
    year = int(year_text) if year_text.isdigit() else None
    date = (record.get(date_col) or "").strip()
    try:
        when = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC) if date else datetime.now(UTC)
    except ValueError:
        raise _SkippedRowError(date_col, f"not a YYYY-MM-DD date: {date!r}") from None
    imdb_id = (record.get(id_col) or "").strip() or None if id_col else None
    return HistoryRow(line, title, year, rating, int(when.timestamp()), imdb_id)


class _Matcher:
    """Catalogue lookup: external ids first, then (title key, year), then (title key, year +- 1)."""

    def __init__(self, session: Session) -> None:
        self.by_imdb: dict[str, int] = {}
        self.by_key: dict[tuple[str, int | None], set[int]] = defaultdict(set)
        for movie_id, title, year, imdb_id in session.exec(select(Movie.id, Movie.title, Movie.year, Movie.imdb_id)):
            if imdb_id:
                self.by_imdb[imdb_id] = movie_id
            for key in _title_keys(title):
                self.by_key[(key, year)].add(movie_id)

    def match(self, row: HistoryRow) -> int | None:
        if row.imdb_id and row.imdb_id in self.by_imdb:
            return self.by_imdb[row.imdb_id]
        for key in _title_keys(row.title):
            years = [row.year] if row.year is None else [row.year, row.year - 1, row.year + 1]
            for year in years:
                found = self.by_key.get((key, year), set())
                if len(found) == 1:
                    return next(iter(found))
        return None


def _title_keys(title: str) -> list[str]:
    """The full title, the title without a trailing '(alternate)', the alternate; articles dropped."""
    variants = [title]
    if (m := _ALTERNATE.search(title)) and m.start() > 0:
        variants += [title[: m.start()], m.group(1)]
    keys = []
    for variant in variants:
        key = _LEADING_ARTICLE.sub("", normalise_title(variant))
        if key and key not in keys:
            keys.append(key)
    return keys


def import_history(session: Session, user_id: int, data: bytes, fmt: HistoryFormat) -> HistoryReport:
    """Import one user's Letterboxd or IMDb export as their own ratings; the caller commits.

    Raises InvalidInputError (field "file" or "format") when the file is not such an export."""
    rows, skipped = parse_history(data, fmt)
    report = HistoryReport(rows=len(rows) + len(skipped), skipped=skipped)
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
