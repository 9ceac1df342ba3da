"""The catalogue: one movie, similar movies, hybrid search. Any valid token may read it."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.params import Parameter
from litestar.response import File
from sqlmodel import Session

from app.api.deps import MIN_ZERO, Exclude, Genres, Limit, MovieIdPath, Year, examples, movie_filter, parse_ids
from app.api.schemas import (
    GenreOut,
    GenresOut,
    MovieOut,
    ScoredMovieOut,
    SearchOut,
    SimilarOut,
    error_responses,
)
from app.api.state import Services
from app.catalog import repository as repo
from app.embedding.posters import image_media_type, poster_file
from app.errors import NotFoundError
from app.names import SimilarVector
from app.settings import RECOMMEND_DEFAULTS

SEARCH_POPULARITY_DOC = (
    "Weight of popularity in the search re-rank, 0-1 "
    f"(default: MOVIEREC_SEARCH_POPULARITY_WEIGHT, {RECOMMEND_DEFAULTS.search_popularity_weight})."
)


class MovieController(Controller):
    path = "/movies"
    tags = ["movies"]

    @get(
        "/search",
        operation_id="searchMovies",
        responses=error_responses(400, 401, 503),
        summary="Search by free text: titles, people, themes",
        description=(
            "Hybrid search: the text's MiniLM embedding on the `text` vector and its words on the sparse "
            "BM25 `lexical` vector (title, all cast, director, writer, keywords, genres), fused by RRF in "
            "one query, under the same filters and popularity prior as recommendations. `score` is the "
            "fused RRF score times the popularity boost."
        ),
        sync_to_thread=True,
    )
    def search(
        self,
        services: Services,
        q: Annotated[
            str,
            Parameter(
                min_length=1, max_length=1000, description="Free text, e.g. 'space opera'.", examples=examples("heist")
            ),
        ],
        limit: Limit = 10,
        genres: Genres = None,
        year_min: Year = None,
        year_max: Year = None,
        popularity: Annotated[
            float | None,
            Parameter(ge=0.0, le=1.0, description=SEARCH_POPULARITY_DOC, examples=examples(0.6), schema_extra=MIN_ZERO),
        ] = None,
    ) -> SearchOut:
        recommender = services.recommender
        wanted = movie_filter(recommender, genres, year_min, year_max)
        prior = services.settings.recommend.search_popularity_weight if popularity is None else popularity
        hits = recommender.search(q, limit=limit, filter=wanted, popularity=prior)
        return SearchOut(query=q, items=[ScoredMovieOut.from_domain(h) for h in hits])

    @get(
        "/{movie_id:str}/similar",
        operation_id="similarMovies",
        responses=error_responses(400, 401, 404, 503),
        summary="Movies similar to one movie",
        description=(
            "Nearest neighbours of the movie's own vector, never the movie itself. `score` is the cosine "
            "similarity (-1 to 1). 404: the movie is not in the index; 400: it has no vector of that kind."
        ),
        sync_to_thread=True,
    )
    def similar(
        self,
        services: Services,
        movie_id: MovieIdPath,
        limit: Limit = 10,
        vector: Annotated[
            SimilarVector,
            Parameter(
                description="Which embedding to compare: text+poster, text only, poster only, or collab "
                "(people who liked this also liked; a movie without ratings uses its content-predicted factors).",
                examples=examples("combined"),
            ),
        ] = "combined",
        exclude: Exclude = None,
    ) -> SimilarOut:
        excluded = parse_ids(exclude, "exclude")
        hits = services.recommender.similar(movie_id, limit=limit, vector=vector, exclude=excluded)
        return SimilarOut(movie_id=movie_id, vector=vector, items=[ScoredMovieOut.from_domain(h) for h in hits])

    @get(
        "/{movie_id:str}/poster",
        operation_id="getMoviePoster",
        responses=error_responses(400, 401, 404),
        summary="The movie's poster image",
        description="The image the index embedded (a URL's cached copy, or the local file); 404 when there is none.",
        media_type="image/*",
    )
    async def poster(self, services: Services, movie_id: MovieIdPath) -> File:
        def work(session: Session) -> File:
            movie = repo.get_movie(session, movie_id)
            path = poster_file(services.settings.poster_cache_dir, movie.poster) if movie.poster_embedded else None
            media_type = image_media_type(path) if path is not None else None  # reads the file's first bytes
            if path is None or media_type is None:
                raise NotFoundError(f"movie {movie_id} has no poster")
            return File(path=path, media_type=media_type, content_disposition_type="inline")

        return await services.in_session(work)

    @get(
        "/{movie_id:str}",
        operation_id="getMovie",
        responses=error_responses(400, 401, 404),
        summary="One movie",
        description="The movie as the store of record holds it: metadata, ratings summary, poster URL if public.",
    )
    async def get_movie(self, services: Services, movie_id: MovieIdPath) -> MovieOut:
        return await services.in_session(lambda session: MovieOut.from_model(repo.get_movie(session, movie_id)))


class GenreController(Controller):
    path = "/genres"
    tags = ["movies"]

    @get(
        "/",
        operation_id="listGenres",
        responses=error_responses(401, 503),
        summary="The genres filters accept",
        description="Every genre in the index with its number of movies, most common first.",
        sync_to_thread=True,
    )
    def genres(self, services: Services) -> GenresOut:
        counts = services.recommender.genres()
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return GenresOut(items=[GenreOut(genre=g, movies=n) for g, n in ranked])
