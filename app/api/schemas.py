"""Transport types: msgspec Structs the API reads and writes, kept apart from storage and domain types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi import ResponseSpec

from app.catalog.lists import ListedMovie
from app.catalog.models import Movie
from app.catalog.repository import UserRating
from app.recommend.recommender import Explanation, RecommendationList, ScoredMovie

MAX_ID = 10**18 - 1  # ids are stored as signed 64-bit integers; larger ones would overflow the database
MovieId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="A movie id (positive integer).")]


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error response: the status, a message, and the offending field when one is known."""

    status_code: int
    detail: str
    field: str | None = None


ERROR_STATUSES = {
    400: "Invalid parameter or body; `field` names it",
    401: "Missing or invalid bearer token",
    403: "The token may not access this user's data",
    404: "Unknown user, movie or rating",
    501: "Strategy not implemented yet",
    503: "The index is not built or unreachable",
}
ERROR_RESPONSES = {
    code: ResponseSpec(data_container=ErrorBody, description=text, generate_examples=False)
    for code, text in ERROR_STATUSES.items()
}


# -- movies ---------------------------------------------------------------------------------------
class ScoredMovieOut(msgspec.Struct):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    score: float

    @classmethod
    def from_domain(cls, m: ScoredMovie) -> ScoredMovieOut:
        return cls(movie_id=m.id, title=m.title, year=m.year, genres=m.genres, score=m.score)


class RecommendationOut(msgspec.Struct):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    score: float
    reason: str


class RecommendationsOut(msgspec.Struct):
    user_id: int
    strategy: Literal["content", "collab", "hybrid"]
    path: Literal["popular", "content_cold_start", "content", "collab", "hybrid"]
    items: list[RecommendationOut]

    @classmethod
    def from_domain(cls, user_id: int, result: RecommendationList) -> RecommendationsOut:
        return cls(user_id=user_id, strategy=result.strategy, path=result.path, items=recommendation_items(result))


def recommendation_items(result: RecommendationList) -> list[RecommendationOut]:
    return [RecommendationOut(r.id, r.title, r.year, r.genres, r.score, r.reason) for r in result.items]


class SimilarOut(msgspec.Struct):
    movie_id: int
    vector: str
    items: list[ScoredMovieOut]


class SearchOut(msgspec.Struct):
    query: str
    items: list[ScoredMovieOut]


class GenreOut(msgspec.Struct):
    genre: str
    movies: int


class GenresOut(msgspec.Struct):
    items: list[GenreOut]


class MovieOut(msgspec.Struct):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    overview: str | None
    tagline: str | None
    keywords: list[str]
    cast: list[str]
    director: str | None
    writer: str | None
    runtime: int | None
    country: str | None
    language: str | None
    popularity: float | None
    vote_average: float | None
    vote_count: int | None
    has_poster: bool
    poster_url: str | None  # only public URLs: a local cache path means nothing to a client

    @classmethod
    def from_model(cls, m: Movie) -> MovieOut:
        public = m.poster if m.poster and m.poster.startswith(("http://", "https://")) else None
        return cls(
            movie_id=m.id, title=m.title, year=m.year, genres=list(m.genres), overview=m.overview,
            tagline=m.tagline, keywords=list(m.keywords), cast=list(m.cast), director=m.director,
            writer=m.writer, runtime=m.runtime, country=m.country, language=m.language,
            popularity=m.popularity, vote_average=m.vote_average, vote_count=m.vote_count,
            has_poster=bool(m.poster), poster_url=public,
        )


class RelatedRatingOut(msgspec.Struct):
    movie_id: int
    title: str
    rating: float
    similarity: float


class ExplanationOut(msgspec.Struct):
    user_id: int
    movie_id: int
    title: str
    similarity: float
    text_share: float
    image_share: float
    related: list[RelatedRatingOut]
    sentence: str

    @classmethod
    def from_domain(cls, user_id: int, e: Explanation) -> ExplanationOut:
        related = [RelatedRatingOut(r.movie_id, r.title, r.rating, r.similarity) for r in e.related]
        return cls(user_id, e.movie_id, e.title, e.similarity, e.text_share, e.image_share, related, e.sentence)


# -- ratings --------------------------------------------------------------------------------------
class RatingIn(msgspec.Struct):
    movie_id: MovieId
    # Range and step are checked by the domain (repository.rate), which names the field.
    rating: Annotated[float, msgspec.Meta(description="0.5 to 5.0 in steps of 0.5.")]


class RatingOut(msgspec.Struct):
    user_id: int
    movie_id: int
    rating: float
    timestamp: int


