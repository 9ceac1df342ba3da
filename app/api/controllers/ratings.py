"""A user's ratings: list, record, remove. A user token may touch only its own."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

import anyio.to_thread
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import UploadFile
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, RequestBody, Schema
from litestar.params import Parameter
from sqlmodel import Session

from app.api.deps import Limit, MovieIdPath, Offset, examples
from app.api.openapi import ApiOperation
from app.api.schemas import (
    HistoryImportOut,
    RatedMovieOut,
    RatingIn,
    RatingOut,
    RatingsPage,
    error_responses,
)
from app.api.security import owner_or_admin
from app.api.state import Services
from app.catalog import repository as repo
from app.datasets.files import HEAD_BYTES, binary_problem
from app.datasets.history import import_history, read_history
from app.errors import InvalidInputError
from app.names import HistoryFormat

_FILE = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY, description="The export's file, as is.")


@dataclass
class ImportOperation(ApiOperation):
    """The import's OpenAPI entry with its request body: the handler reads the body itself (a raw
    file, or a form's one file), so Litestar's generator left it out."""

    def __post_init__(self) -> None:
        form = Schema(type=OpenAPIType.OBJECT, properties={"file": _FILE}, required=["file"])
        media = {kind: OpenAPIMediaType(schema=_FILE) for kind in ("text/csv", "application/zip", "application/gzip")}
        description = "The export's ratings CSV (or its zip, or gzip'd), or a form upload holding that one file."
        content = {**media, "multipart/form-data": OpenAPIMediaType(schema=form)}
        self.request_body = RequestBody(content=content, description=description, required=True)
        super().__post_init__()


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
        responses=error_responses(400, 401, 403, 409),
        summary="Import a Letterboxd or IMDb ratings export as the user's own ratings",
        description="Body: the export's CSV (or its zip) as is (`curl --data-binary @ratings.csv`), or as the one "
        "file of a multipart form upload (`curl -F file=@ratings.csv`, an HTML form). "
        "Matched by IMDb id where known, else by title and year. "
        "Sending the same file again imports nothing twice; IMDb's 1-10 stars are halved. "
        "409 before any catalogue is ingested: there is nothing to match the titles against.",
        operation_class=ImportOperation,
    )
    async def import_ratings(
        self,
        services: Services,
        owner: int,
        request: Request[Any, Any, Any],
        format: Annotated[
            HistoryFormat,
            Parameter(description="Which export the body is: letterboxd or imdb.", examples=examples("letterboxd")),
        ],
    ) -> HistoryImportOut:
        data = await export_file(request)
        # Read off the event loop in a thread of its own: reading (up to MAX_ROWS rows, seconds) holds
        # none of the worker's database slots, and a file error (400) never waits for one.
        history = await anyio.to_thread.run_sync(read_history, data, format)
        report = await services.in_session(lambda session: import_history(session, owner, history))
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


async def export_file(request: Request[Any, Any, Any]) -> bytes:
    """The uploaded export's bytes: the raw body, or the one file of a multipart form upload.

    curl labels any data it sends application/x-www-form-urlencoded, `--data-binary @ratings.csv` too:
    such a body is the file when it still has its line breaks, is empty, or is no text (a zip, a gzip,
    a spreadsheet...): read_history then says what it is.

    Raises InvalidInputError (400, field `file`) for a form that holds no file, or more than one, and
    for a url-encoded body without a line break (`curl -d @ratings.csv` strips the file's, and an HTML
    form without enctype="multipart/form-data" sends only the file's name)."""
    kind = request.content_type[0]
    if kind == "application/x-www-form-urlencoded":
        body = await request.body()
        if not body.strip() or b"\n" in body or b"\r" in body or binary_problem(body[:HEAD_BYTES]) is not None:
            return body
        raise InvalidInputError(
            "a form-encoded body loses the file's line breaks: send the CSV as the raw body "
            "(curl --data-binary @ratings.csv) or as a file upload (curl -F file=@ratings.csv)",
            field="file",
        )
    if kind != "multipart/form-data":
        return await request.body()
    form = await request.form()
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if len(files) != 1:
        raise InvalidInputError(f"a form upload must hold exactly one file, got {len(files)}", field="file")
    return await files[0].read()
