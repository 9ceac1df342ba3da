"""The lists every movie app shows, computed by SQL aggregates over the store of record.

- popular: the most rated movies in a time window;
- top-rated: the highest Bayesian average (IMDb's weighted rating), with a minimum of votes;
- new: the latest release years first.

Each takes the filters recommendations take (genres, year bounds) and a page (limit, offset).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import Float, case, cast, func, literal, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, String, col, select

from app.catalog.models import Movie, Rating
from app.catalog.repository import movies_by_id

SECONDS_PER_DAY = 86_400
# The Bayesian average's prior: PRIOR_VOTES imaginary ratings at the mean of all ratings in the
# window. score = (v·R + m·C) / (v + m), v = the movie's ratings, R = their mean, m = PRIOR_VOTES,
# C = the mean of every rating (IMDb's "weighted rating" of its Top 250).
PRIOR_VOTES = 10
# A movie enters the rating-based lists with at least this many ratings in the window (one per user):
# the lists are live, so with fewer any token holder could read one user's fresh rating off
# `popular?window_days=1` (votes 1, its average = that user's stars). A k-anonymity floor, not
# differential privacy: comparing a list before and after still shifts by one vote.
MIN_RATERS = 5


@dataclass(frozen=True)
class ListFilter:
    """The recommendation filters, in the database's terms. Empty genres: no restriction."""

    genres: Sequence[str] = ()
    year_min: int | None = None
    year_max: int | None = None


class ListedMovie(NamedTuple):
    movie: Movie
    votes: int  # ratings in the window (new: all ratings)
    average: float | None  # their mean, 0.5-5; None with fewer than MIN_RATERS
    score: float  # what the list is ordered by


class Page(NamedTuple):
    total: int
    items: list[ListedMovie]


def popular(session: Session, where: ListFilter, limit: int, offset: int, window_days: int | None = None) -> Page:
    """Most ratings within the last `window_days` before the newest rating (all of them when None),
    then most recent id, among movies with at least MIN_RATERS of them. score = the number of those
    ratings."""
    agg = _ratings_agg(session, window_days)
    query = (
        select(col(Movie.id), agg.c.votes, agg.c.average, cast(agg.c.votes, Float).label("score"))
        .join(agg, agg.c.movie_id == Movie.id)
        .where(agg.c.votes >= MIN_RATERS)
    )
    return _page(session, _filtered(query, where), (agg.c.votes.desc(), col(Movie.id).desc()), limit, offset)


def top_rated(
    session: Session, where: ListFilter, limit: int, offset: int, min_votes: int, window_days: int | None = None
) -> Page:
    """Highest Bayesian average of the ratings in the window (see PRIOR_VOTES), among movies with
    at least `min_votes` of them (and MIN_RATERS). score = that average, on the 0.5-5 scale."""
    agg = _ratings_agg(session, window_days)
    mean_all = select(func.avg(Rating.rating)).where(*_in_window(session, window_days)).scalar_subquery()
    score = cast(
        (agg.c.votes * agg.c.average + literal(PRIOR_VOTES) * mean_all) / (agg.c.votes + literal(PRIOR_VOTES)), Float
    )
    query = (
        select(col(Movie.id), agg.c.votes, agg.c.average, score.label("score"))
        .join(agg, agg.c.movie_id == Movie.id)
        .where(agg.c.votes >= max(min_votes, MIN_RATERS))
    )
    return _page(
        session, _filtered(query, where), (score.desc(), agg.c.votes.desc(), col(Movie.id).desc()), limit, offset
    )


def newest(session: Session, where: ListFilter, limit: int, offset: int) -> Page:
    """Latest release year first; within a year the most recently catalogued (highest id: sources
    number movies as they add them). The catalogue records no release date or date added, only the
    year. score = the release year; movies without one come last. `average` only from MIN_RATERS
    ratings on."""
    agg = _ratings_agg(session, None)
    year = cast(func.coalesce(col(Movie.year), 0), Float)
    average = case((agg.c.votes >= MIN_RATERS, agg.c.average), else_=None)  # see MIN_RATERS
    query = select(
        col(Movie.id), func.coalesce(agg.c.votes, 0).label("votes"), average.label("average"), year.label("score")
    ).outerjoin(agg, agg.c.movie_id == Movie.id)
    return _page(session, _filtered(query, where), (year.desc(), col(Movie.id).desc()), limit, offset)


def _in_window(session: Session, window_days: int | None) -> list[ColumnElement[bool]]:
    """The ratings of the last `window_days` before the newest rating (so a catalogue whose ratings
    stopped years ago, as MovieLens's did, still has a last month); no condition for all of them.
    Without one, the aggregates read only the (movie_id, timestamp, rating) index."""
    if window_days is None:
        return []
    newest_ts = session.exec(select(func.max(Rating.timestamp))).one()
    return [col(Rating.timestamp) >= int(newest_ts or 0) - window_days * SECONDS_PER_DAY]


def _ratings_agg(session: Session, window_days: int | None) -> Any:
    """movie_id, votes, average over the ratings in the window: one GROUP BY."""
    return (
        select(
            col(Rating.movie_id).label("movie_id"),
            func.count().label("votes"),
            cast(func.avg(Rating.rating), Float).label("average"),
        )
        .where(*_in_window(session, window_days))
        .group_by(col(Rating.movie_id))
        .subquery()
    )


def _filtered(query: Any, where: ListFilter) -> Any:
    if where.year_min is not None:
        query = query.where(col(Movie.year) >= where.year_min)
    if where.year_max is not None:
        query = query.where(col(Movie.year) <= where.year_max)
    if where.genres:
        query = query.where(or_(*(_has_genre(g) for g in where.genres)))
    return query


def _has_genre(genre: str) -> ColumnElement[bool]:
    """The JSON list column holds the genre as a JSON string: match that token in its text, the
    same on SQLite and PostgreSQL (their JSON operators differ). LIKE's wildcards are escaped."""
    token = json.dumps(genre).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return cast(Movie.genres, String).like(f"%{token}%", escape="\\")


def _page(session: Session, query: Any, order: tuple[Any, ...], limit: int, offset: int) -> Page:
    """The page's ids and the list's length in one narrow query (a window count, computed before
    LIMIT: sorting whole movie rows cost 5x more), then the page's movies by id. A count query
    runs only when the page is empty and so carries no count."""
    rows = session.exec(
        query.add_columns(func.count().over().label("total")).order_by(*order).limit(limit).offset(offset)
    ).all()
    total = rows[0][-1] if rows else session.exec(select(func.count()).select_from(query.subquery())).one()
    movies = movies_by_id(session, (r[0] for r in rows))
    items = [
        ListedMovie(movies[mid], int(votes or 0), None if avg is None else float(avg), float(score or 0))
        for mid, votes, avg, score, _ in rows
    ]
    return Page(int(total), items)
