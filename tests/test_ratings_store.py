"""Ratings as the store of record: provenance (issue 10.2), one rule set for imports and the API
(issue 12.4), the streaming bulk path and the cheap re-ingest (issue 13.2-3).

Real SQLite or PostgreSQL (MOVIEREC_TEST_DB=postgres), the shared cases' files as given."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from app.catalog.db import make_engine
from app.catalog.rating_rules import RULE
from app.datasets import load_catalogue
from app.datasets.base import SourceCatalogue, SourceMovie, make_movie
from app.settings import Settings
from ingest.pipeline import store_catalogue
from ingest.ratings import RatingsFileError, read_ratings_file
from tests.helpers.api import bearer
from tests.helpers.worlds import DEMO_LIMIT, copy_settings, make_settings

CASES = Path(__file__).resolve().parents[2] / "shared" / "cases"
if not CASES.is_dir():  # worktrees live at /work/wt/<name>; the cases at /work/shared/cases
    CASES = Path("/work/shared/cases")
DUP = CASES / "duplicate-user-movie-ratings"
MS = CASES / "ratings-timestamps-in-ms"
SEMI = CASES / "semicolon-delimited-csv"
LATIN1 = CASES / "latin1-encoded-catalogue"
TMDB = Path(__file__).parent / "fixtures" / "tmdb"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(make_settings(tmp_path / "data").sqlalchemy_url)
    yield eng
    eng.dispose()


def stored(engine: Engine) -> list[tuple[int, int, float, int]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT user_id, movie_id, rating, timestamp FROM ratings ORDER BY 1, 2"))
        return [(int(u), int(m), float(r), int(t)) for u, m, r, t in rows]


def ingest_file(engine: Engine, movies: Path, ratings: Path, **kwargs: Any) -> tuple[int, list, dict]:
    catalogue = load_catalogue("tmdb", movies=movies)
    n, errors = store_catalogue(engine, catalogue, ratings, **kwargs)
    return n, errors, catalogue.stats


def two_movies() -> SourceCatalogue:
    """A catalogue holding movies 1001 and 1002 (the latin1 case's ids), built in code."""
    movies = [SourceMovie(make_movie(id=i, title=f"Movie {i}", year=2000)) for i in (1001, 1002)]
    return SourceCatalogue("tmdb", movies, [])


# -- issue 10.2: the repro, through the API, on a copy of the demo data ----------------------------
@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def demo_copy(demo_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return copy_settings(demo_settings, tmp_path_factory.mktemp("ratings-store") / "data")


@pytest.fixture(scope="module")
async def client(demo_copy: Settings, text_encoder: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    from app.api import create_app

    async with AsyncTestClient(create_app(demo_copy, text_encoder=text_encoder)) as c:
        yield c


def user_16_ratings(engine: Engine) -> dict[int, float]:
    return {m: r for u, m, r, _ in stored(engine) if u == 16}


@pytest.mark.anyio
async def test_a_reingest_never_reverts_what_a_user_wrote_or_deleted(
    client: AsyncTestClient[Litestar], demo_copy: Settings
) -> None:
    engine = make_engine(demo_copy.sqlalchemy_url)
    before = user_16_ratings(engine)
    assert before[50] == 4.5 and 318 in before  # what the demo source says
    mine = bearer(demo_copy, user_id=16)
    resp = await client.post("/users/16/ratings", json={"movie_id": 50, "rating": 0.5}, headers=mine)
    assert resp.status_code == 201, resp.text
    assert (await client.delete("/users/16/ratings/318", headers=mine)).status_code == 204

    for force in (False, True):  # a plain re-ingest, and one that rewrites every pair of the source
        catalogue = load_catalogue("demo", limit=DEMO_LIMIT)
        store_catalogue(engine, catalogue, force=force)
        assert catalogue.stats["ratings_kept_user_edits"] == 2
        after = user_16_ratings(engine)
        assert after[50] == 0.5 and 318 not in after
        assert {m: r for m, r in after.items() if m not in (50, 318)} == {
            m: r for m, r in before.items() if m not in (50, 318)
        }
    listed = (await client.get("/users/16/ratings", params={"limit": 100}, headers=mine)).json()
    items = {i["movie_id"]: i["rating"] for i in listed["items"]}
    assert items[50] == 0.5 and 318 not in items
    engine.dispose()


@pytest.mark.anyio
async def test_the_api_and_the_import_refuse_the_same_ratings(
    client: AsyncTestClient[Litestar], demo_copy: Settings, engine: Engine
) -> None:
    admin = bearer(demo_copy, admin=True)
    for value in (0, 3.7, 10):
        resp = await client.post("/users/16/ratings", json={"movie_id": 50, "rating": value}, headers=admin)
        assert resp.status_code == 400 and resp.json()["field"] == "rating", resp.text
        assert resp.json()["detail"] == RULE
    _, errors, _ = ingest_file(engine, DUP / "catalogue.jsonl", DUP / "ratings_odd_values.csv")
    refused = {(e.line, e.field) for e in errors if e.message.startswith(RULE)}
    assert refused == {(2, "rating"), (3, "rating"), (7, "rating")}  # 0, 3.7 and 10


# -- issue 12.4: the shared cases, their READMEs' expected values ----------------------------------
def test_duplicated_pairs_keep_the_latest_timestamp(engine: Engine) -> None:
    n, errors, stats = ingest_file(engine, DUP / "catalogue.jsonl", DUP / "ratings.csv")
    assert stored(engine) == [(9, 568, 4.0, 1650000000), (9, 603, 5.0, 1700000500), (9, 862, 2.0, 1650000100)]
    assert (n, errors) == (3, [])
    assert stats["ratings"] == 3 and stats["ratings_duplicates_resolved"] == 2


def test_odd_values_follow_the_api_rule_and_a_missing_time_is_the_import_time(engine: Engine) -> None:
    started = int(time.time())
    n, errors, stats = ingest_file(engine, DUP / "catalogue.jsonl", DUP / "ratings_odd_values.csv")
    rows = {(u, m): (r, t) for u, m, r, t in stored(engine)}
    assert rows[(9, 862)] == (4.5, 1600000002)  # " 4.5 " padded: read
    rating, ts = rows[(9, 949)]  # empty timestamp: the import time, not 1970
    assert rating == 4.0 and started <= ts <= int(time.time())
    assert set(rows) == {(9, 862), (9, 949)} and n == 2
    assert [(e.file, e.line, e.field) for e in errors] == [
        ("ratings_odd_values.csv", 2, "rating"),  # 0
        ("ratings_odd_values.csv", 3, "rating"),  # 3.7
        ("ratings_odd_values.csv", 6, "timestamp"),  # -86400: before 1970
        ("ratings_odd_values.csv", 7, "rating"),  # 10 in a 0.5-5 file
    ]
    assert stats["timestamps_missing_set_to_import_time"] == 1


def test_millisecond_timestamps_are_stored_in_seconds(engine: Engine) -> None:
    lines = (MS / "ratings.csv").read_text().splitlines()[1:]
    expected = {}
    for raw in lines:
        u, m, r, t = raw.split(",")
        expected[(int(u), int(m))] = (float(r), int(t) // 1000 if len(t) == 13 else int(t))
    n, errors, stats = ingest_file(engine, MS / "catalogue.jsonl", MS / "ratings.csv")
    rows = {(u, m): (r, t) for u, m, r, t in stored(engine)}
    assert errors == [] and rows == expected and n == len(expected)
    assert all(t < 10**10 for _, t in rows.values())
    assert stats["timestamps_ms_converted"] == sum(len(raw.split(",")[3]) == 13 for raw in lines) > 0
    # A rating posted afterwards is the user's newest.
    from sqlmodel import Session

    from app.catalog import repository as repo

    with Session(engine) as session:
        repo.rate(session, 1, 603, 2.5)
        session.commit()
        assert repo.user_ratings(session, 1)[0][:2] == (603, 2.5)


def test_semicolon_ratings_with_decimal_commas(engine: Engine) -> None:
    n, errors, _ = ingest_file(engine, SEMI / "movies_comma.csv", SEMI / "ratings_semicolon.csv")
    assert stored(engine) == [(8, 2001, 4.5, 1350000000), (8, 2002, 3.0, 1350000100)]
    assert (n, errors) == (2, [])


def test_latin1_case_ratings_and_a_latin1_ratings_file(engine: Engine, tmp_path: Path) -> None:
    n, errors = store_catalogue(engine, two_movies(), LATIN1 / "ratings.csv")
    assert stored(engine) == [(5, 1001, 4.0, 1300000000), (5, 1002, 5.0, 1300000100)] and n == 2
    latin1 = tmp_path / "ratings.csv"  # an extra free-text column, in Latin-1
    latin1.write_bytes("userId,movieId,rating,timestamp,comment\n6,1001,3.5,1300000200,caf\xe9\n".encode("latin-1"))
    store_catalogue(engine, two_movies(), latin1)
    assert (6, 1001, 3.5, 1300000200) in stored(engine)


def test_iso_dates_a_ten_point_scale_and_row_errors_by_line(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "tens.csv"
    path.write_text(
        "userId,movieId,rating,timestamp\n"
        "1,1001,10,2020-01-02\n"  # line 2: 10/10 -> 5.0, midnight UTC
        "1,1002,7,2020-01-02T03:04:05Z\n"  # line 3
        "2,1001,x,2020-01-02\n"  # line 4: not a number
        "2,1002,4,1,extra\n"  # line 5: too many fields
        "3,1001,3,not a date\n"  # line 6
        "-4,1002,3,1300000000\n"  # line 7: user id < 1
    )
    n, errors = store_catalogue(engine, two_movies(), path)
    assert stored(engine) == [(1, 1001, 5.0, 1577923200), (1, 1002, 3.5, 1577934245)] and n == 2
    assert [(e.line, e.field) for e in errors] == [(4, "rating"), (5, "row"), (6, "timestamp"), (7, "userId")]
    catalogue = two_movies()
    store_catalogue(engine, catalogue, path, rating_scale=5, force=True)  # forced 0.5-5: 10 and 7 refused
    assert catalogue.stats["ratings_stored"] == 0


def test_file_level_problems_are_one_clear_error(tmp_path: Path) -> None:
    empty, semicolon_header = tmp_path / "empty.csv", tmp_path / "wrong.csv"
    empty.write_text("")
    semicolon_header.write_text("user|movie|stars\n1|2|3\n")
    for path in (empty, semicolon_header):
        with pytest.raises(RatingsFileError, match=path.name):
            read_ratings_file(path)


# -- issue 13.2: the streaming path stores exactly what the row-by-row path does -----------------
@pytest.mark.parametrize(
    ("movies", "ratings"),
    [
        (TMDB / "movies.json", TMDB / "ratings.csv"),
        (DUP / "catalogue.jsonl", DUP / "ratings.csv"),
        (DUP / "catalogue.jsonl", DUP / "ratings_odd_values.csv"),
        (MS / "catalogue.jsonl", MS / "ratings.csv"),
        (SEMI / "movies_comma.csv", LATIN1 / "ratings.csv"),  # ids unknown there: every row an error
    ],
    ids=lambda p: p.parent.name + "/" + p.name,
)
def test_bulk_path_equals_row_path(movies: Path, ratings: Path, tmp_path: Path) -> None:
    started = int(time.time())
    results = []
    for name, streamed in (("rows", False), ("bulk", True)):
        engine = make_engine(make_settings(tmp_path / name).sqlalchemy_url)
        if streamed:
            n, errors = store_catalogue(engine, load_catalogue("tmdb", movies=movies), ratings)
        else:
            n, errors = store_catalogue(engine, load_catalogue("tmdb", movies=movies, ratings=ratings))
        # a missing timestamp is each run's own clock: compare it as "the import time"
        rows = [(u, m, r, "now" if t >= started else t) for u, m, r, t in stored(engine)]
        results.append((n, rows, [(e.file, e.line, e.field) for e in errors]))
        engine.dispose()
    assert results[0] == results[1]


# -- issue 13.3: an unchanged re-ingest writes nothing; a changed one only the difference ----------
def count_writes(engine: Engine) -> None:
    """SQLite: triggers count every row written to the ratings table (PostgreSQL: see write_marks)."""
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE rating_writes (n INTEGER)"))
        conn.execute(text("INSERT INTO rating_writes VALUES (0)"))
        for event in ("INSERT", "UPDATE", "DELETE"):
            conn.execute(
                text(
                    f"CREATE TRIGGER count_{event.lower()} AFTER {event} ON ratings "
                    "BEGIN UPDATE rating_writes SET n = n + 1; END"
                )
            )


def write_marks(engine: Engine) -> Any:
    """Changes whenever a row of the ratings table is written."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # each row version records its writing transaction
            return sorted(conn.execute(text("SELECT xmin::text, user_id, movie_id FROM ratings")).all())
        return conn.execute(text("SELECT n FROM rating_writes")).scalar()


def test_unchanged_reingest_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes((TMDB / "ratings.csv").read_bytes())
    if engine.dialect.name == "sqlite":
        count_writes(engine)
    n, _, stats = ingest_file(engine, TMDB / "movies.json", path)
    assert stats["ratings_written"] == n == 58
    marks = write_marks(engine)
    n2, _, stats = ingest_file(engine, TMDB / "movies.json", path)
    assert (n2, stats["ratings_unchanged"], stats["ratings_written"]) == (58, 1, 0)
    assert write_marks(engine) == marks
    # The same rows in another order: parsed again, but every bucket's hash matches: nothing written.
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], *reversed(lines[1:])]) + "\n")
    _, _, stats = ingest_file(engine, TMDB / "movies.json", path)
    assert (stats["ratings_unchanged"], stats["ratings_written"]) == (0, 0)
    assert write_marks(engine) == marks
    # One rating changed and one added: those two rows are written, no other.
    before = stored(engine)
    path.write_text(path.read_text().replace("1,348,3.0,1600781527", "1,348,1.5,1600781527") + "77,603,4.0,1\n")
    _, _, stats = ingest_file(engine, TMDB / "movies.json", path)
    assert stats["ratings_written"] == 2
    after = stored(engine)
    assert set(after) - set(before) == {(1, 348, 1.5, 1600781527), (77, 603, 4.0, 1)}
    if engine.dialect.name == "sqlite":
        assert write_marks(engine) == marks + 2
    else:
        changed = {(u, m) for _, u, m in set(write_marks(engine)) - set(marks)}
        assert changed == {(1, 348), (77, 603)}


@pytest.mark.parametrize(
    ("text", "words"),
    [("user|movie|stars\n1|2001|4\n", ["ratings.csv:1", "userId"]), (None, ["ratings.csv", "cannot read", "path"])],
)
def test_cli_stops_on_an_unreadable_ratings_file_with_one_line(
    tmp_path: Path, text: str | None, words: list[str]
) -> None:
    from sqlalchemy import create_engine, inspect
    from typer.testing import CliRunner

    from app.settings import get_settings
    from movierec.cli import cli

    bad = tmp_path / "ratings.csv"
    if text is not None:  # None: no such file
        bad.write_text(text)
    settings = make_settings(tmp_path / "data")
    env = {"MOVIEREC_DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url or ""}
    get_settings.cache_clear()
    try:
        args = ["ingest", "--source", "tmdb", "--movies", str(SEMI / "movies_comma.csv"), "--ratings", str(bad)]
        result = CliRunner().invoke(cli, args, env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2, result.output  # every file-level problem: exit 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words) and "Traceback" not in result.output, result.output
    # Refused before the database was created: no movierec.db on a fresh data dir, no tables on PostgreSQL.
    assert not list(settings.data_dir.glob("*.db"))
    if settings.database_url:
        bare = create_engine(settings.sqlalchemy_url)
        assert inspect(bare).get_table_names() == []
        bare.dispose()
    engine = make_engine(settings.sqlalchemy_url)
    assert stored(engine) == []  # nothing written, nothing published
    engine.dispose()
    assert not (settings.index_dir / "CURRENT").exists()


def schema_of_ratings(engine: Engine) -> set[str]:
    """The ratings table's indexes and foreign keys, as the database states them."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            query = (
                "SELECT indexdef FROM pg_indexes WHERE tablename = 'ratings' UNION ALL "
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'ratings'::regclass"
            )
        else:
            query = "SELECT sql FROM sqlite_master WHERE tbl_name = 'ratings' AND sql IS NOT NULL"
        return set(conn.execute(text(query)).scalars())


def test_a_large_write_rebuilds_the_indexes_and_keys_it_dropped(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large write drops the secondary indexes (PostgreSQL, into an empty table: and the foreign
    keys) and builds them again after: the same rows, indexes and keys as a row-by-row write."""
    import ingest.ratings

    reference = make_engine(make_settings(tmp_path / "rows").sqlalchemy_url)  # written with its indexes kept
    ingest_file(reference, TMDB / "movies.json", TMDB / "ratings.csv")
    monkeypatch.setattr(ingest.ratings, "SQLITE_REINDEX_ROWS", 1)  # the fixture is far below 500k rows
    monkeypatch.setattr(ingest.ratings, "POSTGRES_BULK_ROWS", 1)
    n, _, stats = ingest_file(engine, TMDB / "movies.json", TMDB / "ratings.csv")
    schema = schema_of_ratings(engine)
    assert schema == schema_of_ratings(reference)
    assert any("ix_ratings_user_history" in s for s in schema) and not any("ix_ratings_movie_id " in s for s in schema)
    if engine.dialect.name == "postgresql":
        assert sum("FOREIGN KEY" in s for s in schema) == 2
    assert stored(engine) == stored(reference) and n == stats["ratings_written"] == 58
    reference.dispose()


def test_the_plain_and_the_text_parse_read_the_same_rows(tmp_path: Path) -> None:
    """A plain file goes through pyarrow's number parsers; one odd value sends the whole file
    through the text path instead: the same rows either way, and the odd row reported by line."""
    lines = ["userId,movieId,rating,timestamp", "1,603,4.5,1600781527", "1,550,3,", "2,603,0.5,1600781527000"]
    lines += [f"{u},{m},{(u + m) % 10 / 2 + 0.5},{1_500_000_000 + u * m}" for u in range(3, 12) for m in (13, 550)]
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(lines) + "\n")
    odd = tmp_path / "odd.csv"
    odd.write_text(plain.read_text() + "7, 603 ,4.0,1.0\n9,603,x,1\n")  # spaces, a .0 timestamp, a bad rating
    rows, errors, _ = read_ratings_file(plain)
    odd_rows, odd_errors, _ = read_ratings_file(odd)
    n = len(lines) - 1
    assert not errors and len(rows) == n
    assert [(e.line, e.field) for e in odd_errors] == [(n + 3, "rating")]
    for name in ("user", "movie", "rating", "timestamp", "line"):
        assert getattr(odd_rows, name)[:n].tolist() == getattr(rows, name).tolist(), name
    added = (int(odd_rows.user[n]), int(odd_rows.movie[n]), float(odd_rows.rating[n]), int(odd_rows.timestamp[n]))
    assert added == (7, 603, 4.0, 1)


def test_an_older_databases_obsolete_indexes_are_dropped_at_start(engine: Engine) -> None:
    from app.catalog.db import ensure_schema
    from app.catalog.models import OBSOLETE_INDEXES

    with engine.begin() as conn:  # as an older version left them
        conn.execute(text("CREATE INDEX ix_ratings_movie_id ON ratings (movie_id)"))
        conn.execute(text("CREATE INDEX ix_ratings_user_ts ON ratings (user_id, timestamp)"))
    assert all(any(name in s for s in schema_of_ratings(engine)) for name in OBSOLETE_INDEXES)
    ensure_schema(engine)
    ensure_schema(engine)  # and again: nothing left to drop
    schema = schema_of_ratings(engine)
    assert not any(name in s for name in OBSOLETE_INDEXES for s in schema)
    assert any("ix_ratings_user_history" in s for s in schema)
