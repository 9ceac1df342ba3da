"""Transport types: msgspec Structs the API reads and writes, kept apart from storage and domain types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi import ResponseSpec

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
    path: Literal["popular", "content_cold_start", "content", "collab_popular", "collab", "hybrid"]
    items: list[RecommendationOut]

    @classmethod
    def from_domain(cls, user_id: int, result: RecommendationList) -> RecommendationsOut:
        items = [RecommendationOut(r.id, r.title, r.year, r.genres, r.score, r.reason) for r in result.items]
        return cls(user_id=user_id, strategy=result.strategy, path=result.path, items=items)


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
