"""Transport types: msgspec Structs the API reads and writes, kept apart from storage and domain types."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIType, Schema

from app.catalog.lists import ListedMovie
from app.catalog.models import MAX_ID, Movie
from app.catalog.rating_rules import MAX_RATING, MIN_RATING, STEP
from app.catalog.repository import UserRating
from app.datasets.history import LISTED_ROWS
from app.names import DEFAULT_STRATEGY, AnswerPath, ListKind, SimilarVector, Strategy
from app.recommend.recommender import Explanation, RecommendationList, ScoredMovie
from app.recommend.tuning import TUNED

# Litestar drops an item type's bounds from a list's schema: the exact integers are restated.
MOVIE_ID_ITEMS = {"extra": {"items": Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_ID)}}


def doc(description: str, *examples: Any, ge: float | None = None, le: float | None = None) -> msgspec.Meta:
    """A field's OpenAPI documentation: description, examples, and bounds (ge, le; None: unbounded).
    Litestar leaves a bound of 0 out of the schema (it tests the bound's truth) and writes the others
    as floats (MAX_ID as 1e+18, one past it), so integer bounds are restated exactly in the raw JSON schema."""
    exact = {key: bound for key, bound in (("minimum", ge), ("maximum", le)) if isinstance(bound, int)}
    extra: dict[str, Any] | None = {"extra": exact} if exact else None
    return msgspec.Meta(description=description, examples=list(examples) or None, extra_json_schema=extra, ge=ge, le=le)


MovieId = Annotated[int, doc("A movie id, 1 to 10^18 - 1.", 1, ge=1, le=MAX_ID)]
OutMovieId = Annotated[int, doc("The movie's id.", 1, ge=1, le=MAX_ID)]
OutUserId = Annotated[int, doc("The user's id.", 15, ge=1, le=MAX_ID)]
Title = Annotated[str, doc("The movie's title.", "Toy Story")]
ReleaseYear = Annotated[int, doc("Release year; null when unknown.", 1995, ge=0, le=9999)] | None
GenreList = Annotated[list[str], doc("The movie's genres, as GET /genres spells them.", ["Animation", "Comedy"])]
Stars = Annotated[
    float, doc(f"A rating, {MIN_RATING} to {MAX_RATING} stars in steps of {STEP}.", 4.5, ge=MIN_RATING, le=MAX_RATING)
]
UnixTime = Annotated[int, doc("Unix seconds.", 1469330735, ge=0)]
Total = Annotated[int, doc("How many there are in all, before the page is cut.", 42, ge=0)]
PageLimit = Annotated[int, doc("The page size asked for.", 20, ge=1, le=100)]
PageOffset = Annotated[int, doc("How many were skipped.", 0, ge=0)]

# What a score means, per way of answering. Scores compare within one answer, not across paths.
PATH_DOC = (
    "How the answer was made: `popular` (no ratings, or use_embeddings=false), `content_cold_start` (the content "
    "strategy with 1-2 ratings), `content`, `collab_popular` (collab or hybrid with 1-10 ratings: collab blended "
    "with a popularity prior), `collab` or `hybrid`. It sets the scale of `score`."
)
_RRF_TOP = round(1 / (1 / TUNED.collab_weight + TUNED.rrf_k - 1) + 1 / (1 / TUNED.content_weight + TUNED.rrf_k - 1), 3)
RECOMMENDATION_SCORE_DOC = (
    "Ranking score, best first; compare it within one answer only, its scale depends on `path`. "
    "`popular`: the movie's number of ratings in this service (e.g. 341.0), unbounded. "
    "`content`, `content_cold_start`: cosine similarity of the movie's combined vector to the taste vector (-1 to 1); "
    "`collab`, `collab_popular`: cosine of its collab vector to the user's query (-1 to 1); "
    "`hybrid`: weighted reciprocal rank fusion, "
    f"the sum over the two lists of w / (rank + w·(k-1)) with rank from 1, k = {TUNED.rrf_k}, w = "
    f"{TUNED.collab_weight} (collab) and {TUNED.content_weight} (content): at most {_RRF_TOP}. "
    "Each is then multiplied by the popularity boost, 1 to 1 + `popularity` (log-popularity scaled to 0-1 "
    "among the candidates), and by the diversity penalty, 1 - `diversity` × the cosine to the closest earlier pick. "
    "So with popularity=1 a content score can reach 2."
)
REASON_DOC = (
    'Why it is recommended, from what ranked it: collab and hybrid "people who liked Heat (you: 5.0★) also liked '
    'this" (a movie 5 viewers rated at least); content "because you liked Heat (5.0★)", else "close to the movies '
    'you rated, taken together" when no liked movie is close but the taste is; "new: nobody has rated it yet" for '
    'a movie whose collab factors are predicted from content; on the popular path "popular with viewers" (5 '
    'ratings or more), else "rated by only 2 viewers"; "a popular pick" when no liked movie is close, or "rated by '
    'only 2 viewers" for a movie fewer than 5 viewers rated (never said to be liked by "people who liked X").'
)
SCORE_DOC = (
    "similar: cosine similarity on the chosen vector, -1 to 1. search: the fused reciprocal-rank score of the "
    "dense `text` and sparse `lexical` lists (at most 1.39) times the popularity boost."
)


class ErrorBody(msgspec.Struct, omit_defaults=True):
    """Every error response: the status, a message, and the offending field when one is known."""

    status_code: Annotated[int, doc("The HTTP status, repeated.", 400, ge=400, le=599)]
    detail: Annotated[
        str, doc("What went wrong; names the field when one is at fault.", "invalid limit: Expected `int` >= 1")
    ]
    field: Annotated[str | None, doc("The offending parameter or body field, when one is known.", "limit")] = None


ERROR_STATUSES = {
    400: "Invalid parameter or body; `field` names it",
    401: "Missing or invalid bearer token",
    403: "The token may not access this user's data",
    404: "Unknown user, movie or rating",
    409: "The request needs data the service does not hold yet (a history import before any catalogue)",
    503: "The index or the database is unavailable (not built, unreachable, read-only), or a user token cannot "
    "be checked yet",
}
ERROR_RESPONSES = {
    code: ResponseSpec(data_container=ErrorBody, description=text, generate_examples=False)
    for code, text in ERROR_STATUSES.items()
}


def error_responses(*codes: int) -> dict[int, ResponseSpec]:
    """The error responses one route can return, for its OpenAPI operation: list only those
    (403 only where the owner_or_admin guard runs, 404 only where something is looked up).
    app/api/openapi.py's ApiOperation adds those every operation can return."""
    return {code: ERROR_RESPONSES[code] for code in codes}


# -- movies ---------------------------------------------------------------------------------------
class ScoredMovieOut(msgspec.Struct):
    movie_id: OutMovieId
    title: Title
    year: ReleaseYear
    genres: GenreList
    score: Annotated[float, doc(SCORE_DOC, 0.61)]

    @classmethod
    def from_domain(cls, m: ScoredMovie) -> ScoredMovieOut:
        return cls(movie_id=m.id, title=m.title, year=m.year, genres=m.genres, score=m.score)


class RecommendationOut(msgspec.Struct):
    movie_id: OutMovieId
    title: Title
    year: ReleaseYear
    genres: GenreList
    score: Annotated[float, doc(RECOMMENDATION_SCORE_DOC, 0.54)]
    reason: Annotated[str, doc(REASON_DOC, "because you liked Heat (5.0★)")]


class RecommendationsOut(msgspec.Struct):
    user_id: OutUserId
    strategy: Annotated[Strategy, doc("The strategy asked for.", "hybrid")]
    path: Annotated[AnswerPath, doc(PATH_DOC, "hybrid")]
    items: Annotated[list[RecommendationOut], doc("Best first.")]

    @classmethod
    def from_domain(cls, user_id: int, result: RecommendationList) -> RecommendationsOut:
        return cls(user_id=user_id, strategy=result.strategy, path=result.path, items=recommendation_items(result))


def recommendation_items(result: RecommendationList) -> list[RecommendationOut]:
    return [RecommendationOut(r.id, r.title, r.year, r.genres, r.score, r.reason) for r in result.items]


class SimilarOut(msgspec.Struct):
    movie_id: OutMovieId
    vector: Annotated[SimilarVector, doc("The named vector compared.", "combined")]
    items: Annotated[list[ScoredMovieOut], doc("Most similar first; `score` is the cosine similarity.")]


class SearchOut(msgspec.Struct):
    query: Annotated[str, doc("The text searched for, as sent.", "heist thriller")]
    items: Annotated[list[ScoredMovieOut], doc("Best match first.")]


class GenreOut(msgspec.Struct):
    genre: Annotated[str, doc("A genre as the index spells it.", "Comedy")]
    movies: Annotated[int, doc("Movies in the index with this genre.", 3315, ge=0)]


class GenresOut(msgspec.Struct):
    items: Annotated[list[GenreOut], doc("Most common first.")]


class MovieOut(msgspec.Struct):
    movie_id: OutMovieId
    title: Title
    year: ReleaseYear
    genres: GenreList
    overview: Annotated[str | None, doc("Plot summary, when the source has one.", "A cowboy doll is ...")]
    tagline: Annotated[str | None, doc("Tagline, when the source has one.", "The toys are back!")]
    keywords: Annotated[list[str], doc("Keywords, when the source has them.", ["toy", "friendship"])]
    cast: Annotated[list[str], doc("Cast, in the source's order.", ["Tom Hanks", "Tim Allen"])]
    director: Annotated[str | None, doc("Director(s).", "John Lasseter")]
    writer: Annotated[str | None, doc("Writer(s).", "Joss Whedon")]
    runtime: Annotated[int, doc("Running time in minutes.", 81, ge=0)] | None
    country: Annotated[str | None, doc("Country of origin.", "United States of America")]
    language: Annotated[str | None, doc("Original language.", "English")]
    popularity: (
        Annotated[
            float,
            doc(
                "TMDB's popularity score; null when the source has none.",
                247.0,
                ge=0,
            ),
        ]
        | None
    )
    vote_average: (
        Annotated[float, doc("TMDB's mean vote, 0-10; null when absent or with no votes.", 7.9, ge=0, le=10)] | None
    )
    vote_count: Annotated[int, doc("TMDB's number of votes; null when absent.", 5415, ge=0)] | None
    has_poster: Annotated[bool, doc("Whether a poster image was embedded; GET /movies/{id}/poster serves it.", False)]
    # Only public URLs: a local cache path means nothing to a client.
    poster_url: Annotated[str | None, doc("The poster's public URL; null for a local file or none.", None)]
    imdb_id: Annotated[str | None, doc("IMDb id, when the source links one.", "tt0114709")] = None
    tmdb_id: Annotated[int | None, doc("TMDB id, when the source links one.", 862)] = None
    local_rating_count: Annotated[int | None, doc("Ratings of this movie in this service.", 247)] = None
    local_rating_mean: Annotated[float | None, doc("Their mean, 0.5-5 stars.", 3.872)] = None

    @classmethod
    def from_model(cls, m: Movie) -> MovieOut:
        public = m.poster if m.poster and m.poster.startswith(("http://", "https://")) else None
        # fmt: off
        return cls(
            movie_id=m.id, title=m.title, year=m.year, genres=list(m.genres), overview=m.overview,
            tagline=m.tagline, keywords=list(m.keywords), cast=list(m.cast), director=m.director,
            writer=m.writer, runtime=m.runtime, country=m.country, language=m.language,
            popularity=m.popularity, vote_average=m.vote_average, vote_count=m.vote_count,
            has_poster=bool(m.poster_embedded), poster_url=public, imdb_id=m.imdb_id, tmdb_id=m.tmdb_id,
            local_rating_count=m.local_rating_count,
            local_rating_mean=None if m.local_rating_mean is None else round(m.local_rating_mean, 3),
        )
        # fmt: on


class RelatedRatingOut(msgspec.Struct):
    movie_id: OutMovieId
    title: Title
    rating: Stars
    similarity: Annotated[
        float, doc("Cosine similarity of its combined vector to the explained movie's, -1 to 1.", 0.31, ge=-1.0, le=1.0)
    ]


class ExplanationOut(msgspec.Struct):
    user_id: OutUserId
    movie_id: OutMovieId
    title: Title
    similarity: Annotated[
        float,
        doc(
            "Cosine similarity of the movie's combined vector to the user's taste vector, -1 to 1.",
            0.16,
            ge=-1.0,
            le=1.0,
        ),
    ]
    text_share: Annotated[
        float, doc("Share of the similarity that comes from the text half, 0 to 1.", 1.0, ge=0.0, le=1.0)
    ]
    image_share: Annotated[float, doc("Share that comes from the poster half, 0 to 1.", 0.0, ge=0.0, le=1.0)]
    related: Annotated[list[RelatedRatingOut], doc("The rated movies closest to it, closest first (at most 5).")]
    sentence: Annotated[str, doc("The explanation in one sentence.", "Toy Story matches your taste ...")]

    @classmethod
    def from_domain(cls, user_id: int, e: Explanation) -> ExplanationOut:
        related = [RelatedRatingOut(r.movie_id, r.title, r.rating, r.similarity) for r in e.related]
        return cls(user_id, e.movie_id, e.title, e.similarity, e.text_share, e.image_share, related, e.sentence)


# -- ratings --------------------------------------------------------------------------------------
class RatingIn(msgspec.Struct, forbid_unknown_fields=True):
    movie_id: MovieId
    # Range and step are checked by the domain (repository.rate), which names the field; they are
    # declared to OpenAPI only (Litestar's `extra`), or msgspec would answer first, in its own words.
    rating: Annotated[
        float,
        msgspec.Meta(
            description=f"{MIN_RATING} to {MAX_RATING} in steps of {STEP}.",
            examples=[4.5],
            extra_json_schema={"extra": {"minimum": MIN_RATING, "maximum": MAX_RATING, "multiple_of": STEP}},
        ),
    ]


class RatingOut(msgspec.Struct):
    user_id: OutUserId
    movie_id: OutMovieId
    rating: Stars
    timestamp: UnixTime


class RatedMovieOut(msgspec.Struct):
    movie_id: OutMovieId
    title: Title
    rating: Stars
    timestamp: UnixTime

    @classmethod
    def from_domain(cls, r: UserRating, movies: dict[int, Movie]) -> RatedMovieOut:
        movie = movies.get(r.movie_id)
        return cls(r.movie_id, movie.title if movie else "", r.rating, r.timestamp)


class RatingsPage(msgspec.Struct):
    user_id: OutUserId
    total: Total
    limit: PageLimit
    offset: PageOffset
    items: Annotated[list[RatedMovieOut], doc("Newest first.")]


class HistoryImportOut(msgspec.Struct):
    """A Letterboxd or IMDb import: `matched` = `imported` + `unchanged` + `kept_newer`."""

    user_id: OutUserId
    format: Annotated[str, doc("The export's format.", "letterboxd")]
    rows: Annotated[int, doc("Data rows in the file.", 120, ge=0)]
    matched: Annotated[int, doc("Rows matched to a catalogue movie.", 112, ge=0)]
    imported: Annotated[int, doc("Ratings written by this import.", 100, ge=0)]
    unchanged: Annotated[int, doc("Matched rows already stored with the same value.", 10, ge=0)]
    kept_newer: Annotated[int, doc("Matched rows where a newer rating of the user's was kept.", 2, ge=0)]
    unmatched_total: Annotated[int, doc(f"Rows no movie matched (`unmatched` lists the first {LISTED_ROWS}).", 1, ge=0)]
    skipped_total: Annotated[int, doc(f"Rows refused (`skipped` lists the first {LISTED_ROWS}).", 1, ge=0)]
    unmatched: Annotated[
        list[dict[str, Any]],
        doc(
            f"The first {LISTED_ROWS} rows no movie matched, in file order: {{line, title, year, suggestions}}; "
            "`suggestions`: up to 3 close catalogue "
            "titles, closest first, {movie_id, title, year}.",
            [
                {
                    "line": 7,
                    "title": "Toy Stroy",
                    "year": 1995,
                    "suggestions": [{"movie_id": 1, "title": "Toy Story", "year": 1995}],
                }
            ],
        ),
    ]
    skipped: Annotated[
        list[dict[str, Any]],
        doc(
            f"The first {LISTED_ROWS} rows refused, in file order: {{line, field, message}}.",
            [{"line": 9, "field": "Rating", "message": "empty"}],
        ),
    ]
    warnings: Annotated[
        list[str], doc("File-level notes, e.g. the encoding guessed for a file that is not UTF-8.", [])
    ] = msgspec.field(default_factory=list)


# -- system ---------------------------------------------------------------------------------------
class HealthOut(msgspec.Struct):
    status: Annotated[
        Literal["ok", "degraded", "unavailable"],
        doc(
            "ok: the database and the index answer; degraded: the last good index serves while the "
            "published one cannot be opened (`detail` says why); unavailable (503).",
            "ok",
        ),
    ]
    database: Annotated[bool, doc("The database answers.", True)]
    index: Annotated[bool, doc("The vector index is published and answers.", True)]
    index_generation: Annotated[str | None, doc("The published index generation.", "gen-20261128T111126-688238")]
    detail: Annotated[str | None, doc("What is wrong, when something is.", None)] = None


class EmbeddingMetricsOut(msgspec.Struct):
    total_movies: Annotated[int, doc("Movies in the database.", 9061, ge=0)]
    movies_in_index: Annotated[int, doc("Movies in the published index.", 9061, ge=0)]
    coverage: Annotated[float, doc("movies_in_index / total_movies, 0 to 1.", 1.0, ge=0.0, le=1.0)]
    poster_coverage: Annotated[float, doc("Share of the movies with an image vector, 0 to 1.", 0.0, ge=0.0, le=1.0)]
    device: Annotated[str, doc("The device this API embeds queries on.", "cpu")]
    models: Annotated[
        dict[str, Any],
        doc("The index's models and dimensions (its manifest).", {"text": {"name": "all-MiniLM-L6-v2", "dim": 384}}),
    ]
    movies_with_poster_source: Annotated[int, doc("Movies whose source names a poster.", 0, ge=0)]
    movies_with_image_vector: Annotated[int, doc("Movies with an image vector in the index.", 0, ge=0)]
    index_generation: Annotated[str | None, doc("The published index generation.", "gen-20261128T111126-688238")]
    built_at: Annotated[Any, doc("When the index was published (ISO 8601).", "2026-11-28T11:11:26Z")] = None

    @classmethod
    def from_metrics(cls, metrics: dict[str, Any]) -> EmbeddingMetricsOut:
        known = cls.__struct_fields__
        return cls(**{k: v for k, v in metrics.items() if k in known})


# -- guests, hidden movies ------------------------------------------------------------------------
MAX_CHOICES = TUNED.collab_history  # liked or disliked ids in one guest request: as many as the collab taste reads
YearBound = Annotated[int, doc("Inclusive bound on the release year.", 1990, ge=0, le=9999)]


class GuestIn(msgspec.Struct, forbid_unknown_fields=True):
    """A visitor's choices, answered with the same user-vector code as a stored user's ratings:
    each liked movie counts as a 5-star rating and each disliked one as a 1-star rating, all given now."""

    liked: Annotated[
        list[MovieId],
        msgspec.Meta(
            max_length=MAX_CHOICES,
            description="Movies the visitor liked.",
            examples=[[1, 260]],
            extra_json_schema=MOVIE_ID_ITEMS,
        ),
    ] = msgspec.field(default_factory=list)
    disliked: Annotated[
        list[MovieId],
        msgspec.Meta(
            max_length=MAX_CHOICES,
            description="Movies the visitor disliked.",
            examples=[[2]],
            extra_json_schema=MOVIE_ID_ITEMS,
        ),
    ] = msgspec.field(default_factory=list)
    limit: Annotated[int, msgspec.Meta(ge=1, le=100, description="How many results, 1 to 100.", examples=[10])] = 10
    strategy: Annotated[
        Strategy, msgspec.Meta(description="As for GET /movies/recommendations.", examples=[DEFAULT_STRATEGY])
    ] = DEFAULT_STRATEGY
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

    strategy: Annotated[Strategy, doc("The strategy asked for.", "hybrid")]
    path: Annotated[AnswerPath, doc(PATH_DOC, "hybrid")]
    items: Annotated[list[RecommendationOut], doc("Best first.")]

    @classmethod
    def from_domain(cls, result: RecommendationList) -> GuestRecommendationsOut:
        return cls(strategy=result.strategy, path=result.path, items=recommendation_items(result))


class HiddenIn(msgspec.Struct, forbid_unknown_fields=True):
    movie_id: MovieId


class HiddenOut(msgspec.Struct):
    """A movie the user marked "not interested"."""

    movie_id: OutMovieId
    title: Title
    timestamp: UnixTime


class HiddenPage(msgspec.Struct):
    user_id: OutUserId
    total: Total
    limit: PageLimit
    offset: PageOffset
    items: Annotated[list[HiddenOut], doc("Newest first.")]


# -- lists ----------------------------------------------------------------------------------------
class ListedMovieOut(msgspec.Struct):
    movie_id: OutMovieId
    title: Title
    year: ReleaseYear
    genres: GenreList
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
        average = None if m.average is None else round(m.average, 4)
        return cls(movie.id, movie.title, movie.year, list(movie.genres), m.votes, average, round(m.score, 6))


class MovieListOut(msgspec.Struct):
    kind: Annotated[ListKind, doc("Which list this is.", "popular")]
    total: Annotated[int, doc("Movies in the whole list, under the filters.", 120, ge=0)]
    limit: PageLimit
    offset: PageOffset
    items: Annotated[list[ListedMovieOut], doc("In the list's order.")]