class RatedMovieOut(msgspec.Struct):
    movie_id: int
    title: str
    rating: float
    timestamp: int

    @classmethod
    def from_domain(cls, r: UserRating, movies: dict[int, Movie]) -> RatedMovieOut:
        movie = movies.get(r.movie_id)
        return cls(r.movie_id, movie.title if movie else "", r.rating, r.timestamp)


class RatingsPage(msgspec.Struct):
    user_id: int
    total: int
    limit: int
    offset: int
    items: list[RatedMovieOut]


# -- system ---------------------------------------------------------------------------------------
class HealthOut(msgspec.Struct):
    status: Literal["ok", "unavailable"]
    database: bool
    index: bool
    index_generation: str | None
    detail: str | None = None


class EmbeddingMetricsOut(msgspec.Struct):
    total_movies: int
    movies_in_index: int
    coverage: float
    poster_coverage: float
    device: str
    models: dict[str, Any]
    movies_with_poster_source: int
    movies_with_image_vector: int
    index_generation: str | None
    built_at: Any = None

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> EmbeddingMetricsOut:
        known = cls.__struct_fields__
        return cls(**{k: v for k, v in metrics.items() if k in known})


# -- guests, hidden movies ------------------------------------------------------------------------
MAX_CHOICES = 1000  # liked or disliked ids in one guest request: as many ratings as the collab taste reads
StrategyName = Literal["content", "collab", "hybrid"]
YearBound = Annotated[int, msgspec.Meta(ge=0, le=9999, description="Inclusive bound on the release year.")]


class GuestIn(msgspec.Struct, forbid_unknown_fields=True):
    """A visitor's choices, answered with the same user-vector code as a stored user's ratings:
    each liked movie counts as a 5-star rating and each disliked one as a 1-star rating, all given now."""

    liked: Annotated[
        list[MovieId],
        msgspec.Meta(max_length=MAX_CHOICES, description="Movies the visitor liked.", examples=[[1, 260]]),
    ] = msgspec.field(default_factory=list)
    disliked: Annotated[
        list[MovieId],
        msgspec.Meta(max_length=MAX_CHOICES, description="Movies the visitor disliked.", examples=[[2]]),
    ] = msgspec.field(default_factory=list)
    limit: Annotated[int, msgspec.Meta(ge=1, le=100, description="How many results, 1 to 100.", examples=[10])] = 10
    strategy: Annotated[
        StrategyName, msgspec.Meta(description="As for GET /movies/recommendations.", examples=["hybrid"])
    ] = "hybrid"
    genres: Annotated[
        list[str],
        msgspec.Meta(
            description="Genres in any case (GET /genres lists them); a movie matches any.", examples=[["Comedy"]]
        ),
    ] = msgspec.field(default_factory=list)
    year_min: YearBound | None = None
    year_max: YearBound | None = None


class GuestRecommendationsOut(msgspec.Struct):
    """Recommendations for a visitor: RecommendationsOut without a user id."""

    strategy: StrategyName
    path: Literal["popular", "content_cold_start", "content", "collab", "hybrid"]
    items: list[RecommendationOut]

    @classmethod
    def from_domain(cls, result: RecommendationList) -> GuestRecommendationsOut:
        return cls(strategy=result.strategy, path=result.path, items=recommendation_items(result))


class HiddenIn(msgspec.Struct, forbid_unknown_fields=True):
    movie_id: MovieId


class HiddenOut(msgspec.Struct):
    """A movie the user marked "not interested"."""

    movie_id: int
    title: str
    timestamp: Annotated[int, msgspec.Meta(description="When it was hidden, unix seconds.")]


class HiddenPage(msgspec.Struct):
    user_id: int
    total: int
    limit: int
    offset: int
    items: list[HiddenOut]


# -- lists ----------------------------------------------------------------------------------------
class ListedMovieOut(msgspec.Struct):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]
    votes: Annotated[int, msgspec.Meta(ge=0, description="Ratings in the window (new: all ratings).", examples=[341])]
    average: Annotated[
        float | None, msgspec.Meta(description="Their mean, 0.5-5 stars; null without ratings.", examples=[3.87])
    ]
    score: Annotated[
        float,
        msgspec.Meta(
            description="What the list is ordered by. popular: the ratings in the window (a count); "
            "top-rated: the Bayesian average, 0.5-5; new: the release year (0 when unknown).",
            examples=[4.12],
        ),
    ]

    @classmethod
    def from_domain(cls, m: ListedMovie) -> ListedMovieOut:
        movie = m.movie
        return cls(movie.id, movie.title, movie.year, list(movie.genres), m.votes, m.average, round(m.score, 6))


class MovieListOut(msgspec.Struct):
    list: Literal["popular", "top-rated", "new"]
    total: Annotated[int, msgspec.Meta(ge=0, description="Movies in the whole list, under the filters.")]
    limit: int
    offset: int
    items: list[ListedMovieOut]
