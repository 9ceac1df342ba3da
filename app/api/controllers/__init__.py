"""One controller per feature; `ROUTES` is what the app registers."""

from __future__ import annotations

from app.api.controllers.movies import MovieController
from app.api.controllers.ratings import RatingController
from app.api.controllers.recommendations import RecommendationController
from app.api.controllers.system import HealthController, MetricsController

ROUTES = [RecommendationController, MovieController, RatingController, MetricsController, HealthController]

__all__ = [
    "ROUTES",
    "HealthController",
    "MetricsController",
    "MovieController",
    "RatingController",
    "RecommendationController",
]
