"""MovieLens's header-less ratings files (ml-1m / ml-10m `ratings.dat`, `::`; ml-100k `u.data`, tab) on
the ingest's bulk path: the same stored ratings and the same row errors (file, line, field) as the row
path they were read by before, which this file keeps as its oracle (a Python split per line, each row
a RatingRow, through the row sources' import). Real SQLite (or PostgreSQL: MOVIEREC_TEST_DB=postgres)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.datasets import load_catalogue
from app.datasets.base import RatingRow, RatingsLayout, RowError
from app.datasets.files import detect_encoding
from app.datasets.tmdb import BadFieldError, parse_float, parse_int
from ingest.pipeline import store_catalogue
from ingest.ratings import SEPARATOR_BYTE, RatingsFileError, _OneByteSeparator, read_ratings_file
from tests.helpers.worlds import make_settings

# Every kind of row the import meets: good, duplicated (a later timestamp; a tie: the later line),
# unknown movie, off the rating rule, a decimal comma, milliseconds, a Latin-1 byte, ids out of
# range, a negative time, too few / too many fields, a stray ':', an empty id, spaces, '2.0' as an
# id, CRLF, a blank line inside and a trailing blank line.
ROWS = [
    ("1", "1", "5", "978300760"),
    ("1", "2", "3", "978302109"),
    None,
    ("2", "9", "4", "978301968"),
    ("2", "1", "4,5", "978301968"),
    ("2", "2", "7", "978301968"),
    ("2", "3", "3.5", "978301969000"),
    ("3", "1", "é", "978300000"),
    ("3", "1", "2", "978300001"),
    ("3", "1", "4", "978300001"),
    ("3", "2", "1", "978300500"),
    ("3", "2", "5", "978300400"),
    ("0", "1", "4", "978300000"),
    ("4", "1", "4", "-5"),
    ("4", "2", "4"),
    ("4", "2", "4", "1", "2"),
    ("4", ":3", "4", "978300000"),
    ("4", "", "4", "978300000"),
    (" 5 ", " 1 ", " 4 ", " 978300000"),
    ("5", "2.0", "3", "978300000"),
    ("6", "1", "5", "978300000"),
]
MOVIES_DAT = "1::Toy Story (1995)::Animation\n2::Heat (1995)::Crime\n3::Fargo (1996)::Crime\n"
U_ITEM = "\n".join(f"{i}|Movie {i} (1995)|01-Jan-1995||x|" + "|".join(["0"] * 19) for i in (1, 2, 3)) + "\n"


def ratings_text(sep: str) -> str:
    lines = ["" if row is None else sep.join(row) for row in ROWS]
    return "\n".join(lines[:-1]) + "\n" + lines[-1] + "\r\n\n"  # CRLF on the last row, then a blank line


def folder(tmp_path: Path, layout: str) -> tuple[Path, str, str]:
    """A GroupLens folder of `layout` ('ml-1m' or 'ml-100k') with every kind of row; (folder, ratings file, sep)."""
    path = tmp_path / layout
    path.mkdir()
    name, sep = ("ratings.dat", "::") if layout == "ml-1m" else ("u.data", "\t")
    (path / ("movies.dat" if layout == "ml-1m" else "u.item")).write_text(
        MOVIES_DAT if layout == "ml-1m" else U_ITEM, encoding="latin-1"
    )
    (path / name).write_bytes(ratings_text(sep).encode("latin-1"))
    return path, name, sep


def row_path_rows(path: Path, sep: str) -> tuple[list[RatingRow], list[RowError]]:
    """The row path these files were read by before: a Python split per line, a RatingRow each."""
    rows, errors = [], []
    with path.open(encoding=detect_encoding(path).name, newline="") as f:
        for line, raw in enumerate(f, start=1):
            values = raw.rstrip("\r\n").split(sep)
            if not raw.strip():
                continue
            if len(values) != 4:
                errors.append(RowError(path.name, line, "row", "field count"))
                continue
            try:
                user, movie = parse_int(values[0], "userId"), parse_int(values[1], "movieId")
                rating, ts = parse_float(values[2], "rating"), parse_int(values[3], "timestamp")
                if user is None or movie is None or rating is None:
                    missing = "userId" if user is None else "movieId" if movie is None else "rating"
                    raise BadFieldError(missing, "missing value")
            except BadFieldError as exc:
                errors.append(RowError(path.name, line, exc.field, str(exc)))
                continue
            rows.append(RatingRow(user, movie, rating, ts, line, path.name))
    return rows, errors


def engine_at(path: Path) -> Engine:
    settings = make_settings(path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.sqlalchemy_url)


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    old, bulk = engine_at(tmp_path / "old"), engine_at(tmp_path / "bulk")
    yield old, bulk
    old.dispose()
    bulk.dispose()


def stored(engine: Engine) -> list[tuple[int, int, float, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT user_id, movie_id, rating, timestamp FROM ratings ORDER BY 1, 2"))
        return [(int(u), int(m), float(r), int(t)) for u, m, r, t in rows]


def where(errors: list[RowError]) -> list[tuple[str, int, str]]:
    return [(e.file, e.line, e.field) for e in errors]


@pytest.mark.parametrize("layout", ["ml-1m", "ml-100k"])
def test_bulk_path_stores_what_the_row_path_stored(tmp_path: Path, engines: tuple[Engine, Engine], layout: str) -> None:
    path, name, sep = folder(tmp_path, layout)
    old_engine, bulk_engine = engines

    old = load_catalogue("movielens", directory=path)
    assert (old.ratings_file, old.ratings_layout) == (path / name, RatingsLayout(sep))
    old.ratings_file, old.ratings_layout = None, None  # as before: every row a Python object
    old.ratings, parse_errors = row_path_rows(path / name, sep)
    old.errors += parse_errors
    old_n, old_errors = store_catalogue(old_engine, old)

    bulk = load_catalogue("movielens", directory=path)
    bulk_n, bulk_errors = store_catalogue(bulk_engine, bulk)

    assert (
        stored(bulk_engine)
        == stored(old_engine)
        == [
            (1, 1, 5.0, 978300760),
            (1, 2, 3.0, 978302109),
            (2, 1, 4.5, 978301968),
            (2, 3, 3.5, 978301969),
            (3, 1, 4.0, 978300001),
            (3, 2, 1.0, 978300500),
            (5, 1, 4.0, 978300000),
            (5, 2, 3.0, 978300000),
            (6, 1, 5.0, 978300000),
        ]
    )
    assert bulk_n == old_n == 9
    assert bulk.stats["ratings_duplicates_resolved"] == old.stats["ratings_duplicates_resolved"] == 2
    assert (
        where(bulk_errors)
        == where(old_errors)
        == [
            (name, 4, "movieId"),
            (name, 6, "rating"),
            (name, 8, "rating"),
            (name, 13, "userId"),
            (name, 14, "timestamp"),
            (name, 15, "row"),
            (name, 16, "row"),
            (name, 17, "movieId"),
            (name, 18, "movieId"),
        ]
    )
    assert str(bulk_errors[5]) == f"{name}:15: row: expected 4 fields" + (" separated by '::'" if sep == "::" else "")


def test_unchanged_file_writes_nothing_and_user_edits_stay(tmp_path: Path, engines: tuple[Engine, Engine]) -> None:
    path, name, _ = folder(tmp_path, "ml-1m")
    engine = engines[1]
    store_catalogue(engine, load_catalogue("movielens", directory=path))
    before = stored(engine)

    again = load_catalogue("movielens", directory=path)
    assert store_catalogue(engine, again)[0] == 9
    assert (again.stats["ratings_unchanged"], again.stats["ratings_written"]) == (1, 0)
    assert stored(engine) == before

    with Session(engine) as session:  # the user's own: never written by an import again
        repo.rate(session, 1, 1, 0.5, timestamp=978300000)
        repo.unrate(session, 1, 2)
        session.commit()
    with (path / name).open("ab") as f:  # a changed file: a later rating of those pairs, and a new one
        f.write(b"1::1::2::999999999\n1::2::2::999999999\n7::3::4::999999999\n")
    changed = load_catalogue("movielens", directory=path)
    assert store_catalogue(engine, changed)[0] == 8
    assert (changed.stats["ratings_unchanged"], changed.stats["ratings_kept_user_edits"]) == (0, 2)
    after = {(u, m): (r, t) for u, m, r, t in stored(engine)}
    assert after[1, 1] == (0.5, 978300000) and (1, 2) not in after and after[7, 3] == (4.0, 999999999)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "latin-1", "utf-16"])
def test_a_dat_file_in_any_encoding_reads_the_same(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "ratings.dat"
    path.write_bytes("1::1::5::978300760\n\n2::3::é::1\n2::3::4.5::978300761\n".encode(encoding))
    rows, errors, _ = read_ratings_file(path, layout=RatingsLayout("::"))
    assert (rows.user.tolist(), rows.movie.tolist(), rows.rating.tolist(), rows.line.tolist()) == (
        [1, 2],
        [1, 3],
        [5.0, 4.5],
        [1, 4],
    )
    assert where(errors) == [("ratings.dat", 3, "rating")]


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 8, 1 << 20])
def test_separators_cut_between_pieces_read_as_split_reads_them(tmp_path: Path, piece: int) -> None:
    """'::' straddling two pieces, and runs of ':' of every length, wherever the pieces are cut."""
    data = "1::2:::3::::4\n:::::\n::a::b:c::é\n" + ":" * 7 + "x::" * 3
    path = tmp_path / "r.dat"
    path.write_text(data, encoding="utf-8")
    with _OneByteSeparator(path, "utf-8", "::", piece=piece) as stream:
        assert stream.read() == SEPARATOR_BYTE.join(data.split("::")).encode("utf-8")


def test_a_dat_file_that_is_empty_or_not_dat_is_one_file_error(tmp_path: Path) -> None:
    path = tmp_path / "ratings.dat"
    path.write_text("\n\n")
    with pytest.raises(RatingsFileError, match=r"^ratings\.dat: the ratings file is empty; expected rows userId::"):
        read_ratings_file(path, layout=RatingsLayout("::"))
    path.write_text("\n1,1,5,978300760\n")
    with pytest.raises(RatingsFileError, match=r"^ratings\.dat:2: read '1,1,5,978300760'; expected rows userId::"):
        read_ratings_file(path, layout=RatingsLayout("::"))
    path.write_text("1 1 5 978300760\n")
    with pytest.raises(RatingsFileError, match=r"expected rows userId\\tmovieId\\trating\\ttimestamp, no header"):
        read_ratings_file(path, layout=RatingsLayout("\t"))
