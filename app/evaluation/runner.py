"""`movierec eval`: rank the whole catalogue for every test user, from training ratings only.

For one dataset and protocol:
1. split each user's ratings into training and test (app/evaluation/splits.py);
2. build a World from the training part: a fresh Edge index with content and collab vectors, and
   the real Recommender over it (app/evaluation/world.py);
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, get_args

import numpy as np
import pandas as pd

from app.catalog.models import Movie
from app.catalog.rating_rules import MAX_RATING, MIN_RATING
from app.embedding import collab as collab_math
from app.embedding.text import TextEncoder
from app.evaluation import baselines, splits
from app.evaluation.embed_cache import cached_text_vectors
from app.evaluation.metrics import METRICS, ndcg_at_k, recall_at_k, rmse, summarise
from app.evaluation.world import World, build_world
from app.names import DEFAULT_STRATEGY, EvalDataset, EvalProtocol, SplitBy, Strategy
from app.recommend.tuning import TUNED, Tuning
from app.settings import RECOMMEND_DEFAULTS
from app.vectorstore import Manifest

DATASETS: tuple[EvalDataset, ...] = get_args(EvalDataset)
PROTOCOLS: tuple[EvalProtocol, ...] = get_args(EvalProtocol)
SPLITS: tuple[SplitBy, ...] = get_args(SplitBy)
BASELINES = ("popularity", "itemknn", "ease", "random")
RECOMMENDER_STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
SERVED = "served"  # the API's default strategy and re-rank (popularity and diversity from the settings)
STRATEGIES = BASELINES + RECOMMENDER_STRATEGIES + (SERVED,)
SWEEP_STRATEGIES = ("popularity", "itemknn", "ease", "collab", "hybrid", SERVED)
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
    split: str = "user"
    seeds: list[int] = field(default_factory=lambda: [splits.SEED])
    new_user_rows: list[dict[str, Any]] = field(default_factory=list)  # one row set per history length
    new_movie_rows: list[dict[str, Any]] = field(default_factory=list)  # the new-movies protocol
    # Context for the text table; not part of the JSON answer.
    users: int = 0
    cold_start_users: int = 0
    movies: int = 0
    train_ratings: int = 0
    test_ratings: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        keys = (
            "dataset",
            "protocol",
            "split",
            "seeds",
            "k",
            "rows",
            "cold_start_rows",
            "rmse_rows",
            "new_user_rows",
            "new_movie_rows",
            "seconds",
        )
        data = asdict(self)
        return {key: data[key] for key in keys}


@dataclass(frozen=True)
class EvalConfig:
    """What the settings decide: where the embedding cache lives, the Recommender's knobs."""

    cache_dir: Any  # Path
    manifest: Manifest
    make_encoder: Callable[[], TextEncoder]
    history_size: int = RECOMMEND_DEFAULTS.history_size
    half_life_days: float = RECOMMEND_DEFAULTS.half_life_days
    tuning: Tuning = TUNED
    popularity: float = RECOMMEND_DEFAULTS.popularity_weight  # the served row's re-rank: the API's defaults
    diversity: float = RECOMMEND_DEFAULTS.diversity


def load_dataset(name: EvalDataset) -> tuple[list[Movie], pd.DataFrame]:
    """The source's valid movies and ratings (one rating per user and movie: the latest)."""
    from app.datasets import load_catalogue, validate

    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    movies, rows, _ = validate(load_catalogue(name))
    ratings = pd.DataFrame(
        [(r.user_id, r.movie_id, r.rating, r.timestamp) for r in rows],
        columns=["user_id", "movie_id", "rating", "timestamp"],
    )
    ratings = ratings.sort_values("timestamp", kind="stable").drop_duplicates(["user_id", "movie_id"], keep="last")
    return movies, ratings.reset_index(drop=True)


