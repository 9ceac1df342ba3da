"""A user's own rating history from Letterboxd or IMDb, imported as their own ratings.

Formats (CSV exports, header row first; a column named but for case or spaces is that column):
- letterboxd `ratings.csv`: Date (YYYY-MM-DD, when rated), Name, Year, Letterboxd URI, Rating (0.5-5);
  `diary.csv` and `reviews.csv` have these columns too (a rewatch is one more row: the latest date
  wins), and the export's zip itself is read (its ratings.csv). `watched.csv` has no ratings.
- imdb `ratings.csv`: Const (tt...), Your Rating (1-10, halved here), Date Rated (YYYY-MM-DD), Title,
  URL, Title Type, IMDb Rating, Runtime (mins), Year, Genres, Num Votes, Release Date, Directors; the
  older export's `const`, `You rated`, `created` ('Sat Jan 05 00:00:00 2013') are read the same.
  A row whose Title Type is not a film (TV Series, TV Episode, TV Mini Series, Video Game, Podcast)
  is matched by its IMDb id only, never by title.
- Year may be empty (the title alone must then name one movie); Date may be empty (undated).
- Dates are read as the bulk ratings import reads timestamps (app/datasets/timestamps.py, all of a
  file's at once): YYYY-MM-DD (or YYYY/MM/DD, leading zeros optional: 2024-1-5), ISO date-times ('2024-01-05 13:22',
  '2024-01-05T13:22:00Z'), a month in words ('5 Jan 2024', 'January 5, 2024', 'Jan 5 2024'), epoch seconds or
  milliseconds, YYYYMMDD; 'dd/mm/yyyy' or 'mm/dd/yyyy' in the order the file's dates tell ('13/02/2024':
  day-first), refused as ambiguous where none tells it; a date more than a day ahead is refused.

The file is read as every source's CSV is (app/datasets/files.py: encoding, `,` `;` tab or `|`, quotes,
the same file errors) and its numbers as the tmdb source's are (a decimal comma is a number).
Movies are matched by imdb_id where both the row and the catalogue have one, else by title
(app/datasets/titles.match_keys: accents, case, punctuation and an article ignored, "Title, The"
read as "The Title", every trailing parenthesised group of a title an alternate of it) and year,
then year +-1 when that alone is unique. A catalogue movie's own title beats another's alternate.
The imported ratings are the user's own (provenance user, app/catalog/models.RatingEdit): no import
of a source overwrites them. Within the user's own writes the latest timestamp wins, so sending the
same file again changes nothing, and a rating written or deleted later through the API stays. An
undated row counts as older than anything the user wrote: it fills a gap (stamped with the import
time) and never replaces the user's own rating or deletion.
"""

from __future__ import annotations

import difflib
import heapq
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, get_args

import numpy as np
import pyarrow as pa
from sqlmodel import Session, select

from app.catalog import repository as repo
from app.catalog.models import Movie
from app.catalog.rating_rules import RULE, valid_ratings
from app.datasets.base import RowError
from app.datasets.files import MemoryFile, UnusableFileError, csv_records, unpack
from app.datasets.timestamps import FUTURE_SLACK_S, parse_timestamps
from app.datasets.titles import match_keys
from app.datasets.tmdb import BadFieldError, parse_float, parse_int
from app.errors import ConflictError, InvalidInputError
from app.names import HistoryFormat

FORMATS: tuple[HistoryFormat, ...] = get_args(HistoryFormat)


@dataclass(frozen=True)
class _Format:
    label: str  # how people write its name, with its article
    title: str  # columns; a tuple lists alternatives, the first the current export's name
    year: str
    rating: tuple[str, ...]
    date: tuple[str, ...]
    imdb_id: tuple[str, ...]
    title_type: str | None
    scale: float  # divide the file's rating by this to get 0.5-5 stars

    def columns(self) -> list[str]:
        return [self.title, self.year, *self.rating, *self.date, *self.imdb_id, *filter(None, [self.title_type])]


