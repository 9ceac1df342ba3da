"""Tune first contact on a validation split carved from the training part, never on test: the
popularity prior of short histories (issue 11 part 2) and the content -> collab map of new movies
(part 3). Pure numpy over the same collab factors the index stores (app/embedding/collab.py).

    .venv/bin/python bench/tune_first_contact.py [--dataset ml-100k]
        [--part users|movies|time|coverage|priors|short|warm] [--split item|user]

users: validation users' fitting history cut to n = 1, 2, 3, 5, 10 random ratings (20% of the users
    at a time, five folds; --targets dropped: see new_users); the collab
    user vector u = Σ f_i is blended with the popularity direction p = Σ_j count_j f_j as
    unit(u) + α unit(p); NDCG@10 per n and α, next to popularity, EASE and item-kNN; and an exact
    popularity term (x=: max-scaled collab score + α x max-scaled count).
movies: 15% of the movies lose their fitting ratings (three draws); content -> factors maps (ridge,
    with genres and decade, kNN in content space, an MLP in torch, direction and length apart) crossed
    with how new movies compete (a reserved place with a minimum score ratio, one or two of them,
    per-user shares, a handicap, per-user z-calibration, a calibrated residual), by overall NDCG@10
    and recall@10, new-movie recall@10 and NDCG@10 among new movies; then the reserved place's
    price on the validation split as it is (see new_movies).
time: recency weighting of the collab user vector (by age, by order, the newest K boosted) on a
    temporal and a stratified validation split (see recency).
coverage: which movies get rating-fitted collab vectors (see coverage).
warm (--split item|user): the collab fit and the stars' weight in the user vector on the warm
    stratified split, by MSR's item split or the user split (see warm).
priors, short (--protocol temporal|stratified): for histories cut to 1-10 ratings, which popularity
    the blend pulls towards (all-time, trending, as of the user's newest rating) and collab variants
    nearer to item-kNN (see priors, short).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from common import eval_text_vectors, log, paired_difference

from app.embedding import collab
from app.embedding.movie import combine
from app.evaluation import baselines, splits
from app.evaluation.metrics import ndcg_at_k, precision_at_k
from app.evaluation.runner import load_dataset
from app.recommend.tuning import TUNED
from app.recommend.user_vector import SECONDS_PER_DAY
from app.settings import get_settings

K = 10
LENGTHS = (1, 2, 3, 5, 10)
ALPHAS = (0.0, 0.5, 1.0, 1.5, 2.0)
ALPHAS_EXACT = (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0)


def factors(train: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Movie ids and their (unnormalised) EASE factors."""
    items, x = collab.core_interactions(train["user_id"].to_numpy(), train["movie_id"].to_numpy())
    return items, collab.ease_factors(x, 255)


def ndcg(recs: dict[int, list[int]], relevant: dict[int, set[int]]) -> float:
    return float(np.mean([ndcg_at_k(recs[u], relevant[u], K) for u in recs]))


def new_users(movies: list, fit: pd.DataFrame, relevant: dict[int, set[int]], dropped: bool, folds: int = 5) -> None:
    """Five folds of 20% of the users (`movierec eval` cuts 20%), each fold's histories cut in turn
    and the factors refitted. Targets: the validation part, or with `dropped` the cut users' dropped
    ratings (`fit` is then the whole training part, so the other users are as dense as on test).
    Columns: baselines; a=: unit(u) + α unit(p); tuned: at Tuning.prior_weight(n); rated / unit: u as
    the rating-weighted sum, or the sum of unit-length factors, at that α; x=: an exact popularity term."""
    ids = [m.id for m in movies]
    everyone = np.random.default_rng(splits.SEED).permutation(np.array(sorted(fit["user_id"].unique())))
    size = round(0.2 * len(everyone))
    for n in LENGTHS:
        scores: dict[str, list[float]] = {}
        for fold in range(folds):
            cut, chosen = splits.cold_start(fit, everyone[fold::folds][:size], size, keep=n, seed=splits.SEED + fold)
            targets = relevant
            if dropped:
                kept = cut.groupby("user_id")["movie_id"].apply(set)
                every = fit[fit["user_id"].isin(chosen)].groupby("user_id")["movie_id"].apply(set)
                targets = {int(u): every[u] - kept[u] for u in chosen}
            for key, value in _new_user_scores(ids, cut, [int(u) for u in chosen], n).items():
                scores.setdefault(key, []).extend(ndcg_at_k(value[u], targets[u], K) for u in value)
        line = " ".join(f"{k}={np.mean(v):.4f}" for k, v in scores.items())
        print(f"n={n:<3} users={len(scores['popularity'])} {line}", flush=True)


def _new_user_scores(ids: list[int], cut: pd.DataFrame, chosen: list[int], n: int) -> dict[str, dict[int, list[int]]]:
    cat = baselines.CandidatePool(ids, cut)
    items, f = factors(cut)
    full = np.zeros((len(cat.ids), f.shape[1]))
    full[np.searchsorted(cat.ids, items)] = f
    counts = np.bincount(np.searchsorted(cat.ids, cut["movie_id"].to_numpy()), minlength=len(cat.ids))
    p = counts @ full
    p /= np.linalg.norm(p)
    out = {
        "popularity": baselines.popularity(cat, chosen, K),
        "itemknn": baselines.itemknn(cat, chosen, K),
        "ease": baselines.ease(cat, chosen, K),
    }
    stars = {int(u): g.to_numpy(np.float64) for u, g in cut.groupby("user_id")["rating"]}
    norms = np.maximum(np.linalg.norm(full, axis=1), 1e-12)
    tuned = TUNED.prior_weight(n)
    pop = counts / counts.max()
    variants = {f"a={a:g}": (a, "sum") for a in ALPHAS}
    variants |= {"tuned": (tuned, "sum"), "rated": (tuned, "rated"), "unit": (tuned, "unit")}
    for name, (a, kind) in variants.items():
        recs = {}
        for u in chosen:
            rated = cat.rated[u]
            w = {"sum": np.ones(len(rated)), "rated": stars[u], "unit": 1.0 / norms[rated]}[kind]
            uv = w @ full[rated]
            recs[u] = cat.top_k(full @ (uv / max(np.linalg.norm(uv), 1e-12) + a * p), u, K)
        out[name] = recs
    for a in ALPHAS_EXACT:  # max-scaled collab score + α x max-scaled training count
        recs = {}
        for u in chosen:
            s = full @ full[cat.rated[u]].sum(axis=0)
            recs[u] = cat.top_k(s / max(s.max(), 1e-12) + a * pop, u, K)
        out[f"x={a:g}"] = recs
    return out


