"""The store of record: movies, users and ratings."""

from app.catalog.models import Hidden, Movie, Rating, User
from app.catalog.text import content_hash, movie_text

__all__ = ["Hidden", "Movie", "Rating", "User", "content_hash", "movie_text"]
