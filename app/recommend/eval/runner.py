"""`movierec eval`: rank the whole catalogue for every test user, from training ratings only.

For one dataset and protocol:
1. split each user's ratings into training and test (app/recommend/eval/splits.py);
2. build a World from the training part: a fresh Edge index with content and collab vectors, and
   the real Recommender over it (app/recommend/eval/world.py);
3. ask every strategy for each test user's top k, excluding what the user rated in training, and
   score it against the user's test movies (every test movie is relevant, its rating ignored);
4. again on the cold-start slice: a sample of users whose training history is cut to 5 ratings,
   with a World built from that reduced training table;
5. RMSE of a rating predicted from the user's most similar rated movies.

The Recommender runs with popularity=0 and diversity=0: this measures retrieval, not the
presentation re-rank, which trades accuracy for variety on purpose.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from app.catalog.models import Movie
from app.embedding import collab as collab_math
from app.embedding.text import TextEncoder
from app.recommend.eval import baselines, splits
from app.recommend.eval.embed_cache import cached_text_vectors
from app.recommend.eval.metrics import METRICS, rmse, summarise
from app.recommend.eval.world import World, build_world
from app.recommend.tuning import TUNED, Tuning
from app.vectorstore import Manifest

Dataset = Literal["ml-100k", "demo"]
Protocol = Literal["stratified", "temporal"]
DATASETS: tuple[str, ...] = ("ml-100k", "demo")
PROTOCOLS: tuple[str, ...] = ("stratified", "temporal")
BASELINES = ("popularity", "itemknn", "random")
RECOMMENDER_STRATEGIES = ("content", "collab", "hybrid")
STRATEGIES = BASELINES + RECOMMENDER_STRATEGIES
NEIGHBOURS = 20  # rated movies a predicted rating is averaged over


@dataclass
class EvalReport:
    dataset: str
    protocol: str
    k: int
    rows: list[dict[str, Any]]
    cold_start_rows: list[dict[str, Any]]
    rmse_rows: list[dict[str, Any]]
    seconds: float
    # Context for the text table; not part of the JSON answer.
    users: int = 0
    cold_start_users: int = 0
    movies: int = 0
    train_ratings: int = 0
    test_ratings: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        keys = ("dataset", "protocol", "k", "rows", "cold_start_rows", "rmse_rows", "seconds")
        data = asdict(self)
        return {key: data[key] for key in keys}


@dataclass(frozen=True)
class EvalConfig:
    """What the settings decide: where the embedding cache lives, the Recommender's knobs."""

    cache_dir: Any  # Path
    manifest: Manifest
    make_encoder: Callable[[], TextEncoder]
    history_size: int = 50
    half_life_days: float = 365.0
    tuning: Tuning = TUNED


def load_dataset(name: str) -> tuple[list[Movie], pd.DataFrame]:
    """The source's valid movies and ratings (one rating per user and movie: the latest)."""
    from ingest.sources import load_catalogue, validate

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    movies, rows, _ = validate(load_catalogue(name))
    ratings = pd.DataFrame(
        [(r.user_id, r.movie_id, r.rating, r.timestamp) for r in rows],
        columns=["user_id", "movie_id", "rating", "timestamp"],
    )
    ratings = ratings.sort_values("timestamp", kind="stable").drop_duplicates(["user_id", "movie_id"], keep="last")
    return movies, ratings.reset_index(drop=True)


