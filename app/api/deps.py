"""Request-scoped dependencies and the shared parameter types of the controllers."""

from __future__ import annotations

import re
from typing import Annotated

from litestar.di import Provide
from litestar.openapi.spec import Example
from litestar.params import Parameter, ParameterKwarg

from app.api.state import services_from
from app.catalog.models import MAX_ID
from app.errors import InvalidInputError
from app.recommend.recommender import Recommender
from app.vectorstore import MovieFilter

_ID = re.compile(r"[1-9][0-9]{0,17}")  # 1 to MAX_ID in decimal digits, as strict_input.INTEGER writes them


def examples(*values: object) -> list[Example]:
    """OpenAPI examples for a Parameter."""
    return [Example(value=v) for v in values]


# Litestar leaves a bound of 0 out of the OpenAPI schema (it tests the bound's truth): restate it.
MIN_ZERO = {"minimum": 0}
MAX_OFFSET = 1_000_000


def _id_param(what: str, example: int) -> ParameterKwarg:
    """An id typed as an integer in the spec with its exact bounds (`le` alone is rendered as a float,
    1e+18, one past MAX_ID). Routes declare the path segment as `{x:str}` and the handler as `int`:
    a malformed id is then a 400 naming the field, where `{x:int}` would answer 404."""
    param: ParameterKwarg = Parameter(  # typed Any, for use inside Annotated
        ge=1,
        le=MAX_ID,
        description=f"The {what}'s id, 1 to {MAX_ID}.",
        schema_extra={"minimum": 1, "maximum": MAX_ID},
        examples=examples(example),
    )
    return param


Limit = Annotated[int, Parameter(ge=1, le=100, description="How many results, 1 to 100.", examples=examples(10))]
UserIdQuery = Annotated[int, _id_param("user", 15)]
UserIdPath = Annotated[int, _id_param("user", 15)]
MovieIdPath = Annotated[int, _id_param("movie", 1)]
Genres = Annotated[
    str | None,
    Parameter(
        description="Comma-separated genres in any case (GET /genres lists them); a movie matches any.",
        max_length=10_000,
        examples=examples("Comedy,Drama"),
    ),
]
Year = Annotated[
    int | None,
    Parameter(
        ge=0,
        le=9999,
        description="Inclusive bound on the release year.",
        examples=examples(1990),
        schema_extra=MIN_ZERO,
    ),
]
Offset = Annotated[
    int,
    Parameter(ge=0, le=MAX_OFFSET, description="How many results to skip (pagination).", examples=examples(0, 20)),
]
MAX_EXCLUDED = 1000
Exclude = Annotated[
    str | None,
    Parameter(
        description=f"Comma-separated movie ids never to return (at most {MAX_EXCLUDED}), e.g. `1,260`.",
        max_length=20 * MAX_EXCLUDED,
        examples=examples("1,260"),
    ),
]


def parse_id(raw: str | int | None, field: str) -> int:
    """An id, 1 to MAX_ID (10^18 - 1) in decimal digits, or 400 naming the field and that range.

    Path ids are declared as `str` in the route: Litestar's typed `{x:int}` answers 404 on a
    mismatch, which would hide a malformed request behind a "no such route". An id Litestar has
    already parsed (`UserIdPath` and the like are `int`) is only checked against the bounds.
    """
    if raw is None:
        raise InvalidInputError(f"{field} is required", field=field)
    if isinstance(raw, int):
        raw = str(raw)
    if not _ID.fullmatch(raw) or not 1 <= int(raw) <= MAX_ID:
        raise InvalidInputError(
            f"{field} must be an integer from 1 to {MAX_ID} (10^18 - 1), got {raw[:40]!r}", field=field
        )
    return int(raw)


def parse_ids(raw: str | None, field: str) -> frozenset[int]:
    """Comma-separated positive ids (blanks ignored), or 400 naming the field."""
    parts = [p.strip() for p in (raw or "").split(",") if p.strip()]
    if len(parts) > MAX_EXCLUDED:
        raise InvalidInputError(f"{field} takes at most {MAX_EXCLUDED} ids, got {len(parts)}", field=field)
    return frozenset(parse_id(p, field) for p in parts)


def movie_filter(
    recommender: Recommender, genres: str | None, year_min: int | None, year_max: int | None
) -> MovieFilter:
    """The filter query parameters as the index spells them; 400 naming the field otherwise."""
    if year_min is not None and year_max is not None and year_min > year_max:
        raise InvalidInputError(f"year_min ({year_min}) is greater than year_max ({year_max})", field="year_min")
    wanted = recommender.canonical_genres((genres or "").split(","))
    return MovieFilter(genres=wanted, year_min=year_min, year_max=year_max)


# Handlers reach the recommender and the database through `services` (Services.in_session: a request's
# database work in one thread hop). Litestar resolves two or more independent dependencies of a
# handler in an anyio task group per request, so handlers take few.
DEPENDENCIES = {"services": Provide(services_from, sync_to_thread=False)}
