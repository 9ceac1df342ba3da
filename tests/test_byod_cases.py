"""Bring your own data, end to end: the catalogue cases of ../shared/cases (each README's expected
behaviour asserted), the poisoned-then-corrected data dir, `ingest --json` / exit statuses, and the
poster route. Real text model, real Edge index, real SQLite or PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.datasets import load_catalogue, validate
from app.settings import Settings, get_settings
from app.vectorstore import MovieFilter, content_hashes, open_store
from ingest.pipeline import store_catalogue
from tests.helpers.api import bearer
from tests.helpers.ingest import build_index
from tests.helpers.worlds import make_settings

CASES = Path(__file__).resolve().parents[1].parent / "shared" / "cases"
if not CASES.is_dir():
    CASES = Path("/work/shared/cases")
TMDB = Path(__file__).parent / "fixtures" / "tmdb"


def case(name: str) -> Path:
    folder = CASES / name
    if not folder.is_dir():
        pytest.skip(f"the shared case {name} is not on this machine ({folder})")
    return folder


def stored_movies(settings: Settings) -> dict[int, Any]:
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with Session(engine) as session:
            return {m.id: m for m in repo.all_movies(session)}
    finally:
        engine.dispose()


def index_facts(settings: Settings) -> tuple[set[int], dict[str, int]]:
    index = open_store(settings).open()
    try:
        return set(content_hashes(index)), index.genres()
    finally:
        index.close()


# --- the shared cases ------------------------------------------------------------------------------


def test_latin1_encoded_catalogue(tmp_path: Path, text_encoder) -> None:
    folder = case("latin1-encoded-catalogue")
    catalogue = load_catalogue("tmdb", folder / "movies.csv", folder / "ratings.csv")
    assert catalogue.warnings == [
        "movies.csv: not UTF-8 (first bad byte at line 3, column 7); read as cp1252. "
        "Save the file as UTF-8 to silence this warning"
    ]
    settings = make_settings(tmp_path / "data")
    build_index(settings, text_encoder, "tmdb", movies=folder / "movies.csv", ratings=folder / "ratings.csv")
    movies = stored_movies(settings)
    assert {i: m.title for i, m in movies.items()} == {
        1001: "Toy Chest",
        1002: "L\u00e9on",
        1003: "Rash\u00f4mon",
        1004: "Caf\u00e9 Society",
    }
    assert (movies[1001].local_rating_count, movies[1002].local_rating_mean) == (1, 5.0)
    assert index_facts(settings)[0] == set(movies)


def test_semicolon_delimited_csv(tmp_path: Path, text_encoder) -> None:
    folder = case("semicolon-delimited-csv")
    settings = make_settings(tmp_path / "data")
    build_index(settings, text_encoder, "tmdb", movies=folder / "movies_semicolon.csv")
    movies = stored_movies(settings)
    assert {i: (m.title, m.year, m.genres) for i, m in movies.items()} == {
        2001: ("Nordic Noir", 2011, ["Crime", "Thriller"]),
        2002: ("Summer Fields", 2014, ["Drama"]),
    }
    # The catalogue half of the second command: a comma movies file with semicolon ratings.
    catalogue = load_catalogue("tmdb", folder / "movies_comma.csv", folder / "ratings_semicolon.csv")
    assert catalogue.errors == []
    assert [(r.user_id, r.movie_id, r.rating) for r in catalogue.ratings] == [(8, 2001, 4.5), (8, 2002, 3.0)]


def test_out_of_range_ids_then_a_corrected_file_in_the_same_data_dir(tmp_path: Path, text_encoder) -> None:
    folder = case("out-of-range-movie-ids")
    settings = make_settings(tmp_path / "data")
    catalogue = load_catalogue("tmdb", folder / "movies.json")
    engine = make_engine(settings.sqlalchemy_url)
    _, errors = store_catalogue(engine, catalogue)
    engine.dispose()
    assert [str(e) for e in errors] == [
        "movies.json: record 2: id: movie id -5 outside 1..999999999999999999",
        "movies.json: record 3: id: movie id 0 outside 1..999999999999999999",
        "movies.json: record 4: id: movie id 1000000000000000000 outside 1..999999999999999999",
    ]
    build_index(settings, text_encoder, "tmdb", movies=folder / "movies.json")
    assert set(stored_movies(settings)) == index_facts(settings)[0] == {7001}
    # The corrected file, into the same data dir: succeeds, and the database and index agree.
    build_index(settings, text_encoder, "tmdb", movies=folder / "movies_clean.json")
    assert set(stored_movies(settings)) == index_facts(settings)[0] == {7001, 7002}

    fresh = make_settings(tmp_path / "huge")
    build_index(fresh, text_encoder, "tmdb", movies=folder / "movies_huge.json")
    assert set(stored_movies(fresh)) == index_facts(fresh)[0] == {7001}
    huge = validate(load_catalogue("tmdb", folder / "movies_huge.json"))[2]
    assert [str(e) for e in huge] == [
        "movies_huge.json: record 2: id: movie id 9223372036854775808 outside 1..999999999999999999"
    ]


def test_a_poisoned_file_never_poisons_the_data_dir(tmp_path: Path, text_encoder) -> None:
    poisoned = tmp_path / "poisoned.csv"
    poisoned.write_text("id,title,genres\n-1,Negative,Drama\n5,Kept,Drama\n18446744073709551616,Too big,Drama\n")
    corrected = tmp_path / "corrected.csv"
    corrected.write_text("id,title,genres\n1,Fixed,Drama\n5,Kept,Drama\n")
    settings = make_settings(tmp_path / "data")
    build_index(settings, text_encoder, "tmdb", movies=poisoned)
    build_index(settings, text_encoder, "tmdb", movies=corrected)
    assert set(stored_movies(settings)) == index_facts(settings)[0] == {1, 5}


def test_a_data_dir_poisoned_by_an_older_version_is_repaired(tmp_path: Path, text_encoder) -> None:
    """The issue's report: an older version committed movie -5 (and a rating of it), then every
    later ingest failed, even with a corrected file and --rebuild."""
    from app.catalog.models import Movie

    settings = make_settings(tmp_path / "data")
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine) as session:
        session.add(Movie(id=-5, title="Negative Id Film", genres=["Drama"], keywords=[], cast=[]))
        session.commit()
        repo.upsert_ratings(session, [(1, -5, 4.0, 1_600_000_000)])
        session.commit()
    engine.dispose()
    build_index(settings, text_encoder, "tmdb", movies=case("out-of-range-movie-ids") / "movies_clean.json")
    assert set(stored_movies(settings)) == index_facts(settings)[0] == {7001, 7002}


def test_comma_separated_genres(tmp_path: Path, text_encoder) -> None:
    folder = case("comma-separated-genres")
    settings = make_settings(tmp_path / "data")
    build_index(settings, text_encoder, "tmdb", movies=folder / "movies.csv")
    movies = stored_movies(settings)
    assert movies[4001].genres == ["Action", "Adventure", "Drama"]
    assert not any("," in g for m in movies.values() for g in m.genres)
    index = open_store(settings).open()
    try:
        assert {h.id for h in index.popular(10, MovieFilter(genres=("Drama",)))} == {4001, 4002, 4003}
        assert "Drama" in index.genres() and not any("," in g for g in index.genres())
    finally:
        index.close()


def test_no_genres_listed(tmp_path: Path, text_encoder) -> None:
    folder = case("no-genres-listed")
    settings = make_settings(tmp_path / "data")
    build_index(settings, text_encoder, "tmdb", movies=folder / "movies.csv")
    movies = stored_movies(settings)
    assert (movies[3002].genres, movies[3003].genres, movies[3005].genres) == ([], [], [])
    genres = index_facts(settings)[1]
    assert "(no genres listed)" not in genres and genres == {
        "Action": 1,
        "Sci-Fi": 1,
        "Thriller": 1,
        "War": 1,
        "Drama": 1,
    }

    grouplens = make_settings(tmp_path / "grouplens")
    catalogue = load_catalogue("tmdb", folder / "movielens_movies.csv")
    assert "GroupLens MovieLens layout" in catalogue.warnings[0]
    build_index(grouplens, text_encoder, "tmdb", movies=folder / "movielens_movies.csv")
    ml = stored_movies(grouplens)
    assert {i: (m.title, m.year) for i, m in ml.items()} == {
        1: ("Toy Story", 1995),
        2: ("The American President", 1995),
        3: ("Ghost Town Diaries", 2015),
    }
    assert ml[3].genres == [] and "(no genres listed)" not in index_facts(grouplens)[1]


# --- the CLI: exit statuses, one line, --json alone on stdout ---------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The CLI reads its settings from the environment: point them at a fresh test world."""
    settings = make_settings(tmp_path / "data")
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("MOVIEREC_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MOVIEREC_DEVICE", "cpu")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def run_cli(*args: str) -> Any:
    from movierec.cli import cli

    return CliRunner().invoke(cli, ["ingest", *args])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"id": 1, "title": "A"},', r"^error: movies\.json:1:26: invalid JSON .*; .*$"),
        ("", r"^error: movies\.json: empty file; export it again$"),
    ],
)
def test_cli_file_problem_is_one_line_and_exit_2(cli_env: Settings, text: str, expected: str) -> None:
    path = cli_env.data_dir.parent / "movies.json"
    path.write_text(text)
    result = run_cli("--source", "tmdb", "--movies", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    assert re.match(expected, result.stderr.strip()) and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert open_store(cli_env).manifest() is None  # nothing published


@pytest.mark.parametrize(
    ("args", "option", "words"),
    [
        (("--source", "tmdb"), "--movies", "needs a movies file"),
        (("--source", "movielens"), "--dir", "they need it"),
        (("--source", "demo", "--ratings", "r.csv"), "--ratings", "reads its own ratings"),
        (("--source", "movielens", "--dir", ".", "--movies", "m.json"), "--movies", "reads its files from its folder"),
    ],
)
def test_cli_wrong_option_combination_names_the_option(
    cli_env: Settings, args: tuple[str, ...], option: str, words: str
) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.stderr.replace("│", " ").split())  # typer boxes and wraps the message
    assert f"Invalid value for {option}: " in text and words in text, text
    assert "Traceback" not in result.stderr
    assert open_store(cli_env).manifest() is None and not any(cli_env.data_dir.glob("*.db"))


