"""The Recommender: every read the API answers, on top of the index and the text encoder.

A recommendation makes one ANN query and one vector retrieve per named vector it uses (the
recent movies' `combined` vectors; for collab and hybrid also the long history's factors); the
caller makes the one database query for the user's ratings and passes them in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple, Self, TypeVar, cast

import numpy as np

from app.catalog.genres import genre_key
from app.catalog.lists import MIN_RATERS
from app.catalog.repository import HiddenMovie, UserRating, rating_column, take_ratings
from app.datasets.titles import match_keys
from app.embedding import collab, lexical
from app.embedding.movie import combined_halves
from app.embedding.spelling import Speller
from app.errors import InvalidInputError, NotFoundError
from app.names import DEFAULT_STRATEGY, AnswerPath, SearchMode, SimilarVector, Strategy
from app.recommend.history import with_hidden
from app.recommend.memo import AnswerMemo, approx_bytes, digest_ids, digest_rows
from app.recommend.rerank import rerank
from app.recommend.tuning import TUNED, Tuning
from app.recommend.user_vector import (
    balance,
    boost_recent,
    collab_vector,
    mean_rating,
    norm_weights,
    rating_centre,
    star_weights,
    taste_weights,
    weighted_mean,
)
from app.settings import RECOMMEND_DEFAULTS
from app.vectorstore import (
    SPARSE_VECTOR,
    VECTOR_NAMES,
    Hit,
    Lazy,
    MovieFilter,
    MovieIndex,
    SparseVector,
    Stacked,
    StoredMovie,
    content_hashes,
    search_names,
)

T = TypeVar("T")

SEARCH_MODE: SearchMode = "hybrid"  # the winner on bench/search_queries.json (README, Search quality)
# RRF weights of the hybrid search's two lists. The lexical list weighs more: a name or a title word it
# matches is near-certain evidence, while the dense list always returns something. On the query set,
# hybrid NDCG@10 with lexical weight 1, 2, 3, 4: 0.463, 0.484, 0.492, 0.496 (people 0.69 -> 0.89,
# titles 0.84 -> 0.81); with word pairs and the search prior of 0.6, weight 3.2, 5.2, 8.2: 0.438,
# 0.444, 0.448 over the query kinds. Not an integer: with integer weights a lexical rank ties a dense
# one exactly (3 / (r + 4) = 1 / (s + 2) at r = 3s + 2) and engines break ties differently; 8.2
# first ties at lexical rank 40, past the candidates a page reads (bench/search.py, README).
SEARCH_WEIGHTS = {"text": 1.0, SPARSE_VECTOR: 8.2}
SEARCH_DEPTH = 10  # search ranks at least this many movies (x candidate_factor with the prior), any limit
COLD_START_MAX = 2  # the content strategy: with this many ratings or fewer, its cold-start path
RELATED_SHOWN = 5
UNKNOWN_SHOWN = 5  # unknown genres an error names (the rest counted): `genres` may list thousands
# Candidates come back with their `text` vectors, for diversity and reasons: half the floats of
# `combined`, and converting the engine's vectors to numpy is most of a query's cost.
CANDIDATE_VECTOR = "text"
WITH_COLLAB = (CANDIDATE_VECTOR, "collab")  # collab answers' candidates: their reasons cite collab neighbours
COLLAB_PATHS = ("collab_popular", "collab", "hybrid")
EXPLAIN_VECTORS = ("combined", CANDIDATE_VECTOR, "collab")  # what an explanation reads of the movie and the history
# Every tuple of vector names the Recommender asks an index for (retrieve, and the vectors of search
# hits): a vector cache builds its answers for them when it is opened (CachedIndex.wrap's `views`).
INDEX_VIEWS: tuple[tuple[str, ...], ...] = (
    (),
    (CANDIDATE_VECTOR,),
    WITH_COLLAB,
    EXPLAIN_VECTORS,
    *((name,) for name in VECTOR_NAMES if name != CANDIDATE_VECTOR),  # similar's, the taste's and the prior's
)
LIKED_MIN = 3.5  # a movie is cited as a reason only when rated at least this, and above the user's mean
MATCH_MIN = 0.1  # below this cosine a movie is never said to match or be like what the user rated
# explain says a movie "matches your taste" only when it is at least as close to the taste as MATCH_SHARE
# of the catalogue (a seeded sample of SAMPLE_MOVIES): MiniLM's cosines have a floor, and MATCH_MIN alone
# let 86-97% of random demo movies "match" a one-movie taste (median cosine 0.17-0.24).
MATCH_SHARE = 0.75
SAMPLE_MOVIES = 1000
NEW_REASON = "new: nobody has rated it yet"  # a movie whose collab vector is predicted from its content
CLOSE_REASON = "close to the movies you rated, taken together"  # a content pick that no liked movie explains
CONTENT_PATHS = ("content", "content_cold_start")  # their hits' scores are the taste's cosine on `combined`
_MOVIE_ID = itemgetter(0)  # UserRating.movie_id and HiddenMovie.movie_id: both tuples' first field
NEW_OVERFETCH = 2  # the exploration query's depth before exclusions, in slots (Recommender._new_movies)
PRIOR_MOVIES = 1000  # the popularity direction of short histories sums this many movies' factors


@dataclass
class ScoredMovie:
    id: int
    title: str
    year: int | None
    genres: list[str]
    score: float

    @classmethod
    def from_payload(cls, movie_id: int, payload: dict[str, Any], score: float) -> Self:
        return cls(
            id=movie_id,
            title=payload.get("title", ""),
            year=payload.get("year"),
            genres=list(payload.get("genres") or []),
            score=round(float(score), 6),
        )


@dataclass
class Recommendation(ScoredMovie):
    reason: str = ""


@dataclass
class RecommendationList:
    strategy: Strategy
    path: AnswerPath
    items: list[Recommendation]


@dataclass(frozen=True)
class Ranking:
    """A ranking's first places as a memo keeps them: the first page of any depth it covers is cut from them."""

    path: AnswerPath
    items: tuple[Recommendation, ...]
    complete: bool  # fewer places than were asked for: nothing more ranks

    def covers(self, shown: int) -> bool:
        return self.complete or len(self.items) >= shown


