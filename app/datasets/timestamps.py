"""The one reader of rating times: the bulk ratings import (ingest/ratings.py) and the history
import (history.py) both read every timestamp through `parse_timestamps`, vectorised with pyarrow.

Forms read, each to unix seconds:
- a whole number (`1704460920`, `1704460920.0`): epoch seconds; by its size, epoch milliseconds
  (from MS_THRESHOLD: 1e11 s is the year 5138, 1e11 ms 1973), microseconds (from 1e14) or
  nanoseconds (from 1e17: pandas' int64 datetimes), divided down to seconds;
- eight digits that are a date of 1900-2099 (`20240105`): ISO 8601's basic date, YYYYMMDD (as
  epoch seconds those would all be in August 1970, before any rating was ever collected); eight
  digits in that range that are no calendar date (`20240230`) are not a timestamp;
- an ISO date or date-time, naive ones UTC (`2024-01-05`, `2024-01-05 13:22`,
  `2024-01-05T14:22:00+01:00`, `...Z`); `/` or `.` between year, month and day and one-digit
  months and days are read too (`2024/1/5`, `2024.01.05 13:22`);
- a month in words: `5 Jan 2024`, `January 5, 2024`, `05-Jan-2024`, IMDb's older
  `Sat Jan 05 00:00:00 2013`.
- dd/mm/yyyy or mm/dd/yyyy (`/`, `.` or `-`, a time after it allowed) in the order the column
  tells: a row votes for an order when it is a calendar date in that order alone (`13/02/2024`:
  day-first; `31/13/2024`, a date in neither, does not vote); votes for one order only make the
  column day-first (European spreadsheets, a Letterboxd file re-saved by Excel) or month-first;
  counted as `timestamps_day_first` / `timestamps_month_first`. A caller reading one file in
  blocks passes the order an earlier block told (`Timestamps.order`): the file's, not the block's.
A day-month order that cannot be told (only `05/01/2024`-like dates, or both orders in one column),
and a date only the other order reads where the order is known, is refused as ambiguous; anything
else is not a timestamp. The ISO forms arrow parses are cast in one call; the rest (words,
microseconds, a bad value) go through Python, once per distinct text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MS_THRESHOLD = 100_000_000_000  # 1e11: as seconds that is the year 5138, as milliseconds 1973
# (from, divisor, summary key) of the finer epoch units, finest first: each starts where the next
# coarser unit's values would be past the year 5138.
_UNITS = (
    (10**17, 10**9, "timestamps_ns_converted"),
    (10**14, 10**6, "timestamps_us_converted"),
    (MS_THRESHOLD, 1000, "timestamps_ms_converted"),
)
_YMD_RANGE = (19000101, 20991231)  # eight-digit numbers read as YYYYMMDD when they are a calendar date
DATES_NOTE = "timestamps_iso8601"  # dates and date-times read, YYYYMMDD included
FUTURE_SLACK_S = 86_400  # a time up to a day ahead (time zones, clocks) is accepted; later is refused
MISSING = np.iinfo(np.int64).min  # a timestamp the input did not give (or one that did not parse)
NOT_A_TIME = "not a date or time (read: epoch seconds or milliseconds, YYYY-MM-DD, an ISO date-time, 5 Jan 2024)"
AMBIGUOUS = "an ambiguous date (day/month or month/day? write it as YYYY-MM-DD)"

_WHOLE = r"^[+-]?(\d{1,18}|[1-8]\d{18})(\.0*)?$"  # int64 holds it (nanoseconds have 19 digits)
_YMD = (r"^(\d{4})[/.\-](\d{1,2})[/.\-](\d{1,2})((?:[ T].*)?)$", r"\1-0\2-0\3\4")
_YMD_PAD = (r"^(\d{4})-0?(\d\d)-0?(\d\d)", r"\1-\2-\3")
_ARROW_ISO = r"^\d{4}-\d\d-\d\d([ T]\d\d(:\d\d(:\d\d(\.\d{1,3})?)?)?)?"
_ZONE = r"(Z|[+-]\d\d(:?\d\d)?)$"
_AMBIGUOUS = r"^\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}$"
# A date with its day and month first, in one order or the other, and a four-digit year after them.
_DAY_MONTH = r"^(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<y>\d{4})(?P<rest>(?:[ T].*)?)$"
DAY_FIRST_NOTE: Final = "timestamps_day_first"
MONTH_FIRST_NOTE: Final = "timestamps_month_first"
DayMonth = Literal["timestamps_day_first", "timestamps_month_first"]  # an order, named by its note
_WORD_MONTH_FORMS = (
    "%a %b %d %H:%M:%S %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%b %d %Y",
    "%B %d %Y",
    "%d-%b-%Y",
    "%A, %B %d, %Y",
    "%a, %b %d, %Y",
)
_UTC_SUFFIX = re.compile(r"\s*\b(?:UTC|GMT)$", re.IGNORECASE)


@dataclass(frozen=True)
class Timestamps:
    """A column of texts read: `seconds` (int64 unix seconds; MISSING where empty or unreadable),
    masks of the empty and the unreadable ones, and how many were epochs of a finer unit or dates."""

    seconds: np.ndarray
    missing: np.ndarray
    failed: np.ndarray
    ambiguous: np.ndarray  # among `failed`: a day-month order that cannot be told
    notes: dict[str, int]  # {summary key: count}: epochs in a finer unit converted, dates read
    order: DayMonth | None = None  # the day-month order read: given, or told by the column

    def problem(self, i: int) -> str:
        """Why row `i` (a failed one) is no timestamp."""
        return AMBIGUOUS if self.ambiguous[i] else NOT_A_TIME


def whole_numbers(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values, 0 where not whole; bool mask of the whole ones) of trimmed texts: a sign, up
    to 19 digits as int64 holds them, and `.0...` allowed (`4`, `-4`, `+4`, `4.0`). Rating ids and
    epoch timestamps read so."""
    whole = pc.fill_null(pc.match_substring_regex(text, _WHOLE), False)
    if not pc.any(whole).as_py():  # a column of dates: nothing to cast (the cast passes every row)
        return np.zeros(len(text), dtype=np.int64), np.zeros(len(text), dtype=bool)
    # arrow's int cast refuses a '+' and a '.0' tail: both dropped
    digits = pc.replace_substring_regex(pc.if_else(whole, text, "0"), r"^\+|\.0*$", "")
    values = np.asarray(pc.cast(digits, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    return values, np.asarray(whole, dtype=bool)


def epoch_seconds(values: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Whole numbers (int64, MISSING kept) to unix seconds: by size, epoch milliseconds,
    microseconds or nanoseconds divided down, and YYYYMMDD dates read (see the module docstring).
    An eight-digit number in YYYYMMDD's range that is no calendar date (20240230) is MISSING: no
    time (as seconds it would be August 1970). Returns (seconds, {summary key: how many}) with only
    the keys that occurred."""
    notes: dict[str, int] = {}
    given = values != MISSING
    magnitude = np.abs(values)
    ymd = given & (values >= _YMD_RANGE[0]) & (values <= _YMD_RANGE[1])
    finer = given & (magnitude >= MS_THRESHOLD)
    if not (finer.any() or ymd.any()):
        return values, notes
    values, done = values.copy(), ~finer
    for start, divisor, key in _UNITS:
        mask = ~done & (magnitude >= start)
        if n := int(mask.sum()):
            values[mask] //= divisor
            notes[key] = n
        done |= mask
    values[ymd] = _yyyymmdd(values[ymd])
    if n := int((values[ymd] != MISSING).sum()):
        notes[DATES_NOTE] = n
    return values, notes


def _yyyymmdd(values: np.ndarray) -> np.ndarray:
    """Midnight UTC of each YYYYMMDD number in unix seconds; MISSING where it is no calendar date."""
    year, month, day = values // 10000, values // 100 % 100, values % 100
    months = (year - 1970) * 12 + (month - 1)
    start = months.astype("datetime64[M]").astype("datetime64[D]")
    seconds = (start + (day - 1)).astype("datetime64[s]").astype(np.int64)
    next_month = (start + np.timedelta64(31, "D")).astype("datetime64[M]").astype("datetime64[D]")
    days_in_month = (next_month - start).astype(np.int64)
    ok = (month >= 1) & (month <= 12) & (day >= 1) & (day <= days_in_month)
    return np.where(ok, seconds, MISSING)


def parse_timestamps(column: pa.Array | pa.ChunkedArray, order: DayMonth | None = None) -> Timestamps:
    """Every form the module docstring lists, vectorised; surrounding spaces ignored. `order`: the
    day-month order of the file this column is a block of, when an earlier block told it."""
    text = pc.utf8_trim_whitespace(column)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    n = len(text)
    empty = np.asarray(pc.fill_null(pc.equal(text, ""), True), dtype=bool)
    values, whole = whole_numbers(text)
    seconds = np.full(n, MISSING, dtype=np.int64)
    notes: dict[str, int] = {}
    if whole.any():
        seconds[whole], notes = epoch_seconds(values[whole])
    dated = np.flatnonzero(~(empty | whole))
    failed = whole & (seconds == MISSING)  # eight digits that are no date (20240230)
    if dated.size:
        got, bad = _dates(pc.take(text, pa.array(dated)))
        seconds[dated[~bad]] = got[~bad]
        failed[dated[bad]] = True
    ambiguous = np.zeros(n, dtype=bool)
    if failed.any():  # the two regex passes only ever narrow the failed rows
        ambiguous = failed & _matches(text, _AMBIGUOUS)
        if (day_month := failed & _matches(text, _DAY_MONTH)).any():
            order = _read_day_month(text, day_month, seconds, failed, ambiguous, notes, order)
    if dates := int(dated.size - failed.sum()):
        notes[DATES_NOTE] = notes.get(DATES_NOTE, 0) + dates
    return Timestamps(seconds, empty, failed, ambiguous, notes, order)


def _matches(text: pa.Array, pattern: str) -> np.ndarray:
    return np.asarray(pc.fill_null(pc.match_substring_regex(text, pattern), False), dtype=bool)


def _read_day_month(
    text: pa.Array,
    rows: np.ndarray,
    seconds: np.ndarray,
    failed: np.ndarray,
    ambiguous: np.ndarray,
    notes: dict[str, int],
    order: DayMonth | None,
) -> DayMonth | None:
    """Read the `rows` (a mask) written dd/mm/yyyy or mm/dd/yyyy in `order`, else in the order the
    column tells: a row is a vote when it is a calendar date in one order alone, and votes for one
    order only tell it. Nothing is read when the order is not told: each row stays as it was
    (ambiguous). Once it is known, the rows only the other order reads are ambiguous and the others
    still unread are no date ('31.04.2024'). Fills `seconds`, clears `failed` of the rows read and
    counts them under the order's note. Returns the order used, or None."""
    at = np.flatnonzero(rows)
    written = pc.take(text, pa.array(at))
    parts = pc.extract_regex(written, _DAY_MONTH)
    a, b, year = (np.asarray(pc.cast(parts.field(name), pa.int64()).to_numpy(zero_copy_only=False)) for name in "aby")
    day_first = _yyyymmdd(year * 10000 + b * 100 + a) != MISSING
    month_first = _yyyymmdd(year * 10000 + a * 100 + b) != MISSING
    only_day, only_month = day_first & ~month_first, month_first & ~day_first
    if order is None:
        if only_day.any() == only_month.any():
            return None
        order = DAY_FIRST_NOTE if only_day.any() else MONTH_FIRST_NOTE
    iso = r"\3-\2-\1\4" if order == DAY_FIRST_NOTE else r"\3-\1-\2\4"  # groups: a, b, year, the rest
    got, bad = _dates(pc.replace_substring_regex(written, _DAY_MONTH, iso))
    seconds[at[~bad]] = got[~bad]
    failed[at[~bad]] = False
    ambiguous[at] = only_month if order == DAY_FIRST_NOTE else only_day
    if n := int((~bad).sum()):
        notes[order] = n
    return order


def _dates(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(unix seconds, mask of the unreadable) of texts that are not whole numbers."""
    text = pc.replace_substring_regex(pc.replace_substring_regex(text, *_YMD), *_YMD_PAD)
    seconds = np.zeros(len(text), dtype=np.int64)
    iso = np.asarray(pc.fill_null(pc.match_substring_regex(text, _ARROW_ISO + f"({_ZONE[:-1]})?$"), False), dtype=bool)
    zoned = np.asarray(pc.fill_null(pc.match_substring_regex(text, _ZONE), False), dtype=bool)
    rest = ~iso
    for mask, unit in ((iso & zoned, pa.timestamp("ms", tz="UTC")), (iso & ~zoned, pa.timestamp("ms"))):
        idx = np.flatnonzero(mask)
        if not idx.size:
            continue
        try:
            millis = pc.cast(pc.take(text, pa.array(idx)), unit).cast(pa.int64()).to_numpy(zero_copy_only=False)
            seconds[idx] = np.floor_divide(millis, 1000)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # one bad value ('2024-13-45') fails the cast
            rest[idx] = True
    bad = np.zeros(len(text), dtype=bool)
    idx = np.flatnonzero(rest)
    if idx.size:
        seconds[idx], bad[idx] = _python_dates(pc.take(text, pa.array(idx)))
    return seconds, bad


def _python_dates(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The forms arrow does not cast, read by Python once per distinct text: (seconds, unreadable)."""
    distinct = pc.unique(text)
    parsed = [_seconds(value) for value in distinct.to_pylist()]
    known = np.array([p is not None for p in parsed] or [False], dtype=bool)
    values = np.array([p or 0 for p in parsed] or [0], dtype=np.int64)
    at = np.asarray(pc.index_in(text, value_set=distinct).to_numpy(zero_copy_only=False))
    return values[at], ~known[at]


def _seconds(text: str) -> int | None:
    when = _datetime(text)
    return None if when is None else int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp())


def _datetime(text: str) -> datetime | None:
    """Python's ISO reader (microseconds, a zone arrow does not take), then a month in words; a
    trailing "UTC" or "GMT" is the zone ISO writes "Z" ('2024-01-05 13:22:00 UTC')."""
    text = _UTC_SUFFIX.sub("+00:00" if text[:4].isdigit() else "", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for form in _WORD_MONTH_FORMS:
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    return None