def priors(movies: list, ratings: pd.DataFrame, dataset: str, protocol: str) -> None:
    """Which popularity the short-history blend unit(u) + α(n) unit(p) pulls towards (issue 11: the
    temporal cold slices). p = Σ_j c_j f_j with c_j: every fitting rating (all, today's rule);
    the ratings of the last N days before the fitting part's newest timestamp (recent-N: what a live
    service would call trending); or of the N days before the user's own newest rating (local-N: the
    same thing seen from each user's "now", which is what the protocols ask of users rating in the
    past; local-all: every rating up to then); seen: all counts, of the movies first rated by then.
    Each at Tuning.prior_weight(n); today's and local-all also at 1.5x it (x1.5). Users cut as in new_users, on the
    temporal or the stratified validation split; ± is the standard error of the paired difference
    from today's blend."""
    sweep(movies, ratings, dataset, protocol, _prior_scores)


def sweep(
    movies: list,
    ratings: pd.DataFrame,
    dataset: str,
    protocol: str,
    scorer: Callable[[list[int], pd.DataFrame, list[int], int], dict[str, dict[int, list[int]]]],
    folds: int = 5,
) -> None:
    """Validation users' histories cut to n = LENGTHS ratings, 20% of them at a time (as `movierec
    eval` cuts), five folds; NDCG@10 of every ranking `scorer` returns, with the paired difference
    from its "blend" (today's rule) ± its standard error."""
    fit, relevant = validation(ratings, protocol)
    ids = [m.id for m in movies]
    everyone = np.random.default_rng(splits.SEED).permutation(np.array(sorted(relevant)))
    size = round(0.2 * len(everyone))
    for n in LENGTHS:
        scores: dict[str, list[float]] = {}
        for fold in range(folds):
            cut, chosen = splits.cold_start(fit, everyone[fold::folds][:size], size, keep=n, seed=splits.SEED + fold)
            for key, value in scorer(ids, cut, [int(u) for u in chosen], n).items():
                scores.setdefault(key, []).extend(ndcg_at_k(value[u], relevant[u], K) for u in value)
        base = np.array(scores["blend"])
        cells = []
        for key, values in scores.items():
            change = f"({paired_difference(np.array(values), base)})" if key != "blend" else ""
            cells.append(f"{key}={np.mean(values):.4f}{change}")
        print(f"{dataset} {protocol} n={n:<3} users={len(base)} " + " ".join(cells), flush=True)


def validation(ratings: pd.DataFrame, protocol: str) -> tuple[pd.DataFrame, dict[int, set[int]]]:
    """The fitting part and each validation user's held-out movies: the test protocol applied again
    to its own training part (temporal: each user's latest 25% of it; stratified: another seed)."""
    if protocol == "temporal":
        parts = splits.temporal_split(splits.temporal_split(ratings).train)
    else:
        parts = splits.stratified_split(splits.stratified_split(ratings).train, seed=splits.SEED + 1)
    relevant = {int(u): set(g.tolist()) for u, g in parts.test.groupby("user_id")["movie_id"]}
    return parts.train, relevant


RECENT_DAYS = (90,)  # 30 and 180 lost too (README, Quality)
LOCAL_DAYS = (365, None)  # None: every rating up to the user's newest


def _prior_scores(ids: list[int], cut: pd.DataFrame, chosen: list[int], n: int) -> dict[str, dict[int, list[int]]]:
    cat = baselines.CandidatePool(ids, cut)
    items, f = factors(cut)
    full = np.zeros((len(cat.ids), f.shape[1]))
    full[np.searchsorted(cat.ids, items)] = f
    cols = np.searchsorted(cat.ids, cut["movie_id"].to_numpy())
    stamps = cut["timestamp"].to_numpy()
    order = np.argsort(stamps, kind="stable")
    cols, stamps = cols[order], stamps[order]

    def window(end: float, days: float | None) -> np.ndarray:
        """Ratings per movie in (end - days, end]; every one up to `end` when days is None."""
        lo = np.searchsorted(stamps, end - days * SECONDS_PER_DAY, side="right") if days else 0
        hi = np.searchsorted(stamps, end, side="right")
        return np.bincount(cols[lo:hi], minlength=len(cat.ids)).astype(np.float64)

    def unit(v: np.ndarray) -> np.ndarray:
        return v / max(float(np.linalg.norm(v)), 1e-12)

    all_counts = np.bincount(cols, minlength=len(cat.ids)).astype(np.float64)
    own_newest = cut.groupby("user_id")["timestamp"].max()
    first_rated = np.full(len(cat.ids), np.inf)
    np.minimum.at(first_rated, cols, stamps)
    tiebreak = np.arange(len(cat.ids)) * 1e-9
    out = {"popularity": baselines.popularity(cat, chosen, K)}
    out["pop-local-all"] = {u: cat.top_k(window(own_newest[u], None) - tiebreak, u, K) for u in chosen}
    alpha = TUNED.prior_weight(n)
    users = {u: unit(full[cat.rated[u]].sum(axis=0)) for u in chosen}
    priors: dict[str, Callable[[int], np.ndarray]] = {"blend": lambda u: all_counts}
    priors |= {f"recent-{d}": lambda u, d=d: window(stamps.max(), d) for d in RECENT_DAYS}
    priors |= {f"local-{d or 'all'}": lambda u, d=d: window(own_newest[u], d) for d in LOCAL_DAYS}
    priors["seen"] = lambda u: all_counts * (first_rated <= own_newest[u])
    for scale in (1.0, 1.5):
        for name, counts in priors.items():
            if scale != 1.0 and name not in ("blend", "local-all"):
                continue
            recs = {}
            for u in chosen:
                recs[u] = cat.top_k(full @ (users[u] + scale * alpha * unit(counts(u) @ full)), u, K)
            out[name + ("" if scale == 1.0 else f" x{scale:g}")] = recs
    return out


