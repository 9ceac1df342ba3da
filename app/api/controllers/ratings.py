"""A user's ratings: list, record, remove. A user token may touch only its own."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.params import Parameter
from sqlmodel import Session

from app.api.deps import Limit, MovieIdPath, UserIdPath, parse_id
from app.api.schemas import ERROR_RESPONSES, RatedMovieOut, RatingIn, RatingOut, RatingsPage
from app.api.security import owner_or_admin
from app.catalog import repository as repo


class RatingController(Controller):
    path = "/users/{user_id:str}/ratings"
    tags = ["ratings"]
    guards = [owner_or_admin]

    @get(
        "/",
        operation_id="listRatings",
        responses=ERROR_RESPONSES,
        summary="A user's ratings, newest first",
        sync_to_thread=True,
    )
    def list_ratings(
        self,
        db_session: Session,
        user_id: UserIdPath,
        limit: Limit = 20,
        offset: Annotated[int, Parameter(ge=0, description="How many ratings to skip.")] = 0,
    ) -> RatingsPage:
        uid = parse_id(user_id, "user_id")
        ratings = repo.user_ratings(db_session, uid)  # an unknown user is a new one: an empty list
        page = ratings[offset : offset + limit]
        movies = repo.movies_by_id(db_session, (r.movie_id for r in page))
        items = [RatedMovieOut.from_domain(r, movies) for r in page]
        return RatingsPage(user_id=uid, total=len(ratings), limit=limit, offset=offset, items=items)

    @post(
        "/",
        operation_id="rateMovie",
        responses=ERROR_RESPONSES,
        summary="Record a rating",
        description="Creates the user on their first rating; rating again replaces the previous one.",
        sync_to_thread=True,
    )
    def rate(self, db_session: Session, user_id: UserIdPath, data: RatingIn) -> RatingOut:
        uid = parse_id(user_id, "user_id")
        saved = repo.rate(db_session, uid, data.movie_id, data.rating)
        return RatingOut(user_id=uid, movie_id=saved.movie_id, rating=saved.rating, timestamp=saved.timestamp)

    @delete(
        "/{movie_id:str}",
        operation_id="unrateMovie",
        responses=ERROR_RESPONSES,
        summary="Remove a rating",
        sync_to_thread=True,
    )
    def unrate(self, db_session: Session, user_id: UserIdPath, movie_id: MovieIdPath) -> None:
        repo.unrate(db_session, parse_id(user_id, "user_id"), parse_id(movie_id, "movie_id"))