@dataclass
class Liked:
    """Movies a reason may cite, row by row: the user's rating, the movie's payload, its vector of one name."""

    ratings: Sequence[UserRating]
    payloads: Sequence[dict[str, Any]]
    rows: np.ndarray  # (len(ratings), dim); no rows when there are none

    @classmethod
    def of(cls, pairs: Sequence[tuple[UserRating, StoredMovie]], name: str) -> Liked:
        """The pairs whose movie has the `name` vector."""
        having = [(r, m) for r, m in pairs if name in m.vectors]
        rows = np.array([m.vectors[name] for _, m in having]) if having else np.zeros((0, 0), dtype=np.float32)
        return cls([r for r, _ in having], [m.payload for _, m in having], rows)

    @classmethod
    def picked(cls, history: Sequence[UserRating], stacked: Stacked, which: Sequence[int]) -> Liked:
        """Rows `which` of `stacked`, whose rows belong to `history` one for one. The payloads are
        read only for the movies a reason cites (Lazy)."""
        payloads = stacked.payloads
        cited = Lazy(lambda k: payloads[which[k]], len(which))
        return cls(take_ratings(history, which), cited, stacked.rows[list(which)])


@dataclass
class Taste:
    """A user's query vectors (None where their movies lack that vector) and the movies they liked."""

    content: np.ndarray | None
    collab: np.ndarray | None
    liked: list[tuple[UserRating, StoredMovie]]  # with their `combined` vectors
    liked_collab: Liked | None = None  # with their `collab` vectors


@dataclass
class RelatedRating:
    movie_id: int
    title: str
    rating: float
    similarity: float


@dataclass
class Explanation:
    movie_id: int
    title: str
    similarity: float
    text_share: float
    image_share: float
    related: list[RelatedRating] = field(default_factory=list)
    sentence: str = ""


class _Ask(NamedTuple):
    """What one ranking is asked for (Recommender.recommend's arguments but the page's cut)."""

    strategy: Strategy
    filter: MovieFilter
    popularity: float
    diversity: float
    ranked: int  # how deep the ranking goes
    hidden: tuple[HiddenMovie, ...]
    only_new: bool


