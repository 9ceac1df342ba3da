"""A user's ratings: list, record, remove. A user token may touch only its own."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter
from sqlmodel import Session

from app.api.deps import Limit, MovieIdPath, Offset, examples
from app.api.schemas import HistoryImportOut, RatedMovieOut, RatingIn, RatingOut, RatingsPage, error_responses
from app.api.security import owner_or_admin
from app.api.state import Services
from app.catalog import repository as repo
from app.datasets.history import import_history, read_history
from app.names import HistoryFormat


class RatingController(Controller):
    path = "/users/{user_id:str}/ratings"
    tags = ["ratings"]
    guards = [owner_or_admin]

    @get(
        "/",
        operation_id="listRatings",
        responses=error_responses(400, 401, 403),
        summary="A user's ratings, newest first",
        description="One page of the user's ratings with their total; a user the database does not know has none "
        "(total 0, no items), never a 404.",
    )
    async def list_ratings(
        self,
        services: Services,
        owner: int,
        limit: Limit = 20,
        offset: Offset = 0,
    ) -> RatingsPage:
        def work(session: Session) -> RatingsPage:
            ratings = repo.user_ratings(session, owner)  # an unknown user is a new one: an empty list
            page = ratings[offset : offset + limit]
            movies = repo.movies_by_id(session, (r.movie_id for r in page))
            items = [RatedMovieOut.from_domain(r, movies) for r in page]
            return RatingsPage(user_id=owner, total=len(ratings), limit=limit, offset=offset, items=items)

        return await services.in_session(work)

    @post(
        "/",
        operation_id="rateMovie",
        responses=error_responses(400, 401, 403, 404),
        summary="Record a rating",
        description="Creates the user on their first rating; rating again replaces the previous one.",
    )
    async def rate(self, services: Services, owner: int, data: RatingIn) -> RatingOut:
        def work(session: Session) -> RatingOut:
            saved = repo.rate(session, owner, data.movie_id, data.rating)
            return RatingOut(user_id=owner, movie_id=saved.movie_id, rating=saved.rating, timestamp=saved.timestamp)

        return await services.in_session(work)

    @post(
        "/import",
        operation_id="importRatings",
        responses=error_responses(400, 401, 403),
        summary="Import a Letterboxd or IMDb ratings export as the user's own ratings",
        description="Body: the export's CSV as is. Matched by IMDb id where known, else by title and year. "
        "Sending the same file again imports nothing twice; IMDb's 1-10 stars are halved.",
    )
    async def import_ratings(
        self,
        services: Services,
        owner: int,
        body: bytes,  # Litestar's reserved `body`: the raw request body (a CSV file, not JSON)
        format: Annotated[
            HistoryFormat,
            Parameter(description="Which export the body is: letterboxd or imdb.", examples=examples("letterboxd")),
        ],
    ) -> HistoryImportOut:
        # One thread hop: the CSV is read off the event loop, and a file error (400) writes nothing.
        report = await services.in_session(lambda session: import_history(session, owner, read_history(body, format)))
        return HistoryImportOut(user_id=owner, format=format, **asdict(report))

    @delete(
        "/{movie_id:str}",
        operation_id="unrateMovie",
        responses=error_responses(400, 401, 403, 404),
        summary="Remove a rating",
        description="It stops counting at once (no reindex), and no later import of a source file brings it back.",
    )
    async def unrate(self, services: Services, owner: int, movie_id: MovieIdPath) -> None:
        await services.in_session(lambda session: repo.unrate(session, owner, movie_id))