_FORMATS: dict[str, _Format] = {
    "letterboxd": _Format("a Letterboxd", "Name", "Year", ("Rating",), ("Date",), (), None, 1.0),
    "imdb": _Format(
        "an IMDb",
        "Title",
        "Year",
        ("Your Rating", "You rated"),
        ("Date Rated", "created"),
        ("Const",),
        "Title Type",
        2.0,
    ),
}
# IMDb title types that are not films (new exports spell them 'TV Series', older ones 'tvSeries'):
# a catalogue of movies may share their title and year, so they are matched by IMDb id only.
_NOT_FILMS = {"tvseries", "tvepisode", "tvminiseries", "videogame", "podcastseries", "podcastepisode", "musicvideo"}
SUGGESTIONS = 3  # close titles offered for a row no movie matched
# Unmatched and skipped rows listed in a report, in file order (the totals count them all): a file of
# 300,000 wrong rows must not become a reply of hundreds of MB, nor 300,000 suggestion searches.
LISTED_ROWS = 200
# Rows one history file may hold: far above a person's ratings (a 4 MiB Letterboxd CSV, the API's body
# limit, is about 60,000), and a bound on the work of a compressed upload: a 81 KB gzip of 1M rows
# took 42 s of a worker (its 256 MiB unpacked limit allowed 8M rows); 100,000 take about 5 s. Rows the
# CSV reader refuses count too (an 81 KB gzip of 32 MiB of malformed rows, 1.77M: 6.4 CPU s, 1 GB).
MAX_ROWS = 100_000
SUGGEST_CUTOFF = 0.6  # difflib's ratio (after the year penalty) a suggestion needs: get_close_matches' default
SUGGEST_YEAR_PENALTY = 0.05  # per year between the row's year and the movie's


@dataclass(frozen=True)
class HistoryRow:
    line: int  # 1-based line of the file where the row starts (header = line 1)
    title: str
    year: int | None
    rating: float  # 0.5-5 stars, after the format's scale
    timestamp: int | None  # unix seconds (midnight UTC of a date); None: undated
    imdb_id: str | None = None
    film: bool = True  # False: IMDb says a TV series, an episode, a game...: matched by IMDb id only


@dataclass
class HistoryReport:
    """What an import did. `matched` = `imported` + `unchanged` + `kept_newer`."""

    rows: int = 0
    matched: int = 0
    imported: int = 0  # written: new, or newer than what the user had
    unchanged: int = 0  # the same rating and date already stored (the file sent again)
    kept_newer: int = 0  # the user wrote or deleted this movie's rating later: kept
    unmatched_total: int = 0  # rows no movie matched; the first LISTED_ROWS of them are in `unmatched`
    skipped_total: int = 0  # rows refused; the first LISTED_ROWS of them are in `skipped`
    # {line, title, year, suggestions: up to SUGGESTIONS close titles [{movie_id, title, year}]}
    unmatched: list[dict[str, object]] = field(default_factory=list)
    skipped: list[dict[str, object]] = field(default_factory=list)  # {line, field, message}
    warnings: list[str] = field(default_factory=list)  # file-level notes, e.g. an encoding guessed


@dataclass
class HistoryFile:
    """An export read, before any matching: its rows, the first LISTED_ROWS rows skipped ({line,
    field, message}, in file order), how many were skipped, and file-level notes (an encoding guessed)."""

    rows: list[HistoryRow]
    skipped: list[dict[str, object]]
    skipped_total: int
    warnings: list[str]


def read_history(data: bytes, fmt: HistoryFormat, name: str = "body") -> HistoryFile:
    """A Letterboxd or IMDb export's bytes, read; `name` is what messages call the file. A zip (the
    Letterboxd export as downloaded) is read through its ratings.csv, a gzip through its content.

    Raises UnusableFileError (an InvalidInputError, field "file") when the bytes are not such a CSV
    (empty, binary, a column missing, a quote never closed) or hold more than MAX_ROWS rows (read or
    refused: a row the CSV reader refuses counts too),
    InvalidInputError(field="format") for an unknown format."""
    if fmt not in _FORMATS:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}", field="format")
    spec = _FORMATS[fmt]
    others = "; ".join(f"{_FORMATS[f].label} export takes format {f}" for f in FORMATS if f != fmt)
    hint = f"is the file {spec.label} ratings export? ({others})"
    if fmt == "letterboxd":
        hint += "; Letterboxd's watched.csv and watchlist.csv hold no ratings: send ratings.csv or diary.csv"
    else:
        hint += "; IMDb's watchlist and list exports hold no ratings: export Your Ratings"
    required = [[spec.title], list(spec.rating)]
    warnings: list[str] = []
    undated: list[tuple[HistoryRow, str, str]] = []  # each row, its date's column and the date as written
    source = unpack(MemoryFile(name, data), "ratings.csv")
    refused = _Refusals(source.name)  # csv_records' refusals count toward MAX_ROWS: it calls `append`
    for line, record in csv_records(source, required, warnings, refused, hint, optional=spec.columns()):
        refused.count(line)
        try:
            undated.append(_row(record, line, spec))
        except BadFieldError as exc:
            refused.refuse(RowError(source.name, line, exc.field, str(exc)))
    rows = _dated(undated, int(datetime.now(UTC).timestamp()), refused)
    return HistoryFile(rows, refused.listed(), refused.total, warnings)


