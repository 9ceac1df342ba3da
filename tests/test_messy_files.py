"""Files people really have, messy ones included, without models: each kind is either read as the
user means it or refused with one line naming the file (and line, column or field). Inputs are
written here, per test; the history imports run against a real SQLite catalogue."""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.datasets import UnusableFileError, load_catalogue, validate
from app.datasets.base import RowError, SourceCatalogue
from app.datasets.files import binary_problem
from app.datasets.history import HistoryReport, import_history, read_history
from app.names import HistoryFormat
from app.settings import get_settings
from ingest import ratings as ratings_module
from ingest.pipeline import store_catalogue
from ingest.ratings import MAX_LISTED_ROW_ERRORS, RatingsFileError, read_ratings_file
from movierec.cli import cli
from tests.helpers.worlds import make_settings

H = "id,title,release_date,genres,overview\n"
RH = "userId,movieId,rating,timestamp\n"
LB = "Date,Name,Year,Letterboxd URI,Rating\n"
IMDB = (
    "Const,Your Rating,Date Rated,Title,Original Title,URL,Title Type,IMDb Rating,Runtime (mins),Year,Genres,"
    "Num Votes,Release Date,Directors\n"
)
CATALOGUE = [
    {"id": 1, "title": "Toy Story", "year": 1995, "imdb_id": "tt0114709"},
    {"id": 2, "title": "Amélie", "year": 2001},
    {"id": 4, "title": "Heat", "year": 1995, "imdb_id": "tt0113277"},
    {"id": 5, "title": "Heat", "year": 1986},
    {"id": 6, "title": "Fargo", "year": 1996},
    {"id": 9, "title": "Paddington", "year": 2014},
]


