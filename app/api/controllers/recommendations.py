"""Per-user reads: recommendations and explanations. A user token may read only its own."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import Parameter
from sqlmodel import Session

from app.api.deps import Genres, Limit, MovieIdPath, UserIdPath, UserIdQuery, Year, movie_filter, parse_id
from app.api.schemas import ERROR_RESPONSES, ExplanationOut, RecommendationsOut
from app.api.security import owner_or_admin
from app.api.state import Services
from app.catalog import repository as repo
from app.catalog.repository import UserRating
from app.recommend.recommender import Recommender
from app.settings import Settings

# Documented from the settings' own defaults, so the schema cannot drift from them.
_DEFAULTS = Settings.model_fields
POPULARITY_DOC = (
    "Weight of popularity in the re-rank, 0-1 "
    f"(default: MOVIEREC_POPULARITY_WEIGHT, {_DEFAULTS['popularity_weight'].default})."
)
DIVERSITY_DOC = f"Diversity of the re-rank (MMR), 0-1 (default: MOVIEREC_DIVERSITY, {_DEFAULTS['diversity'].default})."


class RecommendationController(Controller):
    path = "/movies"
    tags = ["recommendations"]
    guards = [owner_or_admin]

    @get(
        "/recommendations",
        operation_id="recommendMovies",
        responses=ERROR_RESPONSES,
        summary="Recommendations for a user",
        description=(
            "One database query (the user's ratings), one vector retrieve per named vector used and one ANN query. "
            "`path` says how the answer was made: `popular` (no ratings, an unknown user id included: never 404; "
            "or use_embeddings=false), "
            "`content_cold_start` (content strategy, 1-2 ratings), `content`, `collab_popular` (collab or hybrid with "
            "1-10 ratings: collab blended with a popularity prior that fades as the history grows), "
            "`collab` or `hybrid`. Rated movies are never returned."
        ),
        sync_to_thread=True,
    )
    def recommend(
        self,
        db_session: Session,
        recommender: Recommender,
        services: Services,
        user_id: UserIdQuery,
        limit: Limit = 10,
        strategy: Annotated[
            Literal["content", "collab", "hybrid"],
            Parameter(
                description="hybrid (default): content and collaborative vectors fused in one query (RRF); "
                "collab: rating factors alone; content: text and poster alone. With 1-10 ratings collab and hybrid "
                "answer `collab_popular`; when none "
                "of the user's movies has collab factors yet, collab and hybrid answer from content."
            ),
        ] = "hybrid",
        genres: Genres = None,
        year_min: Year = None,
        year_max: Year = None,
        use_embeddings: Annotated[
            bool, Parameter(description="false: answer from popularity alone (path `popular`).")
        ] = True,
        popularity: Annotated[float | None, Parameter(ge=0.0, le=1.0, description=POPULARITY_DOC)] = None,
        diversity: Annotated[float | None, Parameter(ge=0.0, le=1.0, description=DIVERSITY_DOC)] = None,
        only_new: Annotated[
            bool,
            Parameter(description="true: new for you, ranked among movies nobody has rated yet "
                      "(their collab factors are predicted from content)."),
        ] = False,
    ) -> RecommendationsOut:
        uid = parse_id(user_id, "user_id")
        wanted = movie_filter(recommender, genres, year_min, year_max)
        ratings = repo.user_ratings(db_session, uid)
        history: list[UserRating] = ratings
        if not use_embeddings:
            # Popularity only: no history means no taste vector, but the rated movies stay excluded.
            history = []
            wanted = replace(wanted, exclude_ids=frozenset(r.movie_id for r in ratings))
        settings = services.settings
        result = recommender.recommend(
            history,
            limit=limit,
            strategy=strategy,
            filter=wanted,
            popularity=settings.popularity_weight if popularity is None else popularity,
            diversity=settings.diversity if diversity is None else diversity,
            only_new=only_new,
        )
        return RecommendationsOut.from_domain(uid, result)

    @get(
        "/explain/{user_id:str}/{movie_id:str}",
        operation_id="explainRecommendation",
        responses=ERROR_RESPONSES,
        summary="Why a movie suits a user",
        description=(
            "The reason the recommendation list gives for this movie (collab and hybrid: the liked movie nearest "
            "in the collab space; content: nearest in text), then its content similarity to the user's taste, "
            "its text/image split, and the closest movies the user rated. A user with no ratings gets a "
            "popularity sentence."
        ),
        sync_to_thread=True,
    )
    def explain(
        self,
        db_session: Session,
        recommender: Recommender,
        user_id: UserIdPath,
        movie_id: MovieIdPath,
        strategy: Annotated[
            Literal["content", "collab", "hybrid"],
            Parameter(description="The strategy of the list being explained: its items' `reason` is this sentence's."),
        ] = "hybrid",
    ) -> ExplanationOut:
        uid, mid = parse_id(user_id, "user_id"), parse_id(movie_id, "movie_id")
        ratings = repo.user_ratings(db_session, uid)
        return ExplanationOut.from_domain(uid, recommender.explain(ratings, mid, strategy=strategy))


