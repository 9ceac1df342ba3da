"""Reference rankers computed with numpy from the training ratings: popularity, item-kNN, EASE, random.

Each returns user id -> top-k movie ids, never a movie the user rated in training.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

SEED = 42


class CandidatePool:
    """Movie ids <-> columns, and each evaluated user's training movies as columns."""

    def __init__(self, movie_ids: Iterable[int], train: pd.DataFrame) -> None:
        self.ids = np.asarray(sorted(movie_ids), dtype=np.int64)
        self.column = {int(m): i for i, m in enumerate(self.ids)}
        self.train = train
        cols = np.searchsorted(self.ids, train["movie_id"].to_numpy())
        # pandas-stubs types the labels of groupby(...).indices as Hashable
        self.rated = {int(u): cols[idx] for u, idx in train.groupby("user_id").indices.items()}  # type: ignore[call-overload]

    def top_k(self, scores: np.ndarray, user: int, k: int) -> list[int]:
        """The k best-scoring columns the user has not rated, as movie ids."""
        s = scores.astype(np.float64, copy=True)
        s[self.rated.get(user, [])] = -np.inf
        k = min(k, int(np.isfinite(s).sum()))
        top = np.argpartition(-s, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
        ids: list[int] = self.ids[top[np.argsort(-s[top], kind="stable")]].tolist()
        return ids


def popularity(cat: CandidatePool, users: Sequence[int], k: int) -> dict[int, list[int]]:
    """Most rated in training first (ties: lower id)."""
    counts = np.bincount(np.searchsorted(cat.ids, cat.train["movie_id"].to_numpy()), minlength=len(cat.ids))
    scores = counts - np.arange(len(cat.ids)) * 1e-9
    return {u: cat.top_k(scores, u, k) for u in users}


def random(cat: CandidatePool, users: Sequence[int], k: int, seed: int = SEED) -> dict[int, list[int]]:
    rng = np.random.default_rng(seed)
    return {u: cat.top_k(rng.random(len(cat.ids)), u, k) for u in users}


def itemknn(cat: CandidatePool, users: Sequence[int], k: int) -> dict[int, list[int]]:
    """Item-based kNN over all neighbours: score(u, j) = Σ_{i rated by u} cos(i, j), with the cosine
    between the movies' rating columns (rating values, not just who rated)."""
    t = cat.train
    rows = t["user_id"].astype("category").cat.codes.to_numpy()
    cols = np.searchsorted(cat.ids, t["movie_id"].to_numpy())
    r = sp.csr_matrix((t["rating"].to_numpy(np.float32), (rows, cols)), shape=(rows.max() + 1, len(cat.ids)))
    norms = np.sqrt(np.asarray(r.multiply(r).sum(axis=0)).ravel())
    r = r @ sp.diags(1.0 / np.maximum(norms, 1e-12))
    sim = (r.T @ r).toarray().astype(np.float32)
    np.fill_diagonal(sim, 0.0)
    out = {}
    for u in users:
        seen = cat.rated.get(u, np.zeros(0, dtype=np.int64))
        out[u] = cat.top_k(sim[seen].sum(axis=0), u, k)
    return out


def ease(cat: CandidatePool, users: Sequence[int], k: int) -> dict[int, list[int]]:
    """Full-rank EASE (Steck, 2019), x_u B with B = -P / diag(P), P = (XᵀX + λI)⁻¹, on the same
    movies and λ as the collab vectors (app/embedding/collab.py: the most rated CORE_ITEMS)."""
    from app.embedding import collab

    t = cat.train
    items, x = collab.core_interactions(t["user_id"].to_numpy(), t["movie_id"].to_numpy())
    b = collab._ease(x, collab.EASE_L2)
    cols = np.searchsorted(cat.ids, items)
    position = np.full(len(cat.ids), -1)
    position[cols] = np.arange(len(cols))
    out = {}
    for u in users:
        mine = position[cat.rated.get(u, np.zeros(0, dtype=np.int64))]
        scores = np.zeros(len(cat.ids))
        scores[cols] = b[mine[mine >= 0]].sum(axis=0)
        out[u] = cat.top_k(scores, u, k)
    return out