class Recommender:
    def __init__(
        self,
        index: Callable[[], MovieIndex],
        encode_query: Callable[[str], np.ndarray],
        *,
        history_size: int = RECOMMEND_DEFAULTS.history_size,
        half_life_days: float = RECOMMEND_DEFAULTS.half_life_days,
        candidate_factor: int = 5,
        tuning: Tuning = TUNED,
        memo: AnswerMemo | None = None,
    ) -> None:
        """`memo`: answers kept by key (app/recommend/memo.py), for an index whose generations never
        change; its items are shared between the answers it gives, which callers must not modify."""
        self._index = index
        self._encode_query = encode_query
        self.history_size = history_size
        self.half_life_days = half_life_days
        self.candidate_factor = candidate_factor
        self.tuning = tuning
        self.memo = memo
        # What is read once per index generation, by name: (the index it was read from, the value).
        self._per_generation: dict[str, tuple[MovieIndex, Any]] = {}
        self._building = threading.Lock()  # concurrent first requests wait for one build

    # -- genres --------------------------------------------------------------------------------
    def genres(self, *, refresh: bool = False) -> dict[str, int]:
        """Genre -> number of movies in the index; read once per index generation."""
        index = self._index()
        return self._once_per_generation("genres", index, index.genres, refresh=refresh)

    def _once_per_generation(self, name: str, index: MovieIndex, read: Callable[[], T], *, refresh: bool = False) -> T:
        """`read()` for `index`, kept under `name` until another index generation is served (or
        `refresh`). One thread reads; the others asking meanwhile wait for it rather than each read
        (a spelling vocabulary takes about 1-2 s at 62k movies). A Qdrant server collection keeps its
        index object across incremental ingests, so there the value lasts until the worker restarts."""
        known = self._per_generation.get(name)
        if refresh or known is None or known[0] is not index:
            with self._building:
                known = self._per_generation.get(name)
                if refresh or known is None or known[0] is not index:
                    known = self._per_generation[name] = (index, read())
        return cast(T, known[1])

    def canonical_genres(self, names: Iterable[str]) -> tuple[str, ...]:
        """The index's spelling of each genre, matched ignoring case and spaces ("sci-fi" -> "Sci-Fi").
        An unknown one is InvalidInputError naming `genres`. A server collection can gain a genre in an
        incremental reindex, so a miss reads the genres again before it is reported."""
        wanted = list(dict.fromkeys(n.strip() for n in names if n.strip()))
        if not wanted:
            return ()
        for refresh in (False, True):
            spelling: dict[str, list[str]] = {}  # an older index may hold two spellings of one key
            for g in self.genres(refresh=refresh):
                spelling.setdefault(genre_key(g), []).append(g)
            unknown = [n for n in wanted if genre_key(n) not in spelling]
            if not unknown:
                return tuple(dict.fromkeys(g for n in wanted for g in spelling[genre_key(n)]))
        shown = ", ".join(repr(name[:40]) for name in unknown[:UNKNOWN_SHOWN])  # as parse_id quotes an id
        more = f" and {len(unknown) - UNKNOWN_SHOWN} more" if len(unknown) > UNKNOWN_SHOWN else ""
        raise InvalidInputError(
            f"unknown genre {shown}{more}; known: {', '.join(sorted(self.genres()))}", field="genres"
        )

    # -- recommendations -----------------------------------------------------------------------
    def recommend(
        self,
        ratings: Sequence[UserRating],
        *,
        limit: int = 10,
        strategy: Strategy = DEFAULT_STRATEGY,
        filter: MovieFilter = MovieFilter(),
        popularity: float = RECOMMEND_DEFAULTS.popularity_weight,
        diversity: float = RECOMMEND_DEFAULTS.diversity,
        offset: int = 0,
        depth: int | None = None,
        hidden: Sequence[HiddenMovie] = (),
        only_new: bool = False,
    ) -> RecommendationList:
        """`ratings`: all of the user's ratings, newest first. Rated movies are never returned.

        `hidden`: movies the user marked "not interested". Never returned either; in the content
        taste each is a mild dislike (app/recommend/history.py). The collab vector reads every
        rating as evidence of interest, so it leaves them out.

        Paging: the answer is items `offset` to `offset + limit` of one ranking of
        max(offset + limit, depth) movies, re-ranked from `candidate_factor` times as many
        candidates. Pages cut with the same `depth` (and offset + limit <= depth) come from one
        and the same ranking, so they never overlap while the ratings and the index are unchanged.

        content: the taste vector on `combined`. collab: the user's collab vector on `collab`.
        hybrid: both in one query, fused by weighted RRF. With 1-10 ratings collab and hybrid query
        collab blended with a popularity prior (path `collab_popular`); with 1-2 the content strategy
        answers `content_cold_start`; collab/hybrid fall back to content when none of the user's
        movies has a collab vector. Collab answers keep Tuning.new_share of the list (the last
        places) for the best movies nobody has rated yet. `only_new`: rank only those movies.

        With a memo (AnswerMemo), the ranking is kept as deep as it was asked for, under a key of
        everything it depends on (`_memo_key`); a page it covers is cut from it, the same items."""
        index = self._index()
        shown = offset + limit
        ranked = max(shown, depth or 0)
        ask = _Ask(strategy, filter, popularity, diversity, ranked, tuple(hidden), only_new)
        if self.memo is None:
            path, items = self._ranking(index, ratings, ask, shown=shown, first=offset)
            return RecommendationList(strategy, path, items)
        key = self._memo_key(self.memo, index, ratings, ask)
        found: Ranking | None = self.memo.get(key, lambda r: r.covers(shown))
        if found is None:
            path, items = self._ranking(index, ratings, ask, shown=shown, first=0)
            found = Ranking(path, tuple(items), complete=len(items) < shown)
            self.memo.put(key, found, approx_bytes(items))
        return RecommendationList(strategy, found.path, list(found.items[offset:shown]))

    def _memo_key(
        self, memo: AnswerMemo, index: MovieIndex, ratings: Sequence[UserRating], ask: _Ask
    ) -> tuple[Any, ...]:
        """Everything a ranking depends on: the index generation, the rows read for this request (a
        digest), the request's inputs, and this Recommender's knobs."""
        rows = digest_rows(ratings, ask.hidden)
        knobs = (self.history_size, self.half_life_days, self.candidate_factor, self.tuning)
        inputs = (ask.strategy, *_filter_key(ask.filter), ask.popularity, ask.diversity, ask.ranked, ask.only_new)
        return memo.key("recommend", index, rows, *inputs, knobs)

    def _ranking(
        self, index: MovieIndex, ratings: Sequence[UserRating], ask: _Ask, *, shown: int, first: int
    ) -> tuple[AnswerPath, list[Recommendation]]:
        """Its path, and places `first` to `shown` of one ranking `ask.ranked` deep (recommend's
        docstring): fewer when nothing more ranks."""
        strategy, filter, popularity, diversity, ranked, hidden, only_new = ask
        # A heavy user's 5,000 rated ids from their column (RatingColumns: no object per rating)
        rated = chain(filter.exclude_ids, rating_column(ratings, "movie_id").tolist(), map(_MOVIE_ID, hidden))
        unseen = replace(filter, exclude_ids=frozenset(rated))
        if only_new:
            unseen = replace(unseen, unrated=True)
        taste = self._taste(index, ratings, with_collab=strategy != "content", hidden=hidden) if ratings else None
        if taste is None:
            return "popular", self._popular(index, unseen, shown)[first:]
        n = ranked * self.candidate_factor
        collab_query = None
        if taste.collab is not None and self.tuning.is_short(len(ratings)):
            # A short history: collab from even one rating, pulled towards what is popular.
            collab_query = self._with_prior(index, taste.collab, len(ratings))
            hits = index.query(collab_query, "collab", n, unseen, with_vectors=WITH_COLLAB)
            path: AnswerPath = "collab_popular"
        elif taste.content is not None and (taste.collab is None or len(ratings) <= COLD_START_MAX):
            hits = index.query(taste.content, "combined", n, unseen, with_vectors=(CANDIDATE_VECTOR,))
            path = "content_cold_start" if len(ratings) <= COLD_START_MAX else "content"
        elif taste.collab is not None and (strategy == "collab" or taste.content is None):
            collab_query = taste.collab
            hits = index.query(collab_query, "collab", n, unseen, with_vectors=WITH_COLLAB)
            path = "collab"
        else:
            # A taste has one vector at least and the content-only ones took the content branch.
            assert taste.content is not None and taste.collab is not None
            collab_query = taste.collab
            t = self.tuning
            hits = index.query_fused(
                {"combined": taste.content, "collab": collab_query},
                {"combined": t.content_weight, "collab": t.collab_weight},
                n,
                unseen,
                with_vectors=WITH_COLLAB,
                prefetch_limit=n,
                rrf_k=t.rrf_k,
            )
            path = "hybrid"
        # Diversity is judged on content for every strategy: "not five sequels".
        every = round(1 / self.tuning.new_share) if self.tuning.new_share > 0 else 0
        # The new movies' places are fixed for the whole ranking (`ranked` deep), so every page is cut from
        # the same list: a page of 5 and the next one never show the same movie.
        slots = 0 if only_new or collab_query is None or not every else ranked // every
        fresh = self._new_movies(index, collab_query, slots, unseen) if slots and collab_query is not None else []
        # The new movies stay among the candidates: one that ranks on its own keeps its place, and where
        # nobody rated most of a catalogue they are most of the list (spares for the ones placed twice).
        picks = rerank(hits, CANDIDATE_VECTOR, shown + len(fresh), popularity, diversity)
        if fresh and collab_query is not None:
            picks = _interleave_new(picks, fresh, collab_query, every, self.tuning.new_min_ratio)
        picks = picks[:shown]
        liked_collab = taste.liked_collab if path in COLLAB_PATHS else None
        cite, cite_collab = _citable(taste.liked, liked_collab)
        by_content = path in CONTENT_PATHS
        items = [
            _recommendation(h, score, cite, cite_collab, h.score if by_content else None) for h, score in picks[first:]
        ]
        return path, items

    def _new_movies(self, index: MovieIndex, query: np.ndarray, slots: int, filter: MovieFilter) -> list[Hit]:
        """The exploration share: the `slots` best movies whose collab vector is predicted from
        content (nobody rated them yet), by the user's own collab query, none in `filter.exclude_ids`.

        Asked first without the exclusions, NEW_OVERFETCH x `slots` deep, the excluded then dropped:
        a heavy user's exclusions are thousands of ids (5,000 cost 1.8 ms of engine filtering on the
        demo, for an answer that was empty), while the movies nobody has rated are few, and few of
        them are rated by this user yet. The first `slots` survivors of a ranking are the `slots`
        best of the ranking without the excluded, and a short page holds every match, so the answer
        is the same; only when fewer than `slots` survive a full page is it asked again, excluding."""
        new = replace(filter, unrated=True)
        depth = slots * NEW_OVERFETCH
        hits = index.query(query, "collab", depth, replace(new, exclude_ids=frozenset()), with_vectors=WITH_COLLAB)
        kept = [h for h in hits if h.id not in filter.exclude_ids]
        if len(kept) >= slots or len(hits) < depth:
            return kept[:slots]
        return index.query(query, "collab", slots, new, with_vectors=WITH_COLLAB)

    def _taste(
        self, index: MovieIndex, ratings: Sequence[UserRating], with_collab: bool, hidden: Sequence[HiddenMovie] = ()
    ) -> Taste | None:
        """The user's vectors: the taste vector from the recent history's `combined` vectors, the
        collab vector from the long history's factors. One retrieve per named vector, each for only
        the movies it needs: fetching `combined` for a 1,000-rating history cost 40 ms."""
        mean = mean_rating(ratings)
        recent = with_hidden(ratings, hidden)[: self.history_size]
        stored = {m.id: m for m in index.retrieve([r.movie_id for r in recent], vectors=("combined",))}
        content, liked = self._content_taste([r for r in recent if r.movie_id in stored], stored, mean)
        collab_vec = liked_collab = None
        if with_collab:
            mine, factors = _with_vector(index, ratings[: self.tuning.collab_history], "collab")
            # The norm discount was chosen on warm histories; a short one (the collab_popular path) keeps
            # plain weights: with it, demo's 5-rating slice lost 0.0027 NDCG@10 (README, Quality).
            power = 0.0 if self.tuning.is_short(len(ratings)) else self.tuning.collab_norm_power
            collab_vec = self._collab_taste(mine, factors.rows, mean, power)
            liked_collab = Liked.picked(mine, factors, _liked(mine, mean))
        if content is None and collab_vec is None:
            return None
        return Taste(content, collab_vec, liked, liked_collab)

    def _content_taste(
        self, history: list[UserRating], stored: dict[int, StoredMovie], mean: float
    ) -> tuple[np.ndarray | None, list[tuple[UserRating, StoredMovie]]]:
        history = [r for r in history if "combined" in stored[r.movie_id].vectors]
        if not history:
            return None, []
        centred = taste_weights(history, mean, self.half_life_days, centre=True)
        weights = centred if self.tuning.content_centre else taste_weights(history, mean, self.half_life_days, False)
        if not (weights.weights > 0).any():
            # Dislikes alone: their vector points at whatever is least like them, which nobody asked
            # for ("I hated Toy Story" is not "show me the opposite"); no taste, so popular answers.
            return None, []
        if self.tuning.content_dislike_weight is not None:
            weights = replace(weights, weights=balance(weights.weights, self.tuning.content_dislike_weight))
        # np.array rather than np.stack, here and below: 2.7x faster on a list of 1-d rows.
        vectors = np.array([stored[r.movie_id].vectors["combined"] for r in history])
        # The reasons name movies rated above the user's mean, whichever weights built the vector.
        liked = [(history[k], stored[history[k].movie_id]) for k in _liked(history, mean)]
        return weighted_mean(vectors, weights.weights), liked

    def _collab_taste(
        self, history: Sequence[UserRating], factors: np.ndarray, mean: float, norm_power: float
    ) -> np.ndarray | None:
        """The collab vector of `history` (newest first), whose movies' collab vectors are the rows of
        `factors`, each weight discounted by its factor norm to `norm_power` (user_vector.norm_weights)."""
        if not history:
            return None
        t = self.tuning
        weights = taste_weights(history, mean, t.collab_half_life_days, centre=t.collab_centre)
        boosted = boost_recent(weights.weights, t.collab_recent, t.collab_recent_boost)
        stars = rating_column(history, "rating")
        weighted = norm_weights(star_weights(boosted, stars, t.collab_star_slope), factors, norm_power)
        return collab_vector(factors, weighted)

    def _with_prior(self, index: MovieIndex, user: np.ndarray, n_ratings: int) -> np.ndarray:
        """The collab query unit(u) + α(n) unit(p): the user's factors and the popularity direction
        p, with α fading as the history grows (Tuning.prior_weight). Ranks by the dot product."""
        prior = self._prior(index)
        if prior is None:
            return user
        blended = collab.factor_part(user) + self.tuning.prior_weight(n_ratings) * prior
        query = collab.as_query(blended)
        return user if query is None else query

    def _prior(self, index: MovieIndex) -> np.ndarray | None:
        """p = Σ_j popularity_j f_j over the PRIOR_MOVIES most popular movies' factors, unit length:
        EASE reconstructs the interactions (XB ≈ X), so p·f_j ≈ the popularity of j. Once per index
        generation (one scroll and one retrieve)."""
        return self._once_per_generation("prior", index, lambda: _popularity_prior(index))

    def _popular(self, index: MovieIndex, filter: MovieFilter, limit: int) -> list[Recommendation]:
        """The most rated movies under `filter`; a movie nobody rated (`only_new`) is called new, not popular."""
        items = []
        for hit in index.popular(limit, filter):
            item = Recommendation.from_payload(hit.id, hit.payload, hit.score)
            item.reason = popular_reason(hit.payload)
            items.append(item)
        return items

    # -- similar, search -----------------------------------------------------------------------
    def similar(
        self,
        movie_id: int,
        *,
        limit: int = 10,
        vector: SimilarVector = "combined",
        exclude: frozenset[int] = frozenset(),
    ) -> list[ScoredMovie]:
        """The `limit` movies nearest to `movie_id` on `vector`, never itself nor one in `exclude`."""
        index = self._index()
        return self._memoised(
            index,
            ("similar", movie_id, limit, vector, digest_ids(exclude)),
            lambda: self._similar(index, movie_id, limit, vector, exclude),
        )

    def _memoised(
        self,
        index: MovieIndex,
        question: tuple[Hashable, ...],
        answer: Callable[[], list[ScoredMovie]],
        extra_bytes: int = 0,
    ) -> list[ScoredMovie]:
        """`answer()`, kept in the memo (when there is one) under `question`: its kind, then every
        input it depends on besides the index generation; `extra_bytes` of the key beyond its digests."""
        if self.memo is None:
            return answer()
        key = self.memo.key(str(question[0]), index, *question[1:])
        found: tuple[ScoredMovie, ...] | None = self.memo.get(key)
        if found is None:
            found = tuple(answer())
            self.memo.put(key, found, approx_bytes(found) + extra_bytes)
        return list(found)

    def _similar(
        self, index: MovieIndex, movie_id: int, limit: int, vector: SimilarVector, exclude: frozenset[int]
    ) -> list[ScoredMovie]:
        found = index.retrieve([movie_id], vectors=(vector,))
        if not found:
            raise NotFoundError(f"movie {movie_id} is not in the index")
        if vector not in found[0].vectors:
            why = "no ratings yet" if vector == "collab" else "no usable poster"
            raise InvalidInputError(f"movie {movie_id} has no {vector} vector ({why})", field="vector")
        stored = found[0].vectors[vector]
        # collab: rank by the model's dot product, not by the stored norm coordinate
        query = collab.as_query(collab.factor_part(stored)) if vector == "collab" else stored
        if query is None:  # collab factors of zero
            return []
        hits = index.query(query, vector, limit, MovieFilter(exclude_ids=exclude | {movie_id}))
        return [ScoredMovie.from_payload(h.id, h.payload, h.score) for h in hits]

    def search(
        self,
        text: str,
        *,
        limit: int = 10,
        filter: MovieFilter = MovieFilter(),
        popularity: float = 0.0,
        mode: SearchMode = SEARCH_MODE,
    ) -> list[ScoredMovie]:
        """Movies matching free text, best first, under `filter`. hybrid (the default) fuses the dense
        `text` list and the sparse `lexical` (BM25) list by weighted RRF in one engine query, so a
        person's or a title's name is found by its words and a theme by its meaning. The popularity
        prior re-ranks `candidate_factor` x max(`limit`, SEARCH_DEPTH) candidates as recommendations do
        (a short list is the start of a longer one); score = the
        list's score (cosine, BM25 or RRF) x the popularity boost. Raises InvalidInputError (field `q`)
        on text without a letter or a digit (blank, a zero-width space, emoji or punctuation alone: the
        text model reads those as unknown tokens and any answer would be arbitrary)."""
        if not any(ch.isalnum() for ch in text):
            raise InvalidInputError("the search text has no letter or digit to search for", field="q")
        index = self._index()
        return self._memoised(
            index,
            ("search", text, limit, *_filter_key(filter), popularity, mode, self.candidate_factor),
            lambda: self._search(index, text, limit, filter, popularity, mode),
            extra_bytes=len(text),
        )

    def _search(
        self, index: MovieIndex, text: str, limit: int, filter: MovieFilter, popularity: float, mode: SearchMode
    ) -> list[ScoredMovie]:
        # At least SEARCH_DEPTH candidates whatever the limit: a short list is the start of a longer one
        # (at limit 3, "Up" lost Up (2009) to "28 Up" and "42 Up": fewer candidates, other fused ranks).
        depth = max(limit, SEARCH_DEPTH)
        n = depth * self.candidate_factor if popularity > 0 else depth
        hits = self._search_hits(index, text, n, filter, mode)
        picks = _titled_first(text, rerank(hits, CANDIDATE_VECTOR, len(hits), popularity, 0.0))[:limit]
        return [ScoredMovie.from_payload(h.id, h.payload, s) for h, s in picks]

    def _search_hits(self, index: MovieIndex, text: str, n: int, filter: MovieFilter, mode: SearchMode) -> list[Hit]:
        terms = lexical.query_vector(text, self._corrections(index, text) if mode != "dense" else None)
        if mode == "sparse":
            return index.query(terms, SPARSE_VECTOR, n, filter) if terms.indices else []
        dense = self._encode_query(text)
        if mode == "dense" or not terms.indices:  # no word: nothing for the lexical list to match
            return index.query(dense, "text", n, filter)
        vectors: dict[str, np.ndarray | SparseVector] = {"text": dense, SPARSE_VECTOR: terms}
        return index.query_fused(vectors, SEARCH_WEIGHTS, n, filter, prefetch_limit=n)

    def _corrections(self, index: MovieIndex, text: str) -> dict[str, list[str]]:
        """Misspelt words of `text` -> the title and name words close to them (app/embedding/spelling.py):
        a word no title or name holds is looked up in the engine (does any lexical vector hold it?),
        and only one that none holds is corrected."""
        return self.speller(index).correct(text, lambda t: bool(index.query(lexical.term_vector(t), SPARSE_VECTOR, 1)))

    def speller(self, index: MovieIndex | None = None) -> Speller:
        """Search's spelling vocabulary of `index` (by default the current one): its titles and
        payload `people`, read once per index generation (about 1 s at 62k movies, so the API reads
        it at start-up rather than at the first search). Raises IndexUnavailableError like any read."""
        if index is None:
            index = self._index()
        return self._once_per_generation("speller", index, lambda: Speller(search_names(index)))

    # -- explain -------------------------------------------------------------------------------
    def explain(
        self,
        ratings: Sequence[UserRating],
        movie_id: int,
        strategy: Strategy = DEFAULT_STRATEGY,
        hidden: Sequence[HiddenMovie] = (),
    ) -> Explanation:
        """Why `movie_id` suits the user: overall content similarity and its text/image split, the
        closest movies the user rated, and the same reason the recommendation list gives for it:
        for collab and hybrid the liked movie nearest in the collab space ("people who liked X also
        liked this"), for content the liked movie nearest in text. NotFoundError when not indexed.

        `hidden`: the user's hidden movies, which recommend() merges into the content taste as mild
        dislikes (they move its window of the last `history_size` and its centre): the same merge
        here, so the similarity and the reason are the list's own. `related` lists rated movies only."""
        index = self._index()
        history = with_hidden(ratings, hidden)[: self.history_size]
        stored = {m.id: m for m in index.retrieve([movie_id, *(r.movie_id for r in history)], vectors=EXPLAIN_VECTORS)}
        target = stored.get(movie_id)
        if target is None or "combined" not in target.vectors:
            raise NotFoundError(f"movie {movie_id} is not in the index")
        title = target.payload.get("title", str(movie_id))
        history = [r for r in history if r.movie_id in stored and r.movie_id != movie_id]
        own = _own_reason(ratings, hidden, movie_id)
        if not history:
            sentence = f"{title}: {own}." if own else _popular_sentence(title, target.payload, bool(ratings or hidden))
            return Explanation(movie_id, title, 0.0, 0.0, 0.0, [], sentence)
        mean = mean_rating(ratings)
        user, liked = self._content_taste(history, stored, mean)
        rated = set(map(_MOVIE_ID, ratings))  # not the hidden movies merged into the taste
        m = target.vectors["combined"]
        text_part = image_part = 0.0
        if user is not None:  # combined = [text half | image half] (app/embedding/movie.py)
            (user_text, user_image), (m_text, m_image) = combined_halves(user), combined_halves(m)
            text_part, image_part = float(user_text @ m_text), float(user_image @ m_image)
        similarity = text_part + image_part
        share = self._share_below(index, user, similarity) if user is not None else 0.0
        magnitude = abs(text_part) + abs(image_part)
        text_share = abs(text_part) / magnitude if magnitude else 1.0
        related = sorted(
            (
                RelatedRating(
                    r.movie_id,
                    stored[r.movie_id].payload.get("title", ""),
                    r.rating,
                    round(float(stored[r.movie_id].vectors["combined"] @ m), 4),
                )
                for r in history
                if "combined" in stored[r.movie_id].vectors and r.movie_id in rated
            ),
            key=lambda x: -x.similarity,
        )[:RELATED_SHOWN]
        if own is None and user is None and self._taste(index, ratings, strategy != "content", hidden) is None:
            sentence = _popular_sentence(title, target.payload, True)  # nothing liked: recommend() answers `popular`
        else:
            hit = Hit(movie_id, 0.0, target.payload, target.vectors)
            reason = own or self._list_reason(index, ratings, hit, strategy, liked, similarity)
            # A movie the user rated is left out of the taste it is compared with: say so.
            taste = "the taste of your other ratings" if own else "your taste"
            sentence = (
                _sentence(title, reason, (similarity, share), text_share, taste)
                if user is not None
                else f"{title}: {reason}."
            )
        return Explanation(
            movie_id, title, round(similarity, 4), round(text_share, 4), round(1 - text_share, 4), related, sentence
        )

    def _share_below(self, index: MovieIndex, taste: np.ndarray, similarity: float) -> float:
        """The share (0-1) of the catalogue sample no closer to `taste` (a unit `combined` vector)
        than `similarity`; 1.0 for an empty index."""
        sample = self._catalogue_sample(index)
        return float(np.mean(sample @ taste <= similarity + 1e-6)) if len(sample) else 1.0

    def _catalogue_sample(self, index: MovieIndex) -> np.ndarray:
        """The `combined` vectors (rows) of at most SAMPLE_MOVIES movies of the index, a seeded sample;
        once per index generation (the ids read from one scroll of a payload field)."""
        return self._once_per_generation("sample", index, lambda: _catalogue_sample(index))

    def _list_reason(
        self,
        index: MovieIndex,
        ratings: Sequence[UserRating],
        hit: Hit,
        strategy: Strategy,
        liked: list[tuple[UserRating, StoredMovie]],
        similarity: float,
    ) -> str:
        """The reason recommend() gives `hit` in a list answered from the user's taste (`liked`: the
        movies its content reasons may cite; `similarity`: the taste's cosine to the movie)."""
        liked_collab = self._liked_collab(index, ratings, hit.id) if strategy != "content" else None
        return _recommendation(hit, 0.0, *_citable(liked, liked_collab), similarity).reason

    def _liked_collab(self, index: MovieIndex, ratings: Sequence[UserRating], movie_id: int) -> Liked | None:
        """The liked movies a collab answer cites, as recommend() finds them; None when the user's
        movies have no collab vectors (the list then answered from content)."""
        long = [r for r in ratings[: self.tuning.collab_history] if r.movie_id != movie_id]
        mine, factors = _with_vector(index, long, "collab")
        if not mine:
            return None
        mean = mean_rating(ratings)
        return Liked.picked(mine, factors, _liked(mine, mean))


