"""Recommendation latency: the real Recommender over the real index adapters, on synthetic catalogues.

For each size, a seeded synthetic catalogue (clustered unit vectors, realistic payload) is built
through `EdgeStore.stage` + upserts + `publish`, and one recommendation per simulated user is
timed in-process: `Recommender.recommend(ratings, limit=10, strategy="content", filter=MovieFilter(genres=(g,)))`,
i.e. one retrieve of the user's 50 rated vectors, the taste vector, one filtered ANN query for
limit x 5 candidates (genre AND NOT the 50 rated ids) with their vectors, and the rerank.

Measured per size and engine:
- edge/plain: the staged shard as upserted (appendable plain segments, exact search), reopened;
- edge/hnsw:  after `EdgeIndex.optimize()` (HNSW graphs, merged segments), published and reopened;
- server/hnsw: through `ServerStore` when QDRANT_URL (or --server-url) is set.

Baseline, in the same run and interleaved query by query with the engine: the same Recommender
over `MemoryIndex` (app/vectorstore/memory.py), the project's exact in-memory index, holding the
combined vectors and payloads. Its per-query work is what an engine must do: the filter mask (genre
masks built once, like a payload index, then the rated ids cleared), exact dot products over the
rows that pass, top-k by argpartition, and building the hits (payload dicts and vectors).
So `ratio = p50 / baseline_p50` compares like with like: same Python above the index, same user.

--demo: the README's target ("recommendation in-process: p50 <= 5 ms, p99 <= 25 ms on the 10k-movie
demo index") on the real thing. The published index and the database of the project's settings
(./data, or --demo-data-dir) are opened by the API's own `Services` (its database engine, LiveIndex
with the vector cache, Recommender); `--queries` real users are sampled (seeded) from the database.
Per user and strategy (content; hybrid, the API's default), timed in turn: the ratings query as a
request makes it (a Session, `user_rating_columns`, commit, close), then `Recommender.recommend(ratings,
limit=10, strategy=..., filter=MovieFilter())` with the settings' popularity and diversity on the
index as served ("demo+cache"), on the same engine without the cache ("demo") and on a
`MemoryIndex` copy of the index's own vectors (for hybrid, exact weighted RRF over the two exact
lists). `request_*` is the ratings query plus the recommendation, per request.

--history 50,500,5000: heavy users. Seeded synthetic users with that many ratings (popular movies
more likely, MovieLens-like stars, six years of timestamps) are written into the demo database
through the repository; per user, the request's two queries and `Recommender.recommend` (hybrid
and content) are timed on the API's own `Services` (same engine, index and vector cache), then the
users are removed. --save-answers / --check-answers compare the lists of two runs (same seed), so a
speed-up can show it changed no answer.

Run: .venv/bin/python bench/query.py --sizes 10000,100000 [--queries 300] [--json]
     .venv/bin/python bench/query.py --demo [--demo-data-dir DIR] [--queries 300] [--json]
     .venv/bin/python bench/query.py --history 50,500,5000 [--demo-data-dir DIR] [--save-answers F | --check-answers F]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from common import emit, format_table, log, parse_ints, percentiles_ms, timer
from qdrant_client import QdrantClient, models
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, delete, select
from threadpoolctl import threadpool_limits

from app.api.controllers.recommendations import PAGE_DEPTH
from app.api.state import Services
from app.catalog.models import Rating, User
from app.catalog.repository import HiddenMovie, UserRating, hidden_movies, upsert_ratings, user_rating_columns
from app.embedding.movie import combine
from app.embedding.text import TEXT_DIM
from app.recommend.recommender import Recommender
from app.settings import Settings, get_settings
from app.vectorstore import Hit, Manifest, MemoryIndex, MovieFilter, MovieIndex, MoviePoint, StoredMovie, payload_for
from app.vectorstore.cache import CachedIndex
from app.vectorstore.edge import EdgeIndex, EdgeStore
from app.vectorstore.server import ServerStore

COMBINED_DIM = 2 * TEXT_DIM  # text half + projected image half (app/embedding/movie.py combine)
CHUNK = 10_000  # movies generated at a time; fixed, so a 10k catalogue is the first chunk of a 100k one
UPSERT_BATCH = 1_000  # points per Edge update call while building
SERVER_UPSERT_BATCH = 256  # points per request to a server (REST bodies stay a few MB)
N_CLUSTERS = 200  # topics: movies are noisy copies of a topic centroid, as real embeddings cluster
TEXT_NOISE = 1.0  # noise norm relative to the unit centroid: same-topic cosine ~0.5, others ~0
POSTER_SHARE = 0.7  # movies with a poster get an image half in the combined vector
HISTORY = 50
LIMIT = 10
RECALL_QUERIES = 50
PROGRESS_EVERY = 100
# fmt: off
GENRES = (
    "Drama", "Comedy", "Thriller", "Action", "Romance", "Horror", "Crime", "Documentary", "Adventure",
    "Science Fiction", "Family", "Mystery", "Fantasy", "Animation", "Music", "History", "War", "Western",
    "TV Movie", "Foreign",
)
GENRE_WEIGHTS = np.array([20, 14, 9, 8, 7, 6, 6, 5, 4, 4, 3, 3, 3, 2, 2, 1.5, 1, 1, 0.7, 0.5])
WORDS = (
    "night", "love", "last", "city", "dark", "man", "woman", "river", "king", "dream", "blood", "summer",
    "war", "house", "road", "secret", "star", "game", "storm", "heart", "ghost", "island", "fire", "day",
    "shadow", "empire", "silent", "golden", "lost", "wild", "return", "strange", "little", "final",
)
# fmt: on


# -- the synthetic catalogue ---------------------------------------------------------------------
@dataclass
class Chunk:
    """Movies [start, start + len) of the catalogue: vectors plus columnar payload."""

    start: int
    text: np.ndarray  # (n, 384) float32, unit rows
    combined: np.ndarray  # (n, 768) float32, unit rows
    cluster: np.ndarray
    year: np.ndarray
    genre_bits: np.ndarray  # bit g set when the movie has GENRES[g]
    popularity: np.ndarray
    vote_average: np.ndarray
    vote_count: np.ndarray
    has_poster: np.ndarray
    title_words: np.ndarray  # (n, 3) indexes into WORDS; column 2 < 0 means a two-word title

    def __len__(self) -> int:
        return len(self.year)


def _unit(m: np.ndarray) -> np.ndarray:
    return (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)


def centroids(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Topic centroids for the text half and the (projected) image half."""
    rng = np.random.default_rng([seed, 0])
    return _unit(rng.standard_normal((N_CLUSTERS, TEXT_DIM))), _unit(rng.standard_normal((N_CLUSTERS, TEXT_DIM)))


