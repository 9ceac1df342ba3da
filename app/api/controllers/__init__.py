"""One controller per feature; `ROUTES` is what the app registers."""

from __future__ import annotations

from app.api.controllers.movies import GenreController, MovieController
from app.api.controllers.ratings import RatingController
from app.api.controllers.recommendations import RecommendationController
from app.api.controllers.system import HealthController, MetricsController

ROUTES = [
    RecommendationController,
    MovieController,
    GenreController,
    RatingController,
    MetricsController,
    HealthController,
]

__all__ = [
    "ROUTES",
    "GenreController",
    "HealthController",
    "MetricsController",
    "MovieController",
    "RatingController",
    "RecommendationController",
]