def _popularity_prior(index: MovieIndex) -> np.ndarray | None:
    """Recommender._prior's vector, read from `index`; None when no popular movie has collab factors."""
    popular = index.popular(PRIOR_MOVIES)
    weight = {h.id: float(h.payload.get("local_rating_count") or 0.0) for h in popular}
    stored = [m for m in index.retrieve(list(weight), vectors=("collab",)) if "collab" in m.vectors]
    if not stored:
        return None
    w = np.array([weight[m.id] for m in stored])
    total = w @ collab.factor_part(np.array([m.vectors["collab"] for m in stored]))
    norm = float(np.linalg.norm(total))
    return (total / norm).astype(np.float32) if norm > 1e-9 else None


def _catalogue_sample(index: MovieIndex) -> np.ndarray:
    """Recommender._catalogue_sample's rows, read from `index`."""
    ids = sorted(content_hashes(index))
    if len(ids) > SAMPLE_MOVIES:
        ids = sorted(np.random.default_rng(0).choice(ids, SAMPLE_MOVIES, replace=False).tolist())
    return index.stacked(ids, "combined").rows


def popular_reason(payload: dict[str, Any]) -> str:
    """The popular path's reason for a movie with this payload: "popular" from MIN_RATERS ratings on
    (the floor of the /movies/popular list); a filter narrow enough to list a movie with fewer says
    how few, and a movie nobody rated is new."""
    count = int(payload.get("local_rating_count") or 0)
    if not count:
        return NEW_REASON
    return "popular with viewers" if count >= MIN_RATERS else f"rated by only {count} viewer{'s' if count > 1 else ''}"


