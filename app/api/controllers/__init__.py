"""One controller per feature; `ROUTES` is what the app registers."""

from __future__ import annotations

from app.api.controllers.hidden import HiddenController
from app.api.controllers.lists import ListController
from app.api.controllers.movies import GenreController, MovieController
from app.api.controllers.ratings import RatingController
from app.api.controllers.recommendations import GuestRecommendationController, RecommendationController
from app.api.controllers.system import HealthController, MetricsController

ROUTES = [
    RecommendationController,
    GuestRecommendationController,
    MovieController,
    ListController,
    GenreController,
    RatingController,
    HiddenController,
    MetricsController,
    HealthController,
]

__all__ = [
    "ROUTES",
    "GenreController",
    "GuestRecommendationController",
    "HealthController",
    "HiddenController",
    "ListController",
    "MetricsController",
    "MovieController",
    "RatingController",
    "RecommendationController",
]