def split(
    ratings: pd.DataFrame, protocol: EvalProtocol, *, by: SplitBy = "user", seed: int = splits.SEED
) -> tuple[splits.Split, set[int]]:
    """The split, and the movies that lost their training ratings (new-movies protocol; else none)."""
    if by not in SPLITS:
        raise ValueError(f"unknown split {by!r}; choose one of {', '.join(SPLITS)}")
    if protocol == "stratified":
        return splits.stratified_split(ratings, seed=seed, by=by), set()
    if protocol == "temporal":
        return splits.temporal_split(ratings), set()
    if protocol == "new-movies":
        return splits.new_movies_split(ratings, ratings["movie_id"].to_numpy(), seed=seed)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def run_eval(
    dataset: EvalDataset,
    protocol: EvalProtocol,
    k: int,
    config: EvalConfig,
    *,
    users: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    by: SplitBy = "user",
    seeds: Sequence[int] = (splits.SEED,),
    new_users: bool = False,
) -> EvalReport:
    """The whole evaluation, once per seed (rows then hold the mean and a `<metric>_std`); `users`
    evaluates a seeded sample of the test users (training uses everyone); `new_users` adds the sweep
    of training histories cut to splits.NEW_USER_LENGTHS ratings."""
    started = time.perf_counter()
    movies, ratings = load_dataset(dataset)
    mark = time.perf_counter()
    text = cached_text_vectors(movies, config.cache_dir, config.make_encoder, config.manifest.text_model)
    embed_s = time.perf_counter() - mark
    reports = [
        _run_once(dataset, protocol, k, config, movies, ratings, text, users, log, by, seed, new_users)
        for seed in seeds
    ]
    report = reports[0] if len(reports) == 1 else _mean_report(reports)
    report.seeds = list(seeds)
    report.timings = {"text_embeddings": round(embed_s, 2), **report.timings}
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _run_once(
    dataset: EvalDataset,
    protocol: EvalProtocol,
    k: int,
    config: EvalConfig,
    movies: list[Movie],
    ratings: pd.DataFrame,
    text: dict[int, np.ndarray],
    users: int | None,
    log: Callable[[str], None],
    by: SplitBy,
    seed: int,
    new_users: bool,
) -> EvalReport:
    timings: dict[str, float] = {}
    parts, new = split(ratings, protocol, by=by, seed=seed)
    # pandas-stubs types a group's label as any scalar (the ignore): here a user id
    relevant = {int(u): set(g.tolist()) for u, g in parts.test.groupby("user_id")["movie_id"]}  # type: ignore[arg-type]
    evaluated = splits.sample_users(np.array(sorted(relevant)), users or len(relevant))
    log(
        f"{dataset}/{protocol}/{by} seed {seed}: {len(movies)} movies, {len(parts.train)} training and "
        f"{len(parts.test)} test ratings"
    )

    mark = time.perf_counter()
    world = _world(movies, text, parts.train, config)
    try:
        lists: dict[str, dict[int, list[int]]] = {}
        rows = evaluate(world, parts.train, evaluated, relevant, k, len(movies), log, config=config, lists=lists)
        rmse_rows = rating_errors(world, parts.train, parts.test[parts.test["user_id"].isin(evaluated)])
        new_movie_rows = new_movie_metrics(world, parts.train, evaluated, relevant, new, k, lists) if new else []
    finally:
        world.close()
    timings["main"] = time.perf_counter() - mark

    mark = time.perf_counter()
    n_cold = max(1, round(splits.COLD_START_SHARE * len(evaluated)))
    cold_rows = _cut_histories(
        movies, text, parts.train, evaluated, relevant, k, config, n_cold, splits.COLD_START_KEEP, STRATEGIES, log, seed
    )
    timings["cold_start"] = time.perf_counter() - mark
    new_user_rows = []
    if new_users:
        mark = time.perf_counter()
        for keep in splits.NEW_USER_LENGTHS:
            sweep = _cut_histories(
                movies, text, parts.train, evaluated, relevant, k, config, n_cold, keep, SWEEP_STRATEGIES, log, seed
            )
            new_user_rows += [{"history": keep, **row} for row in sweep]
        timings["new_users"] = time.perf_counter() - mark

    return EvalReport(
        dataset,
        protocol,
        k,
        rows,
        cold_rows,
        rmse_rows,
        0.0,
        split=by,
        seeds=[seed],
        new_user_rows=new_user_rows,
        new_movie_rows=new_movie_rows,
        users=len(evaluated),
        cold_start_users=n_cold,
        movies=len(movies),
        train_ratings=len(parts.train),
        test_ratings=len(parts.test),
        timings={key: round(v, 2) for key, v in timings.items()},
    )


def _mean_report(reports: list[EvalReport]) -> EvalReport:
    """One report whose rows hold each metric's mean over the seeds and its standard deviation."""
    first = reports[0]
    tables = ("rows", "cold_start_rows", "rmse_rows", "new_user_rows", "new_movie_rows")
    merged: dict[str, Any] = {name: _mean_rows([getattr(r, name) for r in reports]) for name in tables}
    timings = {key: round(sum(r.timings.get(key, 0.0) for r in reports), 2) for key in first.timings}
    return replace(first, **merged, timings=timings)


def _mean_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    out = []
    for position, row in enumerate(runs[0]):
        merged = dict(row)
        for key, value in row.items():
            if isinstance(value, float) and key not in ("history", "users"):
                values = np.array([run[position][key] for run in runs], dtype=np.float64)
                merged[key], merged[f"{key}_std"] = round(float(values.mean()), 4), round(float(values.std()), 4)
        out.append(merged)
    return out