def test_cli_nothing_usable_exits_2_and_publishes_nothing(cli_env: Settings) -> None:
    path = cli_env.data_dir.parent / "movies.csv"
    path.write_text("id,title\n-3,Negative\n0,Zero\n")
    result = run_cli("--source", "tmdb", "--movies", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "skipped: movies.csv:2: id: movie id -3 outside 1..999999999999999999",
        "skipped: movies.csv:3: id: movie id 0 outside 1..999999999999999999",
        "error: movies.csv: no usable movie (2 bad rows); fix the rows reported above",
    ]
    assert open_store(cli_env).manifest() is None


def test_cli_json_is_one_object_and_agrees_with_the_text(cli_env: Settings, tmp_path: Path, text_encoder) -> None:
    movies = tmp_path / "tmdb"
    shutil.copytree(TMDB, movies)  # posters resolve next to the movies file
    result = run_cli(
        "--source", "tmdb", "--movies", str(movies / "movies.json"), "--ratings", str(movies / "ratings.csv"), "--json"
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # exactly one JSON object: nothing else on stdout
    assert isinstance(summary, dict) and result.stdout.strip().count("\n") == 0
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == summary["bad_rows"] == len(set(skipped))  # each bad row once
    assert summary["with_poster"] + summary["without_poster"] == summary["movies"]

    text = run_cli(
        "--source", "tmdb", "--movies", str(movies / "movies.json"), "--ratings", str(movies / "ratings.csv")
    )
    again = json.loads(
        run_cli(
            "--source",
            "tmdb",
            "--movies",
            str(movies / "movies.json"),
            "--ratings",
            str(movies / "ratings.csv"),
            "--json",
        ).stdout
    )
    line = text.stdout.splitlines()[0]
    numbers = {
        "movies_read": r"(\d+) movie rows read",
        "bad_rows": r"(\d+) bad rows skipped",
        "ratings": r"(\d+) ratings stored",
        "movies": r"(\d+) movies in the index",
        "with_poster": r"\((\d+) with poster",
        "without_poster": r"(\d+) without\)",
        "failed": r"(\d+) posters failed",
        "collab_vectors": r"(\d+) collab vectors",
    }
    assert {k: int(re.search(p, line).group(1)) for k, p in numbers.items()} == {k: again[k] for k in numbers}

    # Posters: has_poster only where an image was embedded; the route serves it.
    stored = stored_movies(cli_env)
    embedded = {i for i, m in stored.items() if m.poster_embedded}
    assert len(embedded) == summary["with_poster"] > 0
    assert stored[862].poster and 862 not in embedded  # missing.jpg: referenced, never embedded
    _check_poster_route(cli_env, embedded, stored, text_encoder)


def _check_poster_route(settings: Settings, embedded: set[int], stored: dict[int, Any], encoder: Any) -> None:
    from litestar.testing import TestClient

    from app.api import create_app

    token = bearer(settings, admin=True)
    with TestClient(create_app(settings, text_encoder=encoder)) as client:
        mid = min(embedded)
        response = client.get(f"/movies/{mid}/poster", headers=token)
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/")
        assert response.content == Path(stored[mid].poster).read_bytes()
        assert client.get(f"/movies/{mid}", headers=token).json()["has_poster"] is True
        body = client.get("/movies/862", headers=token).json()
        assert body["has_poster"] is False and "local_rating_count" in body and "vote_average" in body
        assert client.get("/movies/862/poster", headers=token).status_code == 404
        assert client.get("/movies/603/poster", headers=token).status_code == 404  # no poster at all
        assert client.get("/movies/0/poster", headers=token).status_code == 400
        # Genre filters match ignoring case and spaces; a different name is still unknown.
        found = client.get("/movies/search", params={"q": "hacker", "genres": " science FICTION"}, headers=token)
        assert found.status_code == 200 and found.json()["items"]
        assert all("Science Fiction" in i["genres"] for i in found.json()["items"])
        unknown = client.get("/movies/search", params={"q": "hacker", "genres": "Sci-Fi"}, headers=token)
        assert unknown.status_code == 400 and unknown.json()["field"] == "genres"
