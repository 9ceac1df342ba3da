"""Offline evaluation: metrics on hand-computed cases, leak-free splits, collab factors, and a small
run of `movierec eval` through the real CLI (real text model, real Edge index)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from app.embedding import collab
from app.evaluation import STRATEGIES, metrics, splits
from tests.helpers.evaluation import check_partition, rating_pairs

ROOT = Path(__file__).resolve().parents[1]


# -- metrics ------------------------------------------------------------------------------------
def test_ranking_metrics_by_hand() -> None:
    recs, relevant = [1, 2, 3, 4], {2, 4, 9}
    assert metrics.precision_at_k(recs, relevant, 4) == 0.5
    assert metrics.recall_at_k(recs, relevant, 4) == pytest.approx(2 / 3)
    assert metrics.hit_rate_at_k(recs, relevant, 4) == 1.0
    # hits at ranks 2 and 4; the ideal list has 3 hits on top
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert metrics.ndcg_at_k(recs, relevant, 4) == pytest.approx(dcg / idcg)
    # precision 1/2 at rank 2 and 2/4 at rank 4, over min(k, |relevant|) = 3
    assert metrics.average_precision_at_k(recs, relevant, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    # only the top k count
    assert metrics.precision_at_k(recs, relevant, 2) == 0.5
    assert metrics.ndcg_at_k(recs, relevant, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_ranking_metric_edges() -> None:
    assert metrics.ndcg_at_k([5, 6], {2}, 2) == 0.0
    assert metrics.average_precision_at_k([5, 6], {2}, 2) == 0.0
    assert metrics.hit_rate_at_k([5, 6], {2}, 2) == 0.0
    assert metrics.ndcg_at_k([2, 5], {2}, 2) == 1.0  # one relevant movie, found first: ideal
    assert metrics.average_precision_at_k([5, 2], {2}, 2) == 0.5
    assert metrics.precision_at_k([2], {2}, 10) == 0.1  # a short list is not rewarded
    assert metrics.recall_at_k([2], set(), 10) == 0.0


def test_coverage_rmse_and_summary() -> None:
    assert metrics.coverage([[1, 2, 7], [2, 3, 8]], catalogue_size=10, k=2) == 0.3
    assert metrics.rmse([3.0, 4.0], [4.0, 4.0]) == pytest.approx(math.sqrt(0.5))
    assert metrics.rmse([2.5], [2.5]) == 0.0
    summary = metrics.summarise({1: [1, 2], 2: [3, 4]}, {1: {1}, 2: {9}}, k=2, catalogue_size=8)
    assert summary == {
        "precision": 0.25,
        "recall": 0.5,
        "ndcg": 0.5,
        "map": 0.5,
        "hit_rate": 0.5,
        "coverage": 0.5,
    }


# -- splits -------------------------------------------------------------------------------------
def test_stratified_split_is_per_user_75_25(ml100k: pd.DataFrame) -> None:
    split = splits.stratified_split(ml100k)
    check_partition(ml100k, split)
    n = ml100k.groupby("user_id").size()
    n_test = split.test.groupby("user_id").size().reindex(n.index, fill_value=0)
    assert (n_test == np.round(n * 0.25)).all()
    again = splits.stratified_split(ml100k)
    assert rating_pairs(again.test) == rating_pairs(split.test)  # seeded
    assert rating_pairs(splits.stratified_split(ml100k, seed=1).test) != rating_pairs(split.test)


def test_temporal_split_holds_out_each_users_latest(ml100k: pd.DataFrame) -> None:
    split = splits.temporal_split(ml100k)
    check_partition(ml100k, split)
    last_train = split.train.groupby("user_id")["timestamp"].max()
    first_test = split.test.groupby("user_id")["timestamp"].min()
    assert (first_test > last_train.reindex(first_test.index)).all()  # strictly after, per user
    n = ml100k.groupby("user_id").size()
    n_test = split.test.groupby("user_id").size().reindex(n.index, fill_value=0)
    assert (n_test <= np.round(n * 0.25)).all()  # ties at the boundary stay in training
    assert n_test.sum() > 0.9 * np.round(n * 0.25).sum()


def test_cold_start_cuts_a_sample_of_histories(ml100k: pd.DataFrame) -> None:
    split = splits.stratified_split(ml100k)
    users = np.unique(split.test["user_id"])
    cold_train, cold = splits.cold_start(split.train, users, 50)
    assert len(cold) == 50
    counts = cold_train.groupby("user_id").size()
    assert (counts[cold] == splits.COLD_START_KEEP).all()
    assert rating_pairs(cold_train) <= rating_pairs(split.train)
    others = ~split.train["user_id"].isin(cold)
    assert rating_pairs(split.train[others]) <= rating_pairs(cold_train)  # everyone else keeps every rating
    assert np.array_equal(splits.cold_start(split.train, users, 50)[1], cold)


# -- collab factors ----------------------------------------------------------------------------
def test_collab_vectors_put_co_rated_movies_closer(ml100k: pd.DataFrame) -> None:
    train = splits.stratified_split(ml100k).train
    vectors = collab.item_vectors(train["user_id"].to_numpy(), train["movie_id"].to_numpy(), dim=33)
    assert set(vectors) == set(train["movie_id"])  # every rated movie, and only those
    stacked = np.stack(list(vectors.values()))
    assert stacked.shape[1] == 33
    np.testing.assert_allclose(np.linalg.norm(stacked, axis=1), 1.0, atol=1e-5)

    # Pairs rated together by the most users vs random pairs of the same movies.
    users_of = train.groupby("movie_id")["user_id"].apply(set)
    popular = users_of.index[np.argsort(-users_of.map(len).to_numpy())[:150]]
    pairs = [(a, b) for i, a in enumerate(popular) for b in popular[i + 1 :]]
    co = np.array([len(users_of[a] & users_of[b]) for a, b in pairs])
    top = [pairs[i] for i in np.argsort(-co)[:200]]
    rng = np.random.default_rng(0)
    ids = np.array(sorted(vectors))
    random_pairs = [tuple(rng.choice(ids, size=2, replace=False)) for _ in range(2000)]

    def mean_similarity(ps: list) -> float:
        return float(np.mean([collab.similarity(vectors[a], vectors[b])[0, 0] for a, b in ps]))

    assert mean_similarity(top) > mean_similarity(random_pairs) + 0.3


def test_user_normalised_gram_keeps_the_trace_and_damps_heavy_users() -> None:
    """XᵀDX with D = n_u^-a, scaled to XᵀX's trace: a = 0 is XᵀX; with a > 0 a pair seen only by the
    heaviest user weighs less than a pair seen only by a light one."""
    rows = [0] * 6 + [1, 1] + [2, 2, 2]  # user 0 rated movies 0-5, user 1 movies 6-7, user 2 0, 6, 7
    cols = list(range(6)) + [6, 7] + [0, 6, 7]
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(3, 8))
    plain = collab._gram(x, 0.0)
    np.testing.assert_allclose(plain, (x.T @ x).toarray())
    damped = collab._gram(x, 0.5)
    np.testing.assert_allclose(np.trace(damped), x.nnz, rtol=1e-5)
    np.testing.assert_allclose(damped, damped.T, rtol=1e-6)
    assert damped[1, 2] < damped[6, 7] / 2  # movies 1, 2: user 0 (6 movies); 6, 7: users 1 and 2
    assert damped[1, 2] / damped[6, 7] < plain[1, 2] / plain[6, 7]


def test_collab_query_ranks_by_the_factor_dot_product() -> None:
    """The norm coordinate makes the engine's cosine rank exactly as the model's dot product."""
    rng = np.random.default_rng(3)
    users = rng.integers(0, 60, size=1500)
    movies = rng.integers(0, 80, size=1500) * 10
    vectors = collab.item_vectors(users, movies, dim=9, l2=5.0)
    ids = sorted(vectors)
    stored = np.stack([vectors[i] for i in ids])
    user = collab.factor_part(stored[:5]).sum(axis=0)
    query = collab.as_query(user)
    assert query is not None and query[-1] == 0.0
    by_cosine = np.argsort(-(stored @ query) / np.linalg.norm(stored, axis=1))
    by_dot = np.argsort(-(collab.factor_part(stored) @ user))
    assert np.array_equal(by_cosine, by_dot)
    assert collab.as_query(np.zeros(8)) is None
    assert collab.item_vectors([], [], dim=9) == {}


# -- the CLI, end to end ------------------------------------------------------------------------
def test_eval_cli_small_run(eval_data_dir: Path) -> None:
    env = {**os.environ, "MOVIEREC_DATA_DIR": str(eval_data_dir), "HF_HUB_OFFLINE": "1", "MOVIEREC_DEVICE": "cpu"}
    env.pop("QDRANT_URL", None)
    cmd = [
        sys.executable,
        "-m",
        "movierec.cli",
        "eval",
        "--dataset",
        "ml-100k",
        "--protocol",
        "stratified",
        "--k",
        "10",
        "--users",
        "100",
        "--json",
    ]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])

    assert {"dataset", "protocol", "k", "rows", "cold_start_rows", "seconds", "rmse_rows"} <= set(report)
    assert (report["dataset"], report["protocol"], report["k"]) == ("ml-100k", "stratified", 10)
    for table in ("rows", "cold_start_rows"):
        rows = {row["strategy"]: row for row in report[table]}
        assert list(rows) == list(STRATEGIES)
        for row in rows.values():
            assert set(row) == {"strategy", "precision", "recall", "ndcg", "map", "hit_rate", "coverage"}
            assert all(0.0 <= row[m] <= 1.0 for m in metrics.METRICS)
        assert rows["popularity"]["ndcg"] > rows["random"]["ndcg"]
        assert rows["random"]["coverage"] > rows["popularity"]["coverage"]
    rows = {row["strategy"]: row for row in report["rows"]}
    for strategy in ("itemknn", "collab", "hybrid"):
        assert rows[strategy]["ndcg"] > rows["popularity"]["ndcg"], strategy
    assert rows["hybrid"]["hit_rate"] > 0.8
    rmse = {row["strategy"]: row["rmse"] for row in report["rmse_rows"]}
    assert set(rmse) == {"user_mean", "content", "collab"}
    assert all(0.5 < v < 1.5 for v in rmse.values())
    assert rmse["collab"] < rmse["user_mean"]
