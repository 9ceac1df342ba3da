"""Catalogue sources on real data: MovieLens latest-small (+ Wikidata / Wikipedia joins), ML-100K and
the TMDB-format fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.datasets import SourceCatalogue, load_catalogue, validate
from app.datasets.demo import display_title, normalise_title, title_keys
from app.errors import InvalidInputError

FIXTURE = Path(__file__).parent / "fixtures" / "tmdb"
MOVIES_JSON, MOVIES_CSV, RATINGS = FIXTURE / "movies.json", FIXTURE / "movies.csv", FIXTURE / "ratings.csv"


def by_id(catalogue: SourceCatalogue) -> dict:
    return {item.movie.id: item.movie for item in catalogue.movies}


@pytest.fixture(scope="module")
def demo() -> SourceCatalogue:
    return load_catalogue("demo")


def test_unknown_source_is_named() -> None:
    with pytest.raises(InvalidInputError, match="'imdb'") as refused:
        load_catalogue("imdb")
    assert refused.value.field == "source"


def test_tmdb_needs_a_movies_file() -> None:
    with pytest.raises(InvalidInputError, match="movies file") as refused:
        load_catalogue("tmdb")
    assert refused.value.field == "movies"


# --- titles -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "keys"),
    [
        ("Matrix, The", ["the matrix"]),
        ("American President, The", ["the american president"]),
        ("Seven (a.k.a. Se7en)", ["seven", "se7en"]),
        ("Postman, The (Postino, Il)", ["the postman", "il postino"]),
        ("Atalante, L'", ["latalante"]),
        (
            "Léon: The Professional (a.k.a. The Professional) (Léon)",
            ["leon the professional", "the professional", "leon"],
        ),
        ("Dumb & Dumber (Dumb and Dumber)", ["dumb and dumber"]),
    ],
)
def test_title_keys(title: str, keys: list[str]) -> None:
    assert title_keys(title) == keys


def test_display_title_puts_articles_first() -> None:
    assert display_title("Name of the Rose, The (Name der Rose, Der)") == "The Name of the Rose (Der Name der Rose)"
    assert normalise_title("Amélie!") == "amelie"


# --- demo ---------------------------------------------------------------------------------------


def test_demo_counts_and_match_rates(demo: SourceCatalogue) -> None:
    assert len(demo.movies) == 9066
    assert len(demo.ratings) == 100_004
    assert 0.7 < demo.stats["metadata_match_rate"] < 0.95
    assert 0.05 < demo.stats["plot_match_rate"] < 0.11  # 997 summaries at most
    assert demo.stats["metadata_matched"] == round(demo.stats["metadata_match_rate"] * 9066)


def test_demo_enrichment(demo: SourceCatalogue) -> None:
    movies = by_id(demo)
    heat = movies[6]
    assert (heat.title, heat.year, heat.director, heat.runtime) == ("Heat", 1995, "Michael Mann", 170)
    assert {"Al Pacino", "Robert De Niro"} <= set(heat.cast)
    matrix = movies[2571]
    assert matrix.title == "The Matrix" and "Wachowski" in (matrix.director or "")
    assert matrix.overview and matrix.overview.startswith("The Matrix is a 1999")
    assert movies[903].overview.startswith("Vertigo is a 1958")
    # The 'Casablanca' summary is Wikipedia's page on the city: it must not become the film's plot.
    assert movies[912].director == "Michael Curtiz" and movies[912].overview is None
    assert movies[1].genres == ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert all(m.movie.poster is None for m in demo.movies)


def test_demo_validates(demo: SourceCatalogue) -> None:
    movies, ratings, errors = validate(demo)
    # Five movies have no title in this copy of the data; validate reports and drops them.
    assert len(movies) == 9061
    assert sum(e.field == "title" for e in errors) == 5
    assert len(ratings) + sum(e.field == "movieId" for e in errors) == 100_004
    assert not [g for m in movies for g in m.genres if g == "(no genres listed)"]


def test_demo_limit() -> None:
    catalogue = load_catalogue("demo", limit=50)
    ids = [m.movie.id for m in catalogue.movies]
    assert ids == sorted(ids) and len(ids) == 50 and ids[0] == 1
    assert catalogue.ratings and {r.movie_id for r in catalogue.ratings} <= set(ids)
    assert catalogue.stats["movies_read"] == 50


# --- ml-100k ------------------------------------------------------------------------------------


def test_ml100k() -> None:
    catalogue = load_catalogue("ml-100k")
    assert (len(catalogue.movies), len(catalogue.ratings), catalogue.errors) == (1682, 100_000, [])
    movies = by_id(catalogue)
    assert (movies[1].title, movies[1].year) == ("Toy Story", 1995)
    assert movies[12].title == "The Usual Suspects"
    assert movies[1412].year == 1995  # year sits in the title on that row
    assert {r.rating for r in catalogue.ratings} == {1.0, 2.0, 3.0, 4.0, 5.0}
    limited = load_catalogue("ml-100k", limit=10)
    assert [m.movie.id for m in limited.movies] == list(range(1, 11))
    assert {r.movie_id for r in limited.ratings} <= set(range(1, 11))


# --- tmdb ---------------------------------------------------------------------------------------


def test_tmdb_json_and_csv_agree() -> None:
    from_json = load_catalogue("tmdb", MOVIES_JSON, RATINGS)
    from_csv = load_catalogue("tmdb", MOVIES_CSV, RATINGS)
    assert [m.movie.model_dump() for m in from_json.movies] == [m.movie.model_dump() for m in from_csv.movies]
    assert len(from_json.movies) == 13
    matrix = by_id(from_json)[603]
    assert matrix.genres == ["Action", "Science Fiction"]
    assert matrix.keywords[:2] == ["simulation", "hacker"]
    assert matrix.cast[0] == "Keanu Reeves" and matrix.year == 1999
    assert by_id(from_csv)[129].genres == ["Animation", "Family", "Fantasy"]  # the "A|B" row


def test_tmdb_posters_resolved() -> None:
    movies = by_id(load_catalogue("tmdb", MOVIES_JSON))
    posters = FIXTURE.resolve() / "posters"
    assert movies[568].poster == str(posters / "rocket.jpg")
    assert movies[883].poster == str(posters / "coffee.jpg")  # TMDB-style leading "/"
    assert movies[862].poster == str(posters / "missing.jpg")  # kept: the poster stage reports it
    assert movies[603].poster is None
    assert all(Path(m.poster).is_absolute() for m in movies.values() if m.poster)


def test_tmdb_poster_url_and_absolute_path(tmp_path: Path) -> None:
    absolute = FIXTURE.resolve() / "posters" / "chelsea.jpg"
    rows = [
        {"id": 1, "title": "A", "poster_url": "https://example.org/a.jpg"},
        {"id": 2, "title": "B", "poster_path": str(absolute)},
    ]
    path = tmp_path / "movies.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    movies = by_id(load_catalogue("tmdb", path))
    assert movies[1].poster == "https://example.org/a.jpg"
    assert movies[2].poster == str(absolute)


def test_tmdb_bad_rows_reported_with_lines() -> None:
    catalogue = load_catalogue("tmdb", MOVIES_JSON, RATINGS)
    assert len(catalogue.ratings) == 60  # 'abc' could not be parsed; the rest pass to validate
    movies, ratings, errors = validate(catalogue)
    found = {(e.file, e.line, e.field) for e in errors}
    assert found == {
        ("movies.json", 13, "title"),  # 13th object of the list
        ("ratings.csv", 12, "rating"),  # rating 7
        ("ratings.csv", 27, "rating"),  # rating "abc"
        ("ratings.csv", 42, "movieId"),  # unknown movie 424242
    }
    assert len(movies) == 12 and len(ratings) == 58
    assert all(m.vote_count is not None for m in movies)


def test_tmdb_csv_line_numbers_count_the_header() -> None:
    errors = validate(load_catalogue("tmdb", MOVIES_CSV))[2]
    assert [(e.file, e.line, e.field) for e in errors] == [("movies.csv", 14, "title")]


def test_tmdb_unparseable_movie_fields(tmp_path: Path) -> None:
    path = tmp_path / "movies.jsonl"
    path.write_text(
        '{"id": 1, "title": "Fine", "genres": "[{\'id\': 1, \'name\': \'Drama\'}]"}\n'
        "\n"
        '{"id": "x", "title": "Bad id"}\n'
        '{"id": 3, "title": "Bad votes", "vote_count": "many"}\n'
        "{not json\n"
    )
    catalogue = load_catalogue("tmdb", path)
    assert [m.movie.id for m in catalogue.movies] == [1]
    assert catalogue.movies[0].movie.genres == ["Drama"]
    assert [(e.line, e.field) for e in catalogue.errors] == [(3, "id"), (4, "vote_count"), (5, "json")]


def test_tmdb_limit_and_missing_ratings() -> None:
    assert load_catalogue("tmdb", MOVIES_JSON).ratings == []
    limited = load_catalogue("tmdb", MOVIES_JSON, RATINGS, limit=3)
    assert [m.movie.id for m in limited.movies] == [603, 568, 49047]
    assert limited.ratings and {r.movie_id for r in limited.ratings} <= {603, 568, 49047}


def test_tmdb_ratings_header_checked(tmp_path: Path) -> None:
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,movie,score\n1,603,4\n")
    with pytest.raises(ValueError, match="userId"):
        load_catalogue("tmdb", MOVIES_JSON, bad)


def test_tmdb_api_responses_with_credits_and_keywords_appended(tmp_path: Path) -> None:
    """TMDB's API (`/movie/{id}?append_to_response=credits,keywords`) nests them: `credits: {cast,
    crew}`, `keywords: {keywords: [...]}`. They were silently dropped: no cast, director or keywords."""
    record = {
        "id": 603,
        "title": "The Matrix",
        "release_date": "1999-03-30",
        "genres": [{"id": 28, "name": "Action"}],
        "keywords": {"keywords": [{"id": 310, "name": "artificial intelligence"}]},
        "credits": {
            "cast": [{"name": "Keanu Reeves", "order": 0}, {"name": "Laurence Fishburne", "order": 1}],
            "crew": [{"job": "Director", "name": "Lana Wachowski"}, {"job": "Producer", "name": "Joel Silver"}],
        },
    }
    path = tmp_path / "movies.json"
    path.write_text(json.dumps([record]))
    movie = load_catalogue("tmdb", path).movies[0].movie
    assert (movie.cast, movie.director, movie.keywords) == (
        ["Keanu Reeves", "Laurence Fishburne"],
        "Lana Wachowski",
        ["artificial intelligence"],
    )
