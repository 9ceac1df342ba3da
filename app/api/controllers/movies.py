"""The catalogue: one movie, similar movies, semantic search. Any valid token may read it."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import Parameter
from sqlmodel import Session

from app.api.deps import Genres, Limit, MovieIdPath, Year, movie_filter, parse_id
from app.api.schemas import ERROR_RESPONSES, GenreOut, GenresOut, MovieOut, ScoredMovieOut, SearchOut, SimilarOut
from app.catalog import repository as repo
from app.recommend.recommender import Recommender


class MovieController(Controller):
    path = "/movies"
    tags = ["movies"]

    @get(
        "/search",
        operation_id="searchMovies",
        responses=ERROR_RESPONSES,
        summary="Semantic search by free text",
        description=(
            "The text is embedded with the same model as the movies and matched on the `text` vector, "
            "under the same filters as recommendations."
        ),
        sync_to_thread=True,
    )
    def search(
        self,
        recommender: Recommender,
        q: Annotated[str, Parameter(min_length=1, max_length=1000, description="Free text, e.g. 'space opera'.")],
        limit: Limit = 10,
        genres: Genres = None,
        year_min: Year = None,
        year_max: Year = None,
    ) -> SearchOut:
        hits = recommender.search(q, limit=limit, filter=movie_filter(recommender, genres, year_min, year_max))
        return SearchOut(query=q, items=[ScoredMovieOut.from_domain(h) for h in hits])

    @get(
        "/{movie_id:str}/similar",
        operation_id="similarMovies",
        responses=ERROR_RESPONSES,
        summary="Movies similar to one movie",
        sync_to_thread=True,
    )
    def similar(
        self,
        recommender: Recommender,
        movie_id: MovieIdPath,
        limit: Limit = 10,
        vector: Annotated[
            Literal["combined", "text", "image", "collab"],
            Parameter(
                description="Which embedding to compare: text+poster, text only, poster only, or collab "
                "(people who liked this also liked; a movie without ratings uses its content-predicted factors)."
            ),
        ] = "combined",
    ) -> SimilarOut:
        mid = parse_id(movie_id, "movie_id")
        hits = recommender.similar(mid, limit=limit, vector=vector)
        return SimilarOut(movie_id=mid, vector=vector, items=[ScoredMovieOut.from_domain(h) for h in hits])

    @get(
        "/{movie_id:str}", operation_id="getMovie", responses=ERROR_RESPONSES, summary="One movie", sync_to_thread=True
    )
    def get_movie(self, db_session: Session, movie_id: MovieIdPath) -> MovieOut:
        return MovieOut.from_model(repo.get_movie(db_session, parse_id(movie_id, "movie_id")))


class GenreController(Controller):
    path = "/genres"
    tags = ["movies"]

    @get(
        "/",
        operation_id="listGenres",
        responses=ERROR_RESPONSES,
        summary="The genres filters accept",
        description="Every genre in the index with its number of movies, most common first.",
        sync_to_thread=True,
    )
    def genres(self, recommender: Recommender) -> GenresOut:
        counts = recommender.genres()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return GenresOut(items=[GenreOut(genre=g, movies=n) for g, n in ranked])
