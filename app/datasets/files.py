"""Reading users' files: encodings, CSV dialects, JSON, and one-line reports of what is wrong.

Every source reads its files through here, so every file-level problem is reported the same way:
an `UnusableFileError` whose text is one line naming the file, where in it (line and column, or record),
what is wrong and what to do. Row-level problems are the caller's (see `base.RowError`).

Public API:
- `UnusableFileError`: a file that cannot be read at all; the ingest stops before writing anything.
  An InvalidInputError with field "file": the API answers it 400, the CLI exits 2.
- `MemoryFile(name, data)`: an upload's bytes, read by the CSV functions like a file on disk.
- `detect_encoding(path)`: UTF-8 (with or without BOM), else cp1252, else Latin-1, with a warning;
  a compressed, archived, spreadsheet or other binary file is an UnusableFileError saying what it is.
- `binary_problem(head)`: what a file's first bytes say it is when it is not text (gzip, zip, xlsx...).
- `unpack(source, member)`: a zip or gzip upload's CSV (the Letterboxd export is a zip).
- `sniff_delimiter(header_line)`: ',' ';' tab or '|'.
- `csv_records(path, required, warnings, errors)`: (line where the record starts, {column: value});
  blank lines before the header are skipped, and a header cell names a required column whatever its
  case, spaces or underscores ('UserID', 'user_id' are 'userId').
- `json_records(path, errors)`: (position, record) from a JSON list or JSON Lines.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from app.datasets.base import RowError, RowErrorSink
from app.errors import InvalidInputError

DELIMITER_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}  # in the order a tie is settled
DELIMITERS = "".join(DELIMITER_NAMES)
# The csv module refuses cells over 128 KiB by default; real overviews and credits cells can be
# larger. Raise the limit once, far above any real cell, but keep one so a runaway quote still stops.
CSV_FIELD_LIMIT = 64 * 1024 * 1024
_CHUNK = 1 << 20
# An archive's CSV is read into memory: refuse one that unpacks to more than this (a zip bomb). A
# history export's CSV is a few MB (60,000 Letterboxd ratings: about 4 MiB); 256 MiB was a 256 MiB
# allocation per request for a 256 KB gzip.
MAX_UNPACKED_BYTES = 32 * 1024 * 1024
HEAD_BYTES = 1 << 16  # bytes looked at to tell text from binary
_GZIP, _ZIP = b"\x1f\x8b", b"PK\x03\x04"  # the first bytes of the two archives `unpack` opens
# (leading bytes, what the file is, what to do): files people send instead of a CSV or JSON.
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (_GZIP, "a gzip-compressed file", "decompress it first (gunzip FILE)"),
    (b"BZh", "a bzip2-compressed file", "decompress it first (bunzip2 FILE)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "decompress it first (unxz FILE)"),
    (b"(\xb5/\xfd", "a zstd-compressed file", "decompress it first (unzstd FILE)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it and give the CSV or JSON file inside"),
    (b"Rar!", "a RAR archive", "extract it and give the CSV or JSON file inside"),
    (b"PK\x05\x06", "an empty zip archive", "give the CSV or JSON file itself"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) or other Office file", "save it as CSV (UTF-8)"),
    (b"%PDF", "a PDF document", "export the data as CSV"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
    (b"PAR1", "a Parquet file", "export it as CSV"),
)


class UnusableFileError(InvalidInputError, ValueError):
    """A file that cannot be used: the input is wrong (field "file").

    `str()` is one line: 'file:line:column: problem; what to do'."""

    def __init__(
        self, file: str, message: str, hint: str = "", *, line: int | None = None, column: int | None = None
    ) -> None:
        self.file, self.message, self.hint, self.line, self.column = file, message, hint, line, column
        super().__init__(str(self), field="file")

    def __str__(self) -> str:
        where = self.file + "".join(f":{n}" for n in (self.line, self.column) if n is not None)
        return f"{where}: {self.message}" + (f"; {self.hint}" if self.hint else "")


@dataclass(frozen=True)
class MemoryFile:
    """A file's bytes already in memory (an upload), read by detect_encoding and csv_records like a
    file on disk. `name` is what messages call it."""

    name: str
    data: bytes


Readable = Path | MemoryFile


def _open_binary(source: Readable) -> IO[bytes]:
    return io.BytesIO(source.data) if isinstance(source, MemoryFile) else source.open("rb")


def _open_text(source: Readable, encoding: str) -> IO[str]:
    """Text with newlines untranslated, as the csv module wants."""
    if isinstance(source, MemoryFile):
        return io.TextIOWrapper(io.BytesIO(source.data), encoding=encoding, newline="")
    return source.open(encoding=encoding, newline="")


@dataclass(frozen=True)
class Encoding:
    name: str  # a Python codec name
    warning: str | None = None  # set when the file is not UTF-8


def detect_encoding(path: Readable) -> Encoding:
    """UTF-8 (a BOM is dropped) when the whole file decodes as UTF-8; else cp1252 (Windows' Western
    European, a superset of Latin-1's printable range), else Latin-1, which decodes any byte.
    Reads the file in 1 MiB chunks, so a large file is never held in memory. A UTF-16 file
    (Excel's "Unicode text") is recognised by its BOM, or without one by its NUL byte of each ASCII
    character. UnusableFileError when the file cannot be opened."""
    try:
        with _open_binary(path) as f:
            head = f.read(HEAD_BYTES)
    except OSError as exc:
        raise UnusableFileError(str(path), f"cannot read the file ({exc.strerror})", "check the path") from None
    if (utf16 := utf16_codec(head)) and _first_decode_error(path, utf16) is None:
        return Encoding(utf16)
    if (binary := binary_problem(head)) is not None:
        raise UnusableFileError(path.name, *binary)
    problem = _first_decode_error(path, "utf-8")
    if problem is None:
        with _open_binary(path) as f:
            bom = f.read(3) == codecs.BOM_UTF8
        return Encoding("utf-8-sig" if bom else "utf-8")
    fallback = "cp1252" if _first_decode_error(path, "cp1252") is None else "latin-1"
    line, column = problem
    return Encoding(
        fallback,
        f"{path.name}: not UTF-8 (first bad byte at line {line}, column {column}); read as {fallback}. "
        "Save the file as UTF-8 to silence this warning",
    )


def utf16_codec(head: bytes) -> str | None:
    """The codec of a file whose first bytes are `head` when it is UTF-16: 'utf-16' with a BOM (Excel's
    "Unicode text"); 'utf-16-le' or 'utf-16-be' without one (some exporters and scripts): a CSV is
    mostly ASCII (digits, separators, headers), so one byte of each pair is NUL in at least half the
    pairs and the other byte never is. None for anything else."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    pairs = len(head) // 2
    if pairs < 8:
        return None
    even, odd = head[0 : 2 * pairs : 2], head[1 : 2 * pairs : 2]
    for zeros, other, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if zeros.count(0) * 2 >= pairs and other.count(0) == 0:
            return codec
    return None


def binary_problem(head: bytes) -> tuple[str, str] | None:
    """(what the file is, what to do) when its first bytes (up to 64 KiB) are not a text file's: a
    compressed file, an archive, a spreadsheet or database, or any data with a NUL byte (which no
    UTF-8, cp1252 or Latin-1 CSV holds; UTF-16 is recognised before this). None for text."""
    for magic, what, hint in _MAGIC:
        if head.startswith(magic):
            return what, hint
    if head.startswith(_ZIP):
        if b"xl/" in head or b"[Content_Types].xml" in head:
            return "an Excel workbook (.xlsx)", "save it as CSV (UTF-8) from the spreadsheet"
        return "a zip archive", "unzip it and give the CSV or JSON file inside"
    if (nul := head.find(b"\x00")) >= 0:
        line = head.count(b"\n", 0, nul) + 1
        column = nul - head.rfind(b"\n", 0, nul)
        return (
            f"binary data, not text (a NUL byte at line {line}, column {column})",
            "give a CSV or JSON text file (UTF-8)",
        )
    return None


def unpack(source: MemoryFile, member: str) -> MemoryFile:
    """`source` itself when it is not compressed; a gzip's content; a zip's CSV: the one named
    `member` (in any folder, any case; the shallowest where several are), else its only CSV. The
    result is named 'archive/member'.
    UnusableFileError for a broken archive, one without such a CSV, or one that unpacks to more
    than MAX_UNPACKED_BYTES."""
    data = source.data
    if data.startswith(_GZIP):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
                inner = f.read(MAX_UNPACKED_BYTES + 1)
        except (OSError, EOFError) as exc:
            raise UnusableFileError(source.name, f"a broken gzip file ({exc})", "compress it again") from None
        _check_unpacked_size(source.name, len(inner))
        return MemoryFile(source.name, inner)
    if not data.startswith(_ZIP) or binary_problem(data[:HEAD_BYTES]) != binary_problem(_ZIP):
        return source  # not a zip, or an .xlsx: detect_encoding says what it is
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = _zip_member(source.name, archive, member)
            _check_unpacked_size(source.name, info.file_size)
            return MemoryFile(f"{source.name}/{info.filename}", archive.read(info))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise UnusableFileError(
            source.name, f"a zip archive that cannot be read ({exc})", "unzip it and give the CSV inside"
        ) from None


def _zip_member(name: str, archive: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    files = [i for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    named = [i for i in files if i.filename.rsplit("/", 1)[-1].lower() == member.lower()]
    # The shallowest: Letterboxd's export keeps its live files at the top and its deleted/ and
    # orphaned/ entries in folders below, under the same names.
    shallowest = min((i.filename.count("/") for i in named), default=0)  # once: per entry was quadratic
    named = [i for i in named if i.filename.count("/") == shallowest]
    csvs = [i for i in files if i.filename.lower().endswith(".csv")]
    if len(named) == 1:
        return named[0]
    if not named and len(csvs) == 1:
        return csvs[0]
    shown = ", ".join(i.filename for i in csvs[:8]) or "none"
    raise UnusableFileError(
        name, f"a zip archive without one {member} (CSV files in it: {shown})", f"give {member} itself"
    )


def _check_unpacked_size(name: str, size: int) -> None:
    if size > MAX_UNPACKED_BYTES:
        raise UnusableFileError(
            name, f"unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB", "give the CSV itself, or a smaller file"
        )


def _first_decode_error(path: Readable, encoding: str) -> tuple[int, int] | None:
    """(line, column) of the first byte `encoding` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(encoding)()
    lines, last_line = 1, b""
    with _open_binary(path) as f:
        while True:
            chunk = f.read(_CHUNK)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                head = last_line + chunk[: exc.start]
                line = lines + chunk[: exc.start].count(b"\n")
                return line, len(head) - head.rfind(b"\n")
            if not chunk:
                return None
            lines += chunk.count(b"\n")
            last_line = (last_line + chunk)[(last_line + chunk).rfind(b"\n") + 1 :]


def cells(line: str, delimiter: str) -> list[str]:
    """One line's cells, quotes respected (as pyarrow and csv split a row)."""
    return next(csv.reader([line], delimiter=delimiter), [])


def sniff_delimiter(header: str) -> str:
    """The delimiter of a header line: whichever of ',' ';' tab and '|' splits it into most columns
    (',' on a tie or when none occurs). Sniffing the header, not data rows, avoids being misled by
    commas inside quoted titles and decimal commas."""
    counts = {d: len(cells(header, d)) for d in DELIMITERS}
    best = max(counts.values())
    return next(d for d in DELIMITERS if counts[d] == best)


class SeparatorLineError(ValueError):
    """An Excel 'sep=' line naming a character that is not one of DELIMITERS; `str()` says which and
    what to write instead (the caller adds the file and line)."""


def excel_separator(line: str) -> str | None:
    """The delimiter that Excel's 'sep=;' line (written above the header for Excel to open the file)
    names, or None when `line` is no such line. SeparatorLineError when it names another character
    (`sep=:`): no reader here splits on it."""
    found = re.fullmatch(r"sep=(.)", line.lstrip("\ufeff").rstrip("\r\n"), re.IGNORECASE)
    if found and found.group(1) not in DELIMITER_NAMES:
        raise SeparatorLineError(
            f"an Excel 'sep=' line names {found.group(1)!r}, not a delimiter read here; "
            "write sep=, sep=; sep=| or sep= and a tab (or drop the line)"
        )
    return found.group(1) if found else None


def _delimiter(path: Readable, encoding: str) -> tuple[str, bool]:
    """(the delimiter, whether an Excel 'sep=' line above the header named it); else sniffed from
    the header, the first non-blank line."""
    with _open_text(path, encoding) as f:
        for line, raw in enumerate(f, start=1):
            if raw.strip():
                try:
                    named = excel_separator(raw)
                except SeparatorLineError as exc:
                    raise UnusableFileError(path.name, str(exc), line=line) from None
                return (named, True) if named is not None else (sniff_delimiter(raw.rstrip("\r\n")), False)
    raise UnusableFileError(path.name, "empty file", "export it again, with a header row")


def _escape_char(path: Readable, encoding: str, delimiter: str) -> str | None:
    """'\\' when the file writes a quote inside a cell as \\" (MySQL's and PHP's exports) and
    reading it so refuses fewer records than CSV's "" does; None otherwise (and for a file
    without \\"). Only such a file is parsed twice more, streamed."""
    with _open_text(path, encoding) as f:
        if not any('\\"' in line for line in f):
            return None
    escaped = _refused(path, encoding, delimiter, "\\")
    return "\\" if escaped < _refused(path, encoding, delimiter, None) else None


def _refused(path: Readable, encoding: str, delimiter: str, escape: str | None) -> int:
    """How many records of the file the csv module refuses with this escape character."""
    with _open_text(path, encoding) as f:
        reader, refused = csv.reader(f, delimiter=delimiter, strict=True, escapechar=escape), 0
        while True:
            try:
                if next(reader, None) is None:
                    return refused
            except csv.Error:
                refused += 1


def csv_records(
    path: Readable,
    required: Sequence[Sequence[str]],
    warnings: list[str],
    errors: RowErrorSink,
    missing_hint: str = "rename the column, or check that the delimiter is ',' ';' tab or '|'",
    optional: Sequence[str] = (),
) -> Iterator[tuple[int, dict[str, str]]]:
    """(line where the record starts, {header column: value}) for each non-empty record.

    `required`: groups of alternative column names; each group must have one present, or
    UnusableFileError names the missing column and the delimiter that was used, then `missing_hint`.
    A header cell that is a required or `optional` name but for case, spaces, '_', '-' or '.' is that name. The
    header is the first non-blank line (line 1 in a file without blank lines before it), or the next
    one below an Excel 'sep=;' line, whose delimiter is then used.
    A file that writes a quote inside a cell as \\" rather than "" is read so (`_escape_char`), with
    a warning: every other backslash is then dropped.
    Row-level problems go to `errors` and the record is skipped: a stray quote inside a cell, more
    values than columns (empty ones past the last column are not counted when the first data row
    has them too: `_spare_cells`), or a cell that
    swallowed what look like whole rows (a quote closed only lines later). A quote left open to the
    end of the file is an UnusableFileError. File-level notes (an encoding guessed) go to `warnings`.
    """
    csv.field_size_limit(CSV_FIELD_LIMIT)
    encoding = detect_encoding(path)
    if encoding.warning:
        warnings.append(encoding.warning)
    delimiter, named = _delimiter(path, encoding.name)
    if escape := _escape_char(path, encoding.name, delimiter):
        warnings.append(
            f'{path.name}: read with \\ as the escape character (a quote in a cell written \\"), so every '
            'other backslash is dropped (AC\\DC reads ACDC); write a quote as "" to keep backslashes'
        )
    with _open_text(path, encoding.name) as f:
        reader = csv.reader(f, delimiter=delimiter, strict=True, escapechar=escape)
        header, header_line = _header(reader, path, skip=int(named))
        header = canonical_columns(header, [*(name for group in required for name in group), *optional])
        _check_columns(path, header, required, delimiter, missing_hint, header_line)
        start, spare = reader.line_num + 1, None
        while True:
            try:
                values = _next(reader, path, start)
            except csv.Error as exc:  # this record only: the reader goes on at the next line
                errors.append(RowError(path.name, start, "row", f'{exc}; write a quote inside a cell as ""'))
                start = reader.line_num + 1
                continue
            if values is None:
                return
            if any(v.strip() for v in values):
                spare = _spare_cells(values, len(header)) if spare is None else spare
                if problem := _row_problem(values, delimiter, len(header), spare, (start, reader.line_num)):
                    errors.append(RowError(path.name, start, "row", problem))
                else:
                    yield start, dict(zip(header, values, strict=False))
            start = reader.line_num + 1


def _spare_cells(first: list[str], columns: int) -> int:
    """How many empty cells the first data row has past the header's `columns`: a delimiter closing
    each row (some spreadsheet exports), then allowed on every row; 0 where one of them holds a
    value. Only the first row tells: an empty last cell on any row hid a misread one ('7,Heat, Part 1,'
    under 'id,title,overview')."""
    extra = first[columns:]
    return 0 if any(v.strip() for v in extra) else len(extra)


def _row_problem(values: list[str], delimiter: str, columns: int, spare: int, lines: tuple[int, int]) -> str | None:
    """Why a record (starting and ending on `lines`) is refused, or None: it swallowed whole rows,
    or has more values than `columns` and the `spare` empty cells the file closes each row with."""
    if _swallowed_rows(values, delimiter, columns):
        return _swallow_message(*lines)
    extra = values[columns:]
    if len(extra) > spare or any(v.strip() for v in extra):
        return f"{len(values)} values for {columns} columns"
    return None


def _header(reader: Any, path: Readable, skip: int = 0) -> tuple[list[str], int]:
    """(the header's cells, stripped; its line): the first record that is not blank, after `skip`
    such records (an Excel 'sep=' line)."""
    while True:
        line = reader.line_num + 1
        try:
            cells = _next(reader, path, line)
        except csv.Error as exc:  # a stray quote in the header: no column can be trusted
            raise UnusableFileError(
                path.name, f"the header row cannot be read ({exc})", 'write a quote inside a cell as ""', line=line
            ) from None
        if cells is None:
            return [], line
        if any(c.strip() for c in cells):
            if skip:
                skip -= 1
                continue
            return [c.strip() for c in cells], line


def _column_key(name: str) -> str:
    return re.sub(r"[\s_.\-]+", "", name).casefold()


def canonical_columns(header: list[str], names: Sequence[str]) -> list[str]:
    """`header` with each cell that spells one of `names` but for case, spaces, '_', '-' or '.'
    ('UserID', 'user_id', 'Title type') renamed to that name; a cell that is exactly a name wins."""
    wanted = {_column_key(n): n for n in names}
    return [h if h in names else wanted.get(_column_key(h), h) for h in header]


def _next(reader: Any, path: Readable, start: int) -> list[str] | None:
    """The next record; UnusableFileError for what ends the file's usefulness (a quote open to the end, a
    runaway cell); other csv.Errors are raised for the caller to report as the record's error."""
    try:
        return next(reader, None)
    except csv.Error as exc:
        text = str(exc)
        if "unexpected end of data" in text:
            raise UnusableFileError(
                path.name,
                f"a quote opened in the record starting here is never closed; it swallows lines "
                f"{start}-{reader.line_num} to the end of the file",
                'close the quote, or write a literal quote inside a quoted field as ""',
                line=start,
            ) from None
        if "field larger than field limit" in text:
            raise UnusableFileError(
                path.name,
                f"a cell is larger than {CSV_FIELD_LIMIT // (1024 * 1024)} MiB",
                "an unclosed quote usually causes this: check the quotes near this line",
                line=start,
            ) from None
        raise


def _check_columns(
    path: Readable, header: list[str], required: Sequence[Sequence[str]], delimiter: str, hint: str, line: int = 1
) -> None:
    for group in required:
        if not any(name in header for name in group):
            shown = DELIMITER_NAMES.get(delimiter, repr(delimiter))
            raise UnusableFileError(
                path.name,
                f"no {' or '.join(repr(n) for n in group)} column (columns read with delimiter {shown}: "
                f"{_column_list(header)})",
                hint,
                line=line,
            )


def _column_list(header: Sequence[str], budget: int = 120) -> str:
    """The header's names, comma-separated, whole names only up to about `budget` characters, then how
    many more: cut at a character count it read "..., Num Votes, Release Da"."""
    shown: list[str] = []
    for name in header:
        if shown and len(", ".join([*shown, name])) > budget:
            return f"{', '.join(shown)} and {len(header) - len(shown)} more"
        shown.append(name)
    return ", ".join(shown)


def _swallowed_rows(values: list[str], delimiter: str, columns: int) -> bool:
    """True when a multi-line cell holds lines that look like whole rows of this file: the sign of a
    quote that was opened and closed only many lines later."""
    if columns < 3:
        return False
    for value in values:
        if "\n" in value:
            inner = value.splitlines()[1:]
            if sum(line.count(delimiter) >= columns - 1 for line in inner) >= 1:
                return True
    return False


def _swallow_message(start: int, end: int) -> str:
    return (
        f"a quoted cell spans lines {start}-{end} and holds what look like whole rows: "
        "a quote is probably unclosed on line " + str(start)
    )


def json_records(
    path: Path, errors: list[RowError], warnings: list[str] | None = None
) -> Iterator[tuple[int, Any, Literal["line", "record"]]]:
    """(position, record, unit): for a JSON list, or an object holding one under "results" (TMDB's
    API pages) or "movies", unit 'record' and the 1-based index of the object; for JSON Lines, unit
    'line' and the file line. A list that does not parse is an UnusableFileError with its line and column;
    a JSON Lines line that does not parse is a RowError."""
    encoding = detect_encoding(path)
    if encoding.warning and warnings is not None:
        warnings.append(encoding.warning)
    text = path.read_text(encoding=encoding.name)
    if not text.strip():
        raise UnusableFileError(path.name, "empty file", "export it again")
    if (whole := _whole_document(text)) is not None:
        records = whole
    elif text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnusableFileError(
                path.name,
                f"invalid JSON ({exc.msg})",
                "the file is probably truncated or hand-edited: export it again",
                line=exc.lineno,
                column=exc.colno,
            ) from None
    if whole is not None or text.lstrip().startswith("["):
        for n, record in enumerate(records, start=1):
            yield n, record, "record"
        return
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            yield line, json.loads(raw), "line"
        except json.JSONDecodeError as exc:
            errors.append(RowError(path.name, line, "json", f"invalid JSON at column {exc.colno}: {exc.msg}"))


def _whole_document(text: str) -> list[Any] | None:
    """The records of a file that is one JSON object spread over lines: its "results" or "movies"
    list, or the object itself. None for anything else (a list, JSON Lines, broken JSON)."""
    if not text.lstrip().startswith("{") or len(text.strip().splitlines()) < 2:
        return None
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return None  # JSON Lines ("Extra data"), or broken: read line by line
    if not isinstance(document, dict):
        return None
    for key in ("results", "movies"):
        if isinstance(records := document.get(key), list):
            return records
    return [document]