def _noisy(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    noise = rng.standard_normal(centre.shape).astype(np.float32) * (TEXT_NOISE / np.sqrt(centre.shape[1]))
    return _unit(centre + noise)


def make_chunk(seed: int, index: int, n: int, cents: tuple[np.ndarray, np.ndarray]) -> Chunk:
    """Chunk `index` of the catalogue; the same seed and index always give the same movies."""
    rng = np.random.default_rng([seed, 1, index])
    text_c, image_c = cents
    cluster = (rng.zipf(1.3, n) - 1) % N_CLUSTERS  # a few big topics, a long tail
    text = _noisy(rng, text_c[cluster])
    has_poster = rng.random(n) < POSTER_SHARE
    image_half = _noisy(rng, image_c[(cluster + rng.integers(0, 3, n)) % N_CLUSTERS])
    combined = np.empty((n, COMBINED_DIM), dtype=np.float32)
    combined[has_poster] = combine(text[has_poster], image_half[has_poster])
    combined[~has_poster] = combine(text[~has_poster], None)  # no poster: the text half alone
    return Chunk(
        start=index * CHUNK,
        text=text,
        combined=combined,
        cluster=cluster.astype(np.int32),
        year=np.clip(2024 - rng.exponential(22, n), 1920, 2024).astype(np.int16),
        genre_bits=_genre_bits(rng, n),
        popularity=rng.lognormal(1.5, 1.2, n).astype(np.float32),
        vote_average=np.clip(rng.normal(6.3, 1.0, n), 1, 10).round(1).astype(np.float32),
        vote_count=rng.lognormal(4, 1.6, n).astype(np.int32),
        has_poster=has_poster,
        title_words=_title_words(rng, n),
    )


def _title_words(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two or three words per title; -1 marks an absent third word."""
    words = rng.integers(0, len(WORDS), (n, 3))
    words[rng.random(n) < 0.6, 2] = -1
    return words


def _genre_bits(rng: np.random.Generator, n: int) -> np.ndarray:
    """1-3 distinct genres per movie, drawn by GENRE_WEIGHTS (Drama and Comedy common, Western rare)."""
    p = GENRE_WEIGHTS / GENRE_WEIGHTS.sum()
    count = rng.choice([1, 2, 3], size=n, p=[0.4, 0.4, 0.2])
    # Gumbel top-k: the k largest of log p + Gumbel noise are a weighted sample without replacement.
    keys = np.log(p) + rng.gumbel(size=(n, len(GENRES)))
    ranks = np.argsort(-keys, axis=1)
    bits = np.zeros(n, dtype=np.uint32)
    for k in range(3):
        bits |= np.where(count > k, np.uint32(1) << ranks[:, k].astype(np.uint32), np.uint32(0))
    return bits


def payload(chunk: Chunk, i: int, seed: int) -> dict[str, Any]:
    """The payload of the chunk's i-th movie, through the project's own payload_for."""
    words = [WORDS[w] for w in chunk.title_words[i].tolist() if w >= 0]
    bits = int(chunk.genre_bits[i])
    movie_id = chunk.start + i
    return payload_for(
        title=" ".join(words).title(),
        year=int(chunk.year[i]),
        genres=[g for b, g in enumerate(GENRES) if bits >> b & 1],
        popularity=float(chunk.popularity[i]),
        vote_average=float(chunk.vote_average[i]),
        vote_count=int(chunk.vote_count[i]),
        has_poster=bool(chunk.has_poster[i]),
        content_hash=hashlib.blake2b(f"{seed}:{movie_id}".encode(), digest_size=16).hexdigest(),
        local_rating_count=int(chunk.vote_count[i]),
    )


def chunks(size: int, seed: int) -> Iterator[Chunk]:
    cents = centroids(seed)
    for index, start in enumerate(range(0, size, CHUNK)):
        yield make_chunk(seed, index, min(CHUNK, size - start), cents)


def points(chunk: Chunk, seed: int) -> list[MoviePoint]:
    """Text and combined vectors only: the image vector (1280-d) is not needed to recommend."""
    return [
        MoviePoint(chunk.start + i, {"text": chunk.text[i], "combined": chunk.combined[i]}, payload(chunk, i, seed))
        for i in range(len(chunk))
    ]


def manifest(size: int, seed: int) -> Manifest:
    return Manifest(
        text_model="synthetic-384",
        text_dim=TEXT_DIM,
        image_model="efficientnet-lite0",
        image_dim=1280,
        combined_dim=COMBINED_DIM,
        projection_seed=seed,
        collab_dim=64,
        stats={"bench_size": size, "bench_seed": seed},
    )


Sink = Callable[[Chunk, list[MoviePoint]], None]  # takes each generated chunk and its points


@dataclass
class Synthetic:
    """The whole catalogue in the baseline (combined vectors and payloads), and its topics."""

    size: int
    baseline: MemoryIndex
    clusters: list[np.ndarray]  # movie ids per topic

    @classmethod
    def generate(cls, size: int, seed: int, sink: Sink | None = None) -> Synthetic:
        """Generate the catalogue chunk by chunk into the baseline, passing each chunk's points on."""
        baseline = MemoryIndex()
        cluster = []
        for chunk in chunks(size, seed):
            pts = points(chunk, seed)
            if sink is not None:
                sink(chunk, pts)
            baseline.upsert([MoviePoint(p.id, {"combined": p.vectors["combined"]}, p.payload) for p in pts])
            cluster.append(chunk.cluster)
        topics = np.concatenate(cluster)
        order = np.argsort(topics, kind="stable")
        clusters = np.split(order, np.searchsorted(topics[order], np.arange(1, N_CLUSTERS)))
        baseline.count(MovieFilter(genres=GENRES))  # builds its columns now, not in the first query
        return cls(size, baseline, clusters)

    def filter_share(self, queries: Sequence[UserQuery]) -> float:
        """Mean share of the catalogue that passes a query's genre filter."""
        share = {g: self.baseline.count(MovieFilter(genres=(g,))) / self.size for g in {q.genre for q in queries}}
        return round(float(np.mean([share[q.genre] for q in queries])), 4)


# -- users and queries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class UserQuery:
    ratings: tuple[UserRating, ...]  # newest first
    genre: str


def make_queries(synthetic: Synthetic, n: int, seed: int) -> list[UserQuery]:
    """Users who like two or three topics (rated 3.5-5) and rated some random movies lower (0.5-3)."""
    rng = np.random.default_rng([seed, 2])
    p = GENRE_WEIGHTS / GENRE_WEIGHTS.sum()
    nonempty = [c for c in synthetic.clusters if len(c)]
    out = []
    for _ in range(n):
        liked_topics = rng.choice(len(nonempty), size=rng.integers(2, 4), replace=False)
        pool = np.concatenate([nonempty[t] for t in liked_topics])
        liked = rng.choice(pool, size=min(35, len(pool)), replace=False)
        rest = rng.choice(synthetic.size, size=HISTORY, replace=False)
        ids = list(dict.fromkeys([*liked.tolist(), *rest.tolist()]))[:HISTORY]
        stars = np.where(
            np.isin(ids, liked), rng.choice([3.5, 4, 4.5, 5], len(ids)), rng.choice(np.arange(1, 7) / 2, len(ids))
        )
        ts = 1_700_000_000 - np.cumsum(rng.exponential(86_400 * 7, len(ids))).astype(np.int64)  # newest first
        order = rng.permutation(len(ids))  # which rated movie is newest is unrelated to its id
        ratings = tuple(UserRating(int(ids[j]), float(stars[j]), int(t)) for j, t in zip(order, ts, strict=True))
        out.append(UserQuery(ratings, str(rng.choice(GENRES, p=p))))
    return out


# -- timing --------------------------------------------------------------------------------------
SearchCall = tuple[str, tuple[Any, ...], dict[str, Any]]  # ("query" or "query_fused", args, kwargs)


class Probe:
    """Wraps a MovieIndex: times retrieve and the searches, and keeps the first search since the last
    `recall()`: a recommendation's candidate search, not the exploration query that may follow it."""

    def __init__(self, inner: MovieIndex) -> None:
        self.inner = inner
        self.retrieve_s: list[float] = []
        self.search_s: list[float] = []
        self.call: SearchCall | None = None
        self.hits: list[Hit] = []

    def __getattr__(self, name: str) -> Any:
        """Anything else (popular, genres, ...) goes straight to the wrapped index."""
        return getattr(self.inner, name)

    def retrieve(self, ids: Sequence[int], vectors: Sequence[str] = ()) -> list[StoredMovie]:
        start = time.perf_counter()
        out = self.inner.retrieve(ids, vectors)
        self.retrieve_s.append(time.perf_counter() - start)
        return out

    def query(self, *args: Any, **kwargs: Any) -> list[Hit]:
        return self._search("query", args, kwargs)

    def query_fused(self, *args: Any, **kwargs: Any) -> list[Hit]:
        return self._search("query_fused", args, kwargs)

    def _search(self, kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Hit]:
        start = time.perf_counter()
        hits = getattr(self.inner, kind)(*args, **kwargs)
        self.search_s.append(time.perf_counter() - start)
        if self.call is None:
            self.call, self.hits = (kind, args, kwargs), hits
        return hits

    def recall(self, oracle: MemoryIndex) -> tuple[int, int]:
        """(found, total): how many of the oracle's answer to the kept search the engine's hits hold
        ((0, 0) when there was none); then forgets it."""
        if self.call is None:
            return 0, 0
        kind, args, kwargs = self.call
        exact = {h.id for h in getattr(oracle, kind)(*args, **kwargs)}
        self.call = None
        return len(exact & {h.id for h in self.hits}), len(exact)


def no_text(_: str) -> np.ndarray:
    raise AssertionError("recommend() never encodes text")


def time_queries(
    engine: MovieIndex, baseline: MemoryIndex, queries: Sequence[UserQuery], warmup: int
) -> dict[str, Any]:
    """Engine and baseline interleaved query by query, so drift on a shared machine hits both alike."""
    probe, base_probe = Probe(engine), Probe(baseline)
    rec = Recommender(index=lambda: probe, encode_query=no_text)
    base = Recommender(index=lambda: base_probe, encode_query=no_text)
    engine_s: list[float] = []
    base_s: list[float] = []
    for n, q in enumerate(queries):  # the first `warmup` are not timed
        f = MovieFilter(genres=(q.genre,))
        with timer() as t:
            rec.recommend(q.ratings, limit=LIMIT, strategy="content", filter=f)
        with timer() as b:
            base.recommend(q.ratings, limit=LIMIT, strategy="content", filter=f)
        if n >= warmup:
            engine_s.append(t[0])
            base_s.append(b[0])
        if (n + 1) % PROGRESS_EVERY == 0:
            log(f"  {n + 1}/{len(queries)} queries, last: engine {t[0] * 1e3:.1f} ms, baseline {b[0] * 1e3:.1f} ms")
    out: dict[str, Any] = {**percentiles_ms(engine_s)}
    out["baseline_p50_ms"] = percentiles_ms(base_s)["p50_ms"]
    out["baseline_p95_ms"] = percentiles_ms(base_s)["p95_ms"]
    out["ratio"] = round(out["p50_ms"] / out["baseline_p50_ms"], 3) if out["baseline_p50_ms"] else None
    out["retrieve_p50_ms"] = percentiles_ms(probe.retrieve_s[warmup:])["p50_ms"]
    out["query_p50_ms"] = percentiles_ms(probe.search_s[warmup:])["p50_ms"]
    out["baseline_query_p50_ms"] = percentiles_ms(base_probe.search_s[warmup:])["p50_ms"]
    out["recall_at_50"] = recall(probe, rec, baseline, queries[warmup : warmup + RECALL_QUERIES])
    return out


def recall(probe: Probe, rec: Recommender, baseline: MemoryIndex, queries: Sequence[UserQuery]) -> float:
    """Share of the exact top candidates (limit x candidate_factor) the engine's ANN query returned."""
    found = total = 0
    probe.call = None
    for q in queries:
        rec.recommend(q.ratings, limit=LIMIT, strategy="content", filter=MovieFilter(genres=(q.genre,)))
        f, t = probe.recall(baseline)
        found, total = found + f, total + t
    return round(found / total, 4) if total else float("nan")


# -- engines -------------------------------------------------------------------------------------
def bench_edge(
    size: int, seed: int, root: Path, queries_for: Callable[[Synthetic], list[UserQuery]], args: argparse.Namespace
) -> tuple[Synthetic, list[dict[str, Any]]]:
    """Build (or reuse) the Edge store for `size`; time the plain and the HNSW index."""
    store = EdgeStore(root)
    published = store.manifest()
    stats = published.stats if published is not None else {}
    if not args.rebuild and stats.get("bench_size") == size and stats.get("bench_seed") == seed:
        log(f"edge {size:,}: reusing the published index in {root}")
        with timer() as t:
            synthetic = Synthetic.generate(size, seed)
        log(f"edge {size:,}: regenerated the baseline in {t[0]:.1f} s")
        queries = queries_for(synthetic)
        build = {k: stats.get(k) for k in ("upsert_s", "optimize_s", "publish_s")}
        rows: list[dict[str, Any]] = []
    else:
        synthetic, queries, build, rows = _build_edge(store, size, seed, queries_for, args)
    if not args.skip_hnsw:
        with timer() as t:
            index = store.open()
        log(f"edge {size:,}: timing {len(queries)} queries on the HNSW index")
        timing = time_queries(index, synthetic.baseline, queries, args.warmup)
        rows.append(_row(size, "edge", "hnsw", build, t[0], timing))
        # What the API serves: the same generation with its vectors held in memory (app/vectorstore/cache.py).
        with timer() as t:
            cached = CachedIndex.wrap(index, max_points=size)
        log(f"edge {size:,}: vectors cached in {t[0]:.1f} s; timing the cached HNSW index")
        timing = time_queries(cached, synthetic.baseline, queries, args.warmup)
        rows.append(_row(size, "edge", "hnsw+cache", build, t[0], timing))
        index.close()
    for row in rows:
        row["filter_share"] = synthetic.filter_share(queries)
    return synthetic, rows


def _build_edge(
    store: EdgeStore,
    size: int,
    seed: int,
    queries_for: Callable[[Synthetic], list[UserQuery]],
    args: argparse.Namespace,
) -> tuple[Synthetic, list[UserQuery], dict[str, Any], list[dict[str, Any]]]:
    """Stage, upsert and time the plain index; then optimize and publish unless --skip-hnsw."""
    m = manifest(size, seed)
    staged = store.stage(m, rebuild=True)
    sink, upsert_s = _upserter(staged, size, UPSERT_BATCH)
    with timer() as t:
        synthetic = Synthetic.generate(size, seed, sink)
        staged.flush()
    log(f"edge {size:,}: upserted in {upsert_s[0]:.1f} s (+{t[0] - upsert_s[0]:.1f} s generating)")
    staged.close()
    queries = queries_for(synthetic)
    with timer() as t:
        plain = EdgeIndex.load(store.root / "staging" / "shard")
    build: dict[str, Any] = {"upsert_s": round(upsert_s[0], 2)}
    rows = []
    if not args.skip_plain:
        log(f"edge {size:,}: timing {len(queries)} queries on the plain index")
        timing = time_queries(plain, synthetic.baseline, queries, args.warmup)
        rows.append(_row(size, "edge", "plain", build, t[0], timing))
    if args.skip_hnsw:
        plain.close()
        return synthetic, queries, build, rows
    log(f"edge {size:,}: optimize (HNSW build) started; minutes at 100k on 2 cores, hours at 1M")
    with timer() as o:
        plain.optimize()
    build["optimize_s"] = round(o[0], 2)
    with timer() as p:
        store.publish(plain, _with_stats(m, build))  # hashes() + optimize (a no-op now) + flush + rename
    build["publish_s"] = round(p[0], 2)
    log(f"edge {size:,}: optimize {o[0]:.1f} s, publish {p[0]:.1f} s")
    return synthetic, queries, build, rows


def _upserter(
    index: MovieIndex, size: int, batch: int
) -> tuple[Callable[[Chunk, list[MoviePoint]], None], list[float]]:
    """A chunk consumer that upserts in batches, accumulating only the upsert time."""
    spent = [0.0]

    def sink(chunk: Chunk, pts: list[MoviePoint]) -> None:
        start = time.perf_counter()
        for i in range(0, len(pts), batch):
            index.upsert(pts[i : i + batch])
        spent[0] += time.perf_counter() - start
        done = chunk.start + len(chunk)
        if done % 100_000 == 0 or done == size:
            log(f"  upserted {done:,}/{size:,}")

    return sink, spent


def _with_stats(m: Manifest, stats: dict[str, Any]) -> Manifest:
    return Manifest.from_dict({**m.to_dict(), "stats": {**m.stats, **stats}})


def _row(
    size: int, engine: str, kind: str, build: dict[str, Any], open_s: float, timing: dict[str, Any]
) -> dict[str, Any]:
    build_s = sum(v for k, v in build.items() if v and (kind != "plain" or k == "upsert_s"))
    return {
        "size": size,
        "engine": engine,
        "index": kind,
        **timing,
        **build,
        "build_s": round(build_s, 2),
        "open_s": round(open_s, 3),
    }


def bench_server(
    size: int, seed: int, url: str, synthetic: Synthetic, queries: list[UserQuery], args: argparse.Namespace
) -> dict[str, Any]:
    """The same catalogue through ServerStore: a fresh collection behind a bench alias, then dropped."""
    client = QdrantClient(location=":memory:") if url == ":memory:" else QdrantClient(url=url, timeout=120)
    store = ServerStore(client, alias=f"bench_{size}_{seed}")
    m = manifest(size, seed)
    index = store.stage(m, rebuild=True)
    sink, upsert_s = _upserter(index, size, SERVER_UPSERT_BATCH)
    for chunk in chunks(size, seed):
        sink(chunk, points(chunk, seed))
    with timer() as p:
        store.publish(index, m)  # waits (bounded) for the server's optimiser to build HNSW
    log(f"server {size:,}: upserted in {upsert_s[0]:.1f} s, publish {p[0]:.1f} s")
    with timer() as t:
        live = store.open()
    try:
        timing = time_queries(live, synthetic.baseline, queries, args.warmup)
    finally:
        if not args.keep_server:
            _drop_alias(client, store.alias)
        client.close()
    build = {"upsert_s": round(upsert_s[0], 2), "publish_s": round(p[0], 2)}
    row = _row(size, "server", "hnsw", build, t[0], timing)
    row["filter_share"] = synthetic.filter_share(queries)
    return row


def _drop_alias(client: QdrantClient, alias: str) -> None:
    target = next((a.collection_name for a in client.get_aliases().aliases if a.alias_name == alias), None)
    drop = models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
    client.update_collection_aliases(change_aliases_operations=[drop])
    if target:
        client.delete_collection(target)


# -- the demo index: the API's own index, database and users -------------------------------------
DEMO_STRATEGIES = ("content", "hybrid")  # hybrid is the API's default strategy
DEMO_VECTORS = ("text", "combined", "collab")  # what recommend() reads; the demo has no image vectors
TARGET = {"p50_ms": 5.0, "p99_ms": 25.0}  # README: recommendation in-process on the 10k-movie demo index
MISSING_DEMO = "run `make run` or `movierec ingest --source demo` first"


class NoTextModel:
    """The API's Services need a text encoder; recommend() never encodes text, so none is loaded."""

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("recommend() never encodes text")


def demo_services(data_dir: Path | None) -> Services:
    """The API's Services (MOVIEREC_* and DATABASE_URL/QDRANT_URL from the environment), with the data
    dir replaced when given and no answer memo, and its database schema checked as the API's lifespan does. Exits with a
    hint when no demo index or database is there."""
    settings = get_settings() if data_dir is None else Settings(data_dir=data_dir)
    # Latency of the work itself: a repeated request must not be answered by the worker's memo.
    settings = settings.model_copy(update={"answer_memo_entries": 0})
    if not settings.database_url and not (settings.data_dir / "movierec.db").is_file():
        sys.exit(f"no database at {settings.data_dir / 'movierec.db'}: {MISSING_DEMO}")
    services = Services.open(settings, NoTextModel())
    if not settings.qdrant_url and services.store.generation() is None:
        services.close()
        sys.exit(f"no published index in {settings.index_dir}: {MISSING_DEMO}")
    services.sync_database()  # as the API's lifespan does: the schema's missing indexes are added
    return services


def like_the_api(services: Services, index: Callable[[], MovieIndex]) -> Recommender:
    """A Recommender over `index` with the settings the API's own (services.recommender) has."""
    s = services.settings
    return Recommender(
        index=index,
        encode_query=no_text,
        history_size=s.recommend.history_size,
        half_life_days=s.recommend.half_life_days,
    )


def sample_users(db: Engine, n: int, seed: int) -> list[int]:
    """A seeded sample of the users who have ratings (all of them when there are fewer than n)."""
    with Session(db) as session:
        users = sorted(set(session.exec(select(Rating.user_id).distinct())))
    if not users:
        sys.exit(f"the database has no ratings: {MISSING_DEMO}")
    rng = np.random.default_rng([seed, 3])
    picked = rng.choice(len(users), size=min(n, len(users)), replace=False)
    return [int(users[i]) for i in picked]


def request_inputs(db: Engine, user_id: int, *, hidden: bool) -> tuple[Sequence[UserRating], list[HiddenMovie]]:
    """What GET /movies/recommendations reads in one Session, committed and closed as the API's
    Services.in_session does: the ratings, and the hidden movies when `hidden`."""
    session = Session(db)
    try:
        ratings = user_rating_columns(session, user_id)
        hides = hidden_movies(session, user_id) if hidden else []
        session.commit()
    finally:
        session.close()
    return ratings, hides


def bench_demo(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The published demo index and the database, opened by the API's own Services; real users.

    Per sampled user and strategy (content, hybrid): the ratings query as a request makes it, then
    `Recommender.recommend` on the index as served (LiveIndex + vector cache), on the same engine
    without the cache, and on the exact in-memory baseline; the three in turn, order rotated per user."""
    services = demo_services(args.demo_data_dir)
    settings, db, live = services.settings, services.engine, services.live
    log(f"demo: data dir {settings.data_dir}, database {settings.sqlalchemy_url.split('://')[0]}")
    engine_name = "server" if settings.qdrant_url else "edge"
    engine_index: MovieIndex | None = None
    cache_s = 0.0
    try:
        with timer() as t:
            served_index = live.current()
        open_s = t[0]
        generation = live.generation
        cached = isinstance(served_index, CachedIndex)  # the API's rule: Edge, up to vector_cache_max_points
        if cached:  # the engine alone, for the "engine only" rows: a second handle on the same generation
            with timer() as t:
                engine_index = services.store.open()
            open_s, cache_s = t[0], open_s - t[0]
        log(
            f"demo: generation {generation} opened in {open_s:.2f} s"
            + (f", vectors cached in {cache_s:.2f} s" if cached else " (no vector cache: served = engine)")
        )
        with timer() as t:
            baseline = MemoryIndex.copy_of(served_index, DEMO_VECTORS)
        log(f"demo: {baseline.count():,} movies; exact baseline loaded in {t[0]:.1f} s")

        recs = {"served": services.recommender, "baseline": like_the_api(services, lambda: baseline)}
        if engine_index is not None:
            recs["engine"] = like_the_api(services, lambda: engine_index)
        users = sample_users(db, args.queries + args.warmup, args.seed)
        log(f"demo: {len(users)} users ({args.warmup} warm-up), strategies {', '.join(DEMO_STRATEGIES)}")
        timing, counts = _time_demo(db, recs, users, args.warmup, settings)
        recall_at = {
            s: _demo_recall(services, baseline, s, users[args.warmup :][:RECALL_QUERIES]) for s in DEMO_STRATEGIES
        }
        if live.generation != generation:
            log(f"demo: WARNING: a new generation ({live.generation}) was published during the run")
    finally:
        if engine_index is not None:
            engine_index.close()
        services.close()

    rows = []
    kinds = [("served", "demo+cache" if cached else "demo")] + ([("engine", "demo")] if cached else [])
    for strategy in DEMO_STRATEGIES:
        times = timing[strategy]
        base = percentiles_ms(times["baseline"])
        db_ms = percentiles_ms(times["db"])
        for key, kind in kinds:
            row: dict[str, Any] = {
                "size": baseline.count(),
                "engine": engine_name,
                "index": kind,
                "strategy": strategy,
                "users": len(times[key]),
                **percentiles_ms(times[key]),
                "baseline_p50_ms": base["p50_ms"],
                "baseline_p95_ms": base["p95_ms"],
                "baseline_p99_ms": base["p99_ms"],
                "baseline": "exact numpy" if strategy == "content" else "exact numpy, weighted RRF",
            }
            row["ratio"] = round(row["p50_ms"] / base["p50_ms"], 3) if base["p50_ms"] else None
            row.update({f"db_{k}": v for k, v in db_ms.items()})
            req = [d + r for d, r in zip(times["db"], times[key], strict=True)]  # per request, not summed percentiles
            row.update({f"request_{k}": v for k, v in percentiles_ms(req).items()})
            row["db_share_p50"] = round(float(np.median([d / r for d, r in zip(times["db"], req, strict=True)])), 3)
            row["recall_at_50"] = recall_at[strategy]
            row["top10_overlap"] = round(float(np.mean(counts[strategy][f"overlap_{key}"])), 4)
            row["paths"] = dict(counts[strategy][f"paths_{key}"])
            row["meets_target"] = row["p50_ms"] <= TARGET["p50_ms"] and row["p99_ms"] <= TARGET["p99_ms"]
            row["open_s"] = round(open_s + (cache_s if key == "served" and cached else 0.0), 3)
            rows.append(row)
    n_ratings = [len(r) for r in counts["ratings"]]
    meta = {
        "data_dir": settings.data_dir,
        "generation": generation,
        "vector_cache": cached,
        "users_sampled": len(users),
        "ratings_per_user": {"min": min(n_ratings), "median": float(np.median(n_ratings)), "max": max(n_ratings)},
        "popularity": settings.recommend.popularity_weight,
        "diversity": settings.recommend.diversity,
        "history_size": settings.recommend.history_size,
        "half_life_days": settings.recommend.half_life_days,
        "target": TARGET,
    }
    return rows, meta


def _time_demo(
    db: Engine, recs: dict[str, Recommender], users: Sequence[int], warmup: int, settings: Settings
) -> tuple[dict[str, dict[str, list[float]]], dict[str, Any]]:
    """Per user and strategy: the ratings query, then each recommender in turn (order rotated per
    user, so neither side always runs on warm caches). The first `warmup` users are not timed."""
    names = list(recs)
    timing: dict[str, dict[str, list[float]]] = {s: {k: [] for k in ["db", *names]} for s in DEMO_STRATEGIES}
    counts: dict[str, Any] = {"ratings": []}
    for s in DEMO_STRATEGIES:
        counts[s] = {f"paths_{k}": Counter() for k in names} | {f"overlap_{k}": [] for k in names}
    kwargs = {
        "limit": LIMIT,
        "filter": MovieFilter(),
        "popularity": settings.recommend.popularity_weight,
        "diversity": settings.recommend.diversity,
    }
    for n, uid in enumerate(users):
        timed = n >= warmup
        order = names[n % len(names) :] + names[: n % len(names)]
        for strategy in DEMO_STRATEGIES:
            with timer() as d:
                ratings, _ = request_inputs(db, uid, hidden=False)
            answers = {}
            for name in order:
                with timer() as t:
                    answers[name] = recs[name].recommend(ratings, strategy=strategy, **kwargs)  # type: ignore[arg-type]
                if timed:
                    timing[strategy][name].append(t[0])
            if not timed:
                continue
            timing[strategy]["db"].append(d[0])
            exact = {i.id for i in answers["baseline"].items}
            for name, answer in answers.items():
                counts[strategy][f"paths_{name}"][answer.path] += 1
                got = {i.id for i in answer.items}
                counts[strategy][f"overlap_{name}"].append(len(got & exact) / max(len(exact), 1))
            if strategy == DEMO_STRATEGIES[0]:
                counts["ratings"].append(ratings)
        if (n + 1) % PROGRESS_EVERY == 0:
            last = ", ".join(
                f"{s} {timing[s]['served'][-1] * 1e3:.1f} ms" for s in DEMO_STRATEGIES if timing[s]["served"]
            )
            log(f"  {n + 1}/{len(users)} users, last served: {last}")
    return timing, counts


def _demo_recall(services: Services, baseline: MemoryIndex, strategy: str, users: Sequence[int]) -> float:
    """Share of the exact candidates (limit x candidate_factor; for hybrid the exact fused list) that
    the engine's own search returned, on the served index, for the same query vectors and filter."""
    probe = Probe(services.live.current())
    rec = like_the_api(services, lambda: probe)
    settings = services.settings
    found = total = 0
    for uid in users:
        ratings, _ = request_inputs(services.engine, uid, hidden=False)
        rec.recommend(
            ratings,
            limit=LIMIT,
            strategy=strategy,  # type: ignore[arg-type]
            popularity=settings.recommend.popularity_weight,
            diversity=settings.recommend.diversity,
        )
        f, t = probe.recall(baseline)
        found, total = found + f, total + t
    return round(found / total, 4) if total else float("nan")


DEMO_COLUMNS = (
    "size",
    "engine",
    "index",
    "strategy",
    "users",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "baseline_p50_ms",
    "ratio",
    "db_p50_ms",
    "db_p99_ms",
    "request_p50_ms",
    "request_p95_ms",
    "request_p99_ms",
    "recall_at_50",
    "top10_overlap",
    "open_s",
)


# -- heavy users: latency by history length ------------------------------------------------------
HEAVY_USER_BASE = 900_000_000_000  # synthetic users' ids: far above any source's, removed after the run
HEAVY_STRATEGIES = ("hybrid", "content")
HALF_STARS = np.arange(1, 11) / 2
STAR_WEIGHTS = np.array([1, 3, 2, 7, 4, 20, 13, 27, 8, 15], dtype=float)  # roughly MovieLens' half-star shares
HISTORY_SPAN_S = 6 * 365 * 86_400  # a heavy user's ratings spread over six years, ending now


def heavy_histories(
    movies: Mapping[int, float], lengths: Sequence[int], per_length: int, seed: int, now: int
) -> dict[int, list[tuple[int, int, float, int]]]:
    """Seeded synthetic users: per history length, `per_length` users with that many distinct movies
    drawn by popularity (weight 1 + the movie's local rating count, so heavy users rate the popular
    head and some of the tail), half-star ratings with MovieLens-like shares, timestamps over six
    years. {user id: [(user_id, movie_id, rating, timestamp), ...]}."""
    ids = np.array(sorted(movies), dtype=np.int64)
    weight = np.array([1.0 + movies[i] for i in ids.tolist()])
    users: dict[int, list[tuple[int, int, float, int]]] = {}
    for length in lengths:
        if length > len(ids):
            sys.exit(f"--history {length}: the index has only {len(ids):,} movies")
        for k in range(per_length):
            uid = HEAVY_USER_BASE + length * 1_000 + k
            rng = np.random.default_rng([seed, 5, length, k])
            picked = rng.choice(ids, size=length, replace=False, p=weight / weight.sum())
            stars = rng.choice(HALF_STARS, size=length, p=STAR_WEIGHTS / STAR_WEIGHTS.sum())
            stamps = now - rng.integers(0, HISTORY_SPAN_S, size=length)
            users[uid] = [(uid, int(m), float(r), int(t)) for m, r, t in zip(picked, stars, stamps, strict=True)]
    return users


def _write_users(db: Engine, users: Mapping[int, list[tuple[int, int, float, int]]]) -> None:
    """Through the repository, as an import writes ratings (replacing any left by an earlier run)."""
    _remove_users(db, list(users))
    with Session(db) as session:
        for rows in users.values():
            upsert_ratings(session, rows)
        session.commit()


def _remove_users(db: Engine, user_ids: Sequence[int]) -> None:
    with Session(db) as session:
        session.exec(delete(Rating).where(col(Rating.user_id).in_(user_ids)))  # type: ignore[call-overload]
        session.exec(delete(User).where(col(User.id).in_(user_ids)))  # type: ignore[call-overload]
        session.commit()


def bench_history(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Recommendation latency by history length, on the API's own Services (Services.open: the same
    database engine, live index with its vector cache, and Recommender a worker builds) over the demo
    index. Synthetic heavy users are written through the repository and removed afterwards. Per user
    and strategy, repeated `--repeats` times: the request's two queries ("db"), then
    `Recommender.recommend` with the API's arguments ("recommend"); "request" is their sum."""
    services = demo_services(args.demo_data_dir)
    settings, rec, db = services.settings, services.recommender, services.engine
    try:
        with timer() as t:
            index = services.live.current()
        log(f"history: index generation {services.live.generation} opened in {t[0]:.1f} s")
        movies = {h.id: h.score for h in index.popular(index.count())}  # score: the local rating count
        users = heavy_histories(movies, args.history, args.users_per_length, args.seed, int(time.time()))
        with timer() as t:
            _write_users(db, users)
        log(f"history: {len(users)} synthetic users written in {t[0]:.1f} s")
        kwargs = {
            "limit": LIMIT,
            "filter": MovieFilter(),
            "popularity": settings.recommend.popularity_weight,
            "diversity": settings.recommend.diversity,
            "depth": PAGE_DEPTH,
        }
        timing: dict[tuple[int, str], dict[str, list[float]]] = {}
        answers: dict[str, list[int]] = {}
        for rep in range(args.repeats + 1):  # the first pass warms up and is not timed
            for uid, rows in users.items():
                for strategy in HEAVY_STRATEGIES:
                    cpu = [time.process_time()]  # every thread's: the engine searches on its own pool
                    with timer() as d:
                        ratings, hidden = request_inputs(db, uid, hidden=True)
                    cpu.append(time.process_time())
                    with timer() as r:
                        answer = rec.recommend(ratings, strategy=strategy, hidden=hidden, **kwargs)  # type: ignore[arg-type]
                    cpu.append(time.process_time())
                    answers[f"{len(rows)}/{uid}/{strategy}"] = [i.id for i in answer.items]
                    if rep:
                        empty: dict[str, list[float]] = {"db": [], "recommend": [], "db_cpu": [], "recommend_cpu": []}
                        row = timing.setdefault((len(rows), strategy), {**empty, "path": []})
                        row["db"].append(d[0])
                        row["recommend"].append(r[0])
                        row["db_cpu"].append(cpu[1] - cpu[0])
                        row["recommend_cpu"].append(cpu[2] - cpu[1])
                        row["path"].append(answer.path)  # type: ignore[arg-type]
    finally:
        with contextlib.suppress(NameError):
            _remove_users(db, list(users))
        services.close()
    return _history_rows(timing, len(movies)), {
        "answers": answers,
        "users_per_length": args.users_per_length,
        "repeats": args.repeats,
        "data_dir": settings.data_dir,
    }


def _history_rows(timing: Mapping[tuple[int, str], Mapping[str, list[Any]]], size: int) -> list[dict[str, Any]]:
    rows = []
    for (length, strategy), t in sorted(timing.items()):
        request = [d + r for d, r in zip(t["db"], t["recommend"], strict=True)]
        request_cpu = [d + r for d, r in zip(t["db_cpu"], t["recommend_cpu"], strict=True)]
        rows.append(
            {
                "size": size,
                "history": length,
                "strategy": strategy,
                "path": max(set(t["path"]), key=t["path"].count),
                "n": len(request),
                **{f"recommend_{k}": v for k, v in percentiles_ms(t["recommend"]).items()},
                **{f"db_{k}": v for k, v in percentiles_ms(t["db"]).items()},
                **{f"request_{k}": v for k, v in percentiles_ms(request).items()},
                **{f"recommend_cpu_{k}": v for k, v in percentiles_ms(t["recommend_cpu"]).items()},
                **{f"db_cpu_{k}": v for k, v in percentiles_ms(t["db_cpu"]).items()},
                **{f"request_cpu_{k}": v for k, v in percentiles_ms(request_cpu).items()},
            }
        )
    return rows


def check_answers(answers: Mapping[str, list[int]], save: Path | None, check: Path | None) -> dict[str, Any]:
    """--save-answers writes every user's list; --check-answers compares with a saved run (same seed)."""
    out: dict[str, Any] = {}
    if save is not None:
        save.write_text(json.dumps(answers, indent=0, sort_keys=True))
        out["answers_saved"] = str(save)
    if check is not None:
        before = json.loads(check.read_text())
        differ = sorted(k for k in answers if before.get(k) != answers[k])
        out["answers_compared"] = len(answers)
        out["answers_differ"] = differ
        log(f"history: {len(answers) - len(differ)}/{len(answers)} answers identical to {check}")
    return out


HISTORY_COLUMNS = (
    "size",
    "history",
    "strategy",
    "path",
    "n",
    "recommend_p50_ms",
    "recommend_p99_ms",
    "db_p50_ms",
    "db_p99_ms",
    "request_p50_ms",
    "request_p95_ms",
    "request_p99_ms",
    "recommend_cpu_p50_ms",
    "request_cpu_p50_ms",
)


# -- main ----------------------------------------------------------------------------------------
COLUMNS = (
    "size",
    "engine",
    "index",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "baseline_p50_ms",
    "ratio",
    "query_p50_ms",
    "retrieve_p50_ms",
    "recall_at_50",
    "build_s",
    "open_s",
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--sizes",
        type=parse_ints,
        default=parse_ints("10000,100000"),
        help="catalogue sizes, comma-separated; 10k/100k/1m suffixes allowed (default 10000,100000)",
    )
    p.add_argument(
        "--queries", type=int, default=300, help="timed recommendations per index; --demo: users (default 300)"
    )
    p.add_argument("--warmup", type=int, default=20, help="untimed recommendations first (default 20)")
    p.add_argument(
        "--seed", type=int, default=7, help="seed of the synthetic catalogue and users or of --demo's users (default 7)"
    )
    p.add_argument("--data-dir", type=Path, help="keep the Edge stores here (edge-<size>-s<seed>/) and reuse them")
    p.add_argument("--rebuild", action="store_true", help="with --data-dir: rebuild even if a store is there")
    p.add_argument("--skip-plain", action="store_true", help="skip timing the plain (pre-optimize) index")
    p.add_argument(
        "--skip-hnsw", action="store_true", help="stop after the plain index: no optimize (hours at 1M on 2 cores)"
    )
    p.add_argument(
        "--server-url",
        default=os.environ.get("QDRANT_URL"),
        help="also bench the server adapter here (default: $QDRANT_URL; ':memory:' = qdrant-client's local mode)",
    )
    p.add_argument("--keep-server", action="store_true", help="leave the bench collection on the server")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=1,
        help="BLAS threads for the numpy baseline (default 1: steadier on a small shared machine)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="time the published demo index and database the API serves, with real users (not a synthetic "
        "catalogue): content and hybrid, as served (vector cache) and engine only, plus the ratings query",
    )
    p.add_argument(
        "--demo-data-dir",
        type=Path,
        help="with --demo: the data dir holding qdrant/ and movierec.db (default: the project's settings, "
        "MOVIEREC_DATA_DIR or ./data)",
    )
    p.add_argument(
        "--history",
        type=parse_ints,
        help="heavy users on the demo index (or --demo-data-dir): latency by history length, e.g. 50,500,5000; "
        "synthetic users with that many ratings are written through the repository and removed afterwards",
    )
    p.add_argument("--users-per-length", type=int, default=10, help="with --history: users per length (default 10)")
    p.add_argument("--repeats", type=int, default=5, help="with --history: timed passes over the users (default 5)")
    p.add_argument("--save-answers", type=Path, help="with --history: write every user's recommended ids here")
    p.add_argument("--check-answers", type=Path, help="with --history: compare the answers with a saved run")
    p.add_argument("--json", action="store_true", help="print one JSON object {'results': [...]} on stdout")
    args = p.parse_args(argv)
    if args.demo_data_dir is not None and not (args.demo or args.history):
        p.error("--demo-data-dir goes with --demo or --history")
    if (args.save_answers or args.check_answers) and not args.history:
        p.error("--save-answers and --check-answers go with --history")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    demo_meta: dict[str, Any] = {}
    with threadpool_limits(limits=args.blas_threads, user_api="blas"), contextlib.redirect_stdout(sys.stderr):
        if args.history:
            results, demo_meta = bench_history(args)
            demo_meta |= check_answers(demo_meta.pop("answers"), args.save_answers, args.check_answers)
        elif args.demo:
            results, demo_meta = bench_demo(args)
        else:
            results = run(args)
    meta = {
        "queries": args.queries,
        "warmup": args.warmup,
        "seed": args.seed,
        "limit": LIMIT,
        "history": demo_meta.pop("history_size", HISTORY),
        "blas_threads": args.blas_threads,
        **demo_meta,
    }
    columns = HISTORY_COLUMNS if args.history else DEMO_COLUMNS if args.demo else COLUMNS
    emit(format_table(results, columns), {"results": results, "params": meta}, args.json)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every size, Edge then (when asked) the server; libraries' stray prints go to stderr."""
    results: list[dict[str, Any]] = []
    for size in args.sizes:
        tmp = None if args.data_dir else Path(tempfile.mkdtemp(prefix="bench-query-"))
        root = (args.data_dir or tmp) / f"edge-{size}-s{args.seed}"  # type: ignore[operator]
        try:
            synthetic, rows = bench_edge(
                size, args.seed, root, lambda c: make_queries(c, args.queries + args.warmup, args.seed), args
            )
            results += rows
            if args.server_url:
                queries = make_queries(synthetic, args.queries + args.warmup, args.seed)
                results.append(bench_server(size, args.seed, args.server_url, synthetic, queries, args))
            del synthetic
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
