"""Ranking metrics at k and rating error, on plain ids, sets and arrays.

Relevance is binary: a recommended movie is relevant when the user rated it in the test part,
whatever the rating (the protocol of Microsoft Recommenders' ml-100k benchmark, so that our
numbers compare with its published ones). Every function takes one user's ranked list; `summarise`
averages over users.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "coverage")


def _hits(recommended: Sequence[int], relevant: Collection[int], k: int) -> np.ndarray:
    return np.array([m in relevant for m in recommended[:k]], dtype=np.float64)


def precision_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Relevant movies among the top k, over k (a list shorter than k is not rewarded)."""
    return float(_hits(recommended, relevant, k).sum() / k)


def recall_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Relevant movies among the top k, over all relevant movies."""
    return float(_hits(recommended, relevant, k).sum() / len(relevant)) if relevant else 0.0


def ndcg_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Binary-gain DCG over the ideal DCG of min(k, |relevant|) hits at the top."""
    if not relevant:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits = _hits(recommended, relevant, k)
    ideal = discounts[: min(k, len(relevant))].sum()
    return float((hits * discounts[: len(hits)]).sum() / ideal)


def average_precision_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """Mean of precision@i at each hit i <= k, over min(k, |relevant|). (Microsoft Recommenders'
    older `map_at_k` divides by |relevant| instead, so its MAP is smaller than ours.)"""
    if not relevant:
        return 0.0
    hits = _hits(recommended, relevant, k)
    precision_at_i = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at_i * hits).sum() / min(k, len(relevant)))


def hit_rate_at_k(recommended: Sequence[int], relevant: Collection[int], k: int) -> float:
    """1 when at least one of the top k is relevant."""
    return float(_hits(recommended, relevant, k).any())


def coverage(recommendations: Iterable[Sequence[int]], catalogue_size: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top k."""
    shown: set[int] = set()
    for recs in recommendations:
        shown.update(recs[:k])
    return len(shown) / catalogue_size if catalogue_size else 0.0


def rmse(predicted: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    p, a = np.asarray(predicted, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean((p - a) ** 2))) if len(a) else float("nan")


def summarise(
    recommendations: Mapping[int, Sequence[int]], relevant: Mapping[int, Collection[int]], k: int, catalogue_size: int
) -> dict[str, float]:
    """Every metric, averaged over the users of `recommendations` (each must have relevant movies)."""
    users = list(recommendations)
    if not users:
        return dict.fromkeys(METRICS, 0.0)
    per_user = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "ndcg": ndcg_at_k,
        "map": average_precision_at_k,
        "hit_rate": hit_rate_at_k,
    }
    out = {
        name: float(np.mean([fn(recommendations[u], relevant[u], k) for u in users])) for name, fn in per_user.items()
    }
    out["coverage"] = coverage(recommendations.values(), catalogue_size, k)
    return {name: round(value, 4) for name, value in out.items()}
