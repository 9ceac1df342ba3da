"""Recommendations, similar movies, explanations and hybrid (dense + BM25) search over the vector index."""

from app.recommend.recommender import (
    Explanation,
    Recommendation,
    RecommendationList,
    Recommender,
    RelatedRating,
    ScoredMovie,
)

__all__ = [
    "Explanation",
    "Recommendation",
    "RecommendationList",
    "Recommender",
    "RelatedRating",
    "ScoredMovie",
]
