"""The text a movie is embedded from, and the hash that says when it must be embedded again."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

from app.catalog.models import Movie

TOP_CAST = 5


def movie_text(movie: Movie) -> str:
    """Title, year, genres, overview, tagline, keywords, director and top cast; absent fields left out."""
    head = f"{movie.title} ({movie.year})" if movie.year else movie.title
    parts = [head + "."]
    if movie.genres:
        parts.append("Genres: " + ", ".join(movie.genres) + ".")
    if movie.tagline:
        parts.append(movie.tagline.strip())
    if movie.overview:
        parts.append(movie.overview.strip())
    if movie.keywords:
        parts.append("Keywords: " + ", ".join(movie.keywords) + ".")
    if movie.director:
        parts.append(f"Directed by {movie.director}.")
    if movie.cast:
        parts.append("Starring " + ", ".join(movie.cast[:TOP_CAST]) + ".")
    return " ".join(parts)


def content_hash(movie: Movie) -> str:
    """Changes exactly when the embedded text, the poster or an indexed payload field changes."""
    material = {
        "text": movie_text(movie),
        "poster": movie.poster,
        "payload": [movie.popularity, movie.vote_average, movie.vote_count],
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


def normalise_title(title: str) -> str:
    """Join key: accents, case, apostrophes, punctuation and '&' vs 'and' ignored."""
    text = unicodedata.normalize("NFKD", title)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().replace("&", " and ")
    text = re.sub(r"['\u2019`]", "", text)  # "Don't" and "Dont" alike
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())
