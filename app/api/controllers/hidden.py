"""A user's hidden ("not interested") movies: list, hide, unhide. A user token may touch only its own."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from sqlmodel import Session

from app.api.deps import Limit, MovieIdPath, Offset
from app.api.schemas import HiddenIn, HiddenOut, HiddenPage, error_responses
from app.api.security import owner_or_admin
from app.api.state import Services
from app.catalog import repository as repo


class HiddenController(Controller):
    path = "/users/{user_id:str}/hidden"
    tags = ["ratings"]
    guards = [owner_or_admin]

    @get(
        "/",
        operation_id="listHidden",
        responses=error_responses(400, 401, 403),
        summary="A user's hidden movies, newest first",
        description='Movies the user marked "not interested": never recommended to them.',
    )
    async def list_hidden(self, services: Services, owner: int, limit: Limit = 20, offset: Offset = 0) -> HiddenPage:
        def work(session: Session) -> HiddenPage:
            hidden = repo.hidden_movies(session, owner)  # an unknown user is a new one: an empty list
            page = hidden[offset : offset + limit]
            movies = repo.movies_by_id(session, (h.movie_id for h in page))
            items = [
                HiddenOut(h.movie_id, movies[h.movie_id].title if h.movie_id in movies else "", h.timestamp)
                for h in page
            ]
            return HiddenPage(user_id=owner, total=len(hidden), limit=limit, offset=offset, items=items)

        return await services.in_session(work)

    @post(
        "/",
        operation_id="hideMovie",
        responses=error_responses(400, 401, 403, 404),
        summary='Mark a movie "not interested"',
        description=(
            "The movie is never recommended to this user again, and counts as a mild dislike in their taste "
            "(one star below their mean rating, at most 2.5). Creates the user on first use; hiding again "
            "moves the timestamp."
        ),
    )
    async def hide(self, services: Services, owner: int, data: HiddenIn) -> HiddenOut:
        def work(session: Session) -> HiddenOut:
            saved = repo.hide(session, owner, data.movie_id)
            return HiddenOut(saved.movie_id, repo.get_movie(session, saved.movie_id).title, saved.timestamp)

        return await services.in_session(work)

    @delete(
        "/{movie_id:str}",
        operation_id="unhideMovie",
        responses=error_responses(400, 401, 403, 404),
        summary="Show a hidden movie again",
        description="404 when the movie was not hidden.",
    )
    async def unhide(self, services: Services, owner: int, movie_id: MovieIdPath) -> None:
        await services.in_session(lambda session: repo.unhide(session, owner, movie_id))