def _popular_sentence(title: str, payload: dict[str, Any], rated: bool) -> str:
    """explain's sentence for a user whose list is the popular one: what that list says of the movie,
    and why the list is the popular one (`rated`: they rated or hid something, nothing they liked)."""
    why = "nothing you rated says what you like yet" if rated else "you have no ratings yet"
    return f"{title}: {popular_reason(payload)}; {why}, so your list is the movies most rated here."


def _own_reason(ratings: Sequence[UserRating], hidden: Sequence[HiddenMovie], movie_id: int) -> str | None:
    """Why a movie the user rated or hid is never in their lists, or None for any other movie."""
    rating = next((r.rating for r in ratings if r.movie_id == movie_id), None)
    if rating is not None:
        return f"you rated it {rating:.1f}★, so it is not recommended to you"
    if any(h.movie_id == movie_id for h in hidden):
        return "you hid it (not interested), so it is not recommended to you"
    return None


def _titled_first(text: str, picks: list[tuple[Hit, float]]) -> list[tuple[Hit, float]]:
    """`picks` with the movies whose title is the search text first, then those with it as an
    alternate title, then the rest, each part in its order. Titles compare as the history import
    matches them (app/datasets/titles.match_keys: case, accents, punctuation and a leading article
    ignored), so "wall-e" is "WALL·E" and "Seven" is "Seven (Se7en)": a popular movie sharing a word
    ("Tank Girl" for "Party Girl") no longer comes first."""
    wanted = set(match_keys(text)[0])

    def rank(pick: tuple[Hit, float]) -> int:
        own, alternates = match_keys(str(pick[0].payload.get("title", "")))
        return 0 if not wanted.isdisjoint(own) else 1 if not wanted.isdisjoint(alternates) else 2

    return sorted(picks, key=rank)


