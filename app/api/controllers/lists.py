"""The lists every movie app shows: popular, top rated, new. From the store of record; any valid token."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from sqlmodel import Session

from app.api.deps import Genres, Limit, Offset, Year, examples, movie_filter
from app.api.schemas import ListedMovieOut, MovieListOut, error_responses
from app.api.state import Services
from app.catalog import lists
from app.names import ListKind
from app.recommend.recommender import Recommender

WindowDays = Annotated[
    int | None,
    Parameter(
        ge=1,
        le=36_500,
        description="Count only the ratings of the last N days before the newest rating (default: all of them).",
        examples=examples(30, 365),
    ),
]


def _where(
    recommender: Recommender, genres: str | None, year_min: int | None, year_max: int | None
) -> lists.ListFilter:
    """The recommendation filters, validated the same way (genres spelled as the index spells them)."""
    wanted = movie_filter(recommender, genres, year_min, year_max)
    return lists.ListFilter(genres=wanted.genres, year_min=wanted.year_min, year_max=wanted.year_max)


def _out(name: ListKind, page: lists.Page, limit: int, offset: int) -> MovieListOut:
    items = [ListedMovieOut.from_domain(m) for m in page.items]
    return MovieListOut(kind=name, total=page.total, limit=limit, offset=offset, items=items)


class ListController(Controller):
    path = "/movies"
    tags = ["lists"]

    @get(
        "/popular",
        operation_id="popularMovies",
        responses=error_responses(400, 401, 503),
        summary="The most rated movies",
        description="Ordered by the number of local ratings in the window (`score`), then newest id first.",
    )
    async def popular(
        self,
        services: Services,
        window_days: WindowDays = None,
        genres: Genres = None,
        year_min: Year = None,
        year_max: Year = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> MovieListOut:
        def work(session: Session) -> MovieListOut:
            where = _where(services.recommender, genres, year_min, year_max)
            return _out("popular", lists.popular(session, where, limit, offset, window_days), limit, offset)

        return await services.in_session(work)

    @get(
        "/top-rated",
        operation_id="topRatedMovies",
        responses=error_responses(400, 401, 503),
        summary="The best rated movies (Bayesian average)",
        description=(
            "`score` = (v·R + m·C) / (v + m): v the movie's ratings in the window, R their mean, C the mean of "
            f"every rating in the window, m = {lists.PRIOR_VOTES} (the prior: that many ratings at C, as in "
            "IMDb's weighted rating). Only movies with at least `min_votes` ratings in the window."
        ),
    )
    async def top_rated(
        self,
        services: Services,
        window_days: WindowDays = None,
        min_votes: Annotated[
            int,
            Parameter(
                ge=1,
                le=1_000_000,
                description="Fewest ratings in the window a movie needs to be listed.",
                examples=examples(10),
            ),
        ] = 10,
        genres: Genres = None,
        year_min: Year = None,
        year_max: Year = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> MovieListOut:
        def work(session: Session) -> MovieListOut:
            where = _where(services.recommender, genres, year_min, year_max)
            page = lists.top_rated(session, where, limit, offset, min_votes, window_days)
            return _out("top-rated", page, limit, offset)

        return await services.in_session(work)

    @get(
        "/new",
        operation_id="newMovies",
        responses=error_responses(400, 401, 503),
        summary="The newest movies",
        description=(
            "Latest release year first (`score`); within a year the most recently added to the catalogue "
            "(highest id). The catalogue records the release year, not the day."
        ),
    )
    async def new(
        self,
        services: Services,
        genres: Genres = None,
        year_min: Year = None,
        year_max: Year = None,
        limit: Limit = 10,
        offset: Offset = 0,
    ) -> MovieListOut:
        def work(session: Session) -> MovieListOut:
            where = _where(services.recommender, genres, year_min, year_max)
            return _out("new", lists.newest(session, where, limit, offset), limit, offset)

        return await services.in_session(work)
