"""Bring-your-own-data, without models: file-level problems (kind 1), row-level reports (kind 2),
ids (kind 3), genres (kind 5), TMDB fields vs local statistics (kind 6), poster paths (kind 7),
and the movielens and movies-dataset folder sources. Inputs are written here, per test."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlmodel import Session

import ingest
from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.genres import clean_genres, genre_key
from app.catalog.models import MAX_ID
from app.datasets import UnusableFileError, load_catalogue, validate
from app.datasets.files import CSV_FIELD_LIMIT, csv_records, detect_encoding, sniff_delimiter
from app.datasets.tmdb import parse_movie
from app.errors import InvalidInputError
from ingest.pipeline import in_file_order, store_catalogue
from tests.helpers.worlds import make_settings

HEADER = "id,title,release_date,genres,overview\n"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def titles(path: Path) -> dict[int, str]:
    movies = validate(load_catalogue("tmdb", path))[0]
    return {m.id: m.title for m in movies}


# --- kind 1: file-level problems ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom", "warned"),
    [("utf-8", b"", False), ("utf-8", b"\xef\xbb\xbf", False), ("cp1252", b"", True), ("latin-1", b"", True)],
)
def test_encodings_decode_and_non_utf8_is_named(tmp_path: Path, encoding: str, bom: bytes, warned: bool) -> None:
    path = tmp_path / "movies.csv"
    path.write_bytes(
        bom + (HEADER + "1,Café Society,2016-05-11,Comedy,x\n2,Léon,1994-09-14,Crime,y\n").encode(encoding)
    )
    catalogue = load_catalogue("tmdb", path)
    assert [m.movie.title for m in catalogue.movies] == ["Café Society", "Léon"]
    assert "id" in catalogue.movies[0].movie.model_dump()  # the BOM did not stick to the first column
    if warned:
        [warning] = catalogue.warnings
        assert warning.startswith("movies.csv: not UTF-8 (first bad byte at line 2, column 6)")
    else:
        assert catalogue.warnings == []


def test_utf16_with_bom_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.csv", "\ufeff" + HEADER + "1,Caf\u00e9,2001,Drama,x\n", "utf-16-le")
    assert detect_encoding(path).name == "utf-16"
    assert titles(path) == {1: "Caf\u00e9"}


def test_cp1252_only_bytes_choose_cp1252(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", HEADER + "1,It\u2019s a \u20acuro film,2001,Drama,x\n", "cp1252")
    assert detect_encoding(path).name == "cp1252"
    assert titles(path) == {1: "It\u2019s a \u20acuro film"}


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_are_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = [["id", "title", "genres", "vote_average"], ["7", "Rain, Again", "Drama|Romance", "6,5"]]
    path = tmp_path / "movies.csv"
    with path.open("w", newline="") as f:
        csv.writer(f, delimiter=delimiter).writerows(rows)
    movies = validate(load_catalogue("tmdb", path))[0]
    assert [(m.id, m.title, m.genres) for m in movies] == [(7, "Rain, Again", ["Drama", "Romance"])]
    assert movies[0].vote_average == 6.5  # a decimal comma is read as a decimal point


def test_sniffing_looks_at_the_header_only() -> None:
    assert sniff_delimiter("id;title;genres") == ";"
    assert sniff_delimiter("id,title") == ","
    assert sniff_delimiter("movieId\ttitle\tgenres") == "\t"
    assert sniff_delimiter("title") == ","


def test_a_cell_larger_than_the_csv_default_limit_is_read(tmp_path: Path) -> None:
    overview = "word " * 60_000  # 300 KB: over the csv module's 128 KiB default
    path = write(tmp_path / "movies.csv", HEADER + f'1,Long,2001,Drama,"{overview}"\n2,Short,2002,Drama,x\n')
    movies = validate(load_catalogue("tmdb", path))[0]
    assert [len(m.overview or "") for m in movies] == [len(overview.strip()), 1]
    assert len(overview) < CSV_FIELD_LIMIT


def test_a_quote_never_closed_is_one_line_naming_where(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.csv", HEADER + '1,Fine,2001,Drama,x\n2,"Broken,2002,Drama,y\n3,Lost,2003,Drama,z\n')
    with pytest.raises(UnusableFileError) as info:
        load_catalogue("tmdb", path)
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("movies.csv:3: a quote opened in the record starting here is never closed")
    assert "lines 3-4" in text


def test_a_quote_that_swallows_rows_mid_file_is_reported(tmp_path: Path) -> None:
    body = '1,"Swallower,2001,Drama,x\n2,Eaten,2002,Drama,y\n3,Also eaten",2003,Drama,z\n4,Fine,2004,Drama,w\n'
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.csv", HEADER + body))
    assert [m.movie.id for m in catalogue.movies] == [4]
    [error] = catalogue.errors
    assert (error.file, error.line, error.field) == ("movies.csv", 2, "row")
    assert "spans lines 2-4" in error.message and "unclosed on line 2" in error.message


def test_a_multi_line_overview_is_not_mistaken_for_swallowed_rows(tmp_path: Path) -> None:
    body = '1,Poem,2001,Drama,"First line.\nSecond line, with a comma."\n2,Next,2002,Drama,x\n'
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.csv", HEADER + body))
    assert [m.movie.id for m in catalogue.movies] == [1, 2] and catalogue.errors == []
    assert catalogue.movies[1].line == 4  # the record after a two-line one starts on line 4


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("movies.csv", "", "movies.csv: empty file"),
        ("movies.csv", "\n\n", "movies.csv: empty file"),
        ("movies.json", "", "movies.json: empty file"),
        ("movies.csv", "name,year\nA,2001\n", "movies.csv:1: no 'id' or 'movieId' column"),
        ("movies.csv", "id:title\n1:A\n", "movies.csv:1: no 'id' or 'movieId' column"),
        ("movies.csv", "id,name\n1,A\n", "movies.csv:1: no 'title' column"),
        ("movies.csv", 'id,"title"x,year\n1,A,2001\n', "movies.csv:1: the header row cannot be read"),
        ("movies.json", '[{"id": 1, "title": "A"},\n {"id": 2, "ti', "movies.json:2:12: invalid JSON"),
        ("movies.json", '[{"id": 1 "title": "A"}]', "movies.json:1:11: invalid JSON"),
    ],
)
def test_file_problems_are_one_line(tmp_path: Path, name: str, text: str, expected: str) -> None:
    with pytest.raises(UnusableFileError) as info:
        load_catalogue("tmdb", write(tmp_path / name, text))
    assert str(info.value).startswith(expected)
    assert "\n" not in str(info.value) and "; " in str(info.value)  # what is wrong; what to do


def test_a_stray_quote_is_a_row_error_and_reading_goes_on(tmp_path: Path) -> None:
    body = '1,"He said "hi" twice",2001,Drama,a\n2,Fine,2002,Drama,b\n3,Last,2003,Drama,c\n'
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.csv", HEADER + body))
    assert [m.movie.id for m in catalogue.movies] == [2, 3]
    [error] = catalogue.errors
    assert (error.line, error.field) == (2, "row") and "',' expected after '\"'" in error.message


def test_a_missing_file_or_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(
        UnusableFileError, match=r"nope\.csv: cannot read the file \(No such file or directory\); check"
    ):
        load_catalogue("tmdb", tmp_path / "nope.csv")
    with pytest.raises(UnusableFileError, match="cannot read the file"):
        load_catalogue("tmdb", tmp_path)


def test_csv_records_reports_the_delimiter_it_used(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "user;movie;score\n1;2;3\n")
    with pytest.raises(UnusableFileError, match="delimiter ';'"):
        list(csv_records(path, [("userId",)], [], []))


def test_nothing_usable_is_refused_before_writing(tmp_path: Path) -> None:
    from app.catalog.db import make_engine
    from ingest.pipeline import store_catalogue

    path = write(tmp_path / "movies.csv", HEADER + "x,No id,2001,Drama,a\n-1,Negative,2001,Drama,b\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(UnusableFileError, match=r"movies.csv: no usable movie \(2 bad rows\)"):
        store_catalogue(engine, load_catalogue("tmdb", path))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM movies").scalar() == 0


def test_a_tmdb_api_page_is_read_as_records(tmp_path: Path) -> None:
    page = {"page": 1, "results": [{"id": 11, "title": "Star Wars", "genre_ids": [12]}, {"id": 12, "title": ""}]}
    path = write(tmp_path / "page.json", json.dumps(page, indent=2))
    movies, _, errors = validate(load_catalogue("tmdb", path))
    assert [m.id for m in movies] == [11]
    assert [str(e) for e in errors] == ["page.json: record 2: title: missing title (movie id 12)"]


# --- kind 2: row-level reports --------------------------------------------------------------------


def test_row_errors_in_file_order_once_with_lines_and_ids(tmp_path: Path) -> None:
    body = "1,First,2001,Drama,a\n2,,2002,Drama,b\nx,Bad id,2003,Drama,c\n1,Again,2004,Drama,d\n5,Fine,2005,Drama,e\n"
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.csv", HEADER + body))
    movies, _, errors = validate(catalogue)
    report = [str(e) for e in in_file_order(errors)]
    assert report == [
        "movies.csv:3: title: missing title (movie id 2)",
        "movies.csv:4: id: not a number: 'x'",
        "movies.csv:5: id: duplicate movie id 1",
    ]
    assert [m.id for m in movies] == [1, 5]
    # Every data row is a row read, the one whose id does not parse included; under --limit 3 the
    # rows up to the third movie kept (line 5: the bad line 4 is before it).
    assert catalogue.stats["movies_read"] == 5
    assert load_catalogue("tmdb", tmp_path / "movies.csv", limit=3).stats["movies_read"] == 4


def test_json_list_errors_say_record(tmp_path: Path) -> None:
    rows = [{"id": 1, "title": "A"}, {"id": 2, "title": ""}, "not an object"]
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.json", json.dumps(rows, indent=2)))
    errors = validate(catalogue)[2]
    assert [str(e) for e in in_file_order(errors)] == [
        "movies.json: record 2: title: missing title (movie id 2)",
        "movies.json: record 3: row: expected an object, got str",
    ]
    assert catalogue.stats["movies_read"] == 3


def test_jsonl_errors_say_the_file_line(tmp_path: Path) -> None:
    text = '{"id": 1, "title": "A"}\n\n{"id": 2, "title": "B"\n{"id": 3}\n'
    catalogue = load_catalogue("tmdb", write(tmp_path / "movies.jsonl", text))
    errors = validate(catalogue)[2]
    assert [str(e) for e in in_file_order(errors)] == [
        "movies.jsonl:3: json: invalid JSON at column 23: Expecting ',' delimiter",
        "movies.jsonl:4: title: missing title (movie id 3)",
    ]
    assert catalogue.stats["movies_read"] == 3  # the blank line is no row


# --- kind 3: ids ----------------------------------------------------------------------------------


def test_ids_outside_what_every_store_holds_are_row_errors(tmp_path: Path) -> None:
    rows = [{"id": i, "title": f"Movie {n}"} for n, i in enumerate([7, -5, 0, MAX_ID, MAX_ID + 1, 2**63, 2**64])]
    movies, _, errors = validate(load_catalogue("tmdb", write(tmp_path / "movies.json", json.dumps(rows))))
    assert [m.id for m in movies] == [7, MAX_ID]  # 10**18 - 1 exactly: never rounded through a float
    assert [(e.line, e.field) for e in errors] == [(2, "id"), (3, "id"), (5, "id"), (6, "id"), (7, "id")]
    assert all(e.unit == "record" for e in errors)


def test_rating_user_ids_out_of_range_are_row_errors(tmp_path: Path) -> None:
    movies = write(tmp_path / "movies.csv", HEADER + "1,A,2001,Drama,a\n")
    ratings = write(tmp_path / "ratings.csv", f"userId,movieId,rating,timestamp\n0,1,4,1\n{2**63},1,4,1\n3,1,4,1\n")
    _, kept, errors = validate(load_catalogue("tmdb", movies, ratings))
    assert [r.user_id for r in kept] == [3]
    assert [(e.line, e.field) for e in errors] == [(2, "userId"), (3, "userId")]


# --- kind 5: genres -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("Action|Adventure", ["Action", "Adventure"]),
        ('"Action, Adventure, Drama"', ["Action", "Adventure", "Drama"]),
        ('"Action; Adventure;Drama"', ["Action", "Adventure", "Drama"]),
        ('"Action & Adventure, Sci-Fi & Fantasy"', ["Action & Adventure", "Sci-Fi & Fantasy"]),  # TMDB's TV names
        ('"[""Action"", ""Drama""]"', ["Action", "Drama"]),
        ("\"[{'id': 18, 'name': 'Drama'}]\"", ["Drama"]),
        ("(no genres listed)", []),
        ("(No Genres Listed)", []),
        ('" drama |Drama| Science  Fiction"', ["drama", "Science Fiction"]),
        ("", []),
    ],
)
def test_genre_separators(tmp_path: Path, cell: str, expected: list[str]) -> None:
    path = write(tmp_path / "movies.csv", f"id,title,genres\n1,A,{cell}\n")
    [movie] = validate(load_catalogue("tmdb", path))[0]
    assert movie.genres == expected


def test_one_spelling_per_genre_across_the_catalogue(tmp_path: Path) -> None:
    path = write(tmp_path / "movies.csv", "id,title,genres\n1,A,Science Fiction|Sci-Fi\n2,B,science fiction\n")
    movies = validate(load_catalogue("tmdb", path))[0]
    assert [m.genres for m in movies] == [["Science Fiction", "Sci-Fi"], ["Science Fiction"]]


def test_genre_key_ignores_case_and_spaces_only() -> None:
    assert genre_key("Science Fiction") == genre_key(" science  fiction ") == genre_key("SCIENCEFICTION")
    assert genre_key("Sci-Fi") != genre_key("Science Fiction")
    assert clean_genres(["Drama", "drama", " ", "(no genres listed)", "Film-Noir"]) == ["Drama", "Film-Noir"]


# --- kind 6: TMDB fields are never filled from local ratings ---------------------------------------


def test_tmdb_fields_stay_null_and_zero_votes_mean_none(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "title": "No TMDB fields"},
        {"id": 2, "title": "No votes", "vote_average": 0, "vote_count": 0, "popularity": 0.6},
        {"id": 3, "title": "Voted", "vote_average": 7.5, "vote_count": 120, "popularity": 12.5},
    ]
    movies = write(tmp_path / "movies.json", json.dumps(rows))
    ratings = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,10\n2,1,5,11\n")
    by_id = {m.id: m for m in validate(load_catalogue("tmdb", movies, ratings))[0]}
    assert (by_id[1].popularity, by_id[1].vote_average, by_id[1].vote_count) == (None, None, None)
    assert (by_id[2].popularity, by_id[2].vote_average, by_id[2].vote_count) == (0.6, None, 0)
    assert (by_id[3].popularity, by_id[3].vote_average, by_id[3].vote_count) == (12.5, 7.5, 120)


# --- kind 7: poster paths -------------------------------------------------------------------------


def test_tmdb_poster_paths_resolve_against_the_poster_base(tmp_path: Path) -> None:
    rows = [{"id": 1, "title": "A", "poster_path": "/abc.jpg"}, {"id": 2, "title": "B", "poster_path": "x/y.png"}]
    path = write(tmp_path / "movies.json", json.dumps(rows))

    def posters(base: str | None) -> list[str | None]:
        return [m.movie.poster for m in load_catalogue("tmdb", path, poster_base=base).movies]

    assert posters("https://image.tmdb.org/t/p/w500/") == [
        "https://image.tmdb.org/t/p/w500/abc.jpg",
        "https://image.tmdb.org/t/p/w500/x/y.png",
    ]
    folder = tmp_path / "posters"
    assert posters(str(folder)) == [str(folder / "abc.jpg"), str(folder / "x" / "y.png")]
    assert posters(None) == [str(tmp_path / "abc.jpg"), str(tmp_path / "x" / "y.png")]


# --- folder sources ---------------------------------------------------------------------------------


def test_movielens_folder(tmp_path: Path) -> None:
    write(
        tmp_path / "movies.csv",
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,"American President, The (1995)",'
        "Comedy|Drama\n3,Ghost Town Diaries (2015),(no genres listed)\n4,Mini Series (2008\u20132009),War\n"
        "5,No Year,Drama\n",
    )
    write(tmp_path / "links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n2,0112346,9087\n3,,\n")
    write(tmp_path / "tags.csv", "userId,movieId,tag,timestamp\n1,1,pixar,1\n2,1,Pixar,2\n3,1,toys,3\n1,x,bad,4\n")
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.5,100\n1,2,3.0,101\n")
    catalogue = load_catalogue("movielens", directory=tmp_path)
    movies, ratings, errors = validate(catalogue)
    by_id = {m.id: m for m in movies}
    assert (by_id[1].title, by_id[1].year, by_id[1].imdb_id, by_id[1].tmdb_id) == ("Toy Story", 1995, "tt0114709", 862)
    assert by_id[1].keywords == ["pixar", "toys"]  # most used first, one spelling per tag
    assert (by_id[2].title, by_id[2].year, by_id[2].genres) == ("The American President", 1995, ["Comedy", "Drama"])
    assert by_id[3].genres == [] and by_id[3].imdb_id is None
    assert by_id[4].year == 2008 and by_id[5].year is None
    assert ratings == [] and catalogue.ratings_file == tmp_path / "ratings.csv"  # streamed by the ingest's bulk path
    assert [str(e) for e in errors] == ["tags.csv:5: movieId: not a number: 'x'"]
    assert catalogue.stats["linked_tmdb"] == 2


@pytest.mark.parametrize("layout", ["ratings.csv", "ratings.dat"])
def test_movielens_ratings_are_five_stars_never_a_guessed_ten(tmp_path: Path, layout: str) -> None:
    """A MovieLens file whose first block looks like a 1-10 scale (whole numbers, some above 5: a
    corrupt or foreign file) is read on MovieLens's own 0.5-5: the 6-10s are row errors by line, the
    others stored as written, nothing halved. --rating-scale is for a --ratings file only."""
    folder = tmp_path / "ml"
    folder.mkdir()
    if layout == "ratings.csv":
        write(folder / "movies.csv", "movieId,title,genres\n1,Toy Story (1995),Animation\n2,Heat (1995),Crime\n")
        write(folder / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4,100\n1,2,8,101\n2,1,10,102\n2,2,3,103\n")
    else:
        write(folder / "movies.dat", "1::Toy Story (1995)::Animation\n2::Heat (1995)::Crime\n", "latin-1")
        write(folder / "ratings.dat", "1::1::4::100\n1::2::8::101\n2::1::10::102\n2::2::3::103\n")
    engine = make_engine(make_settings(tmp_path / "data").sqlalchemy_url)
    catalogue = load_catalogue("movielens", directory=folder)
    stored, errors = store_catalogue(engine, catalogue)
    with Session(engine) as session:
        rows = {(u, r.movie_id): r.rating for u in (1, 2) for r in repo.user_ratings(session, u)}
    engine.dispose()
    first = 2 if layout == "ratings.csv" else 1  # the header is line 1 of a CSV; a .dat has none
    assert rows == {(1, 1): 4.0, (2, 2): 3.0} and stored == 2
    assert [(e.file, e.line, e.field) for e in errors] == [(layout, first + 1, "rating"), (layout, first + 2, "rating")]
    assert "rating_scale" not in catalogue.stats  # nothing detected
    with pytest.raises(InvalidInputError, match="--rating-scale gives the scale of a --ratings file") as refused:
        ingest.run(make_settings(tmp_path / "data"), "movielens", directory=folder, rating_scale=10)
    assert refused.value.field == "rating_scale"


def test_folder_sources_need_their_folder(tmp_path: Path) -> None:
    with pytest.raises(UnusableFileError, match=r"no movies\.csv \(ml-latest, ml-25m\), movies\.dat .* in this folder"):
        load_catalogue("movielens", directory=tmp_path)
    with pytest.raises(UnusableFileError, match="no movies_metadata.csv in this folder"):
        load_catalogue("movies-dataset", directory=tmp_path)
    with pytest.raises(InvalidInputError, match="--dir") as refused:
        load_catalogue("movielens")
    assert refused.value.field == "directory"


def test_movies_dataset_folder_joins_by_id_and_reports_malformed_rows(tmp_path: Path) -> None:
    meta = [
        [
            "adult",
            "genres",
            "id",
            "imdb_id",
            "overview",
            "popularity",
            "poster_path",
            "release_date",
            "title",
            "vote_average",
            "vote_count",
        ],
        [
            "False",
            "[{'id': 16, 'name': 'Animation'}, {'id': 35, 'name': 'Comedy'}]",
            "862",
            "tt0114709",
            "Toys come alive.",
            "21.946943",
            "/rhIRbceoE9lR4veEXuwCC2wARtG.jpg",
            "1995-10-30",
            "Toy Story",
            "7.7",
            "5415",
        ],
        ["False", "[]", "1997-08-20", "", "A shifted row, as the dataset has.", "0.0", "", "", "", "", ""],
        [
            "False",
            "[{'id': 18, 'name': 'Drama'}]",
            "9087",
            "tt0112346",
            "A president in love.",
            "0",
            "",
            "1995-11-17",
            "The American President",
            "0",
            "0",
        ],
        ["False", "[]", "862", "tt0114709", "Duplicate row.", "1", "", "1995-10-30", "Toy Story", "7.7", "5415"],
    ]
    with (tmp_path / "movies_metadata.csv").open("w", newline="") as f:
        csv.writer(f).writerows(meta)
    write(
        tmp_path / "keywords.csv",
        "id,keywords\n862,\"[{'id': 931, 'name': 'jealousy'}, {'id': 4290, 'name': 'toy'}]\"\n",
    )
    write(
        tmp_path / "credits.csv",
        "cast,crew,id\n\"[{'name': 'Tom Hanks', 'order': 0}]\","
        "\"[{'job': 'Director', 'name': 'John Lasseter'}]\",862\n",
    )
    write(tmp_path / "links.csv", "movieId,imdbId,tmdbId\n1,0114709,862\n11,0112346,9087\n")
    write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,100\n1,11,3.5,101\n1,999,2.0,102\n")
    catalogue = load_catalogue("movies-dataset", directory=tmp_path, poster_base="https://image.tmdb.org/t/p/w500")
    movies, ratings, errors = validate(catalogue)
    by_id = {m.id: m for m in movies}
    toy = by_id[862]
    assert (toy.title, toy.year, toy.genres, toy.keywords) == (
        "Toy Story",
        1995,
        ["Animation", "Comedy"],
        ["jealousy", "toy"],
    )
    assert (toy.cast, toy.director, toy.imdb_id, toy.tmdb_id) == (["Tom Hanks"], "John Lasseter", "tt0114709", 862)
    assert (toy.vote_average, toy.vote_count) == (7.7, 5415)
    assert toy.poster == "https://image.tmdb.org/t/p/w500/rhIRbceoE9lR4veEXuwCC2wARtG.jpg"
    assert by_id[9087].vote_average is None  # 0 with 0 votes: no votes
    assert [str(e) for e in in_file_order(errors)] == [
        "movies_metadata.csv:3: id: not a number: '1997-08-20'",
        "movies_metadata.csv:5: id: duplicate movie id 862",
    ]
    assert catalogue.stats["movies_read"] == 4  # the shifted row too: 4 rows read, 2 of them bad
    # The ratings file is streamed by the ingest's bulk path, its MovieLens ids mapped through links.
    assert ratings == [] and catalogue.ratings_links == {1: 862, 11: 9087}
    settings = make_settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        stored, all_errors = store_catalogue(engine, catalogue)
        with Session(engine) as session:
            assert sorted((r.movie_id, r.rating) for r in repo.user_ratings(session, 1)) == [(862, 4.0), (9087, 3.5)]
    finally:
        engine.dispose()
    assert stored == 2
    assert [str(e) for e in all_errors][-1] == "ratings.csv:4: movieId: MovieLens id 999 has no tmdbId in links"


def test_an_older_database_gains_the_new_movie_columns(tmp_path: Path) -> None:
    import sqlite3

    from app.catalog.db import make_engine

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # the movies table as the previous version created it
        conn.execute("CREATE TABLE movies (id INTEGER PRIMARY KEY, title VARCHAR NOT NULL, poster VARCHAR)")
        conn.execute("INSERT INTO movies VALUES (1, 'Old', NULL)")
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        row = conn.exec_driver_sql("SELECT id, title, imdb_id, local_rating_count, poster_embedded FROM movies").one()
    engine.dispose()
    assert tuple(row) == (1, "Old", None, None, None)


TMDB_5000_COLUMNS = [
    "budget",
    "genres",
    "homepage",
    "id",
    "keywords",
    "original_language",
    "original_title",
    "overview",
    "popularity",
    "production_companies",
    "production_countries",
    "release_date",
    "revenue",
    "runtime",
    "spoken_languages",
    "status",
    "tagline",
    "title",
    "vote_average",
    "vote_count",
]


def _tmdb_5000_movie(mid: int, title: str, countries: list[tuple[str, str]]) -> list[str]:
    """A tmdb_5000_movies.csv row as Kaggle writes it: lists as JSON text."""
    fields = {
        "budget": "237000000",
        "genres": json.dumps([{"id": 28, "name": "Action"}, {"id": 878, "name": "Science Fiction"}]),
        "homepage": "http://www.avatarmovie.com/",
        "id": str(mid),
        "keywords": json.dumps([{"id": 1463, "name": "culture clash"}]),
        "original_language": "en",
        "original_title": title,
        "overview": "In the 22nd century, a paraplegic Marine is dispatched to the moon Pandora.",
        "popularity": "150.437577",
        "production_companies": json.dumps([{"name": "Ingenious Film Partners", "id": 289}]),
        "production_countries": json.dumps([{"iso_3166_1": c, "name": n} for c, n in countries]),
        "release_date": "2009-12-10",
        "revenue": "2787965087",
        "runtime": "162",
        "spoken_languages": json.dumps([{"iso_639_1": "en", "name": "English"}]),
        "status": "Released",
        "tagline": "Enter the World of Pandora.",
        "title": title,
        "vote_average": "7.2",
        "vote_count": "11800",
    }
    return [fields[c] for c in TMDB_5000_COLUMNS]


def _person(name: str, order: int) -> dict[str, object]:
    return {"cast_id": order + 240, "character": "x", "credit_id": "5602a8a7", "gender": 2, "id": order, "name": name,
            "order": order}  # fmt: skip


def _write_tmdb_5000(folder: Path, credits: bool) -> Path:
    """Kaggle's TMDB 5000 as it unpacks: tmdb_5000_movies.csv, and tmdb_5000_credits.csv (movie_id,
    title, cast, crew) beside it unless `credits` is False."""
    movies = folder / "tmdb_5000_movies.csv"
    with movies.open("w", newline="") as f:
        rows = [
            _tmdb_5000_movie(19995, "Avatar", [("US", "United States of America"), ("GB", "United Kingdom")]),
            _tmdb_5000_movie(285, "Pirates of the Caribbean: At World's End", []),
            _tmdb_5000_movie(206647, "Spectre", [("GB", "United Kingdom")]),
        ]
        csv.writer(f).writerows([TMDB_5000_COLUMNS, *rows])
    if credits:
        crew = [
            {"credit_id": "52fe48009", "department": "Editing", "gender": 0, "id": 1721, "job": "Editor",
             "name": "Stephen E. Rivkin"},
            {"credit_id": "52fe48009", "department": "Directing", "gender": 2, "id": 2710, "job": "Director",
             "name": "James Cameron"},
        ]  # fmt: skip
        cast = [_person("Zoe Saldana", 1), _person("Sam Worthington", 0), _person("Sigourney Weaver", 2)]
        with (folder / "tmdb_5000_credits.csv").open("w", newline="") as f:
            csv.writer(f).writerows(
                [
                    ["movie_id", "title", "cast", "crew"],
                    ["19995", "Avatar", json.dumps(cast), json.dumps(crew)],
                    ["not-an-id", "Broken", "[]", "[]"],
                    ["285", "Pirates of the Caribbean: At World's End", "[]", "[]"],
                ]
            )
    return movies


def test_tmdb_5000_credits_beside_the_movies_file_give_cast_and_director(tmp_path: Path) -> None:
    """Kaggle's TMDB 5000 keeps cast and crew in tmdb_5000_credits.csv, joined by movie_id: read when
    it sits beside tmdb_5000_movies.csv (cast in billing order, directors from the crew), its bad rows
    reported with its name; a movie it lacks keeps no cast. Without it, nothing is invented."""
    catalogue = load_catalogue("tmdb", _write_tmdb_5000(tmp_path, credits=True))
    movies, _, errors = validate(catalogue)
    by_id = {m.id: m for m in movies}
    avatar = by_id[19995]
    assert (avatar.cast, avatar.director) == (["Sam Worthington", "Zoe Saldana", "Sigourney Weaver"], "James Cameron")
    assert (avatar.title, avatar.year, avatar.runtime, avatar.genres) == (
        "Avatar",
        2009,
        162,
        ["Action", "Science Fiction"],
    )
    assert (by_id[285].cast, by_id[285].director, by_id[206647].cast) == ([], None, [])
    # production_countries: the first one's name is Movie.country (one name, as the API shows it).
    assert [by_id[i].country for i in (19995, 285, 206647)] == ["United States of America", None, "United Kingdom"]
    france = "[{'iso_3166_1': 'FR', 'name': 'France'}]"  # The Movies Dataset's Python-list text
    assert parse_movie({"id": 1, "title": "Amélie", "production_countries": france}, tmp_path).country == "France"
    given = {"id": 1, "title": "Amélie", "country": "FR", "production_countries": france}
    assert parse_movie(given, tmp_path).country == "FR"  # a country column of its own wins
    assert [str(e) for e in errors] == ["tmdb_5000_credits.csv:3: movie_id: not a number: 'not-an-id'"]
    assert catalogue.stats["credits_file"] == "tmdb_5000_credits.csv" and catalogue.stats["with_credits"] == 1
    assert catalogue.stats["movies_read"] == 3  # the credits file's bad row is not a movie row

    alone = tmp_path / "alone"
    alone.mkdir()
    catalogue = load_catalogue("tmdb", _write_tmdb_5000(alone, credits=False))
    assert all(not m.movie.cast and m.movie.director is None for m in catalogue.movies)
    assert "credits_file" not in catalogue.stats and catalogue.errors == []
