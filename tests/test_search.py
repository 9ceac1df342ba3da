"""Hybrid search: the lexical encoder on hand-checked cases, then dense + sparse search on the real demo
fixture (Edge), the same ranking on the server adapter (qdrant-client's in-memory engine), people found
by name, filters and the popularity prior applied, and the API's parameters."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient
from sqlmodel import Session

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.catalog.models import Movie
from app.catalog.text import content_hash, lexical_text, movie_text
from app.datasets.titles import match_keys, split_alternates
from app.embedding import lexical
from app.embedding.spelling import Speller
from app.recommend import Recommender
from app.vectorstore import SPARSE_VECTOR, MovieFilter, MovieIndex, MoviePoint, open_store
from app.vectorstore.edge import EdgeIndex
from app.vectorstore.live import LiveIndex
from app.vectorstore.server import ServerStore
from tests.helpers.api import bearer
from tests.helpers.worlds import copy_settings

ROOT = Path(__file__).resolve().parents[1]

MATRIX = Movie(
    id=2571,
    title="The Matrix",
    year=1999,
    genres=["Action", "Sci-Fi"],
    cast=["Carrie-Anne Moss", "Hugo Weaving", "Keanu Reeves", "Laurence Fishburne"],
    director="Lana Wachowski, Lilly Wachowski",
    writer="the Wachowskis",
    overview="A hacker learns that his world is a simulation.",
    keywords=["virtual reality"],
)


# -- the lexical encoder ---------------------------------------------------------------------------
def test_tokens_fold_case_accents_apostrophes_stopwords_and_plurals() -> None:
    assert lexical.tokens("The Zombies of O'Bannon's Amélie, Sci-Fi") == ["zombie", "obannon", "amelie", "sci", "fi"]
    assert lexical.tokens("Keanu Reeves") == lexical.tokens("keanu reeve")  # the same on both sides
    assert lexical.tokens("Glass Boss") == ["glass", "boss"]  # "ss" is not a plural


def test_term_ids_are_stable_across_processes() -> None:
    """Python's hash() changes with PYTHONHASHSEED; the index's term ids must not."""
    words = ["keanu", "reeves", "zombie", "matrix"]
    here = [lexical.term_id(w) for w in words]
    code = f"from app.embedding import lexical; print([lexical.term_id(w) for w in {words!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == str(here)
    assert len(set(here)) == len(here) and all(0 <= i < 2**31 for i in here)


def test_a_movie_vector_holds_title_people_keywords_genres_with_bm25_weights() -> None:
    vec = lexical.movie_vector(MATRIX)
    assert list(vec.indices) == sorted(set(vec.indices)) and len(vec.values) == len(vec.indices)
    weights = dict(zip(vec.indices, vec.values, strict=True))
    words = lexical.tokens(lexical.movie_document(MATRIX))
    norm = lexical.K1 * (1 - lexical.B + lexical.B * len(words) / lexical.AVG_LEN)

    def bm25_tf(tf: int) -> float:
        return tf * (lexical.K1 + 1) / (tf + norm)

    def weight(word: str) -> float:
        (token,) = lexical.tokens(word)
        return weights[lexical.term_id(token)]

    for person in ("Keanu", "Reeves", "Fishburne", "Weaving"):
        assert weight(person) == pytest.approx(bm25_tf(1))
    assert weight("Wachowski") == pytest.approx(bm25_tf(3))  # two directors and "the Wachowskis", the writer
    assert weight("Matrix") == pytest.approx(bm25_tf(lexical.TITLE_WEIGHT))  # the title counts twice
    assert lexical.term_id("virtual") in weights and lexical.term_id("sci") in weights  # keywords, genres
    assert lexical.term_id("simulation") not in weights  # the overview is the dense vector's job
    assert all(0 < w < lexical.K1 + 1 for w in vec.values)  # BM25 saturates below k1 + 1


def test_a_query_vector_weighs_each_distinct_term_once() -> None:
    q = lexical.query_vector("Keanu keanu REEVES the")
    words_and_pairs = ["keanu", "reeve", "keanu_keanu", "keanu_reeve"]
    assert sorted(q.indices) == sorted(lexical.term_id(t) for t in words_and_pairs)
    assert q.values == (1.0,) * 4
    stopwords_only = ["the", "of", "and", "the_of", "of_and"]  # kept: see the next test
    assert lexical.query_vector("the of and").indices == tuple(sorted(map(lexical.term_id, stopwords_only)))


def test_a_title_of_stopwords_alone_is_found_by_its_words() -> None:
    """The title "It" (1990) was all stopwords: its lexical vector held no title term and the query "It" no term,
    so search fell back to the dense list, which did not return it. A line of stopwords alone keeps them."""
    it = Movie(id=26693, title="It", year=1990, genres=["Horror"], cast=["Tim Curry"])
    doc = lexical.movie_vector(it)
    assert lexical.term_id("it") in doc.indices
    assert lexical.query_vector("It").indices == (lexical.term_id("it"),)
    assert lexical.term_id("the") not in lexical.movie_vector(MATRIX).indices  # not from "The Matrix"


def test_people_leave_the_dense_text_for_the_lexical_one_and_change_the_hash() -> None:
    assert "Keanu" not in movie_text(MATRIX) and "Directed by Lana Wachowski" in movie_text(MATRIX)
    assert "Keanu Reeves" in lexical_text(MATRIX) and "the Wachowskis" in lexical_text(MATRIX)
    recast = MATRIX.model_copy(update={"cast": [*MATRIX.cast, "Joe Pantoliano"]})
    assert movie_text(recast) == movie_text(MATRIX) and content_hash(recast) != content_hash(MATRIX)


def idf(n: int, df: int) -> float:
    """Qdrant's IDF modifier (its documentation's formula)."""
    return math.log(1 + (n - df + 0.5) / (df + 0.5))


@pytest.mark.parametrize("engine", ["edge", "server"])
def test_the_engines_score_a_query_by_bm25_with_their_idf(engine: str, tmp_path: Path, demo_settings: Any) -> None:
    cast = {1: ["Tom Hanks", "Meg Ryan"], 2: ["Tom Cruise"], 3: ["Tom Jones", "Tom Hanks"], 4: ["Meg Ryan"]}
    small = {i: Movie(id=i, title=f"Film {i}", cast=c) for i, c in cast.items()}
    manifest = open_store(demo_settings).manifest()
    assert manifest is not None
    index: MovieIndex = (
        EdgeIndex.create(tmp_path / "shard", manifest)
        if engine == "edge"
        else ServerStore(QdrantClient(":memory:")).stage(manifest, rebuild=True)
    )
    index.upsert(
        [MoviePoint(i, {SPARSE_VECTOR: lexical.movie_vector(m)}, {"title": m.title}) for i, m in small.items()]
    )
    hits = index.query(lexical.query_vector("Tom Hanks"), SPARSE_VECTOR, 10)
    # n = 4 movies: "tom" in 3 of them, "hanks" in 2, the full name "tom_hanks" in 2
    df = {lexical.term_id("tom"): 3, lexical.term_id("hank"): 2, lexical.term_id("tom_hank"): 2}
    expected = {}
    for i, m in small.items():
        vec = lexical.movie_vector(m)
        doc = dict(zip(vec.indices, vec.values, strict=True))
        if doc.keys() & df.keys():
            expected[i] = sum(idf(4, n) * doc.get(t, 0.0) for t, n in df.items())
    assert {h.id: h.score for h in hits} == pytest.approx(expected, rel=1e-4)
    assert {h.id for h in hits[:2]} == {1, 3}  # the rarer name decides: both Hanks films before Cruise's
    index.close()


# -- search on the real demo fixture ---------------------------------------------------------------
@pytest.fixture(scope="module")
def live_index(demo_settings: Any) -> Iterator[LiveIndex]:
    live = LiveIndex(open_store(demo_settings))  # an Edge shard opens once per process: share it
    yield live
    live.close()


@pytest.fixture(scope="module")
def encode(text_encoder: Any) -> Any:
    return lambda q: text_encoder.encode([q])[0]


@pytest.fixture(scope="module")
def recommender(live_index: LiveIndex, encode: Any) -> Recommender:
    return Recommender(live_index.current, encode)


@pytest.fixture(scope="module")
def movies(demo_settings: Any) -> dict[int, Movie]:
    engine = make_engine(demo_settings.sqlalchemy_url)
    with Session(engine) as session:
        out = {m.id: m for m in repo.all_movies(session)}
    engine.dispose()
    return out


def films_of(movies: dict[int, Movie], person: str) -> set[int]:
    return {m.id for m in movies.values() if person in m.cast or person in (m.director or "")}


@pytest.mark.parametrize("person", ["Keanu Reeves", "Sigourney Weaver"])
def test_a_person_query_returns_that_persons_films_first(
    recommender: Recommender, movies: dict[int, Movie], person: str
) -> None:
    films = films_of(movies, person)
    assert len(films) >= 2, f"the demo fixture should credit {person} in 2+ films"
    found = [h.id for h in recommender.search(person, limit=len(films), popularity=0.0)]
    assert set(found) == films, [movies[i].title for i in found]
    dense = [h.id for h in recommender.search(person, limit=len(films), popularity=0.0, mode="dense")]
    assert set(dense) != films  # what the dense vector alone could not do (names no longer pad it)


def test_search_applies_the_filters(recommender: Recommender, movies: dict[int, Movie]) -> None:
    films = films_of(movies, "Sigourney Weaver")
    newest = max(movies[i].year or 0 for i in films)
    older = {i for i in films if (movies[i].year or 0) < newest}
    assert older, "the fixture should hold her films from two years or more"
    wanted = MovieFilter(year_max=newest - 1)
    for mode in ("hybrid", "sparse", "dense"):
        hits = recommender.search("Sigourney Weaver", limit=10, filter=wanted, popularity=0.0, mode=mode)
        assert hits and all(h.year is not None and h.year < newest for h in hits), mode
        if mode != "dense":
            assert {h.id for h in hits[: len(older)]} == older, mode
    drama = recommender.search("Keanu Reeves", limit=10, filter=MovieFilter(genres=("Drama",)))
    assert drama and all("Drama" in h.genres for h in drama)
    keanu = films_of(movies, "Keanu Reeves")
    assert {h.id for h in drama} & keanu == {i for i in keanu if "Drama" in movies[i].genres}


def test_search_applies_the_popularity_prior(recommender: Recommender, movies: dict[int, Movie]) -> None:
    plain = recommender.search("a story of friendship", limit=10, popularity=0.0)
    boosted = recommender.search("a story of friendship", limit=10, popularity=1.0)
    assert [h.id for h in plain] != [h.id for h in boosted]

    def mean_log_popularity(hits: list[Any]) -> float:
        # the prior is the movie's number of ratings in this service
        return sum(math.log1p(movies[h.id].local_rating_count or 0) for h in hits) / len(hits)

    assert mean_log_popularity(boosted) > mean_log_popularity(plain)


@pytest.mark.parametrize("popularity", [0.0, 0.6])
def test_a_movies_own_title_finds_it_first(
    recommender: Recommender, movies: dict[int, Movie], popularity: float
) -> None:
    """What users type most: a title, as they know it (the main title, any case or punctuation). The
    movie comes first, or after its namesakes only ("Sabrina" 1954 and 1995), for every fixture movie;
    before, the fused lists put another ahead for some ("WALL·E" below "Pink Floyd: The Wall" on the
    full demo: one word in common, and the dense list's top)."""
    by_key: dict[str, set[int]] = {}
    for m in movies.values():
        for key in sum(match_keys(m.title), []):
            by_key.setdefault(key, set()).add(m.id)
    misses = []
    for m in movies.values():
        typed = split_alternates(m.title)[0]
        namesakes = by_key[match_keys(typed)[0][0]]
        found = [h.id for h in recommender.search(typed, limit=3, popularity=popularity)]
        if m.id not in found[: len(namesakes)]:
            misses.append((typed, [movies[i].title for i in found]))
    assert not misses, (len(misses), misses)


def misspelt(title: str) -> str | None:
    """`title` with the two middle letters of its longest word swapped ("Godfather" -> "Godfahter"),
    one Damerau-Levenshtein edit; None when that word has fewer than 5 letters."""
    longest = max(title.split(), key=len)
    if len(longest) < 5 or not longest.isalpha():
        return None
    i = len(longest) // 2
    return title.replace(longest, longest[: i - 1] + longest[i] + longest[i - 1] + longest[i + 1 :], 1)


@pytest.mark.parametrize("popularity", [0.0, 0.6])
def test_a_misspelt_title_still_finds_the_movie(
    recommender: Recommender, movies: dict[int, Movie], popularity: float
) -> None:
    """A title typed with two letters swapped finds its movie in the top 3 for nearly every fixture
    movie: the misspelt word is corrected to the title words one edit away (app/embedding/spelling.py).
    Without the correction the lexical list missed the word: 41 of the 240 were not in the top 3."""
    typed = {m.id: t for m in movies.values() if (t := misspelt(split_alternates(m.title)[0]))}
    misses = []
    for movie_id, text in typed.items():
        found = [h.id for h in recommender.search(text, limit=3, popularity=popularity)]
        if movie_id not in found:
            misses.append((text, [movies[i].title for i in found]))
    assert len(typed) >= 50
    assert len(misses) <= 0.05 * len(typed), (len(misses), len(typed), misses)


@pytest.mark.parametrize("person", ["Ben Stiller", "Chris Farley"])
def test_a_misspelt_name_still_finds_the_persons_films(
    recommender: Recommender, movies: dict[int, Movie], person: str
) -> None:
    """Names are corrected against the payload's `people` (director, writer, top-billed cast): "Ben
    Stliler" also asks for "stiller" and "ben_stiller", and finds his films, where "ben" alone found
    any Ben's in the lexical list (no title holds "stiller": titles alone left it uncorrected)."""
    typed = misspelt(person)
    assert typed is not None and typed != person
    films = films_of(movies, person)
    assert len(films) >= 3, f"the demo fixture should credit {person} in 3+ films"
    found = {h.id for h in recommender.search(typed, limit=len(films), popularity=0.0, mode="sparse")}
    assert len(films & found) >= 0.8 * len(films), (typed, [movies[i].title for i in found])


def test_a_title_still_being_typed_finds_the_movie(recommender: Recommender, movies: dict[int, Movie]) -> None:
    """A main title whose last word (7 letters or more) is cut to its first 4, as typed so far ("The
    Godf"), finds its movie in the top 3 for 90% of the fixture movies or more: the last word asks for
    the title words it starts too (110 of 115; without, 86)."""
    typed = {}
    for m in movies.values():
        words = split_alternates(m.title)[0].split()
        if len(words[-1]) >= 7 and words[-1].isalpha():
            typed[m.id] = " ".join([*words[:-1], words[-1][:4]])
    found = sum(m in [h.id for h in recommender.search(t, limit=3, popularity=0.6)] for m, t in typed.items())
    assert len(typed) >= 30
    assert found >= 0.9 * len(typed), (found, len(typed))


def test_spelling_corrects_only_unknown_words_to_close_title_words() -> None:
    speller = Speller(["The Godfather", "Star Wars", "Star Trek", "Matrix", "Marx Brothers", "1941"])
    assert speller.corrections("godfater") == ["godfather"]
    assert speller.corrections("wrs") == ["war"]  # one edit from "wars" as written, two from its term
    assert speller.corrections("matrx") == ["marx", "matrix"]  # both one edit; equally frequent: by name
    assert speller.corrections("startrek") == ["star", "trek", "star_trek"]  # run together
    assert speller.corrections("godfather") == []  # a title word is never corrected
    assert speller.corrections("jd") == [] and speller.corrections("1942") == []  # too short; a digit
    assert speller.correct("Godfater wrs", known=lambda term: False) == {"godfater": ["godfather"], "wrs": ["war"]}
    # a word some document holds (a cast name, say) is what the user meant, close title words or not
    assert speller.correct("Godfater", known=lambda term: term == "godfater") == {}
    # the last word may be still being typed: the words it starts, most frequent first; not an earlier one
    typing = Speller(["The Godfather", "Godfather Returns", "Tokyo Godfathers", "The Godless", "Jurassic Park"])
    assert typing.completions("godf") == ["godfather"]  # "godfathers" is its plural: the same term
    assert typing.correct("the godf", known=lambda term: False) == {"godf": ["godfather"]}
    assert typing.correct("godf jura", known=lambda term: False) == {"jura": ["jurassic"]}
    # a split stands only where a document holds its pair: Star Trek, but no "friend ship"
    held = {"star", "trek", "star_trek", "friend", "ship"}.__contains__
    assert Speller(["Star Trek", "Friends", "Ghost Ship"]).correct("startrek friendship", known=held) == {
        "startrek": ["star", "trek", "star_trek"]
    }


@pytest.mark.parametrize("popularity", [0.0, 0.6])
def test_a_short_list_is_the_start_of_a_longer_one(
    recommender: Recommender, movies: dict[int, Movie], popularity: float
) -> None:
    """`limit` cuts one ranking; it does not change it. Searched with limit 3, "Up" missed Up (2009)
    behind "28 Up" and "42 Up", first at limit 5 and 10: a smaller limit fetched fewer candidates, so
    the exact title, and the fused lists, saw less."""
    queries = [split_alternates(m.title)[0] for m in list(movies.values())[::10]] + ["love", "war 1995", "it"]
    differ = []
    for q in queries:
        ten = [h.id for h in recommender.search(q, limit=10, popularity=popularity)]
        for k in (1, 3):
            if [h.id for h in recommender.search(q, limit=k, popularity=popularity)] != ten[:k]:
                differ.append((q, k))
    assert not differ, differ


# -- congruence: Edge and server adapters rank alike ------------------------------------------------
@pytest.fixture(scope="module")
def two_engines(
    live_index: LiveIndex, demo_settings: Any, movies: dict[int, Movie], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[MovieIndex, MovieIndex]]:
    """The fixture's `text` vectors and payloads plus fresh lexical vectors, in a new Edge shard and in
    a server collection (in-memory engine): both search exactly at this size."""
    source = live_index.current()
    stored = source.retrieve(sorted(movies), vectors=("text",))
    points = [
        MoviePoint(m.id, {"text": m.vectors["text"], SPARSE_VECTOR: lexical.movie_vector(movies[m.id])}, m.payload)
        for m in stored
    ]
    manifest = open_store(demo_settings).manifest()
    assert manifest is not None
    edge = EdgeIndex.create(tmp_path_factory.mktemp("congruence") / "shard", manifest)
    server = ServerStore(QdrantClient(":memory:")).stage(manifest, rebuild=True)
    for index in (edge, server):
        index.upsert(points)
    yield edge, server
    edge.close()


def tie_groups(hits: list[Any]) -> list[set[int]]:
    """The hits' ids grouped by equal score, best first: engines may order equal scores either way."""
    groups: dict[float, set[int]] = {}
    for h in hits:
        groups.setdefault(round(h.score, 4), set()).add(h.id)
    return list(groups.values())


@pytest.mark.parametrize(
    "query", ["Keanu Reeves", "toy story", "space adventure with aliens", "Tom Hanks comedy", "toy stroy"]
)
def test_edge_and_server_give_the_same_search_ranking(
    two_engines: tuple[MovieIndex, MovieIndex], encode: Any, query: str
) -> None:
    edge, server = two_engines
    runs = {
        mode: [
            Recommender(lambda ix=ix: ix, encode).search(query, limit=10, popularity=0.0, mode=mode)
            for ix in (edge, server)
        ]  # type: ignore[misc]
        for mode in ("dense", "sparse", "hybrid")
    }
    for mode, (a, b) in runs.items():
        assert a and len(a) == len(b), mode
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-4), mode
    # Same lists, but for the order of equal scores, and the last group, which the limit may cut.
    for mode in ("dense", "sparse"):
        a, b = runs[mode]
        assert tie_groups(a)[:-1] == tie_groups(b)[:-1], mode
    sparse = runs["sparse"][0]
    if len(tie_groups(sparse)) == len(sparse):  # no equal BM25 scores: RRF sees the same ranks
        a, b = runs["hybrid"]
        assert tie_groups(a)[:-1] == tie_groups(b)[:-1]


# -- the API ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_the_search_endpoint_takes_popularity_and_finds_people(
    demo_settings: Any, text_encoder: Any, movies: dict[int, Movie], tmp_path_factory: pytest.TempPathFactory
) -> None:
    from litestar.testing import AsyncTestClient

    from app.api import create_app

    settings = copy_settings(demo_settings, tmp_path_factory.mktemp("search-api") / "data")
    headers = bearer(settings, admin=True)
    async with AsyncTestClient(create_app(settings, text_encoder=text_encoder)) as client:
        films = films_of(movies, "Keanu Reeves")
        resp = await client.get(
            "/movies/search", params={"q": "Keanu Reeves", "limit": len(films), "popularity": 0}, headers=headers
        )
        assert resp.status_code == 200, resp.text
        assert {i["movie_id"] for i in resp.json()["items"]} == films
        bad = await client.get("/movies/search", params={"q": "Keanu Reeves", "popularity": 2}, headers=headers)
        assert bad.status_code == 400 and bad.json().get("field") == "popularity", bad.text