def short(movies: list, ratings: pd.DataFrame, dataset: str, protocol: str) -> None:
    """The collab side of the short-history blend, nearer to item-kNN (issue 11, 3-10 ratings):
    item-kNN sums the cosines of the rated movies' columns, so neither a rated movie nor a candidate
    weighs by how often it was rated, while u = Σ f_i and the prior both lean to the most rated.
    Variants at Tuning.prior_weight(n) unless named: a=: that α instead (0 and below: no or a
    negative prior); idf=γ: u = Σ f_i / c_i^γ (c_i: movie i's rating count); cos: rank every movie
    by Σ_i cos(f_i, f_j) (item-kNN in the factor space); re50 cos: the blend's top 50 re-ranked by
    it (what a re-rank of the engine's candidates could do); re50 mix=b: by the blend's score
    + b x that sum, each max-scaled."""
    sweep(movies, ratings, dataset, protocol, _short_scores)


RERANK_POOL = 50


def _short_scores(ids: list[int], cut: pd.DataFrame, chosen: list[int], n: int) -> dict[str, dict[int, list[int]]]:
    cat = baselines.CandidatePool(ids, cut)
    items, f = factors(cut)
    full = np.zeros((len(cat.ids), f.shape[1]))
    full[np.searchsorted(cat.ids, items)] = f
    counts = np.bincount(np.searchsorted(cat.ids, cut["movie_id"].to_numpy()), minlength=len(cat.ids)).astype(float)
    p = counts @ full
    p /= np.linalg.norm(p)
    norms = np.linalg.norm(full, axis=1)
    unit_rows = full / np.maximum(norms, 1e-12)[:, None]
    alpha = TUNED.prior_weight(n)
    out = {"itemknn": baselines.itemknn(cat, chosen, K), "ease": baselines.ease(cat, chosen, K)}

    def blend(weights: Callable[[np.ndarray], np.ndarray], a: float) -> dict[int, list[int]]:
        recs = {}
        for u in chosen:
            rated = cat.rated[u]
            uv = weights(rated) @ full[rated]
            recs[u] = cat.top_k(full @ (uv / max(np.linalg.norm(uv), 1e-12) + a * p), u, K)
        return recs

    ones = lambda rated: np.ones(len(rated))  # noqa: E731
    out["blend"] = blend(ones, alpha)
    for a in (0.0, -0.25, 0.5 * alpha):
        out[f"a={a:.2g}"] = blend(ones, a)
    for gamma in (0.5, 1.0):
        out[f"idf={gamma:g}"] = blend(lambda rated, g=gamma: 1.0 / np.maximum(counts[rated], 1.0) ** g, alpha)
    out["cos"], out["re50 cos"] = {}, {}
    mixes = (0.5, 1.0, 2.0)
    for b in mixes:
        out[f"re50 mix={b:g}"] = {}
    for u in chosen:
        rated = cat.rated[u]
        uv = full[rated].sum(axis=0)
        blended = full @ (uv / max(np.linalg.norm(uv), 1e-12) + alpha * p)
        cosines = unit_rows @ unit_rows[rated].sum(axis=0)
        out["cos"][u] = cat.top_k(cosines, u, K)
        pool = cat.top_k(blended, u, RERANK_POOL)
        cols = np.array([cat.column[m] for m in pool])
        only = np.full(len(cat.ids), -np.inf)
        only[cols] = cosines[cols]
        out["re50 cos"][u] = cat.top_k(only, u, K)
        for b in mixes:
            only[cols] = blended[cols] / blended[cols].max() + b * cosines[cols] / max(cosines[cols].max(), 1e-12)
            out[f"re50 mix={b:g}"][u] = cat.top_k(only, u, K)
    return out