def split(ratings: pd.DataFrame, protocol: str) -> splits.Split:
    if protocol == "stratified":
        return splits.stratified_split(ratings)
    if protocol == "temporal":
        return splits.temporal_split(ratings)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def run_eval(
    dataset: str, protocol: str, k: int, config: EvalConfig, *, users: int | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> EvalReport:
    """The whole evaluation; `users` evaluates a seeded sample of the test users (training uses everyone)."""
    started = time.perf_counter()
    timings: dict[str, float] = {}
    movies, ratings = load_dataset(dataset)
    parts = split(ratings, protocol)
    relevant = {int(u): set(g.tolist()) for u, g in parts.test.groupby("user_id")["movie_id"]}
    evaluated = splits.sample_users(np.array(sorted(relevant)), users or len(relevant))
    log(f"{dataset}/{protocol}: {len(movies)} movies, {len(parts.train)} training and {len(parts.test)} test ratings")

    mark = time.perf_counter()
    text = cached_text_vectors(movies, config.cache_dir, config.make_encoder, config.manifest.text_model)
    timings["text_embeddings"] = time.perf_counter() - mark

    mark = time.perf_counter()
    world = _world(movies, text, parts.train, config)
    try:
        rows = evaluate(world, parts.train, evaluated, relevant, k, len(movies), log)
        rmse_rows = rating_errors(world, parts.train, parts.test[parts.test["user_id"].isin(evaluated)])
    finally:
        world.close()
    timings["main"] = time.perf_counter() - mark

    mark = time.perf_counter()
    n_cold = max(1, round(splits.COLD_START_SHARE * len(evaluated)))
    cold_train, cold_users = splits.cold_start(parts.train, evaluated, n_cold)
    cold_world = _world(movies, text, cold_train, config)
    try:
        cold_rows = evaluate(cold_world, cold_train, cold_users, relevant, k, len(movies), log)
    finally:
        cold_world.close()
    timings["cold_start"] = time.perf_counter() - mark

    return EvalReport(
        dataset, protocol, k, rows, cold_rows, rmse_rows, round(time.perf_counter() - started, 2),
        users=len(evaluated), cold_start_users=len(cold_users), movies=len(movies),
        train_ratings=len(parts.train), test_ratings=len(parts.test),
        timings={key: round(v, 2) for key, v in timings.items()},
    )


def _world(movies: list[Movie], text: dict[int, np.ndarray], train: pd.DataFrame, config: EvalConfig) -> World:
    return build_world(
        movies, text, train, config.manifest,
        tuning=config.tuning, history_size=config.history_size, half_life_days=config.half_life_days,
    )


def evaluate(
    world: World, train: pd.DataFrame, users: Sequence[int], relevant: dict[int, set[int]], k: int,
    catalogue_size: int, log: Callable[[str], None] = lambda _: None,
    strategies: Sequence[str] = STRATEGIES,
) -> list[dict[str, Any]]:
    """One row of metrics per strategy over `users`."""
    users = [int(u) for u in users]
    catalogue = baselines.Catalogue(world.combined.keys(), train)
    rows = []
    for strategy in strategies:
        mark = time.perf_counter()
        recs = rankings(world, catalogue, strategy, users, k)
        rows.append({"strategy": strategy, **summarise(recs, relevant, k, catalogue_size)})
        log(f"  {strategy}: {time.perf_counter() - mark:.1f} s")
    return rows


def rankings(
    world: World, catalogue: baselines.Catalogue, strategy: str, users: Sequence[int], k: int
) -> dict[int, list[int]]:
    if strategy == "popularity":
        return baselines.popularity(catalogue, users, k)
    if strategy == "itemknn":
        return baselines.itemknn(catalogue, users, k)
    if strategy == "random":
        return baselines.random(catalogue, users, k)
    if strategy not in RECOMMENDER_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    out = {}
    for user in users:
        result = world.recommender.recommend(
            world.histories.get(user, []), limit=k, strategy=strategy, popularity=0.0, diversity=0.0  # type: ignore[arg-type]
        )
        out[user] = [item.id for item in result.items]
    return out


# -- rating prediction ---------------------------------------------------------------------------
def rating_errors(world: World, train: pd.DataFrame, test: pd.DataFrame) -> list[dict[str, Any]]:
    """RMSE of the user's mean, and of neighbour predictions by content and by collab similarity."""
    by_user = {int(u): g for u, g in train.groupby("user_id")}
    actual = test["rating"].to_numpy(np.float64)
    content = _neighbour_predictions(by_user, test, world.combined, _dot)
    collab = _neighbour_predictions(by_user, test, world.collab, collab_math.similarity)
    mean = test["user_id"].map({u: g["rating"].mean() for u, g in by_user.items()}).to_numpy(np.float64)
    return [
        {"strategy": "user_mean", "rmse": round(rmse(mean, actual), 4)},
        {"strategy": "content", "rmse": round(rmse(content, actual), 4)},
        {"strategy": "collab", "rmse": round(rmse(collab, actual), 4)},
    ]


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.atleast_2d(a) @ np.atleast_2d(b).T  # unit vectors: the cosine


def _neighbour_predictions(
    by_user: dict[int, pd.DataFrame], test: pd.DataFrame, vectors: dict[int, np.ndarray],
    similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """mean_u + Σ s·(r - mean_u) / Σ s over the NEIGHBOURS most similar rated movies with s > 0;
    the user's mean where the movie or its neighbours have no vector."""
    out = np.empty(len(test))
    positions = {int(u): idx for u, idx in test.groupby("user_id").indices.items()}
    for user, idx in positions.items():
        history = by_user[user]
        mean = float(history["rating"].mean())
        out[idx] = mean
        known = [i for i, m in enumerate(history["movie_id"]) if m in vectors]
        targets = [p for p in idx if int(test["movie_id"].iat[p]) in vectors]
        if not known or not targets:
            continue
        rated = history["rating"].to_numpy(np.float64)[known] - mean
        sims = similarity(
            np.stack([vectors[int(test["movie_id"].iat[p])] for p in targets]),
            np.stack([vectors[int(m)] for m in history["movie_id"].to_numpy()[known]]),
        )
        out[targets] = mean + _weighted_deviation(sims, rated)
    return np.clip(out, 0.5, 5.0)


def _weighted_deviation(sims: np.ndarray, deviations: np.ndarray) -> np.ndarray:
    """Per row: similarity-weighted mean deviation over the top NEIGHBOURS positive similarities."""
    sims = np.where(sims > 0, sims, 0.0)
    if sims.shape[1] > NEIGHBOURS:
        cut = np.partition(sims, -NEIGHBOURS, axis=1)[:, -NEIGHBOURS][:, None]
        sims = np.where(sims >= cut, sims, 0.0)
    total = sims.sum(axis=1)
    return np.where(total > 0, (sims @ deviations) / np.maximum(total, 1e-12), 0.0)


# -- text output ---------------------------------------------------------------------------------
def format_report(report: EvalReport) -> str:
    head = (
        f"{report.dataset}, {report.protocol} split, k={report.k}: {report.users} test users, "
        f"{report.movies} movies, {report.train_ratings} training / {report.test_ratings} test ratings"
    )
    parts = [
        head,
        _table(report.rows, METRICS),
        f"\ncold start ({report.cold_start_users} users, training history cut to {splits.COLD_START_KEEP} ratings)",
        _table(report.cold_start_rows, METRICS),
        "\nrating prediction (neighbours among the user's rated movies; fallback: the user's mean)",
        _table(report.rmse_rows, ("rmse",)),
        f"\n{report.seconds:.1f} s ({', '.join(f'{key} {v:.1f} s' for key, v in report.timings.items())})",
    ]
    return "\n".join(parts)


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = [f"{'strategy':<12}" + "".join(f"{c:>10}" for c in columns)]
    for row in rows:
        lines.append(f"{row['strategy']:<12}" + "".join(f"{row[c]:>10.4f}" for c in columns))
    return "\n".join(lines)
