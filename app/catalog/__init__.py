"""The store of record: movies, users and ratings."""

from app.catalog.models import Movie, Rating, User
from app.catalog.text import content_hash, movie_text

__all__ = ["Movie", "Rating", "User", "content_hash", "movie_text"]