def new_movies(movies: list, fit: pd.DataFrame, relevant: dict[int, set[int]], draws: int = 3) -> None:
    """15% of the movies lose their fitting ratings (`draws` seeded draws, metrics averaged); every
    validation user is scored. Maps content -> factors (see MAPS) crossed with how new movies compete
    (see _policies); columns: overall NDCG@10 and recall@10 over every user, new-movie recall@10 over
    the users with a held-out new movie, NDCG@10 among new movies only. `ceiling`: collab fitted
    with the new movies' ratings kept; `oracle`: those ratings folded into the warm factor space
    (collab._fold_in), what a perfect map could give through the same rules."""
    text = eval_text_vectors(movies, get_settings())
    content = {m.id: combine(text[m.id], None)[0] for m in movies}
    genres, years = {m.id: m.genres for m in movies}, {m.id: m.year for m in movies}
    features = {w: collab.content_inputs(content, genres, years, w) for w in (0.5, 1.0)}
    ids = np.array(sorted(content))
    totals: dict[str, list[np.ndarray]] = {}
    for draw in range(draws):
        new = set(np.random.default_rng(7 + draw).choice(ids, size=round(0.15 * len(ids)), replace=False).tolist())
        for name, row in _new_movie_draw(ids, content, features, fit, relevant, new).items():
            totals.setdefault(name, []).append(row)
            print(f"draw={draw} {name:<44} " + _cols(row), flush=True)
    print("mean over draws:")
    for name, rows in totals.items():
        print(f"{name:<44} " + _cols(np.mean(rows, axis=0)), flush=True)
    # The exploration place's price where nothing was held out: the validation split as it is, whose
    # only movies without ratings are those the fitting part never saw.
    unrated = set(ids.tolist()) - set(fit["movie_id"].tolist())
    print(f"warm validation split ({len(unrated)} movies never rated in the fitting part):")
    for name, row in _new_movie_draw(ids, content, features, fit, relevant, unrated).items():
        if (
            name.startswith(("EASE", "collab, no", "ridge l2=1 (before)", "ridge l2=3 +genres+decade x1"))
            and "slot" in name
            or " | " not in name
        ):
            print(f"{name:<44} " + _cols(row), flush=True)


def _cols(row: np.ndarray) -> str:
    return f"ndcg={row[0]:.4f} recall={row[1]:.4f} new-recall={row[2]:.4f} among-new={row[3]:.4f}"


def _ridge(c: np.ndarray, f: np.ndarray, new: np.ndarray, l2: float, intercept: bool = False) -> np.ndarray:
    if intercept:
        cm, fm = c.mean(axis=0), f.mean(axis=0)
        return fm + _ridge(c - cm, f - fm, new - cm, l2)
    gram = c.T @ c
    gram[np.diag_indices_from(gram)] += l2
    return new @ np.linalg.solve(gram, c.T @ f)


def _knn(c: np.ndarray, f: np.ndarray, new: np.ndarray, k: int, power: float) -> np.ndarray:
    """Similarity-weighted mean of the k nearest rated movies' factors (content cosine)."""
    sim = (new / np.linalg.norm(new, axis=1, keepdims=True)) @ (c / np.linalg.norm(c, axis=1, keepdims=True)).T
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    w = np.maximum(np.take_along_axis(sim, top, axis=1), 0.0) ** power
    w /= np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return np.einsum("nk,nkd->nd", w, f[top])


def _mlp(
    c: np.ndarray, f: np.ndarray, new: np.ndarray, hidden: int, decay: float, gram: np.ndarray | None
) -> np.ndarray:
    """A one-hidden-layer MLP (torch, CPU, full batch), MSE on the factors, or with `gram` the
    users' score error tr(E G Eᵀ), G = UᵀU (what a ranking sees)."""
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(1)
    x, y = torch.tensor(c, dtype=torch.float32), torch.tensor(f, dtype=torch.float32)
    scale = float(y.std())
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=decay)
    g = None if gram is None else torch.tensor(gram / np.trace(gram) * len(gram), dtype=torch.float32)
    for _ in range(300):
        opt.zero_grad()
        e = (net(x) - y) / scale
        loss = (e**2).mean() if g is None else ((e @ g) * e).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        out: np.ndarray = net(torch.tensor(new, dtype=torch.float32)).numpy().astype(np.float64)
    return out


def _norm_split(c: np.ndarray, f: np.ndarray, new: np.ndarray, l2: float) -> np.ndarray:
    """Direction and length apart: ridge on the unit factors, renormalised, times a ridge
    prediction of the length."""
    norms = np.linalg.norm(f, axis=1)
    d = _ridge(c, f / np.maximum(norms[:, None], 1e-12), new, l2)
    d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    length = np.clip(_ridge(c, norms[:, None], new, l2, intercept=True), 0.0, norms.max())
    return d * length


MAPS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]] = {
    "ridge l2=1 (before)": lambda c, f, n, g: _ridge(c, f, n, 1.0),
    "ridge l2=3": lambda c, f, n, g: _ridge(c, f, n, 3.0),
    "ridge l2=1 intercept": lambda c, f, n, g: _ridge(c, f, n, 1.0, intercept=True),
    "knn k=10": lambda c, f, n, g: _knn(c, f, n, 10, 1.0),
    "knn k=30 sim^4": lambda c, f, n, g: _knn(c, f, n, 30, 4.0),
    "norm split l2=1": lambda c, f, n, g: _norm_split(c, f, n, 1.0),
    "mlp 256 wd=0.01": lambda c, f, n, g: _mlp(c, f, n, 256, 0.01, None),
    "mlp 256 wd=0.1 score loss": lambda c, f, n, g: _mlp(c, f, n, 256, 0.1, g),
}