def _filter_key(filter: MovieFilter) -> tuple[Hashable, ...]:
    """`filter` for a memo key: its id sets digested (a heavy user's `use_embeddings=false` excludes
    thousands), the rest as it is."""
    small = replace(filter, exclude_ids=frozenset(), only_ids=None)
    return small, digest_ids(filter.exclude_ids), digest_ids(filter.only_ids)


def _interleave_new(
    picks: list[tuple[Hit, float]], fresh: list[Hit], query: np.ndarray, every: int, min_ratio: float
) -> list[tuple[Hit, float]]:
    """The ranking with one new movie (no ratings yet) in every `every`-th place (the 10th, 20th...),
    best first. A new movie earns its place only when the user's collab query scores it at least
    `min_ratio` x the pick it displaces (both cosines to the same query); otherwise the pick stays.
    `picks` may hold new movies on their own merits: each is shown once, at the first place it gets."""
    ranking: list[tuple[Hit, float]] = []
    shown: set[int] = set()
    queue = list(fresh)
    for pick in picks:
        if pick[0].id in shown:
            continue
        while queue and queue[0].id in shown:  # listed already on its own score
            queue.pop(0)
        due = queue and (len(ranking) + 1) % every == 0 and "collab" in pick[0].vectors
        if due and queue[0].score >= min_ratio * float(query @ pick[0].vectors["collab"]):
            new = queue.pop(0)
            ranking.append((new, new.score))
            shown.add(new.id)
            if new.id == pick[0].id:  # the new movie ranked here on its own too: one place
                continue
        ranking.append(pick)
        shown.add(pick[0].id)
    return ranking