class _Refusals:
    """A file's refused rows: every one counted, the LISTED_ROWS of lowest line kept (an error kept
    per row of 1.77M malformed ones peaked at 1 GB), and the file's rows, read or refused by the CSV
    reader, counted against MAX_ROWS. csv_records calls `append` (its `errors`)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.rows = 0  # records read, or refused by the CSV reader
        self.total = 0  # rows refused
        self._kept: list[tuple[int, int, RowError]] = []  # a heap of (-line, -arrival, error): the last line on top

    def count(self, line: int) -> None:
        """One more row of the file, starting at `line`; UnusableFileError past MAX_ROWS."""
        self.rows += 1
        if self.rows > MAX_ROWS:
            raise UnusableFileError(
                self.file,
                f"more than {MAX_ROWS:,} rows",
                "split it: each part imports on its own, and a part sent again imports nothing twice",
                line=line,
            )

    def append(self, error: RowError) -> None:
        """A record the CSV reader refused: a row of the file (counted), and refused."""
        self.count(error.line)
        self.refuse(error)

    def refuse(self, error: RowError) -> None:
        """A row already counted, refused."""
        self.total += 1
        item = (-error.line, -self.total, error)  # (-line, -arrival) is unique: errors are never compared
        if len(self._kept) < LISTED_ROWS:
            heapq.heappush(self._kept, item)
        elif item > self._kept[0]:  # an earlier line than the last one kept
            heapq.heapreplace(self._kept, item)

    def listed(self) -> list[dict[str, object]]:
        """The kept refusals as {line, field, message}, in file order (one line's in arrival order)."""
        kept = sorted(self._kept, reverse=True)
        return [{"line": e.line, "field": e.field, "message": e.message} for _, _, e in kept]


def _get(record: dict[str, str], columns: tuple[str, ...]) -> tuple[str, str]:
    """(the first of `columns` the record has, its value stripped); (the first column, '') when it
    has none (a short row), and ('', '') for no columns."""
    for column in columns:
        if column in record:
            return column, (record[column] or "").strip()
    return (columns[0] if columns else ""), ""


def _row(record: dict[str, str], line: int, spec: _Format) -> tuple[HistoryRow, str, str]:
    """One record, undated, with its date's column and the date as written (read by `_dated`, all of
    a file's dates at once); BadFieldError names the column that makes it unusable."""
    title = record.get(spec.title, "").strip()
    if not title:
        raise BadFieldError(spec.title, "missing title")
    rating_column, raw = _get(record, spec.rating)
    stars = parse_float(raw, rating_column)
    if stars is None:
        raise BadFieldError(rating_column, "no rating (a logged or watched movie without stars)")
    rating = stars / spec.scale
    if not valid_ratings(np.array([rating]))[0]:
        scale = " (IMDb's 1-10 stars are halved)" if spec.scale != 1 else ""
        raise BadFieldError(rating_column, f"{RULE}{scale} (read {raw!r})")
    year = parse_int(record.get(spec.year), spec.year)
    if year is not None and not 1800 <= year <= 3000:
        raise BadFieldError(spec.year, f"not a year: {record[spec.year].strip()!r}")
    date_column, date = _get(record, spec.date)
    imdb_id = _get(record, spec.imdb_id)[1] or None
    kind = (record.get(spec.title_type) or "") if spec.title_type else ""
    film = re.sub(r"[\s_-]", "", kind).casefold() not in _NOT_FILMS
    return HistoryRow(line, title, year, rating, None, imdb_id, film), date_column, date


def _dated(undated: list[tuple[HistoryRow, str, str]], now: int, refused: _Refusals) -> list[HistoryRow]:
    """The rows with their dates read (app.datasets.timestamps, one vectorised call); a row whose
    date is unreadable, ambiguous, before 1970 or more than a day after `now` is refused."""
    times = parse_timestamps(pa.array([date for _, _, date in undated], pa.string()))
    rows = []
    for i, (row, column, date) in enumerate(undated):
        problem = times.problem(i) if times.failed[i] else _out_of_range(int(times.seconds[i]), now)
        if times.missing[i]:
            rows.append(row)
        elif problem:
            refused.refuse(RowError(refused.file, row.line, column, f"{problem}: {date!r}"))
        else:
            rows.append(replace(row, timestamp=int(times.seconds[i])))
    return rows


def _out_of_range(seconds: int, now: int) -> str | None:
    if seconds > now + FUTURE_SLACK_S:
        return "a date in the future"
    return "a date before 1970" if seconds < 0 else None


class _Matcher:
    """Catalogue lookup: external ids first, then by year (exact, then +-1): the row's title keys
    against the catalogue's own titles, then against their alternates; a key must name one movie.
    A row without a year: the key in any year, where it names one movie. A row IMDb says is not a
    film (a TV series...) is matched by its IMDb id only."""

    def __init__(self, session: Session) -> None:
        self.by_imdb: dict[str, int] = {}
        self.own: dict[tuple[str, int | None], set[int]] = defaultdict(set)
        self.alternate: dict[tuple[str, int | None], set[int]] = defaultdict(set)
        self.own_any: dict[str, set[int]] = defaultdict(set)
        self.alternate_any: dict[str, set[int]] = defaultdict(set)
        self.movies: list[_Titled] = []  # for suggestions, with the bare key read here once
        self._suggester: _Suggester | None = None
        for movie_id, title, year, imdb_id in session.exec(select(Movie.id, Movie.title, Movie.year, Movie.imdb_id)):
            if imdb_id:
                self.by_imdb[imdb_id] = movie_id
            own, alternates = match_keys(title)
            self.movies.append(_Titled(movie_id, title, year, own[-1] if own else ""))
            for key in own:
                self.own[(key, year)].add(movie_id)
                self.own_any[key].add(movie_id)
            for key in alternates:
                self.alternate[(key, year)].add(movie_id)
                self.alternate_any[key].add(movie_id)

    def match(self, row: HistoryRow) -> int | None:
        if row.imdb_id and row.imdb_id in self.by_imdb:
            return self.by_imdb[row.imdb_id]
        if not row.film:
            return None
        own, alternates = match_keys(row.title)
        keys = own + alternates
        if row.year is None:
            return self._unique([self.own_any, self.alternate_any], keys)
        for years in ([row.year], [row.year - 1, row.year + 1]):
            for index in (self.own, self.alternate):
                found = self._unique([index], [(key, year) for key in keys for year in years])
                if found is not None:
                    return found
        return None

    def suggest(self, row: HistoryRow) -> list[dict[str, object]]:
        """Up to SUGGESTIONS close catalogue titles for a row no movie matched (none for a row IMDb
        says is not a film); the index of titles is built on the first call, once per import."""
        if not row.film:
            return []
        if self._suggester is None:
            self._suggester = _Suggester(self.movies)
        return self._suggester.suggest(row.title, row.year)

    @staticmethod
    def _unique(indexes: list[Any], keys: list[Any]) -> int | None:
        """The first key (in order, each index in turn) that names exactly one movie."""
        for index in indexes:
            for key in keys:
                found = index.get(key, set())
                if len(found) == 1:
                    return int(next(iter(found)))
        return None


class _Titled(NamedTuple):
    """A catalogue movie as suggestions read it: `key` is its barest own title key (`_bare_key`)."""

    id: int
    title: str
    year: int | None
    key: str


class _Suggester:
    """Close titles for a title no movie matched: difflib's ratio between bare title keys (the
    matcher's: accents, case, punctuation and a leading article ignored, trailing groups dropped)
    over the catalogue movies that share one of the title's two rarest words, and, while fewer than
    SUGGESTIONS are close, those of its year; a movie SUGGEST_YEAR_PENALTY lower per year apart (at
    most 3). A ratio of at least SUGGEST_CUTOFF is close."""

    def __init__(self, movies: list[_Titled]) -> None:
        self.movies = movies
        self.keys = [m.key for m in movies]
        self.by_word: dict[str, list[int]] = defaultdict(list)
        self.by_year: dict[int | None, list[int]] = defaultdict(list)
        for i, key in enumerate(self.keys):
            for word in set(key.split()):
                self.by_word[word].append(i)
            self.by_year[movies[i].year].append(i)

    def suggest(self, title: str, year: int | None) -> list[dict[str, object]]:
        key = _bare_key(title)
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(key)  # difflib caches what it learns of the second sequence
        rarest = sorted((w for w in set(key.split()) if w in self.by_word), key=lambda w: len(self.by_word[w]))[:2]
        scores: dict[int, float] = {}
        for group in [[i for w in rarest for i in self.by_word[w]], self.by_year.get(year, []) if year else []]:
            for i in group:
                if i not in scores:
                    scores[i] = self._score(matcher, i, year)
            if sum(s >= SUGGEST_CUTOFF for s in scores.values()) >= SUGGESTIONS:
                break
        best = sorted((-s, i) for i, s in scores.items() if s >= SUGGEST_CUTOFF)[:SUGGESTIONS]  # a tie: catalogue order
        return [
            {"movie_id": self.movies[i].id, "title": self.movies[i].title, "year": self.movies[i].year} for _, i in best
        ]

    def _score(self, matcher: difflib.SequenceMatcher[str], i: int, year: int | None) -> float:
        matcher.set_seq1(self.keys[i])
        if matcher.real_quick_ratio() < SUGGEST_CUTOFF or matcher.quick_ratio() < SUGGEST_CUTOFF:
            return 0.0
        other = self.movies[i].year
        apart = min(abs(year - other), 3) if year is not None and other is not None else 0
        return matcher.ratio() - SUGGEST_YEAR_PENALTY * apart


def _bare_key(title: str) -> str:
    """The title's barest own key (match_keys: normalised, a leading article and trailing groups dropped)."""
    own, _ = match_keys(title)
    return own[-1] if own else ""


def import_history(session: Session, user_id: int, history: HistoryFile) -> HistoryReport:
    """Import one user's export (read by read_history) as their own ratings; the caller commits.
    An undated row is stamped with the import time, and written only where the user has no rating
    or deletion of their own for that movie. ConflictError, writing nothing, when the catalogue has
    no movie yet (every row would be unmatched)."""
    rows = history.rows
    report = HistoryReport(
        rows=len(rows) + history.skipped_total,
        skipped_total=history.skipped_total,
        skipped=list(history.skipped),
        warnings=list(history.warnings),
    )
    matcher = _Matcher(session)
    if rows and not matcher.movies:
        raise ConflictError("the catalogue has no movies yet to match the export's titles against: ingest one first")
    latest: dict[int, HistoryRow] = {}
    for row in rows:
        movie_id = matcher.match(row)
        if movie_id is None:
            report.unmatched_total += 1
            if len(report.unmatched) < LISTED_ROWS:  # suggestions cost ~2 ms a row: listed rows only
                close = matcher.suggest(row)
                report.unmatched.append({"line": row.line, "title": row.title, "year": row.year, "suggestions": close})
            continue
        report.matched += 1
        if movie_id not in latest or _when(row) >= _when(latest[movie_id]):
            if movie_id in latest:
                report.unchanged += 1  # the same movie twice in one file: the later date wins
            latest[movie_id] = row
        else:
            report.unchanged += 1
    edits = repo.user_edits(session, user_id)
    current = {r.movie_id: r for r in repo.user_ratings(session, user_id)}
    now = int(datetime.now(UTC).timestamp())
    writes = []
    for movie_id, row in latest.items():
        edit, have = edits.get(movie_id), current.get(movie_id)
        if row.timestamp is None and edit is not None:  # undated: never replaces the user's own
            if have is not None and have.rating == row.rating:
                report.unchanged += 1
            else:
                report.kept_newer += 1
        elif edit is not None and row.timestamp is not None and edit.timestamp > row.timestamp:
            report.kept_newer += 1
        elif edit is not None and have is not None and (have.rating, have.timestamp) == (row.rating, row.timestamp):
            report.unchanged += 1
        else:
            writes.append((user_id, movie_id, row.rating, now if row.timestamp is None else row.timestamp))
    repo.upsert_ratings(session, writes)
    repo.mark_user_edits(session, [(u, m, t) for u, m, _, t in writes], deleted=False)
    report.imported = len(writes)
    return report


def _when(row: HistoryRow) -> int:
    """A row's date for ordering two rows of one movie: an undated row is the older."""
    return -1 if row.timestamp is None else row.timestamp