def _new_movie_draw(
    ids: np.ndarray,
    content: dict[int, np.ndarray],
    features: dict[int, np.ndarray],
    fit: pd.DataFrame,
    relevant: dict[int, set[int]],
    new: set[int],
) -> dict[str, np.ndarray]:
    warm_fit = fit[~fit["movie_id"].isin(new)]
    cat = baselines.CandidatePool(ids, warm_fit)
    users = sorted(u for u in relevant if u in cat.rated)
    rows = np.concatenate([np.full(len(cat.rated[u]), i) for i, u in enumerate(users)])
    cols = np.concatenate([cat.rated[u] for u in users])
    x = np.zeros((len(users), len(ids)))
    x[rows, cols] = 1.0
    new_cols = np.searchsorted(ids, sorted(new))
    is_new = np.zeros(len(ids), dtype=bool)
    is_new[new_cols] = True
    warm = np.zeros((len(ids), 255))
    items, f = factors(warm_fit)
    warm[np.searchsorted(ids, items)] = f
    warm /= np.linalg.norm(f, axis=1).max()  # as stored: factor parts of unit vectors (collab._equal_norms)
    u_f = x @ warm
    s_warm = u_f @ warm.T
    s_warm[x > 0] = -np.inf
    s_warm[:, is_new] = -np.inf
    c_known = np.array([content[m] for m in ids[~is_new & warm.any(axis=1)]], dtype=np.float64)
    c_new = np.array([content[m] for m in ids[new_cols]], dtype=np.float64)
    f_known = warm[~is_new & warm.any(axis=1)]
    gram = u_f.T @ u_f
    ctx = _Draw(users, relevant, new, cat, s_warm, u_f, new_cols, x)
    out = {}
    ease_recs = baselines.ease(cat, users, K)
    out["EASE full rank (reference)"] = ctx.metrics(ease_recs, None)
    out["collab, no new movies"] = ctx.metrics(ctx.top(s_warm), None)
    # The ceiling: collab fitted with the new movies' ratings kept (what they would score once rated).
    every = np.zeros((len(ids), 255))
    every_items, every_f = factors(fit)
    every[np.searchsorted(ids, every_items)] = every_f
    whole = baselines.CandidatePool(ids, fit[fit["user_id"].isin(users)])
    x_every = np.zeros_like(x)
    for i, u in enumerate(users):
        x_every[i, whole.rated[u]] = 1.0
    s_every = x_every @ every @ every.T
    s_every[x_every > 0] = -np.inf
    ceiling = ctx.metrics(ctx.top(s_every), None)
    out["collab with the new movies' ratings (ceiling)"] = ceiling
    # The oracle: the new movies' own ratings folded into the same space (collab._fold_in).
    x_new = np.zeros((len(users), len(new_cols)))
    held = fit[fit["movie_id"].isin(new) & fit["user_id"].isin(users)]
    x_new[
        np.searchsorted(users, held["user_id"].to_numpy()), np.searchsorted(ids[new_cols], held["movie_id"].to_numpy())
    ] = 1
    ridge = gram + collab.FOLD_L2 * np.trace(gram) / len(gram) * np.eye(len(gram))
    predictions = {"oracle (own ratings)": np.linalg.solve(ridge, u_f.T @ x_new).T}
    for name, predict in MAPS.items():
        predictions[name] = predict(c_known, f_known, c_new, gram)
    for weight, inputs in features.items():  # with genres and decade (collab.content_inputs)
        known = np.array([inputs[m] for m in ids[~is_new & warm.any(axis=1)]], dtype=np.float64)
        fresh = np.array([inputs[m] for m in ids[new_cols]], dtype=np.float64)
        for l2 in (1.0, 3.0):
            predictions[f"ridge l2={l2:g} +genres+decade x{weight:g}"] = _ridge(known, f_known, fresh, l2)
    for name, pred in predictions.items():
        capped = pred / np.maximum(np.linalg.norm(pred, axis=1, keepdims=True), 1.0)  # stored vectors are unit
        for policy, recs in _policies(ctx, capped, warm[~is_new & warm.any(axis=1)], name).items():
            out[f"{name} | {policy}"] = ctx.metrics(recs, u_f @ capped.T)
    return out


class _Draw:
    """One draw's users, scores and metrics."""

    def __init__(self, users, relevant, new, cat, s_warm, u_f, new_cols, x) -> None:  # type: ignore[no-untyped-def]
        self.users, self.relevant, self.new, self.cat = users, relevant, new, cat
        self.s_warm, self.u_f, self.new_cols, self.x = s_warm, u_f, new_cols, x

    def top(self, s: np.ndarray, k: int = K) -> np.ndarray:
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, top, axis=1), axis=1, kind="stable")
        return np.take_along_axis(top, order, axis=1)

    def metrics(self, recs: dict[int, list[int]] | np.ndarray, s_new: np.ndarray | None) -> np.ndarray:
        """overall NDCG@10, recall@10 (every user); new-movie recall@10; NDCG@10 among new movies."""
        lists = (
            recs if isinstance(recs, dict) else {u: self.cat.ids[recs[i]].tolist() for i, u in enumerate(self.users)}
        )
        ndcgs, recalls, new_recalls, among = [], [], [], []
        among_top = None
        if s_new is not None:
            masked = np.where(self.x[:, self.new_cols] > 0, -np.inf, s_new)
            among_top = self.new_cols[self.top(masked)]
        for i, u in enumerate(self.users):
            rel = self.relevant[u]
            ndcgs.append(ndcg_at_k(lists[u], rel, K))
            recalls.append(len(set(lists[u]) & rel) / len(rel))
            rel_new = rel & self.new
            if rel_new:
                new_recalls.append(len(set(lists[u]) & rel_new) / len(rel_new))
                if among_top is not None:
                    among.append(ndcg_at_k(self.cat.ids[among_top[i]].tolist(), rel_new, K))
        return np.array([np.mean(ndcgs), np.mean(recalls), np.mean(new_recalls), np.mean(among) if among else 0.0])


