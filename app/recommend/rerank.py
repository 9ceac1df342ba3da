"""Final scoring of candidates: similarity x popularity boost x diversity penalty (greedy MMR)."""

from __future__ import annotations

import math

import numpy as np

from app.vectorstore import Hit


def popularity_boost(hits: list[Hit], weight: float) -> np.ndarray:
    """1 + weight x log(1 + local rating count) scaled to [0, 1] within the candidates. The count of
    this service's own ratings, not TMDB's popularity: it exists for every source with ratings."""
    pops = np.array([math.log1p(max(float(h.payload.get("local_rating_count") or 0), 0.0)) for h in hits])
    top = pops.max() if len(pops) else 0.0
    scaled = pops / top if top > 0 else np.zeros_like(pops)
    return 1.0 + weight * scaled


def rerank(hits: list[Hit], using: str, limit: int, popularity: float, diversity: float) -> list[tuple[Hit, float]]:
    """Pick `limit` hits greedily: each pick maximises relevance x (1 - diversity x max similarity
    to the picks so far), where relevance = similarity x popularity boost."""
    if not hits:
        return []
    relevance = np.array([h.score for h in hits]) * popularity_boost(hits, popularity)
    if diversity <= 0 or using not in hits[0].vectors:
        order = np.argsort(-relevance, kind="stable")[:limit]
        return [(hits[i], float(relevance[i])) for i in order]
    hits, relevance = contenders(hits, relevance, limit, diversity)
    vectors = np.array([h.vectors[using] for h in hits])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    size = np.abs(relevance)
    max_sim = np.zeros(len(hits))  # never below 0 (the maximum of 0 and cosines), so clipping it is a minimum
    chosen: list[tuple[Hit, float]] = []
    taken: list[int] = []
    for _ in range(min(limit, len(hits))):
        # relevance x (1 - diversity x max_sim), written so that a negative relevance is lowered too
        scores = relevance - diversity * np.minimum(max_sim, 1.0) * size
        scores[taken] = -np.inf
        best = int(np.argmax(scores))
        chosen.append((hits[best], float(scores[best])))
        taken.append(best)
        if len(chosen) < limit:  # the last pick's similarities would go unused
            max_sim = np.maximum(max_sim, vectors @ vectors[best])
    return chosen


def contenders(hits: list[Hit], relevance: np.ndarray, limit: int, diversity: float) -> tuple[list[Hit], np.ndarray]:
    """The hits the greedy MMR of `rerank` can still pick, in their order, and their relevance.

    A hit's score at any step lies between its relevance minus diversity x |relevance| (the penalty's
    similarity is clipped to [0, 1]) and its relevance, bounds that hold in floating point too (each
    operation rounds monotonically). While fewer than `limit` are picked, one of the `limit` hits with
    the highest lower bound is still there, scoring at least the `limit`-th highest lower bound: a hit
    whose relevance is below that never reaches the maximum, nor ties it. Dropping those leaves every
    pick as it was; it is most of the candidates (a hybrid answer keeps about 50 of 250), and with
    them most of the vectors to stack and of the similarities to compute per pick. A score may differ
    in its last bits (BLAS may sum a shorter matrix's rows in another order: about 1e-10 on the demo),
    far below the 6 decimals an answer shows; 1,614 demo answers were the same, byte for byte.
    """
    if len(hits) <= limit:
        return hits, relevance
    floors = relevance - diversity * 1.0 * np.abs(relevance)  # the score's own expression at similarity 1
    threshold = np.partition(floors, len(floors) - limit)[len(floors) - limit]
    keep = np.flatnonzero(relevance >= threshold)
    if len(keep) == len(hits):
        return hits, relevance
    return [hits[i] for i in keep], relevance[keep]
