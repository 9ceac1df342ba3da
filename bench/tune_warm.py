"""Warm users on the stratified split (issue 11: MSR's item split, NDCG@10 >= 0.50): item-item
models beside today's collab fit, scored with numpy on a validation split carved from the training
part (the test's own rule, seed + 100), never on test.

    .venv/bin/python bench/tune_warm.py [--dataset ml-100k|demo] [--split item|user] [--seeds 1,2,3]
        [--families spectral,discount,blends,sequence] [--holdout 0.25] [--confirm-on-test]

Every validation user is scored over the whole catalogue as the served collab query does: the user
vector is Σ_i w_i f_i over their rated movies (w_i: the newest 5 x 1.25, x max(0, 1 + 0.2 (stars -
3)), 0 at 1 star or less, x max(|f_i|, 0.1)^-0.5 past 10 ratings: Tuning, user_vector.star_weights
and norm_weights), f the factors of collab.item_vectors, and a movie scores u·f_j. Printed per
configuration: NDCG@10 and P@10 (mean over every user of every seed), the paired NDCG difference
from today's fit ± its standard error, and NDCG per seed. Families:
- spectral: the rank of the symmetric factorisation, and its eigenvalues raised to a power;
- discount: each rated movie's weight x max(|f_i|, 0.1)^-γ (its factor norm, which the stored vector
  carries, correlates 0.99 in logs with its rating count; today γ = Tuning.collab_norm_power, γ = 0
  is the fit before it) or x count_i^-γ (an IDF on the query side);
- blends: RP3beta (Paudel et al. 2017) and user-kNN, each max-scaled per user and added to today's
  scores; EASE on an item-normalised Gram (D^-b XᵀDX D^-b, as GF-CF normalises);
- sequence: co-occurrence within a window of each user's rating order (exp(-d/τ) for d ratings
  apart), added to today's item-item matrix before the factorisation, or inside EASE's Gram.
`--confirm-on-test` scores the test split of the seeds with the same code: a one-off check of
configurations already chosen on validation, never a place to choose them.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from common import add_fold_args, log, paired_difference

from app.embedding import collab
from app.evaluation import splits
from app.evaluation.runner import load_dataset
from app.recommend.tuning import TUNED
from app.recommend.user_vector import DISLIKED_MAX, NORM_FLOOR, STAR_CENTRE

K = 10
FACTORS = 255  # collab.item_vectors(..., dim=256): 255 factors and the norm coordinate
FAMILIES = ("spectral", "discount", "blends", "sequence")


@dataclass
class Fold:
    """One seed's fitting part and validation targets, as dense users x movies matrices."""

    fit: pd.DataFrame
    ids: np.ndarray  # movie ids, one per column
    x: sp.csr_matrix  # binary: every user of the fitting part x movies
    weights: np.ndarray  # the served collab weights, evaluated users x movies
    plain: np.ndarray  # the same without the factor-norm discount (Tuning.collab_norm_power = 0)
    rows: np.ndarray  # the evaluated users' rows of x
    seen: np.ndarray  # evaluated users x movies: rated in the fitting part
    relevant: np.ndarray  # evaluated users x movies: held out
    factors: np.ndarray  # movies x FACTORS: today's collab fit (factor parts as stored)

    def evaluate(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-user NDCG@10 and P@10 of the top 10 unseen movies by `scores` (evaluated users x movies)."""
        s = np.where(self.seen, -np.inf, scores)
        top = np.argpartition(-s, K, axis=1)[:, :K]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(s, top, 1), axis=1, kind="stable"), 1)
        hits = np.take_along_axis(self.relevant, top, 1)
        discount = 1.0 / np.log2(np.arange(2, K + 2))
        ideal = np.cumsum(discount)[np.minimum(self.relevant.sum(1), K) - 1]
        return (hits * discount).sum(1) / ideal, hits.sum(1) / K

    def today(self) -> np.ndarray:
        return self.weights @ self.factors @ self.factors.T


def make_fold(movie_ids: list[int], ratings: pd.DataFrame, seed: int, by: str, on_test: bool, holdout: float) -> Fold:
    parts = splits.stratified_split(ratings, seed=seed, by=by)  # type: ignore[arg-type]
    if not on_test:
        parts = splits.stratified_split(parts.train, holdout, seed=seed + 100, by=by)  # type: ignore[arg-type]
    fit, held = parts.train, parts.test
    ids = np.unique(np.concatenate([movie_ids, fit["movie_id"].to_numpy()]))
    users = np.unique(fit["user_id"].to_numpy())
    cols = np.searchsorted(ids, fit["movie_id"].to_numpy())
    x = sp.csr_matrix(
        (np.ones(len(fit)), (np.searchsorted(users, fit["user_id"].to_numpy()), cols)), (len(users), len(ids))
    )
    evaluated = np.intersect1d(users, held["user_id"].unique())
    rows = np.searchsorted(users, evaluated)
    relevant = np.zeros((len(evaluated), len(ids)), dtype=bool)
    mine = held[held["user_id"].isin(evaluated) & held["movie_id"].isin(ids)]
    relevant[
        np.searchsorted(evaluated, mine["user_id"].to_numpy()), np.searchsorted(ids, mine["movie_id"].to_numpy())
    ] = True
    keep = relevant.any(axis=1)
    factors = np.zeros((len(ids), FACTORS))
    for m, v in collab.item_vectors(fit["user_id"].to_numpy(), fit["movie_id"].to_numpy(), FACTORS + 1).items():
        factors[np.searchsorted(ids, m)] = collab.factor_part(v)
    plain = _served_weights(fit, users, ids)[rows[keep]]
    warm = (plain > 0).sum(axis=1, keepdims=True) > TUNED.new_user_max  # shorter ones keep plain weights
    weights = np.where(warm, plain * _norm_discount(factors, TUNED.collab_norm_power)[None, :], plain)
    seen = x[rows[keep]].toarray() > 0
    return Fold(fit, ids, x, weights, plain, rows[keep], seen, relevant[keep], factors)


def _norm_discount(factors: np.ndarray, power: float) -> np.ndarray:
    """Per movie: max(|f|, NORM_FLOOR)^-power (user_vector.norm_weights; 0 for a movie without factors)."""
    norms = np.linalg.norm(factors, axis=1)
    discount: np.ndarray = np.where(norms > 0, np.maximum(norms, NORM_FLOOR) ** -power, 0.0)
    return discount


def _served_weights(fit: pd.DataFrame, users: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Users x movies: the collab user vector's weight of each rated movie, 0 elsewhere."""
    newest = fit.sort_values(["user_id", "timestamp", "movie_id"], ascending=[True, False, False])
    order = newest.groupby("user_id").cumcount().to_numpy()
    stars = newest["rating"].to_numpy(np.float64)
    w = (1.0 + TUNED.collab_recent_boost * (order < TUNED.collab_recent)) * np.maximum(
        1.0 + TUNED.collab_star_slope * (stars - STAR_CENTRE), 0.0
    )
    w[stars <= DISLIKED_MAX] = 0.0
    out = np.zeros((len(users), len(ids)))
    out[np.searchsorted(users, newest["user_id"].to_numpy()), np.searchsorted(ids, newest["movie_id"].to_numpy())] = w
    return out


# -- item-item matrices --------------------------------------------------------------------------


def low_rank(s: np.ndarray, k: int = FACTORS, power: float = 1.0) -> np.ndarray:
    """The symmetric part of `s` from its k largest eigenpairs, eigenvalues raised to `power`."""
    values, vectors = np.linalg.eigh((s + s.T) / 2)
    top = np.argsort(-values)[:k]
    return (vectors[:, top] * np.maximum(values[top], 0.0) ** power) @ vectors[:, top].T


def user_gram(x: sp.csr_matrix, a: float = collab.USER_NORM) -> np.ndarray:
    return collab._gram(x, a)


def ease(gram: np.ndarray, l2: float = collab.COLLAB_L2) -> np.ndarray:
    a = gram.copy()
    a[np.diag_indices_from(a)] += l2
    p = np.linalg.inv(a)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def rp3beta(x: sp.csr_matrix, beta: float) -> np.ndarray:
    counts = np.maximum(np.asarray(x.sum(0)).ravel(), 1.0)
    user_step = sp.diags(1.0 / np.maximum(np.asarray(x.sum(1)).ravel(), 1.0)) @ x
    w = (sp.diags(1.0 / counts) @ x.T @ user_step).toarray() / counts[None, :] ** beta
    np.fill_diagonal(w, 0.0)
    return w


def user_knn(fold: Fold, k: int) -> np.ndarray:
    """Scores of the evaluated users from their k most similar users (cosine of binary rows)."""
    dense = fold.x.toarray()
    unit = dense / np.maximum(np.linalg.norm(dense, axis=1, keepdims=True), 1e-12)
    sim = unit[fold.rows] @ unit.T
    sim[np.arange(len(fold.rows)), fold.rows] = 0.0
    np.put_along_axis(sim, np.argpartition(-sim, k, axis=1)[:, k:], 0.0, axis=1)
    scores: np.ndarray = sim @ dense
    return scores


def sequence_gram(fold: Fold, window: int, tau: float, diagonal: bool) -> np.ndarray:
    """Σ_u n_u^-USER_NORM Σ_{pairs d <= window ratings apart} exp(-d/τ): co-occurrence in rating order."""
    f = fold.fit.sort_values(["user_id", "timestamp", "movie_id"])
    u, m, n = f["user_id"].to_numpy(), np.searchsorted(fold.ids, f["movie_id"].to_numpy()), len(fold.ids)
    weight = f.groupby("user_id")["user_id"].transform("size").to_numpy(np.float64) ** -collab.USER_NORM
    flat = np.bincount(m * n + m, weights=weight, minlength=n * n) if diagonal else np.zeros(n * n)
    for d in range(1, window + 1):
        same = u[d:] == u[:-d]
        a, b, w = m[:-d][same], m[d:][same], np.exp(-d / tau) * weight[d:][same]
        flat += np.bincount(a * n + b, weights=w, minlength=n * n) + np.bincount(b * n + a, weights=w, minlength=n * n)
    return flat.reshape(n, n)


# -- configurations ------------------------------------------------------------------------------

Scorer = Callable[[Fold], np.ndarray]


def _per_user_max(scores: np.ndarray) -> np.ndarray:
    scaled: np.ndarray = scores / np.maximum(np.abs(scores).max(axis=1, keepdims=True), 1e-12)
    return scaled


def spectral() -> dict[str, Scorer]:
    out: dict[str, Scorer] = {}
    for k in (150, 200, 350):
        out[f"rank {k}"] = lambda f, k=k: f.weights @ low_rank(f.factors @ f.factors.T, k)
    for power in (1.2, 1.5):
        out[f"eigenvalues ^{power}"] = lambda f, p=power: f.weights @ low_rank(f.factors @ f.factors.T, power=p)
    return out


def discount() -> dict[str, Scorer]:
    def by_norm(g: float) -> Scorer:
        return lambda f: (f.plain * _norm_discount(f.factors, g)[None, :]) @ f.factors @ f.factors.T

    def by_count(g: float) -> Scorer:
        return lambda f: (f.plain * np.maximum(np.asarray(f.x.sum(0)).ravel(), 1.0) ** -g) @ f.factors @ f.factors.T

    out = {f"w x |f|^-{g}": by_norm(g) for g in (0.0, 0.25, 0.5, 0.75)}
    return out | {f"w x count^-{g}": by_count(g) for g in (0.15, 0.25)}


def blends() -> dict[str, Scorer]:
    def rp3(beta: float, share: float) -> Scorer:
        return lambda f: _per_user_max(f.today()) + share * _per_user_max(f.weights @ rp3beta(f.x, beta))

    def uknn(k: int, share: float) -> Scorer:
        return lambda f: _per_user_max(f.today()) + share * _per_user_max(user_knn(f, k))

    def item_norm(b: float) -> Scorer:
        def score(f: Fold) -> np.ndarray:
            d = np.maximum(np.asarray(f.x.sum(0)).ravel(), 1.0) ** -b
            gram = user_gram(f.x) * d[:, None] * d[None, :]
            return (f.weights * d[None, :]) @ low_rank(
                ease(gram, collab.COLLAB_L2 * np.trace(gram) / np.trace(user_gram(f.x)))
            )

        return score

    out = {"rp3beta alone (β 0.5)": lambda f: f.weights @ rp3beta(f.x, 0.5)}
    out |= {f"+ {s} rp3beta (β 0.3)": rp3(0.3, s) for s in (0.1, 0.25)}
    out |= {f"+ {s} user-kNN (k 100)": uknn(100, s) for s in (0.2, 0.5)}
    return out | {f"item-normalised Gram b={b}": item_norm(b) for b in (0.1, 0.25)}


def sequence() -> dict[str, Scorer]:
    def added(window: int, tau: float, share: float) -> Scorer:
        def score(f: Fold) -> np.ndarray:
            s = f.factors @ f.factors.T
            g = user_gram(f.x)
            t = sequence_gram(f, window, tau, diagonal=False) / (np.sqrt(np.outer(np.diag(g), np.diag(g))) + 1e-9)
            return f.weights @ low_rank(s / np.linalg.norm(s) + share * t / np.linalg.norm(t))

        return score

    def in_gram(window: int, tau: float, share: float) -> Scorer:
        def score(f: Fold) -> np.ndarray:
            g, kernel = user_gram(f.x), sequence_gram(f, window, tau, diagonal=True)
            mixed = g + share * kernel * np.trace(g) / np.trace(kernel)
            return f.weights @ low_rank(ease(mixed * np.trace(g) / np.trace(mixed)))

        return score

    out = {f"+ {s} window 10 (τ 3)": added(10, 3.0, s) for s in (0.3, 1.0, 3.0)}
    out |= {"+ 1 window 3 (τ 1)": added(3, 1.0, 1.0)}
    return out | {f"Gram + {s} window 20 (τ 5)": in_gram(20, 5.0, s) for s in (0.5, 1.0)}


def run(folds: list[Fold], configs: dict[str, Scorer], label: str) -> None:
    results = {name: [f.evaluate(score(f)) for f in folds] for name, score in {"today": Fold.today, **configs}.items()}
    base = np.concatenate([r[0] for r in results["today"]])
    for name, per_fold in results.items():
        ndcg, prec = np.concatenate([r[0] for r in per_fold]), np.concatenate([r[1] for r in per_fold])
        seeds = " ".join(f"{r[0].mean():.4f}" for r in per_fold)
        change = paired_difference(ndcg, base)
        print(f"{label} {name:<28} ndcg={ndcg.mean():.4f} ({change}) p={prec.mean():.4f} seeds {seeds}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_fold_args(parser)
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--holdout", default=splits.TEST_RATIO, type=float, help="validation: the share carved out")
    parser.add_argument("--confirm-on-test", action="store_true", help="score the test split: a check, not a tuning")
    args = parser.parse_args()
    started = time.perf_counter()
    movies, ratings = load_dataset(args.dataset)
    folds = [
        make_fold([m.id for m in movies], ratings, s, args.split, args.confirm_on_test, args.holdout)
        for s in args.seeds
    ]
    log(f"{args.dataset} {args.split}: {sum(len(f.rows) for f in folds)} users over {len(folds)} seeds")
    builders = {"spectral": spectral, "discount": discount, "blends": blends, "sequence": sequence}
    configs: dict[str, Scorer] = {}
    for family in args.families.split(","):
        configs |= builders[family]()
    part = "test" if args.confirm_on_test else "validation"
    run(folds, configs, f"{args.dataset} {args.split} {part}")
    log(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