def _policies(ctx: _Draw, pred: np.ndarray, warm_known: np.ndarray, name: str) -> dict[str, np.ndarray]:
    """How new movies compete with rated ones, each a users x K array of columns.
    slot s/r: every 10th place (s=1) or 5th (s=2) goes to the best new movie if it scores >= r x the
    pick it displaces (before). merge h: new scores x h, one ranking. z κ: per user, a new movie's
    score mapped onto the rated movies' score distribution, μ_w + κ σ_w (s - μ_n) / σ_n, one ranking.
    resid κ: f' = mean(rated F) + κ (f - mean(new F)) baked into the vectors, one ranking."""
    s_new = ctx.u_f @ pred.T
    s_new[ctx.x[:, ctx.new_cols] > 0] = -np.inf
    out: dict[str, np.ndarray] = {}
    warm_top = ctx.top(ctx.s_warm)
    new_top = ctx.top(s_new, 2)
    new_top = ctx.new_cols[new_top]
    s_new_full = np.full(ctx.s_warm.shape, -np.inf)
    s_new_full[:, ctx.new_cols] = s_new
    s_new = s_new_full
    rows = np.arange(len(ctx.users))
    history = ctx.x.sum(axis=1)
    heavy = history >= np.median(history)
    for share, ratio in (
        (1, 0.0),
        (1, 0.25),
        (1, 0.4),
        (1, 0.5),
        (2, 0.0),
        (2, 0.5),
        ("heavy 2", 0.0),
        ("light 2", 0.0),
    ):
        slots = {"heavy 2": np.where(heavy, 2, 1), "light 2": np.where(heavy, 1, 2)}.get(
            share, np.full(len(rows), share)
        )  # type: ignore[call-overload]
        out[f"slot {share}/{ratio}"] = np.array(
            [_slotted(warm_top[i], new_top[i], ctx, i, s_new, int(slots[i]), ratio) for i in rows]
        )
    if name.startswith("oracle"):
        out["merge 1"] = _merged(ctx, s_new[:, ctx.new_cols], 1.0)
        return out
    for h in (1.5,):
        out[f"merge {h}"] = _merged(ctx, s_new[:, ctx.new_cols], h)
    fin = np.isfinite(ctx.s_warm)
    mu_w = np.where(fin, ctx.s_warm, 0).sum(axis=1) / fin.sum(axis=1)
    sd_w = np.sqrt(np.where(fin, (ctx.s_warm - mu_w[:, None]) ** 2, 0).sum(axis=1) / fin.sum(axis=1))
    raw = ctx.u_f @ pred.T
    mu_n, sd_n = raw.mean(axis=1), raw.std(axis=1)
    for kappa in (1.0, 1.25, 1.5):
        z = mu_w[:, None] + kappa * sd_w[:, None] * (raw - mu_n[:, None]) / np.maximum(sd_n[:, None], 1e-12)
        z[ctx.x[:, ctx.new_cols] > 0] = -np.inf
        out[f"z {kappa}"] = _merged(ctx, z, 1.0)
    for kappa in (1.5, 2.0):
        baked = warm_known.mean(axis=0) + kappa * (pred - pred.mean(axis=0))
        baked /= np.maximum(np.linalg.norm(baked, axis=1, keepdims=True), 1.0)
        s = ctx.u_f @ baked.T
        s[ctx.x[:, ctx.new_cols] > 0] = -np.inf
        out[f"resid {kappa}"] = _merged(ctx, s, 1.0)
    return out


def _slotted(
    warm: np.ndarray, fresh: np.ndarray, ctx: _Draw, i: int, s_new: np.ndarray, slots: int, ratio: float
) -> list[int]:
    """As recommender._interleave_new: the 10th (and with 2 slots the 5th) place to the best new
    movies, each when it scores >= ratio x the pick it displaces."""
    every = K // slots
    ranking: list[int] = []
    queue, picks = list(fresh[:slots]), list(warm)
    while len(ranking) < K:
        pick = picks.pop(0)
        if queue and (len(ranking) + 1) % every == 0 and s_new[i, queue[0]] >= ratio * ctx.s_warm[i, pick]:
            ranking += [queue.pop(0), pick]
        else:
            ranking.append(pick)
    return ranking[:K]


def _merged(ctx: _Draw, s_new: np.ndarray, h: float) -> np.ndarray:
    s = ctx.s_warm.copy()
    s[:, ctx.new_cols] = h * s_new
    return ctx.top(s)