def _with_vector(index: MovieIndex, history: Sequence[UserRating], name: str) -> tuple[Sequence[UserRating], Stacked]:
    """The ratings of `history` whose movie has the `name` vector, and those vectors stacked, row for rating."""
    stacked = index.stacked(rating_column(history, "movie_id").tolist(), name)
    return take_ratings(history, stacked.positions), stacked


def _liked(history: Sequence[UserRating], mean: float) -> list[int]:
    """Where in `history` the movies a reason may cite are: rated at least LIKED_MIN and above the
    user's own midpoint (user_vector.taste_weights), so a disliked movie is never given as why they
    will like another."""
    midpoint = rating_centre(len(history), mean)
    stars = rating_column(history, "rating")
    liked: list[int] = np.flatnonzero((stars >= LIKED_MIN) & (stars > midpoint)).tolist()
    return liked


def _recommendation(
    hit: Hit, score: float, liked: _Citable, liked_collab: _Citable | None, taste_match: float | None = None
) -> Recommendation:
    """The pick with the reason that describes what ranked it. Collab answers (liked_collab not
    None): the liked movie with the largest collab cosine, "people who liked X (you: 5.0★) also liked
    this"; a movie nobody rated yet says so, its factors being predicted from content. Content
    answers: the liked movie with the largest text cosine; with none close (nothing rated 3.5★ and
    above the user's mean, say), CLOSE_REASON when `taste_match`, the content taste's cosine to the
    movie, reaches MATCH_MIN: the taste ranked it. Otherwise it is called a popular pick, never a match.
    A movie fewer than MIN_RATERS viewers rated is neither "popular" nor liked by "people who liked X"
    (one 3★ rating placed Marco Polo near Toy Story's fans): "rated by only N viewers" says what it is."""
    item = Recommendation.from_payload(hit.id, hit.payload, score)  # `from_payload` builds its own class
    raters = int(hit.payload.get("local_rating_count") or 0)
    item.reason = "a popular pick" if raters >= MIN_RATERS else popular_reason(hit.payload)
    new = not raters
    if liked_collab is not None and "collab" in hit.vectors:
        best = liked_collab.nearest(hit.vectors["collab"]) if new or raters >= MIN_RATERS else None
        if best is not None:
            cited = f"{_title(best)} (you: {best[0].rating:.1f}★)"
            item.reason = (
                f"{NEW_REASON}; its content predicts it for fans of {cited}"
                if new
                else f"people who liked {cited} also liked this"
            )
        elif new:
            item.reason = NEW_REASON
        return item
    text = hit.vectors.get(CANDIDATE_VECTOR)
    if text is not None:
        best = liked.nearest(text)
        if best is not None:
            item.reason = f"because you liked {_title(best)} ({best[0].rating:.1f}★)"
            return item
    if taste_match is not None and taste_match >= MATCH_MIN:
        item.reason = CLOSE_REASON
    return item