def write(path: Path, data: str | bytes, encoding: str = "utf-8") -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def zipped(files: dict[str, str | bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A real database (SQLite, or PostgreSQL under MOVIEREC_TEST_DB=postgres) holding CATALOGUE."""
    settings = make_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.sqlalchemy_url)
    store_catalogue(engine, load_catalogue("tmdb", write(tmp_path / "catalogue.json", json.dumps(CATALOGUE))))
    yield engine
    engine.dispose()


def history(
    engine: Engine, user: int, data: bytes, fmt: HistoryFormat = "letterboxd"
) -> tuple[HistoryReport, dict[int, tuple[float, int]]]:
    with Session(engine) as session:
        report = import_history(session, user, read_history(data, fmt, name="export.csv"))
        session.commit()
        stored = {r.movie_id: (r.rating, r.timestamp) for r in repo.user_ratings(session, user)}
    return report, stored


# --- compressed, archived and binary files: one line saying what the file is -----------------------


XLSX = zipped({"[Content_Types].xml": "x", "xl/workbook.xml": "x"})


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (gzip.compress((H + "1,Heat,1995,Crime,x\n").encode()), ["gzip-compressed", "gunzip"]),
        (zipped({"movies.csv": H}), ["a zip archive", "unzip"]),
        (XLSX, ["Excel workbook", "save it as CSV"]),
        (b"%PDF-1.4\n...", ["a PDF"]),
        (bytes(range(256)) * 4, ["binary data", "NUL byte at line 1, column 1"]),
        (b"id,title\n1,He\x00at\n", ["NUL byte at line 2, column 5"]),
    ],
)
@pytest.mark.parametrize("name", ["movies.csv", "movies.json"])
def test_binary_catalogue_is_one_line_saying_what_it_is(
    tmp_path: Path, name: str, data: bytes, words: list[str]
) -> None:
    with pytest.raises(UnusableFileError) as info:
        load_catalogue("tmdb", write(tmp_path / name, data))
    message = str(info.value)
    assert message.startswith(f"{name}: ") and "\n" not in message, message
    assert all(w in message for w in words), message


def test_binary_ratings_file_is_refused_before_anything(tmp_path: Path) -> None:
    with pytest.raises(RatingsFileError, match=r"^r\.csv: a gzip-compressed file; decompress"):
        read_ratings_file(write(tmp_path / "r.csv", gzip.compress((RH + "1,1,4,1\n").encode())))
    with pytest.raises(RatingsFileError, match="binary data"):
        read_ratings_file(write(tmp_path / "g.csv", b"userId,movieId,rating\n\x00\x01\x02"))


def test_text_is_not_taken_for_binary() -> None:
    assert binary_problem("id,title\n1,Amélie\n".encode()) is None
    assert binary_problem("id,title\n1,Amélie\n".encode("latin-1")) is None
    assert binary_problem(b"") is None


# --- headers: blank lines above, another spelling, another order ------------------------------------


def test_catalogue_header_spelt_otherwise_and_blank_lines_above(tmp_path: Path) -> None:
    text = '\n\r\nID,Title,Release Date,Vote Average,Overview\n1,Heat,1995-12-15,"7,9",A heist\n'
    movies, _, errors = validate(load_catalogue("tmdb", write(tmp_path / "movies.csv", text)))
    assert errors == []
    assert [(m.id, m.title, m.year, m.vote_average, m.overview) for m in movies] == [(1, "Heat", 1995, 7.9, "A heist")]


@pytest.mark.parametrize(
    ("source", "name", "text"),
    [
        ("tmdb", "movies.csv", H),
        ("tmdb", "movies.json", "[]"),
        ("movielens", "movies.csv", "movieId,title,genres\n"),
        ("movies-dataset", "movies_metadata.csv", "id,title,genres\n"),
    ],
)
def test_a_catalogue_of_no_rows_is_one_line_naming_the_file(tmp_path: Path, source: str, name: str, text: str) -> None:
    """Not the source's name and "fix the rows reported above" when no row was reported."""
    path = write(tmp_path / name, text)
    folder = {"directory": tmp_path} if source != "tmdb" else {}
    catalogue = load_catalogue(source, movies=path if source == "tmdb" else None, **folder)
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(UnusableFileError) as caught:
        store_catalogue(engine, catalogue)
    engine.dispose()
    assert str(caught.value).startswith(f"{name}: no movie rows in it"), str(caught.value)


def test_movie_id_beside_tmdb_fields_keeps_the_year(tmp_path: Path) -> None:
    """'movieId' with year and overview columns is not GroupLens's layout: the year column is read
    (it was dropped, every movie yearless, when such a file was taken for a GroupLens movies.csv)."""
    text = "movieId,title,year,overview\n1,Heat,1995,A heist\n"
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.csv", text))
    [movie] = validate(catalogue)[0]
    assert (movie.id, movie.title, movie.year, movie.overview) == (1, "Heat", 1995, "A heist")
    assert catalogue.warnings == []


def test_a_file_is_read_by_its_content_whatever_its_name(tmp_path: Path) -> None:
    """A CSV without a CSV name is read as CSV (it was read as JSON Lines: every line a bad row);
    TMDB's daily id export (JSON Lines with original_title only) is read; a MovieLens .dat file
    points at the source that reads it."""
    csv_named_otherwise = write(tmp_path / "movies", 'id,title,vote_count,vote_average\n1,Heat,"1,234","7,5"\n')
    [movie] = validate(load_catalogue("tmdb", csv_named_otherwise))[0]
    assert (movie.id, movie.title, movie.vote_count, movie.vote_average) == (1, "Heat", 1234, 7.5)
    json_named_csv = write(tmp_path / "movies.csv", '[{"id": 1, "title": "Heat"}]')
    assert [(m.id, m.title) for m in validate(load_catalogue("tmdb", json_named_csv))[0]] == [(1, "Heat")]
    daily = '{"adult":false,"id":949,"original_title":"Heat","popularity":17.9,"video":false}\n'
    [movie] = validate(load_catalogue("tmdb", write(tmp_path / "movie_ids_11_30_2026.json", daily)))[0]
    assert (movie.id, movie.title, movie.popularity) == (949, "Heat", 17.9)
    with pytest.raises(UnusableFileError, match=r"^movies\.dat: a MovieLens \.dat file .*--source movielens --dir"):
        load_catalogue("tmdb", write(tmp_path / "movies.dat", "1::Toy Story (1995)::Animation\n"))


@pytest.mark.parametrize(
    ("text", "expected_lines"),
    [
        ("\n" + RH + "1,1,4.5,964982703\n2,1,3,964982703\n", [3, 4]),
        ("UserID,MovieID,Rating,Timestamp\n1,1,4.5,964982703\n", [2]),
        ("user_id,movie_id,rating\n1,1,4.5\n", [2]),
        ("\ufeffrating,extra,movieId,userId\r\n4.5,a,1,1\r\n\r\n", [2]),
    ],
)
def test_ratings_header_spelt_otherwise_or_below_blank_lines(
    tmp_path: Path, text: str, expected_lines: list[int]
) -> None:
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.csv", text))
    assert errors == []
    assert rows.line.tolist() == expected_lines and rows.user[0] == 1 and rows.rating[0] == 4.5


def test_ratings_row_errors_keep_their_lines_below_blank_lines(tmp_path: Path) -> None:
    text = "\n\n" + RH + "1,1,4.5,964982703\n1,2,x,964982703\n1,3\n1,4,4,964982703\n"
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.csv", text))
    assert rows.line.tolist() == [4, 7]
    assert [(e.line, e.field) for e in errors] == [(5, "rating"), (6, "row")]


def test_pipe_delimited_catalogue_ratings_and_export_are_read(engine: Engine, tmp_path: Path) -> None:
    """'|' is sniffed from the header as ',' ';' and tab are (a genres cell then uses ', ')."""
    catalogue = load_catalogue(
        "tmdb", write(tmp_path / "movies.csv", "id|title|year|genres\n7|Heat|1995|Crime, Drama\n")
    )
    assert [(m.movie.title, m.movie.genres) for m in catalogue.movies] == [("Heat", ["Crime", "Drama"])]
    rows, errors, _ = read_ratings_file(
        write(tmp_path / "r.csv", "userId|movieId|rating|timestamp\n1|7|4.5|964982703\n")
    )
    assert (rows.movie.tolist(), rows.rating.tolist(), errors) == ([7], [4.5], [])
    _, stored = history(engine, 31, b"Date|Name|Year|Letterboxd URI|Rating\n2024-01-05|Toy Story|1995|u|4\n")
    assert stored == {1: (4.0, 1704412800)}


def test_a_ratings_header_cell_quoting_the_delimiter_is_one_column(tmp_path: Path) -> None:
    """The header is split as the rows are (quotes respected): every row used to have one field too few."""
    text = RH.rstrip("\n") + ',"note, free text"\n1,1,4.5,964982703,"fine, really"\n'
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.csv", text))
    assert (rows.user.tolist(), rows.rating.tolist(), errors) == ([1], [4.5], [])


def test_an_excel_sep_line_names_the_delimiter(engine: Engine, tmp_path: Path) -> None:
    """Excel's 'sep=;' line above the header: the delimiter it names, the header below it (it was
    read as the header: a missing-column error)."""
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.csv", "sep=;\nid;title;year\n7;Heat, Part 1;1995\n"))
    assert [(m.movie.id, m.movie.title, m.line) for m in catalogue.movies] == [(7, "Heat, Part 1", 3)]
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.csv", "sep=;\r\nuserId;movieId;rating\r\n1;7;4,5\r\n"))
    assert (rows.movie.tolist(), rows.rating.tolist(), rows.line.tolist(), errors) == ([7], [4.5], [3], [])
    _, stored = history(engine, 32, b"sep=,\nDate,Name,Year,Letterboxd URI,Rating\n2024-01-05,Toy Story,1995,u,4\n")
    assert stored == {1: (4.0, 1704412800)}


def test_a_delimiter_closing_each_row_adds_no_value(tmp_path: Path) -> None:
    """'1,Heat,1995,' under 'id,title,year': the empty cell past the last column is no value (each
    row was refused as 4 values for 3 columns); a value there is still refused."""
    movies = write(tmp_path / "movies.csv", "id,title,year\n7,Heat,1995,\n8,Fargo,1996,oops\n")
    catalogue = load_catalogue("tmdb", movies)
    assert [m.movie.title for m in catalogue.movies] == ["Heat"]
    assert [(e.line, e.field) for e in catalogue.errors] == [(3, "row")]
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.csv", RH + "1,7,4.5,964982703,\n2,7,3,964982703,\n"))
    assert (rows.user.tolist(), rows.rating.tolist(), errors) == ([1, 2], [4.5, 3.0], [])


def test_a_latin1_byte_past_the_sniffed_head_keeps_the_ratings_file(tmp_path: Path) -> None:
    """The encoding is the whole file's: a Latin-1 comment below the first 64 KiB made pyarrow refuse
    the file (and the process sometimes aborted on exit after that error)."""
    rows = [f"{u},1,4,964982703,ok\n" for u in range(1, 6001)] + ["6001,1,4.5,964982703,très bien\n"]
    path = write(tmp_path / "r.csv", RH.rstrip("\n") + ",comment\n" + "".join(rows), "latin-1")
    assert path.stat().st_size > 1 << 16
    arrays, errors, _ = read_ratings_file(path)
    assert errors == [] and len(arrays) == 6001 and arrays.rating[-1] == 4.5


def test_quotes_escaped_with_a_backslash_are_read(engine: Engine, tmp_path: Path) -> None:
    """MySQL's and PHP's exports write a quote inside a cell as \" (each such row was refused); a
    file that CSV's "" reads with fewer refusals (a cell ending in a backslash) is read as before."""
    movies = write(tmp_path / "movies.csv", 'id,title,year\n4,"Esc \\"Q\\" Movie",2003\n5,"A \\"B\\", C",2004\n')
    assert [m.movie.title for m in load_catalogue("tmdb", movies).movies] == ['Esc "Q" Movie', 'A "B", C']
    doubled = write(tmp_path / "doubled.csv", 'id,title,year\n6,"C:\\",2005\n7,"Say ""hi""",2006\n')
    assert [m.movie.title for m in load_catalogue("tmdb", doubled).movies] == ["C:\\", 'Say "hi"']
    _, stored = history(engine, 34, (LB + '2024-01-05,"\\"Toy Story\\"",1995,u,4\n').encode())
    assert stored == {1: (4.0, 1704412800)}


def test_a_quoted_decimal_comma_is_a_rating_in_a_comma_file(tmp_path: Path) -> None:
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.csv", RH + '1,1,"4,5",964982703\n1,2,"1,234",1\n'))
    assert rows.rating.tolist() == [4.5, 1.234]  # the second is then refused by the rating rule, by line
    assert errors == []


def test_a_utf16_ratings_file_is_read(tmp_path: Path) -> None:
    """Excel's "Unicode text" (UTF-16 with a BOM, tab-separated): read, not taken for binary data."""
    text = "userId\tmovieId\trating\ttimestamp\r\n1\t1\t4,5\t964982703\r\n2\t1\t3\t964982703\r\n"
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.txt", text, "utf-16"))
    assert (rows.user.tolist(), rows.rating.tolist(), rows.line.tolist(), errors) == ([1, 2], [4.5, 3.0], [2, 3], [])


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_utf16_file_without_a_bom_is_read(tmp_path: Path, codec: str) -> None:
    """UTF-16 saved without a BOM (some exporters, PowerShell scripts): read, not refused as "binary
    data (a NUL byte)"; a ratings file and a Letterboxd export alike, accented titles too."""
    text = "userId,movieId,rating,timestamp\n1,1,4.5,964982703\n2,1,3,964982703\n"
    rows, errors, _ = read_ratings_file(write(tmp_path / "r.csv", text, codec))
    assert (rows.user.tolist(), rows.rating.tolist(), errors) == ([1, 2], [4.5, 3.0], [])
    export = read_history(
        f"{LB}2021-03-04,Amélie,2001,u,4.5\n2021-03-05,Toy Story,1995,u,4\n".encode(codec), "letterboxd"
    )
    assert [(r.title, r.rating) for r in export.rows] == [("Amélie", 4.5), ("Toy Story", 4.0)]


def test_ratings_on_a_0_100_scale_are_one_file_error(tmp_path: Path) -> None:
    with pytest.raises(RatingsFileError, match=r"^r\.csv: ratings from 55 to 90, none 0\.5-5 stars or 1-10; convert"):
        read_ratings_file(write(tmp_path / "r.csv", RH + "1,1,70,1\n1,2,90,1\n2,1,55,1\n"))
    rows, _, notes = read_ratings_file(write(tmp_path / "ten.csv", RH + "1,1,7,1\n1,2,10,1\n"))
    assert (notes["rating_scale"], rows.rating.tolist()) == (10, [3.5, 5.0])


# --- MovieLens's older layouts: ml-1m (.dat, '::', Latin-1) and ml-100k (u.item, u.data) --------------


def test_movielens_1m_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    movies = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Amélie (2001)::Comedy\n3::Bad line\n"
    write(folder / "movies.dat", movies, "latin-1")
    write(folder / "ratings.dat", "1::1::5::978300760\n1::2::3::978302109\n\n2::9::4::978301968\n")
    write(folder / "users.dat", "1::F::1::10::48067\n")
    catalogue = load_catalogue("movielens", directory=folder)
    movies_, _, _ = validate(catalogue)
    assert [(m.id, m.title, m.year, m.genres) for m in movies_] == [
        (1, "Toy Story", 1995, ["Animation", "Children", "Comedy"]),
        (2, "Amélie", 2001, ["Comedy"]),
    ]
    assert catalogue.warnings[0].startswith("movies.dat: not UTF-8")
    ratings, errors = stored_movielens(tmp_path, catalogue)  # ratings.dat: streamed by the bulk path
    assert ratings == [(1, 1, 5.0, 978300760), (1, 2, 3.0, 978302109)]
    assert [str(e) for e in errors] == [
        "movies.dat:3: row: 2 fields separated by '::', expected 3",
        "ratings.dat:4: movieId: unknown movie id: 9",
    ]


def stored_movielens(
    tmp_path: Path, catalogue: SourceCatalogue
) -> tuple[list[tuple[int, int, float, int]], list[RowError]]:
    """`catalogue` stored into a new SQLite database: (its ratings, the row errors in file order)."""
    settings = make_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        _, errors = store_catalogue(engine, catalogue)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT user_id, movie_id, rating, timestamp FROM ratings ORDER BY 1, 2")).all()
    finally:
        engine.dispose()
    return [(int(u), int(m), float(r), int(t)) for u, m, r, t in rows], errors


def test_movielens_100k_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    flags = ["0"] * 19
    animation_children_comedy = ["0", "0", "0", "1", "1", "1"] + ["0"] * 13
    toy = "|".join(["1", "Toy Story (1995)", "01-Jan-1995", "", "http://x/tt0114709"] + animation_children_comedy)
    unknown = "|".join(["267", "unknown", "", "", ""] + ["1"] + ["0"] * 18)
    cafe = "|".join(["5", "Café au lait (Métisse) (1993)", "01-Jan-1993", "", "x"] + flags)
    til = "|".join(["1300", "'Til There Was You", "01-Jan-1997", "", "x"] + flags)
    write(folder / "u.item", "\n".join([toy, unknown, cafe, til]) + "\n", "latin-1")
    write(folder / "u.data", "196\t1\t3\t881250949\n186\t5\t3\t891717742\n186\t5\tx\t891717742\n")
    catalogue = load_catalogue("movielens", directory=folder)
    movies, _, _ = validate(catalogue)
    assert [(m.id, m.title, m.year, m.genres) for m in movies] == [
        (1, "Toy Story", 1995, ["Animation", "Children", "Comedy"]),
        (5, "Café au lait (Métisse)", 1993, []),
        (1300, "'Til There Was You", 1997, []),
    ]
    ratings, errors = stored_movielens(tmp_path, catalogue)  # u.data: streamed by the bulk path
    assert [(u, m, r) for u, m, r, _ in ratings] == [(186, 5, 3.0), (196, 1, 3.0)]
    assert [str(e) for e in errors] == [
        "u.item:2: title: missing title (movie id 267)",
        "u.data:3: rating: missing or not a number: 'x'",
    ]
    assert movies[0].imdb_id == "tt0114709"


def test_movielens_ratings_csv_is_streamed_and_limit_drops_the_rest_quietly(tmp_path: Path) -> None:
    """A GroupLens folder's ratings.csv goes through the ingest's bulk path (ml-25m: 25M rows, never
    a Python object each); with --limit the rows of the movies left out are counted, not reported."""
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    write(
        folder / "movies.csv", "movieId,title,genres\n1,Heat (1995),Crime\n2,Fargo (1996),Crime\n3,Se7en (1995),Crime\n"
    )
    write(folder / "ratings.csv", RH + "1,1,4.0,964982703\n1,2,4.5,964982703\n1,3,5,964982703\n2,1,9.5,964982703\n")
    settings = make_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        limited = load_catalogue("movielens", directory=folder, limit=2)
        stored, errors = store_catalogue(engine, limited)
        assert (stored, limited.stats["ratings_of_movies_left_out"]) == (2, 1)
        assert [str(e) for e in errors] == [
            "ratings.csv:5: rating: rating must be between 0.5 and 5.0 in steps of 0.5: 9.5"
        ]
        whole = load_catalogue("movielens", directory=folder)
        assert store_catalogue(engine, whole)[0] == 3
        with Session(engine) as session:
            assert repo.rated_pairs(session) == [(1, 1), (1, 2), (1, 3)]
    finally:
        engine.dispose()


def test_limit_recounts_the_sources_per_movie_figures(tmp_path: Path) -> None:
    """`--limit 2` of a folder whose links, tags and posters cover more movies: the summary's
    linked_imdb / with_keywords / with_poster_source describe the 2 movies kept, not the whole file."""
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    write(
        folder / "movies.csv", "movieId,title,genres\n1,Heat (1995),Crime\n2,Fargo (1996),Crime\n3,Se7en (1995),Crime\n"
    )
    write(folder / "links.csv", "movieId,imdbId,tmdbId\n1,0113277,949\n2,0116282,275\n3,0114369,807\n")
    write(folder / "tags.csv", "userId,movieId,tag,timestamp\n1,2,snow,1\n1,3,dark,1\n")
    stats = load_catalogue("movielens", directory=folder, limit=2).stats
    assert (stats["movies_read"], stats["linked_imdb"], stats["linked_tmdb"], stats["with_keywords"]) == (2, 2, 2, 1)
    kaggle = tmp_path / "the-movies-dataset"
    kaggle.mkdir()
    write(kaggle / "movies_metadata.csv", "id,title,poster_path\n949,Heat,/a.jpg\n275,Fargo,\n807,Se7en,/c.jpg\n")
    write(kaggle / "keywords.csv", "id,keywords\n807,\"[{'id': 1, 'name': 'detective'}]\"\n")
    stats = load_catalogue("movies-dataset", directory=kaggle, limit=2).stats
    assert (stats["movies_read"], stats["with_poster_source"], stats["with_keywords"]) == (2, 1, 0)


def test_a_ratings_file_of_another_catalogues_ids_lists_its_first_bad_rows_and_counts_the_rest(
    tmp_path: Path,
) -> None:
    """MovieLens ratings given beside a TMDB catalogue: every row an unknown movie id. Each was a
    stderr line and a RowError kept in memory (1.5M rows: 1.5M lines, 99 MB, 970 MB resident; the
    Kaggle dataset's ratings.csv is 26M). The first MAX_LISTED_ROW_ERRORS are listed, the rest counted."""
    bad = MAX_LISTED_ROW_ERRORS + 500
    movies = write(tmp_path / "movies.csv", "id,title\n862,Toy Story\n")
    rows = "".join(f"{u},{1 + u % 7},4.0,964982703\n" for u in range(1, bad + 1))
    ratings = write(tmp_path / "ratings.csv", RH + rows + "9,862,5.0,964982703\n")
    settings = make_settings(tmp_path / "data")
    env = {"MOVIEREC_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    get_settings.cache_clear()
    args = ["ingest", "--source", "tmdb", "--movies", str(movies), "--ratings", str(ratings), "--json"]
    result = CliRunner().invoke(cli, args, env=env)
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["ratings"], summary["bad_rows"]) == (1, bad)
    assert summary["source_stats"]["ratings_bad_rows_unlisted"] == 500
    listed = [line for line in result.stderr.splitlines() if line.startswith("skipped: ratings.csv:")]
    assert len(listed) == MAX_LISTED_ROW_ERRORS
    assert listed[0] == "skipped: ratings.csv:2: movieId: unknown movie id: 2"
    assert "skipped: 500 more bad rows of the ratings file, not listed" in result.stderr


def test_a_folder_with_no_movielens_file_names_each_layout(tmp_path: Path) -> None:
    with pytest.raises(UnusableFileError, match=r"no movies\.csv .*, movies\.dat .* or u\.item .* in this folder"):
        load_catalogue("movielens", directory=tmp_path)


# --- a user's own history: the exports as they come --------------------------------------------------


def test_letterboxd_zip_export_is_read_through_its_ratings_csv(engine: Engine) -> None:
    ratings = LB + "2024-01-05,Toy Story,1995,https://boxd.it/a,4.5\n"
    export = zipped({"profile.csv": "Date Joined\n", "watched.csv": "Date,Name,Year\n", "ratings.csv": ratings})
    report, stored = history(engine, 10, export)
    assert (report.imported, report.skipped) == (1, [])
    assert stored == {1: (4.5, 1704412800)}
    report, _ = history(engine, 11, gzip.compress(ratings.encode()))
    assert report.imported == 1
    with pytest.raises(UnusableFileError, match=r"without one ratings\.csv \(CSV files in it: a\.csv, b\.csv\)"):
        read_history(zipped({"a.csv": ratings, "b.csv": ratings}), "letterboxd")
    with pytest.raises(UnusableFileError, match="Excel workbook"):
        read_history(XLSX, "letterboxd")


@pytest.mark.parametrize("top", ["", "letterboxd-me-2024-01-05-13-22-utc/"])
def test_letterboxd_zip_reads_its_live_ratings_not_deleted_or_orphaned_ones(engine: Engine, top: str) -> None:
    """The export keeps deleted/ and orphaned/ folders that reuse the live files' names."""
    gone = LB + "2020-01-01,Heat,1995,https://boxd.it/b,1\n"
    export = zipped(
        {
            f"{top}ratings.csv": LB + "2024-01-05,Toy Story,1995,https://boxd.it/a,4.5\n",
            f"{top}deleted/ratings.csv": gone,
            f"{top}orphaned/ratings.csv": gone,
        }
    )
    report, stored = history(engine, 12, export)
    assert (report.imported, stored) == (1, {1: (4.5, 1704412800)})


def test_an_empty_zip_says_so() -> None:
    with pytest.raises(UnusableFileError, match="an empty zip archive"):
        read_history(zipped({}), "letterboxd")


def test_titles_in_every_script_and_spelt_out_letters_match(tmp_path: Path) -> None:
    """A title of another script had no key at all (only a-z and 0-9 were kept), so it never matched;
    a letter NFKD keeps whole matches its ASCII spelling ('Æon Flux' and 'Aeon Flux')."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    titles = [(1, "千と千尋の神隠し", 2001), (2, "Любовь", 2012), (3, "Æon Flux", 2005), (4, "Die Straße", 1923)]
    movies = [{"id": i, "title": t, "year": y} for i, t, y in titles]
    store_catalogue(engine, load_catalogue("tmdb", write(tmp_path / "movies.json", json.dumps(movies))))
    rows = ["千と千尋の神隠し,2001", "ЛЮБОВЬ,2012", "Aeon Flux,2005", "Die Strasse,1923", "藍色大門,2001"]
    export = LB + "".join(f"2024-01-05,{row},u,4\n" for row in rows)
    report, stored = history(engine, 35, export.encode())
    engine.dispose()
    assert sorted(stored) == [1, 2, 3, 4] and report.unmatched_total == 1  # another film of 2001: no match


def test_letterboxd_watched_csv_says_it_holds_no_ratings() -> None:
    with pytest.raises(UnusableFileError, match=r"no 'Rating' column.*watched\.csv .* hold no ratings"):
        read_history(b"Date,Name,Year,Letterboxd URI\n2024-01-05,Toy Story,1995,u\n", "letterboxd")


def test_a_missing_column_lists_whole_column_names() -> None:
    """An IMDb export sent as Letterboxd's: the columns read are named whole, then counted; the list
    was cut at 120 characters, mid-name ("..., Num Votes, Release Da")."""
    row = "tt0114709,5,2024-01-05,Toy Story,Toy Story,u,Movie,8.3,81,1995,Animation,1,1995-11-22,John Lasseter\n"
    with pytest.raises(UnusableFileError) as caught:
        read_history((IMDB + row).encode(), "letterboxd")
    assert "Original Title, URL, Title Type, IMDb Rating, Runtime (mins), Year, Genres and 3 more)" in str(caught.value)


def test_imdb_watchlist_says_it_holds_no_ratings() -> None:
    watchlist = (
        "Position,Const,Created,Modified,Description,Title,URL,Title Type,Year\n1,tt0114709,,,,Toy Story,u,Movie,1995\n"
    )
    with pytest.raises(
        UnusableFileError, match=r"no 'Your Rating' or 'You rated' column.*watchlist .* hold no ratings"
    ):
        read_history(watchlist.encode(), "imdb")


def test_letterboxd_diary_rewatches_and_empty_year(engine: Engine) -> None:
    """A diary's rewatch is a second row: the later date wins. An empty Year matches a title that
    names one movie in any year; 'Heat' (1995 and 1986) stays unmatched rather than guessed."""
    diary = (
        "Date,Name,Year,Letterboxd URI,Rating,Rewatch,Tags,Watched Date\n"
        "2024-03-01,Fargo,1996,u,3.5,Yes,,2024-02-28\n"
        "2024-02-01,Fargo,1996,u,4,,,2024-01-31\n"
        "2024-03-02,Amélie,,u,5,,,2024-03-01\n"
        "2024-03-03,Heat,,u,2,,,2024-03-01\n"
        "2024-03-04,Paddington,2014,u,,,,2024-03-01\n"
    )
    report, stored = history(engine, 12, diary.encode())
    assert stored == {6: (3.5, 1709251200), 2: (5.0, 1709337600)}
    heats = [{"movie_id": 4, "title": "Heat", "year": 1995}, {"movie_id": 5, "title": "Heat", "year": 1986}]
    assert report.unmatched == [{"line": 5, "title": "Heat", "year": None, "suggestions": heats}]
    assert [(s["line"], s["field"]) for s in report.skipped] == [(6, "Rating")]


# Every form either import reads, and what it means (unix seconds); then two it refuses, and why.
DATES = [
    ("2024-01-05", 1704412800),
    ("2024-1-5", 1704412800),
    ("2024-01-05 13:22", 1704460920),
    ("2024-01-05T13:22:00Z", 1704460920),
    ("2024-01-05T14:22:00+01:00", 1704460920),
    ("2024-01-05T13:22:00.123456", 1704460920),
    ("1704460920", 1704460920),
    ("1704460920.0", 1704460920),
    ("1704460920000", 1704460920),
    ("Fri Jan 05 13:22:00 2024", 1704460920),
    ("2024/1/5", 1704412800),
    ("2024.01.05 13:22", 1704460920),
    ("5 Jan 2024", 1704412800),
    ("January 5, 2024", 1704412800),
    ("05-Jan-2024", 1704412800),
    ("2024-1-05 13:22", 1704460920),  # a spreadsheet's year-first date without leading zeros
    ("Jan 5 2024", 1704412800),
    ("January 5 2024", 1704412800),
    ("2024-01-05 13:22:00 UTC", 1704460920),
    ("Friday, January 5, 2024", 1704412800),
    ("Fri, Jan 5, 2024", 1704412800),
]
UNREADABLE = [("05/01/2024", "ambiguous date"), ("yesterday", "not a date")]


def test_bulk_and_history_imports_read_the_same_timestamps(engine: Engine, tmp_path: Path) -> None:
    """One reader (app/datasets/timestamps.py): a bulk ratings file and a Letterboxd export with the
    same dates store the same seconds, and refuse the same texts with the same message, by line."""
    texts = [t for t, _ in DATES] + [t for t, _ in UNREADABLE]
    bulk = write(tmp_path / "ratings.csv", RH + "".join(f'{n},1,4,"{t}"\n' for n, t in enumerate(texts, start=1)))
    arrays, errors, notes = read_ratings_file(bulk)
    assert dict(zip(arrays.user.tolist(), arrays.timestamp.tolist(), strict=True)) == {
        n: seconds for n, (_, seconds) in enumerate(DATES, start=1)
    }
    assert notes["timestamps_ms_converted"] == 1 and notes["timestamps_iso8601"] == len(DATES) - 3
    lines = [len(DATES) + 2, len(DATES) + 3]  # the header is line 1
    assert [(e.line, e.field) for e in errors] == [(n, "timestamp") for n in lines]
    for user, (written, seconds) in enumerate(DATES, start=20):
        report, stored = history(engine, user, f'{LB}"{written}",Toy Story,1995,u,4\n'.encode())
        assert stored == {1: (4.0, seconds)}, (written, report)
    report, _ = history(engine, 40, (LB + "".join(f'"{t}",Toy Story,1995,u,4\n' for t, _ in UNREADABLE)).encode())
    assert [s["message"] for s in report.skipped] == [e.message for e in errors]
    assert all(words in e.message for e, (_, words) in zip(errors, UNREADABLE, strict=True))


def test_millisecond_timestamps_on_the_plain_path(tmp_path: Path) -> None:
    """A file of whole numbers only (pyarrow's number parsers, not the text path) converts its
    milliseconds too, by the same rule."""
    plain = write(tmp_path / "ratings.csv", RH + "1,1,4,1704460920000\n2,1,4,1704460920\n")
    arrays, errors, notes = read_ratings_file(plain)
    assert arrays.timestamp.tolist() == [1704460920, 1704460920] and errors == []
    assert notes["timestamps_ms_converted"] == 1


# One moment written in each epoch unit (pandas writes int64 datetimes in nanoseconds), and the
# day as ISO 8601's basic date: as epoch seconds 20240105 would be August 1970.
EPOCH_UNITS = [
    ("1704460920", 1704460920),
    ("1704460920000", 1704460920),
    ("1704460920000000", 1704460920),
    ("1704460920000000000", 1704460920),
    ("20240105", 1704412800),
]


@pytest.mark.parametrize("beside", ["", "2024-01-05T13:22:00Z"], ids=["plain-path", "text-path"])
def test_epoch_units_and_basic_dates_store_the_moment_meant(engine: Engine, tmp_path: Path, beside: str) -> None:
    """Milliseconds, microseconds and nanoseconds are divided down by their size, and YYYYMMDD is a
    date, on the bulk path (numbers only, or beside a date: the text path) as in a history export."""
    rows = [*EPOCH_UNITS, *([(beside, 1704460920)] if beside else [])]
    bulk = write(tmp_path / "ratings.csv", RH + "".join(f"{n},1,4,{t}\n" for n, (t, _) in enumerate(rows, start=1)))
    arrays, errors, notes = read_ratings_file(bulk)
    assert errors == [] and arrays.timestamp.tolist() == [seconds for _, seconds in rows]
    assert [notes[f"timestamps_{unit}_converted"] for unit in ("ms", "us", "ns")] == [1, 1, 1]
    report, stored = history(
        engine, 30, (LB + "".join(f"{t},Toy Story,1995,u,4\n" for t, _ in EPOCH_UNITS[3:])).encode()
    )
    assert report.skipped == [] and stored == {1: (4.0, 1704460920)}  # the later of the two dates


@pytest.mark.parametrize(
    ("dates", "seconds"),
    [
        (["05/01/2024", "13.02.2024 13:22"], [1704412800, 1707830520]),  # 13 is a day: the column is day-first
        (["05/01/2024", "12/31/2024"], [1714521600, 1735603200]),  # 31 is a day: month-first
    ],
)
def test_the_day_month_order_is_told_by_the_column(
    engine: Engine, tmp_path: Path, dates: list[str], seconds: list[int]
) -> None:
    """A spreadsheet's dd/mm/yyyy (or mm/dd/yyyy) column is read when one of its dates tells the order;
    alone, `05/01/2024` stays refused as ambiguous (test_dates_refused_say_why)."""
    bulk = write(tmp_path / "ratings.csv", RH + "".join(f"{n},1,4,{d}\n" for n, d in enumerate(dates, start=1)))
    arrays, errors, _ = read_ratings_file(bulk)
    assert errors == [] and arrays.timestamp.tolist() == seconds
    export = LB + f"{dates[0]},Toy Story,1995,u,4\n{dates[1]},Fargo,1996,u,3\n"
    report, stored = history(engine, 33, export.encode())
    assert report.skipped == [] and stored == {1: (4.0, seconds[0]), 6: (3.0, seconds[1])}


@pytest.mark.parametrize("when", ["4102444800", "4102444800000", "2099-01-01"])
def test_a_ratings_file_time_in_the_future_is_a_row_error(tmp_path: Path, when: str) -> None:
    """As the history import refuses it: a far-future time would be the user's newest rating and
    move the popular lists' window past every real one."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.json", json.dumps(CATALOGUE)))
    ratings = write(tmp_path / "ratings.csv", f"{RH}1,1,4,{when}\n1,2,4,1704460920\n")
    stored, errors = store_catalogue(engine, catalogue, ratings)
    engine.dispose()
    assert stored == 1
    assert [(e.line, e.field) for e in errors] == [(2, "timestamp")] and "in the future" in errors[0].message


@pytest.mark.parametrize(
    ("text", "words"),
    [("05/01/2024", "ambiguous date"), ("yesterday", "not a date"), ("2099-01-01", "in the future")],
)
def test_dates_refused_say_why(engine: Engine, text: str, words: str) -> None:
    report, stored = history(engine, 13, f"{LB}{text},Toy Story,1995,u,4\n".encode())
    [skip] = report.skipped
    assert (skip["line"], skip["field"]) == (2, "Date") and words in str(skip["message"]), skip
    assert stored == {}


def test_an_unmatched_title_gets_close_titles_year_aware(engine: Engine) -> None:
    """Up to 3 catalogue titles close to an unmatched one (difflib over the matcher's title keys),
    closest first, a movie further from the row's year ranked lower; none for a title like no other,
    nor for a row IMDb says is not a film."""
    rows = (
        "2024-01-05,Toy Stroy,1995,u,4\n"  # a typo
        "2024-01-05,Heat,1993,u,4\n"  # no Heat within a year: 1995 (2 years off) before 1986 (7)
        "2024-01-05,Paddington 2,2017,u,4\n"  # the sequel is not in the catalogue
        "2024-01-05,Zzyzx Qwerty,2001,u,4\n"
    )
    report, stored = history(engine, 41, (LB + rows).encode())
    assert stored == {}
    assert {u["line"]: u["suggestions"] for u in report.unmatched} == {
        2: [{"movie_id": 1, "title": "Toy Story", "year": 1995}],
        3: [{"movie_id": 4, "title": "Heat", "year": 1995}, {"movie_id": 5, "title": "Heat", "year": 1986}],
        4: [{"movie_id": 9, "title": "Paddington", "year": 2014}],
        5: [],
    }
    series = IMDB + "tt9999997,8,2024-01-05,Toy Stroy,,u,TV Series,7,30,1995,Comedy,10,1995-01-01,X\n"
    report, _ = history(engine, 42, series.encode(), "imdb")
    assert [u["suggestions"] for u in report.unmatched] == [[]]


def test_the_cli_prints_the_close_titles(engine: Engine, tmp_path: Path) -> None:
    url = engine.url.render_as_string(hide_password=False)
    env = {"MOVIEREC_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": "" if url.startswith("sqlite") else url}
    path = write(tmp_path / "ratings.csv", LB + "2024-01-05,Toy Stroy,1995,u,4\n")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["import-ratings", "--user", "43", "--format", "letterboxd", str(path)], env=env)
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "  unmatched: ratings.csv:2: Toy Stroy (1995); did you mean: Toy Story (1995), id 1?" in result.stdout


def test_imdb_layouts_and_non_films(engine: Engine) -> None:
    """The new export in another column order, the older one ('const', 'You rated', 'created'), and
    IMDb rows that are not films: never matched to a movie of the same title and year."""
    new = (
        "Title,Year,Const,Your Rating,Date Rated,Title Type\n"
        "Toy Story,1995,tt0114709,9,2024-01-05,Movie\n"
        "Heat,1995,tt9999998,6,2024-01-07,TV Episode\n"
        "Fargo,1996,tt2802850,8,2024-01-06,TV Series\n"
        "Heat,1995,tt0113277,7,2024-01-08,TV Movie\n"
    )
    report, stored = history(engine, 14, new.encode(), "imdb")
    assert stored == {1: (4.5, 1704412800), 4: (3.5, 1704672000)}
    assert [u["line"] for u in report.unmatched] == [3, 4]
    old = (
        "position,const,created,modified,description,Title,Title type,Directors,You rated,IMDb Rating,"
        "Runtime (mins),Year,Genres,Num. Votes,Release Date (month/day/year),URL\n"
        '1,tt0000001,Sat Jan 05 00:00:00 2013,,,Paddington,Feature Film,x,8,7.2,95,2014,"comedy",1,2014-11-28,u\n'
    )
    _, stored = history(engine, 15, old.encode(), "imdb")
    assert stored == {9: (4.0, 1357344000)}


def test_undated_rows_never_replace_what_the_user_wrote(engine: Engine) -> None:
    """A rating written through the API (repo.rate, as POST /users/{id}/ratings does) survives an
    undated export row for the same movie, however often it is sent; an undated row for a movie the
    user never rated fills the gap, once."""
    with Session(engine) as session:
        repo.rate(session, 16, 1, 1.0)
        session.commit()
    undated = f"{LB},Toy Story,1995,u,5\n,Fargo,1996,u,4\n".encode()
    report, stored = history(engine, 16, undated)
    assert (report.imported, report.kept_newer) == (1, 1)
    assert stored[1][0] == 1.0 and stored[6][0] == 4.0
    again, stored_again = history(engine, 16, undated)
    assert (again.imported, again.unchanged, again.kept_newer) == (0, 1, 1)
    assert stored_again == stored


@pytest.mark.parametrize(
    "data",
    [
        ("\ufeff" + LB + "2024-01-05,Toy Story,1995,u,4.5\n").replace("\n", "\r\n").encode() + b"\r\n\r\n",
        ("\n\n" + LB.lower() + "2024-01-05,Toy Story,1995,u,4.5\n").encode(),
        ("DATE;NAME;YEAR;LETTERBOXD URI;RATING\n2024-01-05;Toy Story;1995;u;4,5\n").encode("cp1252"),
    ],
)
def test_letterboxd_bom_crlf_blank_lines_and_header_case(engine: Engine, data: bytes) -> None:
    report, stored = history(engine, 17, data)
    assert (report.imported, report.skipped, stored) == (1, [], {1: (4.5, 1704412800)})


def test_cli_import_ratings_binary_or_unreadable_is_one_line_exit_2(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    env = {"MOVIEREC_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    runner = CliRunner()
    for data, words in [(XLSX, "Excel workbook"), (np.arange(300, dtype=np.uint8).tobytes(), "binary data")]:
        path = write(tmp_path / "ratings.csv", data)
        result = runner.invoke(cli, ["import-ratings", "--user", "1", "--format", "imdb", str(path)], env=env)
        assert result.exit_code == 2, result.output
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ratings.csv: ") and words in line, line
    assert not settings.data_dir.exists() or not any(settings.data_dir.iterdir())


def test_an_export_before_any_catalogue_is_one_line_exit_2(tmp_path: Path) -> None:
    """Every row was reported unmatched with exit 0: the catalogue to match against was missing."""
    settings = make_settings(tmp_path / "data")
    env = {"MOVIEREC_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    path = write(tmp_path / "ratings.csv", LB + "2024-01-05,Toy Story,1995,u,4\n")
    result = CliRunner().invoke(cli, ["import-ratings", "--user", "1", "--format", "letterboxd", str(path)], env=env)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the catalogue has no movies yet") and "movierec ingest" in line, line


def test_the_cli_shows_the_ratings_read_on_stderr_and_keeps_json_stdout_clean(tmp_path: Path) -> None:
    """A 25M-row ratings file took minutes without a word: with progress on (the text summary) a bar
    of the bytes read and a line before the write go to stderr; stdout holds the summary only, and
    --json (progress off) one object. Both say the whole run's time beside the index step's."""
    movies = write(tmp_path / "movies.csv", "id,title\n862,Toy Story\nx,Broken id\n")
    ratings = write(tmp_path / "ratings.csv", RH + "1,862,4.0,964982703\n2,862,3.5,964982703\n")
    settings = make_settings(tmp_path / "data")
    env = {"MOVIEREC_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    args = ["ingest", "--source", "tmdb", "--movies", str(movies), "--ratings", str(ratings)]
    get_settings.cache_clear()
    shown = CliRunner().invoke(cli, args, env=env)
    write(ratings, RH + "1,862,4.0,964982703\n2,862,3.0,964982703\n")  # changed: read again
    as_json = CliRunner().invoke(cli, [*args, "--json"], env=env)
    get_settings.cache_clear()
    assert shown.exit_code == 0 and as_json.exit_code == 0, shown.output + as_json.output
    assert "reading ratings" in shown.stderr and "100%" in shown.stderr
    assert "writing 2 ratings to the database" in shown.stderr
    assert "reading ratings" not in shown.stdout and "writing" not in shown.stdout
    # A row whose id does not parse is a row read (and a bad row): 2 read, not 1.
    assert shown.stdout.startswith("2 movie rows read, 1 bad rows skipped, 2 ratings stored;"), shown.stdout
    summary = json.loads(as_json.stdout)  # one object: nothing else on stdout
    assert summary["ratings"] == 2
    # The index step's time and the whole run's (which holds it and the ratings step), both named.
    assert summary["total_seconds"] >= summary["seconds"] + summary["source_stats"]["ratings_seconds"] > 0
    timed = re.search(r"; index ([\d.]+) s \([\d.]+ movies/s\), total ([\d.]+) s$", shown.stdout.splitlines()[0])
    assert timed and float(timed.group(2)) >= float(timed.group(1)), shown.stdout
    assert "reading ratings" not in as_json.stderr and "writing" not in as_json.stderr


# --- review fixes: a sign, impossible dates, the day/month vote ------------------------------------


def test_a_leading_plus_is_a_whole_number(engine: Engine, tmp_path: Path) -> None:
    """'+5' and '+1704460920' match the whole-number form: pyarrow's int cast refused the '+' (the
    history import answered 500, the bulk import refused the whole file as unreadable)."""
    bulk = write(tmp_path / "ratings.csv", RH + "+5,+1,4,+1704460920\n6,1,4,2024-01-05\n")
    arrays, errors, _ = read_ratings_file(bulk)
    assert (errors, arrays.user.tolist(), arrays.movie.tolist()) == ([], [5, 6], [1, 1])
    assert arrays.timestamp.tolist() == [1704460920, 1704412800]
    report, stored = history(engine, 44, (LB + "+1704460920,Toy Story,1995,u,4\n").encode())
    assert report.skipped == [] and stored == {1: (4.0, 1704460920)}


@pytest.mark.parametrize("beside", ["", "2024-01-05T13:22:00Z"], ids=["plain-path", "text-path"])
def test_an_eight_digit_number_that_is_no_calendar_date_is_refused(tmp_path: Path, beside: str) -> None:
    """20240230 is in YYYYMMDD's range but no date: it was stored as epoch seconds (August 1970)."""
    rows = ["20240230", "20240229", *([beside] if beside else [])]
    bulk = write(tmp_path / "ratings.csv", RH + "".join(f"{n},1,4,{t}\n" for n, t in enumerate(rows, start=1)))
    arrays, errors, _ = read_ratings_file(bulk)
    assert [(e.line, e.field) for e in errors] == [(2, "timestamp")] and "not a date" in errors[0].message
    assert arrays.timestamp.tolist()[0] == 1709164800  # 2024-02-29


def test_an_impossible_date_does_not_blur_the_day_month_order(tmp_path: Path) -> None:
    """A row votes for an order only when it is a date in that order alone: 31/13/2024 (no date in
    either order) left a column that 13/02/2024 tells is day-first entirely ambiguous. No count of 0
    is noted."""
    dates = ["05/01/2024", "13/02/2024", "31/13/2024"]
    bulk = write(tmp_path / "ratings.csv", RH + "".join(f"{n},1,4,{d}\n" for n, d in enumerate(dates, start=1)))
    arrays, errors, notes = read_ratings_file(bulk)
    assert arrays.timestamp.tolist() == [1704412800, 1707782400]
    assert [(e.line, e.field) for e in errors] == [(4, "timestamp")] and "not a date" in errors[0].message
    assert notes["timestamps_day_first"] == 2 and "timestamps_month_first" not in notes


def test_the_day_month_order_is_the_whole_files_not_each_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read in many blocks: the order the first block tells (13/02/2024: day-first) reads the
    later blocks' 05/01/2024 (each was refused as ambiguous); a later date only month-first reads
    (12/31/2024) is refused as ambiguous."""
    monkeypatch.setattr(ratings_module, "BLOCK_BYTES", 64)  # a few rows a block
    dates = ["13/02/2024", *["05/01/2024"] * 20, "12/31/2024"]
    bulk = write(tmp_path / "ratings.csv", RH + "".join(f"{n},1,4,{d}\n" for n, d in enumerate(dates, start=1)))
    arrays, errors, notes = read_ratings_file(bulk)
    assert arrays.timestamp.tolist() == [1707782400] + [1704412800] * 20
    assert [(e.line, e.field) for e in errors] == [(23, "timestamp")] and "ambiguous" in errors[0].message
    assert notes["timestamps_day_first"] == 21 and "timestamps_month_first" not in notes


@pytest.mark.parametrize("named", [":", '"', "é"])
def test_an_excel_sep_line_naming_no_delimiter_is_one_file_error(engine: Engine, tmp_path: Path, named: str) -> None:
    """'sep=:' above a header: a one-line file error naming the character and the line (a catalogue
    or history file lacking a column raised a KeyError, a 500; the bulk import a pyarrow ValueError)."""
    movies = write(tmp_path / "movies.csv", f"sep={named}\nid,name\n7,Heat\n")
    with pytest.raises(UnusableFileError) as caught:
        load_catalogue("tmdb", movies)
    assert str(caught.value).startswith(f"movies.csv:1: an Excel 'sep=' line names {named!r}")
    with pytest.raises(UnusableFileError, match="sep=' line names"):
        history(engine, 45, f"sep={named}\n{LB}2024-01-05,Toy Story,1995,u,4\n".encode())
    with pytest.raises(RatingsFileError, match=r"^r.csv:1: an Excel 'sep=' line names"):
        read_ratings_file(write(tmp_path / "r.csv", f"sep={named}\n{RH}1,1,4,1\n"))


def test_a_file_read_with_backslash_escapes_says_so(engine: Engine, tmp_path: Path) -> None:
    """Read with \\ as the escape, every other backslash is dropped (AC\\DC reads ACDC): a warning
    says the file was read so (it was silent); a file read with CSV's "" gets none."""
    movies = write(tmp_path / "movies.csv", 'id,title,year\n4,"Esc \\"Q\\" Movie",2003\n5,AC\\DC,2004\n')
    catalogue = load_catalogue("tmdb", movies)
    assert [m.movie.title for m in catalogue.movies] == ['Esc "Q" Movie', "ACDC"]
    assert [w for w in catalogue.warnings if "escape character" in w and "ACDC" in w] == catalogue.warnings != []
    plain = write(tmp_path / "plain.csv", 'id,title,year\n5,AC\\DC,2004\n6,"Say ""hi""",2006\n')
    assert load_catalogue("tmdb", plain).warnings == []
    report, _ = history(engine, 46, (LB + '2024-01-05,"\\"Toy Story\\"",1995,u,4\n').encode())
    assert any("escape character" in w for w in report.warnings), report


def test_an_empty_last_cell_is_no_value_only_where_the_first_row_closes_with_one(tmp_path: Path) -> None:
    """'7,Heat, Part 1,' under 'id,title,overview' (an unquoted comma in a title) was read as title
    'Heat', overview ' Part 1': an empty cell past the header's end is accepted only where the first
    data row shows the file closes its rows with a delimiter."""
    movies = write(tmp_path / "movies.csv", "id,title,overview\n6,Fargo,Snow\n7,Heat, Part 1,\n")
    catalogue = load_catalogue("tmdb", movies)
    assert [m.movie.title for m in catalogue.movies] == ["Fargo"]
    assert [(e.line, e.field, e.message) for e in catalogue.errors] == [(3, "row", "4 values for 3 columns")]
    closed = write(tmp_path / "closed.csv", "id,title,overview\n6,Fargo,Snow,\n7,Heat,Crime,\n8,Up,Balloons\n")
    assert [m.movie.title for m in load_catalogue("tmdb", closed).movies] == ["Fargo", "Heat", "Up"]