def _cut_histories(
    movies: list[Movie],
    text: dict[int, np.ndarray],
    train: pd.DataFrame,
    evaluated: np.ndarray,
    relevant: dict[int, set[int]],
    k: int,
    config: EvalConfig,
    n_users: int,
    keep: int,
    strategies: Sequence[str],
    log: Callable[[str], None],
    seed: int = splits.SEED,
) -> list[dict[str, Any]]:
    """A sample of users with their training history cut to `keep` random ratings, every model
    fitted again on that reduced training part. The sample and the cut follow the run's `seed`, so
    several seeds measure other users too (the temporal split itself has no seed)."""
    cold_train, cold_users = splits.cold_start(train, evaluated, n_users, keep=keep, seed=seed)
    world = _world(movies, text, cold_train, config)
    try:
        return evaluate(world, cold_train, cold_users, relevant, k, len(movies), log, strategies, config=config)
    finally:
        world.close()


def new_movie_metrics(
    world: World,
    train: pd.DataFrame,
    users: Iterable[int],
    relevant: dict[int, set[int]],
    new: set[int],
    k: int,
    lists: dict[str, dict[int, list[int]]],
) -> list[dict[str, Any]]:
    """Over the users with a held-out rating on a new movie: new-movie recall@k of each full list
    (new movies found in the top k over the user's new ones), and NDCG@k ranking among new movies
    only (the Recommender with only_new; random among them for reference)."""
    mine = [int(u) for u in users if relevant[int(u)] & new]
    rel_new = {u: relevant[u] & new for u in mine}
    out = []
    for strategy, recs in lists.items():
        row: dict[str, Any] = {"strategy": strategy, "users": len(mine)}
        row["new_recall"] = round(float(np.mean([recall_at_k(recs[u], rel_new[u], k) for u in mine])), 4)
        among = _among_new(world, train, strategy, mine, new, k)
        row["among_new_ndcg"] = (
            round(float(np.mean([ndcg_at_k(among[u], rel_new[u], k) for u in mine])), 4) if among else None
        )
        out.append(row)
    return out


def _among_new(
    world: World, train: pd.DataFrame, strategy: str, users: list[int], new: set[int], k: int
) -> dict[int, list[int]] | None:
    if strategy == "random":
        catalogue = baselines.CandidatePool(sorted(new), train[train["movie_id"].isin(new)])
        return baselines.random(catalogue, users, k)
    if strategy not in RECOMMENDER_STRATEGIES:
        return None  # the baselines know nothing of movies without ratings
    return {
        u: [
            i.id
            for i in world.recommender.recommend(
                world.histories.get(u, []),
                limit=k,
                strategy=strategy,
                popularity=0.0,
                diversity=0.0,
                only_new=True,
            ).items
        ]
        for u in users
    }


def _world(movies: list[Movie], text: dict[int, np.ndarray], train: pd.DataFrame, config: EvalConfig) -> World:
    return build_world(
        movies,
        text,
        train,
        config.manifest,
        tuning=config.tuning,
        history_size=config.history_size,
        half_life_days=config.half_life_days,
    )


def evaluate(
    world: World,
    train: pd.DataFrame,
    users: Iterable[int],
    relevant: dict[int, set[int]],
    k: int,
    catalogue_size: int,
    log: Callable[[str], None] = lambda _: None,
    strategies: Sequence[str] = STRATEGIES,
    *,
    config: EvalConfig | None = None,
    lists: dict[str, dict[int, list[int]]] | None = None,
) -> list[dict[str, Any]]:
    """One row of metrics per strategy over `users`; `lists` collects each strategy's top k."""
    users = [int(u) for u in users]
    catalogue = baselines.CandidatePool(world.combined.keys(), train)
    rows = []
    for strategy in strategies:
        mark = time.perf_counter()
        recs = rankings(world, catalogue, strategy, users, k, config)
        if lists is not None:
            lists[strategy] = recs
        rows.append({"strategy": strategy, **summarise(recs, relevant, k, catalogue_size)})
        log(f"  {strategy}: {time.perf_counter() - mark:.1f} s")
    return rows