def recency(movies: list, ratings: pd.DataFrame, dataset: str) -> None:
    """The collab user vector Σ w_i f_i on a temporal validation split (each user's latest 25% of
    their temporal-training ratings) and on the stratified one, with w_i by age (h=: 0.5^(age /
    half-life days)), by order (rank-h=: 0.5^(rank / h), rank 0 the newest) or the newest K boosted
    (newK+b: 1 + b for the K newest, Tuning.collab_recent); each beside the paired difference from
    no recency weighting (mean ± standard error over the users)."""

    def by_age(half_life: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return lambda age, rank: np.power(0.5, age / half_life)

    def by_rank(h: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return lambda age, rank: np.power(0.5, rank / h)

    def newest(k: int, b: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return lambda age, rank: 1.0 + b * (rank < k)

    configs = {"none": lambda age, rank: np.ones(len(age))}
    configs |= {f"h={h}": by_age(h) for h in (730, 365, 180, 90, 30)}
    configs |= {f"rank-h={h}": by_rank(h) for h in (5, 25, 100)}
    configs |= {f"new{k}+{b:g}": newest(k, b) for k in (3, 5, 10) for b in (0.25, 0.5)}
    for name, fit_split in (
        ("temporal", splits.temporal_split(splits.temporal_split(ratings).train)),
        ("stratified", splits.stratified_split(splits.stratified_split(ratings).train, seed=splits.SEED + 1)),
    ):
        fit = fit_split.train
        relevant = {int(u): set(g.tolist()) for u, g in fit_split.test.groupby("user_id")["movie_id"]}
        users = [int(u) for u in relevant]
        cat = baselines.CandidatePool([m.id for m in movies], fit)
        items, f = factors(fit)
        full = np.zeros((len(cat.ids), f.shape[1]))
        full[np.searchsorted(cat.ids, items)] = f
        newest_first = fit.sort_values(["user_id", "timestamp", "movie_id"], ascending=[True, False, False])
        history = {int(u): g for u, g in newest_first.groupby("user_id")}
        per_user: dict[str, list[float]] = {name: [] for name in configs}
        for u in users:
            cols = np.searchsorted(cat.ids, history[u]["movie_id"].to_numpy())
            stamps = history[u]["timestamp"].to_numpy()
            age, rank = (stamps.max() - stamps) / SECONDS_PER_DAY, np.arange(len(stamps))
            each = full[cols] @ full.T  # one row per rated movie: f_i . f_j
            for config, weight in configs.items():
                per_user[config].append(ndcg_at_k(cat.top_k(weight(age, rank) @ each, u, K), relevant[u], K))
        base = np.array(per_user["none"])
        line = [f"itemknn={ndcg(baselines.itemknn(cat, users, K), relevant):.4f}"]
        for config, values in per_user.items():
            line.append(f"{config}={np.mean(values):.4f} ({paired_difference(np.array(values), base)})")
        print(f"{dataset} {name}, {len(users)} users: " + " ".join(line), flush=True)


def coverage(fit: pd.DataFrame, relevant: dict[int, set[int]], users: np.ndarray) -> None:
    """Which movies get rating-fitted collab vectors: EASE on the CORE_ITEMS most rated alone (the
    old rule: the rest have none) vs the core plus every other movie with >= min ratings folded in,
    by the fold-in's penalty. Movies without a vector cannot be recommended here (in the service
    they get content-predicted ones, which only take the exploration place)."""
    cat = baselines.CandidatePool(
        sorted(set(fit["movie_id"].tolist()) | {m for r in relevant.values() for m in r}), fit
    )
    u_ids, m_ids = fit["user_id"].to_numpy(), fit["movie_id"].to_numpy()
    grid = [(m, f) for m in (1, 5, 20) for f in (1.0, 3.0, 10.0, 30.0)]
    configs = [("core only", None)] + [(f"min={m} fold_l2={f:g}", {"min_ratings": m, "fold_l2": f}) for m, f in grid]
    configs += [(f"all EASE min={m}", {"min_ratings": m, "core_items": 10**9}) for m in (5, 20)]
    for name, kwargs in configs:
        started = time.perf_counter()
        if kwargs is None:  # the old rule: the CORE_ITEMS most rated, nothing else
            ids, _ = collab.core_interactions(u_ids, m_ids)
            sub = fit[fit["movie_id"].isin(set(ids.tolist()))]
            vectors = collab.item_vectors(sub["user_id"].to_numpy(), sub["movie_id"].to_numpy(), 256, min_ratings=1)
        else:
            vectors = collab.item_vectors(u_ids, m_ids, 256, **kwargs)
        seconds = time.perf_counter() - started
        full = np.zeros((len(cat.ids), 255))
        has = np.zeros(len(cat.ids), dtype=bool)
        for m, v in vectors.items():
            full[cat.column[m]] = collab.factor_part(v)
            has[cat.column[m]] = True
        recs = {}
        for u in users:
            s = full @ full[cat.rated[int(u)]].sum(axis=0)
            s[~has] = -np.inf
            recs[int(u)] = cat.top_k(s, int(u), K)
        print(f"{name:<24} movies={len(vectors):<6} ndcg={ndcg(recs, relevant):.4f} fit={seconds:.1f}s", flush=True)


WARM_SEEDS = (1, 2, 3)  # item split: the test seeds of `movierec eval --split item --seeds 1,2,3`


def warm(movies: list, ratings: pd.DataFrame, dataset: str, by: str) -> None:
    """The collab fit on the warm stratified split (issue 11's "warm, MSR item split" target): for
    each of WARM_SEEDS, the test split (`by` item or user) and a validation split carved from its
    training part by the same rule (seed + 100). Every validation user is scored over the whole
    catalogue with Σ_i w_i f_i · f_j (w_i: the newest 5 x 1.25, times 1 + slope x (stars - 3)), the
    factors from collab.item_vectors; NDCG@10 and P@10 mean over the seeds, the NDCG per seed, and
    the paired NDCG difference from today's fit ± its standard error over every user of every seed.
    Configurations: λ, USER_NORM (a: D = n_u^-a), the slope; EDLAE (Steck 2020: EASE with
    Λ = λI + p/(1-p) diag(G), full rank); plain full-rank EASE."""
    configs = [("today l=400 a=0 s=0", 400.0, 0.0, 0.0)]
    configs += [
        (f"l={lam:g} a={a:g} s={sl:g}", lam, a, sl)
        for lam in (400.0, 500.0, 600.0)
        for a in (0.0, 0.5)
        for sl in (0.0, 0.2, 0.3)
    ]
    per_user: dict[str, list[float]] = {}
    precision: dict[str, list[float]] = {}
    per_seed: dict[str, list[float]] = {}
    for seed in WARM_SEEDS:
        train = splits.stratified_split(ratings, seed=seed, by=by).train  # type: ignore[arg-type]
        parts = splits.stratified_split(train, seed=seed + 100, by=by)  # type: ignore[arg-type]
        fit = parts.train
        relevant = {int(u): set(g.tolist()) for u, g in parts.test.groupby("user_id")["movie_id"]}
        users = sorted(relevant)
        cat = baselines.CandidatePool(sorted({m.id for m in movies} | set(fit["movie_id"].tolist())), fit)
        weights = _warm_weights(cat, fit, users)
        u_ids, m_ids = fit["user_id"].to_numpy(), fit["movie_id"].to_numpy()
        fitted: dict[tuple[float, float], np.ndarray] = {}
        for _, lam, a, _ in configs:
            if (lam, a) not in fitted:
                full = np.zeros((len(cat.ids), 255))
                for m, v in collab.item_vectors(u_ids, m_ids, 256, l2=lam, user_norm=a).items():
                    full[cat.column[m]] = collab.factor_part(v)
                fitted[(lam, a)] = full
        for name, lam, a, slope in configs:
            full = fitted[(lam, a)]
            w = weights["recent"] * (1.0 + slope * weights["stars"])
            _warm_record(name, cat, (w @ full) @ full.T, users, relevant, per_user, precision, per_seed)
        items, x = collab.core_interactions(u_ids, m_ids)
        cols = np.searchsorted(cat.ids, items)
        gram = collab._gram(x, 0.0)
        for name, b in [("ease l=400 full", collab._ease(x, 400.0))] + [
            (f"edlae l={lam:g} p={p:g}", _edlae(gram, lam, p)) for lam in (200.0, 400.0) for p in (0.25, 0.5)
        ]:
            s = np.zeros((len(users), len(cat.ids)))
            s[:, cols] = weights["recent"][:, cols] @ b
            _warm_record(name, cat, s, users, relevant, per_user, precision, per_seed)
        log(f"{dataset} {by} seed {seed}: {len(users)} users")
    base = np.array(per_user[configs[0][0]])
    for name, values in per_user.items():
        seeds = " ".join(f"{v:.4f}" for v in per_seed[name])
        change = paired_difference(np.array(values), base)
        scores = f"ndcg={np.mean(values):.4f} ({change}) p={np.mean(precision[name]):.4f}"
        print(f"{dataset} {by} {name:<22} {scores} seeds {seeds}", flush=True)


def _warm_weights(cat: baselines.CandidatePool, fit: pd.DataFrame, users: list[int]) -> dict[str, np.ndarray]:
    """Users x catalogue matrices: `recent` 1.25 on each user's 5 newest ratings, 1 on the others
    (Tuning.collab_recent), 0 where not rated; `stars` the rating - 3 where rated."""
    newest_first = fit.sort_values(["user_id", "timestamp", "movie_id"], ascending=[True, False, False])
    rank = newest_first.groupby("user_id").cumcount().to_numpy()
    rows = np.searchsorted(np.asarray(users), newest_first["user_id"].to_numpy())
    cols = np.searchsorted(cat.ids, newest_first["movie_id"].to_numpy())
    recent, stars = np.zeros((len(users), len(cat.ids))), np.zeros((len(users), len(cat.ids)))
    recent[rows, cols] = 1.0 + TUNED.collab_recent_boost * (rank < TUNED.collab_recent)
    stars[rows, cols] = newest_first["rating"].to_numpy() - 3.0
    return {"recent": recent, "stars": stars}


def _warm_record(
    name: str,
    cat: baselines.CandidatePool,
    scores: np.ndarray,
    users: list[int],
    relevant: dict[int, set[int]],
    per_user: dict[str, list[float]],
    precision: dict[str, list[float]],
    per_seed: dict[str, list[float]],
) -> None:
    recs = [cat.top_k(scores[i], u, K) for i, u in enumerate(users)]
    values = [ndcg_at_k(r, relevant[u], K) for r, u in zip(recs, users, strict=True)]
    per_user.setdefault(name, []).extend(values)
    precision.setdefault(name, []).extend(precision_at_k(r, relevant[u], K) for r, u in zip(recs, users, strict=True))
    per_seed.setdefault(name, []).append(float(np.mean(values)))


def _edlae(gram: np.ndarray, l2: float, dropout: float) -> np.ndarray:
    """EDLAE (Steck, NeurIPS 2020): EASE's B with Λ = l2 I + dropout / (1 - dropout) diag(G)."""
    a = gram.astype(np.float64, copy=True)
    a[np.diag_indices_from(a)] += l2 + dropout / (1.0 - dropout) * np.diag(gram)
    p = np.linalg.inv(a)
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    return b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "demo"])
    parser.add_argument(
        "--part", default="users", choices=["users", "movies", "time", "coverage", "priors", "short", "warm"]
    )
    parser.add_argument(
        "--protocol", default="temporal", choices=["temporal", "stratified"], help="priors, short: the split"
    )
    parser.add_argument("--split", default="item", choices=["item", "user"], help="warm: the split")
    parser.add_argument("--targets", default="held-out", choices=["held-out", "dropped"], help="users: see new_users")
    args = parser.parse_args()
    started = time.perf_counter()
    movies, ratings = load_dataset(args.dataset)
    train = splits.stratified_split(ratings).train
    parts = splits.stratified_split(train, seed=splits.SEED + 1)  # the validation split
    relevant = {int(u): set(g.tolist()) for u, g in parts.test.groupby("user_id")["movie_id"]}
    users = splits.sample_users(np.array(sorted(relevant)), 400)
    if args.part == "warm":
        warm(movies, ratings, args.dataset, args.split)
    elif args.part == "time":
        recency(movies, ratings, args.dataset)
    elif args.part in ("priors", "short"):
        {"priors": priors, "short": short}[args.part](movies, ratings, args.dataset, args.protocol)
    elif args.part == "coverage":
        coverage(parts.train, relevant, [int(u) for u in users])
    elif args.part == "users":
        new_users(movies, train if args.targets == "dropped" else parts.train, relevant, args.targets == "dropped")
    else:
        new_movies(movies, parts.train, relevant)
    log(f"{time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