class _Citable:
    """The liked movies a reason may cite through one named vector. Their vectors are scaled to unit
    length once per answer rather than once per item: for a 5,000-rating user's 10 items, restacking
    them cost 8 ms and rescaling 500 collab factors per item another 8 ms. Stacked and scaled on the
    first `nearest` only: a collab or hybrid answer cites through collab factors, and never reads the
    content ones it used to stack and scale for every answer (about 0.1 ms of a light user's request)."""

    def __init__(
        self,
        liked: Callable[[], Liked],
        unit_rows: Callable[[np.ndarray], np.ndarray],
        unit_query: Callable[[np.ndarray], np.ndarray],
        min_raters: int = 0,
    ) -> None:
        """`liked` gives the movies (called once, when first needed); `unit_rows` scales their vectors as
        the cosine needs; `unit_query` does it for one candidate's vector, shaped so that
        `rows @ unit_query(v)` holds the cosines. `min_raters`: a movie is cited only when that many
        viewers rated it (its payload's local_rating_count)."""
        self._liked = liked
        self.unit_rows = unit_rows
        self.unit_query = unit_query
        self.min_raters = min_raters
        self._supported: dict[int, bool] = {}  # row -> rated by min_raters, read from its payload once

    @cached_property
    def _scaled(self) -> tuple[Liked, np.ndarray | None]:
        liked = self._liked()
        return liked, (self.unit_rows(liked.rows) if liked.ratings else None)

    def nearest(self, vector: np.ndarray) -> tuple[UserRating, dict[str, Any]] | None:
        """The liked movie most similar to `vector` (its rating and payload), when that similarity reaches MATCH_MIN."""
        liked, matrix = self._scaled
        if matrix is None:
            return None
        sims = np.ravel(matrix @ self.unit_query(vector))
        if not self.min_raters:
            best = int(np.argmax(sims))
            return (liked.ratings[best], liked.payloads[best]) if sims[best] >= MATCH_MIN else None
        for row in np.argsort(-sims).tolist():  # the nearest movie enough viewers rated
            if sims[row] < MATCH_MIN:
                return None
            if self._rated_enough(liked, row):
                return liked.ratings[row], liked.payloads[row]
        return None

    def _rated_enough(self, liked: Liked, row: int) -> bool:
        known = self._supported.get(row)
        if known is None:
            known = self._supported[row] = (liked.payloads[row].get("local_rating_count") or 0) >= self.min_raters
        return known


def _citable(
    liked: list[tuple[UserRating, StoredMovie]], liked_collab: Liked | None
) -> tuple[_Citable, _Citable | None]:
    """Content answers cite by text cosine (the text half of `combined` against a candidate's unit
    `text` vector), collab answers by the cosine of collab factors (collab.similarity), among the
    movies MIN_RATERS viewers rated."""
    content = _Citable(lambda: Liked.of(liked, "combined"), _unit_text_half, lambda text: text)
    if liked_collab is None:
        return content, None
    # "people who liked X also liked this" rests on other viewers: X is cited from MIN_RATERS ratings on.
    # A movie one other viewer rated (at 3★) was cited as why Star Wars, Forrest Gump and Toy Story suit
    # a user whose 5★ ratings were all such movies.
    by_collab = _Citable(lambda: liked_collab, collab.unit_factors, lambda v: collab.unit_factors(v).T, MIN_RATERS)
    return content, by_collab


def _unit_text_half(combined: np.ndarray) -> np.ndarray:
    """The text halves of `combined` rows at unit length (scaled by sqrt(0.7) in a movie with a poster)."""
    half, _ = combined_halves(combined)
    return np.asarray(half / np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12))


def _title(cited: tuple[UserRating, dict[str, Any]]) -> str:
    return str(cited[1].get("title", cited[0].movie_id))


def _sentence(title: str, reason: str, closeness: tuple[float, float], text_share: float, taste: str) -> str:
    """The explanation: the list's own reason, then the content similarity and the share of the
    catalogue no closer to the taste (`closeness`), called a match only when the similarity reaches
    MATCH_MIN and the share MATCH_SHARE. The similarity is the taste vector's (every rated movie,
    dislikes pulling away), so a reason citing one liked movie can stand beside a low one: said "as
    a whole". `taste` names that vector: for a movie the user rated, "the taste of your other
    ratings" (the movie's own rating is left out of it), so a 1★ movie never "matches your taste"."""
    similarity, share = closeness
    share = min(max(share, 0.01), 0.99)  # a sample's 0% or 100% would read as "none" or "all" of the catalogue
    source = "story and genres" if text_share >= 0.5 else "poster style"
    # the shares only where both halves count: without a poster it is all text, and "0% image" says nothing
    through = f"mostly through its {source} ({text_share:.0%} text, {1 - text_share:.0%} image)"
    through = through if 0.0 < text_share < 1.0 else f"through its {source}"
    content = (
        f"its content matches {taste}, closer to it than {share:.0%} of the catalogue (similarity "
        f"{similarity:.2f}), {through}"
        if similarity >= MATCH_MIN and share >= MATCH_SHARE
        else f"taken as a whole, its content is not close to {taste}: {1 - share:.0%} of the catalogue is "
        f"closer (similarity {similarity:.2f})"
    )
    return f"{title}: {reason}; {content}."