def rankings(
    world: World,
    catalogue: baselines.CandidatePool,
    strategy: str,
    users: Sequence[int],
    k: int,
    config: EvalConfig | None = None,
) -> dict[int, list[int]]:
    if strategy == "popularity":
        return baselines.popularity(catalogue, users, k)
    if strategy == "ease":
        return baselines.ease(catalogue, users, k)
    if strategy == SERVED:
        # A stand-in config: only its popularity and diversity defaults are read.
        served = config or EvalConfig(None, None, None)  # type: ignore[arg-type]
        return {
            u: [
                i.id
                for i in world.recommender.recommend(
                    world.histories.get(u, []),
                    limit=k,
                    strategy=DEFAULT_STRATEGY,
                    popularity=served.popularity,
                    diversity=served.diversity,
                ).items
            ]
            for u in users
        }
    if strategy == "itemknn":
        return baselines.itemknn(catalogue, users, k)
    if strategy == "random":
        return baselines.random(catalogue, users, k)
    if strategy not in RECOMMENDER_STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    out = {}
    for user in users:
        result = world.recommender.recommend(
            world.histories.get(user, []),
            limit=k,
            strategy=strategy,
            popularity=0.0,
            diversity=0.0,
        )
        out[user] = [item.id for item in result.items]
    return out


# -- rating prediction ---------------------------------------------------------------------------
def rating_errors(world: World, train: pd.DataFrame, test: pd.DataFrame) -> list[dict[str, Any]]:
    """RMSE of the user's mean, and of neighbour predictions by content and by collab similarity."""
    by_user = {int(u): g for u, g in train.groupby("user_id")}  # type: ignore[arg-type]  # a pandas label
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
    cosines: np.ndarray = np.atleast_2d(a) @ np.atleast_2d(b).T  # unit vectors: the cosine
    return cosines


def _neighbour_predictions(
    by_user: dict[int, pd.DataFrame],
    test: pd.DataFrame,
    vectors: dict[int, np.ndarray],
    similarity: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """mean_u + Σ s·(r - mean_u) / Σ s over the NEIGHBOURS most similar rated movies with s > 0;
    the user's mean where the movie or its neighbours have no vector."""
    out = np.empty(len(test))
    # pandas-stubs types the labels of groupby(...).indices as Hashable
    positions = {int(u): idx for u, idx in test.groupby("user_id").indices.items()}  # type: ignore[call-overload]
    test_movies = test["movie_id"].to_numpy()
    for user, idx in positions.items():
        history = by_user[user]
        mean = float(history["rating"].mean())
        out[idx] = mean
        known = [i for i, m in enumerate(history["movie_id"]) if m in vectors]
        targets = [p for p in idx if int(test_movies[p]) in vectors]
        if not known or not targets:
            continue
        rated = history["rating"].to_numpy(np.float64)[known] - mean
        sims = similarity(
            np.stack([vectors[int(test_movies[p])] for p in targets]),
            np.stack([vectors[int(m)] for m in history["movie_id"].to_numpy()[known]]),
        )
        out[targets] = mean + _weighted_deviation(sims, rated)
    return np.clip(out, MIN_RATING, MAX_RATING)


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
    seeds = f", seeds {','.join(map(str, report.seeds))} (mean ± std)" if len(report.seeds) > 1 else ""
    head = (
        f"{report.dataset}, {report.protocol} split by {report.split}, k={report.k}{seeds}: {report.users} test "
        f"users, {report.movies} movies, {report.train_ratings} training / {report.test_ratings} test ratings"
    )
    parts = [
        head,
        _table(report.rows, METRICS),
        f"\ncold start ({report.cold_start_users} users, training history cut to {splits.COLD_START_KEEP} ratings)",
        _table(report.cold_start_rows, METRICS),
    ]
    for keep in splits.NEW_USER_LENGTHS:
        rows = [r for r in report.new_user_rows if r["history"] == keep]
        if rows:
            parts += [f"\nnew users: training history cut to {keep}", _table(rows, METRICS)]
    if report.new_movie_rows:
        title = (
            "\nnew movies (users with a held-out rating on one): new-movie recall@k of the full list, "
            "NDCG@k ranking among new movies only"
        )
        parts += [title, _table(report.new_movie_rows, ("new_recall", "among_new_ndcg"))]
    parts += [
        "\nrating prediction (neighbours among the user's rated movies; fallback: the user's mean)",
        _table(report.rmse_rows, ("rmse",)),
        f"\n{report.seconds:.1f} s ({', '.join(f'{key} {v:.1f} s' for key, v in report.timings.items())})",
    ]
    return "\n".join(parts)


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    std = any(f"{c}_std" in row for row in rows for c in columns)
    width = 16 if std else 10
    lines = [f"{'strategy':<12}" + "".join(f"{c:>{width}}" for c in columns)]
    for row in rows:
        lines.append(f"{row['strategy']:<12}" + "".join(f"{_cell(row, c):>{width}}" for c in columns))
    return "\n".join(lines)


def _cell(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if value is None:
        return "-"
    std = row.get(f"{column}_std")
    return f"{value:.4f}" if std is None else f"{value:.4f}±{std:.4f}"
