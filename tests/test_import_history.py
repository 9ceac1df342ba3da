"""A user's own history: Letterboxd and IMDb exports, by the CLI and by POST /users/{id}/ratings/import.

The files are written here in the exports' exact column layouts, with made-up rows whose titles
are demo catalogue movies (a copy of the session's demo fixture: real database, real index)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import Session
from typer.testing import CliRunner

from app.api.state import DatabaseGate, services_from
from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.datasets import load_catalogue
from app.datasets.files import MAX_UNPACKED_BYTES
from app.datasets.history import LISTED_ROWS, MAX_ROWS, read_history
from app.datasets.titles import match_keys
from app.settings import Settings
from ingest.pipeline import store_catalogue
from movierec.cli import cli
from tests.helpers.api import bearer
from tests.helpers.worlds import DEMO_LIMIT, make_settings

pytestmark = pytest.mark.anyio

LETTERBOXD = """Date,Name,Year,Letterboxd URI,Rating
2021-03-04,Toy Story,1995,https://boxd.it/1a,4.5
2021-03-05,Se7en,1995,https://boxd.it/1b,5
2021-03-06,Il Postino,1994,https://boxd.it/1c,3.5
2021-03-07,Twelve Monkeys,1996,https://boxd.it/1d,4
2021-03-08,A Film Nobody Made,2003,https://boxd.it/1e,2
2021-03-09,Jumanji,1995,https://boxd.it/1f,
2021-03-10,The Usual Suspects,1995,https://boxd.it/1g,3.7
"""
IMDB_HEADER = (
    "Const,Your Rating,Date Rated,Title,URL,Title Type,IMDb Rating,Runtime (mins),Year,Genres,Num Votes,"
    "Release Date,Directors"
)
IMDB_ROWS = [
    'tt0110912,9,2020-05-01,Pulp Fiction,https://www.imdb.com/title/tt0110912/,movie,8.9,154,1994,"Crime, Drama",'
    "2000000,1994-10-14,Quentin Tarantino",
    "tt0076759,10,2020-05-02,Star Wars: Episode IV - A New Hope,https://www.imdb.com/title/tt0076759/,movie,8.6,121,"
    '1977,"Action, Adventure",1400000,1977-05-25,George Lucas',
    'tt0112573,7,2020-05-03,Braveheart,https://www.imdb.com/title/tt0112573/,movie,8.3,178,1995,"Biography, Drama",'
    "1100000,1995-05-24,Mel Gibson",
    "tt9999999,6,2020-05-04,Made Up Series,https://www.imdb.com/title/tt9999999/,tvSeries,7.0,45,2019,Drama,100,"
    "2019-01-01,",
    "tt0114709,eleven,2020-05-05,Toy Story,https://www.imdb.com/title/tt0114709/,movie,8.3,81,1995,Animation,"
    "1000000,1995-11-22,John Lasseter",
]
IMDB = "\n".join([IMDB_HEADER, *IMDB_ROWS]) + "\n"
USER = 9_100_000  # above every MovieLens user


def ratings_of(settings: Settings, user: int) -> dict[int, tuple[float, int]]:
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        rows = {r.movie_id: (r.rating, r.timestamp) for r in repo.user_ratings(session, user)}
    engine.dispose()
    return rows


def run_cli(settings: Settings, *args: str) -> Any:
    env = {"MOVIEREC_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    from app.settings import get_settings

    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args), env=env)
    finally:
        get_settings.cache_clear()


async def test_letterboxd_by_cli_matches_titles_and_imports_once(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text(LETTERBOXD)
    result = run_cli(settings, "import-ratings", "--user", str(USER), "--format", "letterboxd", str(path), "--json")
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    # Toy Story; Se7en = "Seven (Se7en)"; Il Postino = "The Postman (Il Postino)"; Twelve Monkeys one year off
    assert (report["matched"], report["imported"]) == (4, 4)
    assert report["unmatched"] == [{"line": 6, "title": "A Film Nobody Made", "year": 2003, "suggestions": []}]
    assert [(s["line"], s["field"]) for s in report["skipped"]] == [(7, "Rating"), (8, "Rating")]
    assert ratings_of(settings, USER) == {
        1: (4.5, 1614816000),
        47: (5.0, 1614902400),
        58: (3.5, 1614988800),
        32: (4.0, 1615075200),
    }
    again = json.loads(
        run_cli(settings, "import-ratings", "--user", str(USER), "--format", "letterboxd", str(path), "--json").stdout
    )
    assert (again["matched"], again["imported"], again["unchanged"]) == (4, 0, 4)
    assert len(ratings_of(settings, USER)) == 4
    # They are the user's own: a re-ingest of the demo source does not revert them.
    engine = make_engine(settings.sqlalchemy_url)
    store_catalogue(engine, load_catalogue("demo", limit=DEMO_LIMIT), force=True)
    engine.dispose()
    assert ratings_of(settings, USER)[1] == (4.5, 1614816000)


async def test_imdb_by_api_halves_the_scale_and_keeps_later_api_writes(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    user = USER + 1
    mine = bearer(settings, user_id=user)
    # A rating the user writes through the API after the export's dates: the import keeps it.
    resp = await client.post(f"/users/{user}/ratings", json={"movie_id": 110, "rating": 1.0}, headers=mine)
    assert resp.status_code == 201
    url = f"/users/{user}/ratings/import"
    resp = await client.post(url, params={"format": "imdb"}, content=IMDB.encode(), headers=mine)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["matched"], body["imported"], body["kept_newer"]) == (3, 2, 1)
    assert body["unmatched"] == [{"line": 5, "title": "Made Up Series", "year": 2019, "suggestions": []}]
    assert [(s["line"], s["field"]) for s in body["skipped"]] == [(6, "Your Rating")]
    stored = ratings_of(settings, user)
    assert stored[296][0] == 4.5 and stored[260][0] == 5.0 and stored[110][0] == 1.0
    again = (await client.post(url, params={"format": "imdb"}, content=IMDB.encode(), headers=mine)).json()
    assert (again["imported"], again["unchanged"], again["kept_newer"]) == (0, 2, 1)


async def test_a_file_of_many_wrong_rows_lists_the_first_and_counts_them_all(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """300 unmatched titles and 300 unreadable ratings: the reply counts every one and lists the first
    LISTED_ROWS of each, in file order (a 300,000-row file of them was an 18.7 MB reply, each
    unmatched row a suggestion search); the good row still imports."""
    user = USER + 42
    mine = bearer(settings, user_id=user)
    lines = ["Date,Name,Year,Letterboxd URI,Rating", "2021-03-04,Toy Story,1995,,4"]
    lines += [f"2021-03-04,No Such Film {i},1990,,3" for i in range(300)]
    lines += ["2021-03-04,Toy Story,1995,,lots"] * 300
    url = f"/users/{user}/ratings/import"
    resp = await client.post(url, params={"format": "letterboxd"}, content="\n".join(lines).encode(), headers=mine)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert (body["rows"], body["imported"], body["unmatched_total"], body["skipped_total"]) == (601, 1, 300, 300)
    assert len(body["unmatched"]) == len(body["skipped"]) == LISTED_ROWS < 300
    assert [u["line"] for u in body["unmatched"]] == list(range(3, 3 + LISTED_ROWS))
    assert [s["line"] for s in body["skipped"]] == list(range(303, 303 + LISTED_ROWS))


def test_refused_rows_are_listed_in_file_order_whatever_refused_them() -> None:
    """Rows refused by their date (read after every row), their rating and the CSV reader (too many
    cells), interleaved: all counted, the first LISTED_ROWS listed by line whoever refused them."""
    header = "Date,Name,Year,Letterboxd URI,Rating"
    kinds = ["2021-13-45,Toy Story,1995,,4", "2021-03-04,Toy Story,1995,,lots", "2021-03-04,Toy Story,1995,,4,extra"]
    lines = [header, "2021-03-04,Toy Story,1995,,4"] + [kinds[i % 3] for i in range(3 * LISTED_ROWS)]
    export = read_history("\n".join(lines).encode(), "letterboxd")
    assert (len(export.rows), export.skipped_total) == (1, 3 * LISTED_ROWS)
    assert [s["line"] for s in export.skipped] == list(range(3, 3 + LISTED_ROWS))
    assert [s["field"] for s in export.skipped[:3]] == ["Date", "Rating", "row"]


async def test_rows_the_csv_reader_refuses_count_toward_the_row_limit(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """MAX_ROWS + 1 rows of too many cells (no row read at all) are a file too long, like as many good
    rows: 32 MiB of them in an 81 KB gzip (1.7M) took 6.4 CPU s and 1 GB, an error kept per row."""
    admin = bearer(settings, admin=True)
    rows = "2021-03-04,Toy Story,1995,,4,extra\n" * (MAX_ROWS + 1)
    many = gzip.compress(("Date,Name,Year,Letterboxd URI,Rating\n" + rows).encode(), 9)
    url = f"/users/{USER + 43}/ratings/import"
    resp = await client.post(url, params={"format": "letterboxd"}, content=many, headers=admin)
    assert resp.status_code == 400 and resp.json()["field"] == "file", resp.text[:300]
    assert f"more than {MAX_ROWS:,} rows" in resp.json()["detail"]


async def test_an_export_uploaded_as_a_form_file_imports_like_the_raw_body(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """`curl -F file=@ratings.csv` and an HTML form send multipart: the file is read from it (it was
    read as the CSV, headed by the form's boundary line)."""
    user = USER + 40
    mine = bearer(settings, user_id=user)
    url = f"/users/{user}/ratings/import"
    upload = {"file": ("ratings.csv", IMDB.encode(), "text/csv")}
    resp = await client.post(url, params={"format": "imdb"}, files=upload, headers=mine)
    assert resp.status_code == 201, resp.text
    assert (resp.json()["matched"], resp.json()["imported"]) == (3, 3)
    raw = await client.post(url, params={"format": "imdb"}, content=IMDB.encode(), headers=mine)
    assert (raw.json()["imported"], raw.json()["unchanged"]) == (0, 3)


async def test_an_export_sent_by_curl_data_binary_imports(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """`curl --data-binary @ratings.csv` (the README's command) labels the file
    application/x-www-form-urlencoded, curl's default for any data: the file, line breaks kept, is
    the body and imports (it was a 400 telling the user to run the command they had run). A zip or
    gzip sent that way imports too, and an empty or binary file is a 400 saying what it is; `curl -d
    @ratings.csv` (line breaks dropped) stays a 400 saying so."""
    user = USER + 41
    mine = bearer(settings, user_id=user)
    url = f"/users/{user}/ratings/import"
    curl_default = {**mine, "Content-Type": "application/x-www-form-urlencoded"}
    resp = await client.post(url, params={"format": "imdb"}, content=IMDB.encode(), headers=curl_default)
    assert resp.status_code == 201, resp.text
    assert (resp.json()["matched"], resp.json()["imported"]) == (3, 3)
    gzipped = gzip.compress(IMDB.encode())
    zipped = await client.post(url, params={"format": "imdb"}, content=gzipped, headers=curl_default)
    assert zipped.status_code == 201 and zipped.json()["unchanged"] == 3, zipped.text
    for sent, words in [(b"", "empty file"), (b"PK\x05\x06" + bytes(18), "an empty zip archive")]:
        resp = await client.post(url, params={"format": "imdb"}, content=sent, headers=curl_default)
        assert resp.status_code == 400 and words in resp.json()["detail"], resp.text  # not "line breaks lost"
    dropped = IMDB.replace("\n", "").encode()  # what curl -d @ratings.csv sends
    resp = await client.post(url, params={"format": "imdb"}, content=dropped, headers=curl_default)
    assert resp.status_code == 400 and resp.json()["field"] == "file" and "--data-binary" in resp.json()["detail"]


async def test_import_is_guarded_and_refuses_what_is_not_an_export(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    other = bearer(settings, user_id=USER + 3)
    url = f"/users/{USER + 2}/ratings/import"
    resp = await client.post(url, params={"format": "imdb"}, content=IMDB.encode(), headers=other)
    assert resp.status_code == 403
    admin = bearer(settings, admin=True)
    resp = await client.post(url, params={"format": "imdb"}, content=LETTERBOXD.encode(), headers=admin)
    assert resp.status_code == 400 and resp.json()["field"] == "file", resp.text
    detail = resp.json()["detail"]  # whole: the apostrophes of its prose are not quoted values to shorten
    assert "Rating); is the file an IMDb" in detail and "…" not in detail, detail
    resp = await client.post(url, params={"format": "imdb"}, content=b"Const,\x00\n" + bytes(range(256)), headers=admin)
    assert resp.status_code == 400 and resp.json()["field"] == "file", resp.text
    form = await client.post(url, params={"format": "imdb"}, data={"file": IMDB}, headers=admin)  # curl -d @file
    assert form.status_code == 400 and form.json()["field"] == "file" and "--data-binary" in form.json()["detail"]
    two = {"a": ("a.csv", IMDB.encode(), "text/csv"), "b": ("b.csv", IMDB.encode(), "text/csv")}
    resp = await client.post(url, params={"format": "imdb"}, files=two, headers=admin)
    assert resp.status_code == 400 and resp.json()["field"] == "file", resp.text
    resp = await client.post(url, params={"format": "csv"}, content=IMDB.encode(), headers=admin)
    assert resp.status_code == 400 and resp.json()["field"] == "format", resp.text
    # A compressed upload bounded by what it unpacks to, not what it weighs: MAX_ROWS + 1 rows in 12 KB of
    # gzip are refused before anything is matched or written (1M rows in 81 KB took a worker 42 s).
    rows = LETTERBOXD.splitlines()[1] + "\n"
    many = gzip.compress((LETTERBOXD.splitlines()[0] + "\n" + rows * (MAX_ROWS + 1)).encode(), 9)
    resp = await client.post(url, params={"format": "letterboxd"}, content=many, headers=admin)
    assert resp.status_code == 400 and resp.json()["field"] == "file", resp.text
    assert f"more than {MAX_ROWS:,} rows" in resp.json()["detail"] and "split it" in resp.json()["detail"]
    bomb = gzip.compress(b"Date,Name,Year,Letterboxd URI,Rating\n" + b" " * (MAX_UNPACKED_BYTES + 1))
    resp = await client.post(url, params={"format": "letterboxd"}, content=bomb, headers=admin)
    assert resp.status_code == 400 and "unpacks to more than 32 MiB" in resp.json()["detail"], resp.text
    assert ratings_of(settings, USER + 2) == {}


async def test_an_upload_is_read_before_it_takes_a_database_slot(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """The file is read in a thread of its own, then matched and written holding a database slot:
    while the worker's every slot is taken (a stalled database), a file error still answers 400, not
    503 after the wait for a slot, and a good file waits for one."""
    services = services_from(client.app.state)
    shared, gate = services.db_gate, DatabaseGate(1, 0.05)
    gate.ready = True
    services.db_gate = gate
    admin, url = bearer(settings, admin=True), f"/users/{USER + 44}/ratings/import"
    try:
        async with gate.slot():
            wrong = await client.post(url, params={"format": "imdb"}, content=LETTERBOXD.encode(), headers=admin)
            good = await client.post(url, params={"format": "imdb"}, content=IMDB.encode(), headers=admin)
    finally:
        services.db_gate = shared
    assert wrong.status_code == 400 and wrong.json()["field"] == "file", wrong.text
    assert good.status_code == 503 and "busy" in good.json()["detail"], good.text


# -- titles: every trailing group an alternate, articles in either place --------------------------


@pytest.mark.parametrize(
    ("title", "own", "alternates"),
    [
        (
            "Léon: The Professional (The Professional) (Léon)",
            [
                "leon the professional the professional leon",
                "leon the professional the professional",
                "leon the professional",
            ],
            ["professional", "leon"],
        ),
        ("Seven (a.k.a. Se7en)", ["seven a k a se7en", "seven"], ["se7en"]),
        (
            "To Have, or Not (En avoir (ou pas))",
            ["to have or not en avoir ou pas", "to have or not"],
            ["en avoir ou pas", "en avoir", "ou pas"],
        ),
        ("Evangelion: 1.0 You Are (Not) Alone", ["evangelion 1 0 you are not alone"], []),
        ("Matrix, The", ["matrix"], []),
        ("Power of Nightmares, The: The Rise of Fear", ["power of nightmares the rise of fear"], []),
        ("(500) Days of Summer", ["500 days of summer"], []),
    ],
)
def test_match_keys(title: str, own: list[str], alternates: list[str]) -> None:
    assert match_keys(title) == (own, alternates)


async def test_titles_with_several_alternates_and_articles_last_match(settings: Settings, tmp_path: Path) -> None:
    """The catalogue's "Léon: The Professional (The Professional) (Léon)" (1994) is found by its bare
    title, accents or not; "Usual Suspects, The" by its article-last form. A `;` file with decimal
    commas (a European spreadsheet's) reads as ingest reads one."""
    user = USER + 4
    path = tmp_path / "ratings.csv"
    path.write_text(
        "Date;Name;Year;Letterboxd URI;Rating\n"
        "2022-01-02;Leon: The Professional;1994;https://boxd.it/2a;4,5\n"
        "2022-01-03;Usual Suspects, The;1995;https://boxd.it/2b;3\n"
        "2022-01-04;Toy Story;abc;https://boxd.it/2c;4\n"
        '2022-01-05;"Say "Anything";1989;https://boxd.it/2d;4\n'
    )
    result = run_cli(settings, "import-ratings", "--user", str(user), "--format", "letterboxd", str(path), "--json")
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert (report["matched"], report["unmatched"]) == (2, [])
    assert [(s["line"], s["field"]) for s in report["skipped"]] == [(4, "Year"), (5, "row")]
    assert report["skipped"][0]["message"] == "not a number: 'abc'"
    assert ratings_of(settings, user) == {293: (4.5, 1641081600), 50: (3.0, 1641168000)}


async def test_imdb_title_with_several_alternates_matches_by_api(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    user = USER + 5
    row = "tt0110413,8,2020-06-01,Léon: The Professional,https://www.imdb.com/title/tt0110413/,movie,8.5,110,1994,"
    body = f"{IMDB_HEADER}\n{row}Crime,1100000,1994-09-14,Luc Besson\n".encode()
    resp = await client.post(
        f"/users/{user}/ratings/import", params={"format": "imdb"}, content=body, headers=bearer(settings, user_id=user)
    )
    assert resp.status_code == 201, resp.text
    assert (resp.json()["matched"], resp.json()["unmatched"]) == (1, [])
    assert ratings_of(settings, user) == {293: (4.0, 1590969600)}


# -- file errors: read as ingest reads a CSV, exit 2, nothing created -----------------------------


@pytest.mark.parametrize(
    ("text", "fmt", "words"),
    [
        (
            'Date,Name,Year,Letterboxd URI,Rating\n2021-03-04,"Toy Story,1995,https://boxd.it/1a,4.5\n',
            "letterboxd",
            ["ratings.csv:2:", "quote", "never closed"],
        ),
        (LETTERBOXD, "imdb", ["ratings.csv:1:", "no 'Title' column", "an IMDb ratings export", "letterboxd"]),
        ("", "letterboxd", ["ratings.csv: empty file"]),
    ],
)
def test_file_errors_exit_2_and_create_no_database(tmp_path: Path, text: str, fmt: str, words: list[str]) -> None:
    fresh = make_settings(tmp_path / "data")
    path = tmp_path / "ratings.csv"
    path.write_text(text)
    result = run_cli(fresh, "import-ratings", "--user", str(USER), "--format", fmt, str(path))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.output, result.output
    assert all(w in lines[0] for w in words), lines[0]
    assert not fresh.data_dir.exists() or not any(fresh.data_dir.iterdir())  # no movierec.db left behind
    if fresh.database_url:  # PostgreSQL: the database is the test's own, and holds no table yet
        from sqlalchemy import create_engine, inspect

        engine = create_engine(fresh.sqlalchemy_url)
        assert inspect(engine).get_table_names() == []
        engine.dispose()


async def test_unclosed_quote_is_a_file_error_by_api(client: AsyncTestClient[Litestar], settings: Settings) -> None:
    user = USER + 6
    body = IMDB_HEADER + '\n"tt0110912,9,2020-05-01,Pulp Fiction\n'
    resp = await client.post(
        f"/users/{user}/ratings/import",
        params={"format": "imdb"},
        content=body.encode(),
        headers=bearer(settings, user_id=user),
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["field"] == "file" and "body:2:" in resp.json()["detail"], resp.text


async def test_letterboxd_zip_by_api_keeps_an_api_rating_over_an_undated_row(
    client: AsyncTestClient[Litestar], settings: Settings
) -> None:
    """The export's zip as downloaded is read through its ratings.csv; an undated row never replaces
    the rating the user wrote through the API, however often the zip is sent."""
    import io
    import zipfile

    user = USER + 7
    mine = bearer(settings, user_id=user)
    resp = await client.post(f"/users/{user}/ratings", json={"movie_id": 1, "rating": 1.5}, headers=mine)
    assert resp.status_code == 201
    ratings = (
        "Date,Name,Year,Letterboxd URI,Rating\n,Toy Story,1995,https://boxd.it/1a,5\n2021-03-07,Twelve Monkeys,,u,4\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("watched.csv", "Date,Name,Year,Letterboxd URI\n")
        archive.writestr("ratings.csv", ratings)
    url = f"/users/{user}/ratings/import"
    for _ in range(2):
        resp = await client.post(url, params={"format": "letterboxd"}, content=buffer.getvalue(), headers=mine)
        assert resp.status_code == 201, resp.text
        assert resp.json()["kept_newer"] == 1 and resp.json()["unmatched"] == [], resp.text
    stored = ratings_of(settings, user)
    assert stored[1][0] == 1.5 and stored[32] == (4.0, 1615075200)
