"""Per-user reads: recommendations and explanations. A user token may read only its own."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter
from sqlmodel import Session

from app.api.deps import (
    MIN_ZERO,
    Exclude,
    Genres,
    Limit,
    MovieIdPath,
    Year,
    examples,
    movie_filter,
    parse_ids,
)
from app.api.schemas import ExplanationOut, GuestIn, GuestRecommendationsOut, RecommendationsOut, error_responses
from app.api.security import owner_or_admin
from app.api.state import Services
from app.catalog import repository as repo
from app.catalog.repository import HiddenMovie, UserRating
from app.errors import InvalidInputError
from app.names import DEFAULT_STRATEGY, Strategy
from app.recommend.history import guest_history
from app.recommend.recommender import RecommendationList
from app.settings import RECOMMEND_DEFAULTS
from app.vectorstore import MovieFilter

# Documented from the settings' own defaults, so the schema cannot drift from them.
POPULARITY_DOC = (
    "Weight of popularity in the re-rank, 0-1 "
    f"(default: MOVIEREC_POPULARITY_WEIGHT, {RECOMMEND_DEFAULTS.popularity_weight})."
)
DIVERSITY_DOC = f"Diversity of the re-rank (MMR), 0-1 (default: MOVIEREC_DIVERSITY, {RECOMMEND_DEFAULTS.diversity})."
# Every page is cut from one ranking of this many movies, so pages never overlap (Recommender.recommend).
PAGE_DEPTH = 50
OFFSET_DOC = (
    f"How many recommendations to skip. Pages are cut from one ranking of the first {PAGE_DEPTH}, so they "
    "never overlap while the user's ratings, hidden movies and the index are unchanged; "
    f"offset + limit <= {PAGE_DEPTH} when offset > 0 (a first page may hold up to 100)."
)


class RecommendationController(Controller):
    path = "/movies"
    tags = ["recommendations"]
    guards = [owner_or_admin]

    @get(
        "/recommendations",
        operation_id="recommendMovies",
        responses=error_responses(400, 401, 403, 404, 503),
        summary="Recommendations for a user",
        description=(
            "Two database queries (the user's ratings, their hidden movies), one vector retrieve per named vector "
            "used and one ANN query. `path` says how the answer was made: `popular` (no ratings, an unknown user id "
            "included: never 404; or use_embeddings=false), `content_cold_start` (content strategy, 1-2 ratings), "
            "`content`, `collab_popular` (collab or hybrid with 1-10 ratings: collab blended with a popularity prior "
            "that fades as the history grows), `collab` or `hybrid`. Rated, hidden and `exclude`d movies are never "
            "returned."
        ),
    )
    async def recommend(
        self,
        services: Services,
        owner: int,
        limit: Limit = 10,
        strategy: Annotated[
            Strategy,
            Parameter(
                description="hybrid (default): content and collaborative vectors fused in one query (RRF); "
                "collab: rating factors alone; content: text and poster alone. With 1-10 ratings collab and hybrid "
                "answer `collab_popular`; when none of the user's movies has collab factors yet, collab and hybrid "
                "answer from content.",
                examples=examples(DEFAULT_STRATEGY),
            ),
        ] = DEFAULT_STRATEGY,
        genres: Genres = None,
        year_min: Year = None,
        year_max: Year = None,
        use_embeddings: Annotated[
            bool,
            Parameter(description="false: answer from popularity alone (path `popular`).", examples=examples(True)),
        ] = True,
        popularity: Annotated[
            float | None,
            Parameter(ge=0.0, le=1.0, description=POPULARITY_DOC, examples=examples(0.1), schema_extra=MIN_ZERO),
        ] = None,
        diversity: Annotated[
            float | None,
            Parameter(ge=0.0, le=1.0, description=DIVERSITY_DOC, examples=examples(0.2), schema_extra=MIN_ZERO),
        ] = None,
        offset: Annotated[
            int, Parameter(ge=0, le=PAGE_DEPTH - 1, description=OFFSET_DOC, examples=examples(0, 10))
        ] = 0,
        exclude: Exclude = None,
        only_new: Annotated[
            bool,
            Parameter(
                description="true: new for you, ranked among movies nobody has rated yet "
                "(their collab factors are predicted from content).",
                examples=examples(False),
            ),
        ] = False,
    ) -> RecommendationsOut:
        uid = owner
        if offset and offset + limit > PAGE_DEPTH:  # a first page may be longer: it is one ranking of `limit`
            raise InvalidInputError(
                f"offset + limit must be at most {PAGE_DEPTH}, got {offset + limit}", field="offset"
            )

        def work(session: Session) -> RecommendationsOut:
            recommender = services.recommender
            wanted = movie_filter(recommender, genres, year_min, year_max)
            ratings = repo.user_rating_columns(session, uid)  # an unknown user is a new one: `popular`
            wanted = replace(wanted, exclude_ids=wanted.exclude_ids | parse_ids(exclude, "exclude"))
            history: Sequence[UserRating] = ratings
            if not use_embeddings:
                # Popularity only: no history means no taste vector, but the rated movies stay excluded.
                history = []
                rated = repo.rating_column(ratings, "movie_id").tolist()
                wanted = replace(wanted, exclude_ids=wanted.exclude_ids | frozenset(rated))
            hidden = repo.hidden_movies(session, uid)  # never answered, whatever the path
            result = _recommend(
                services,
                history,
                wanted,
                limit,
                strategy,
                popularity,
                diversity,
                offset=offset,
                hidden=hidden,
                only_new=only_new,
            )
            return RecommendationsOut.from_domain(uid, result)

        return await services.in_session(work)

    @get(
        "/explain/{user_id:str}/{movie_id:str}",
        operation_id="explainRecommendation",
        responses=error_responses(400, 401, 403, 404, 503),
        summary="Why a movie suits a user",
        description=(
            "The reason the recommendation list gives for this movie (collab and hybrid: the liked movie nearest "
            "in the collab space; content: nearest in text), then its content similarity to the user's taste, "
            "its text/image split, and the closest movies the user rated. A user with no ratings gets a "
            "popularity sentence."
        ),
    )
    async def explain(
        self,
        services: Services,
        owner: int,
        movie_id: MovieIdPath,
        strategy: Annotated[
            Strategy,
            Parameter(
                description="The strategy of the list being explained: its items' `reason` is this sentence's.",
                examples=examples(DEFAULT_STRATEGY),
            ),
        ] = DEFAULT_STRATEGY,
    ) -> ExplanationOut:
        def work(session: Session) -> ExplanationOut:
            ratings = repo.user_ratings(session, owner)  # an unknown user gets a popularity sentence
            hidden = repo.hidden_movies(session, owner)  # in the content taste, as the list has them
            why = services.recommender.explain(ratings, movie_id, strategy=strategy, hidden=hidden)
            return ExplanationOut.from_domain(owner, why)

        return await services.in_session(work)


def _recommend(
    services: Services,
    history: Sequence[UserRating],
    wanted: MovieFilter,
    limit: int,
    strategy: Strategy,
    popularity: float | None,
    diversity: float | None,
    *,
    offset: int = 0,
    hidden: Sequence[HiddenMovie] = (),
    only_new: bool = False,
) -> RecommendationList:
    """One page of recommendations, re-ranked with the request's weights or the settings' defaults."""
    ranking = services.settings.recommend
    return services.recommender.recommend(
        history,
        limit=limit,
        strategy=strategy,
        filter=wanted,
        popularity=ranking.popularity_weight if popularity is None else popularity,
        diversity=ranking.diversity if diversity is None else diversity,
        offset=offset,
        depth=PAGE_DEPTH,
        hidden=hidden,
        only_new=only_new,
    )


class GuestRecommendationController(Controller):
    """Recommendations for a visitor without an account: any valid token, no stored user."""

    path = "/recommendations"
    tags = ["recommendations"]

    @post(
        "/",
        operation_id="recommendForGuest",
        status_code=200,
        responses=error_responses(400, 401, 503),
        summary="Recommendations for a visitor's liked and disliked movies",
        description=(
            "Each liked movie counts as a 5-star rating and each disliked one as a 1-star rating, all given now; "
            "from there it is exactly the code that answers GET /movies/recommendations for a stored user with "
            "those ratings, and the movies named are never returned. No likes or dislikes: popular movies."
        ),
    )
    async def recommend_guest(self, services: Services, data: GuestIn) -> GuestRecommendationsOut:
        overlap = sorted(set(data.liked) & set(data.disliked))
        if overlap:
            raise InvalidInputError(f"movies both liked and disliked: {overlap[:10]}", field="disliked")

        def work(session: Session) -> GuestRecommendationsOut:
            for field, ids in (("liked", data.liked), ("disliked", data.disliked)):
                unknown = sorted(set(ids) - repo.movies_by_id(session, ids).keys())
                if unknown:
                    raise InvalidInputError(f"unknown movie ids: {unknown[:10]}", field=field)
            wanted = movie_filter(services.recommender, ",".join(data.genres), data.year_min, data.year_max)
            history = guest_history(data.liked, data.disliked, int(time.time()))
            result = _recommend(services, history, wanted, data.limit, data.strategy, None, None)
            return GuestRecommendationsOut.from_domain(result)

        return await services.in_session(work)
