"""The text a movie is embedded from, the words it is found by, and the hash that says when it must be
indexed again."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata

from app.catalog.models import Movie


def movie_text(movie: Movie) -> str:
    """The dense `text` vector's input: title, year, genres, tagline, overview, keywords and director;
    absent fields left out. The cast is not in it: the demo source lists cast alphabetically, so any
    "top cast" would be arbitrary names padding the meaning. People are found through
    `lexical_text` (the sparse vector) instead."""
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
    return " ".join(parts)


def lexical_text(movie: Movie) -> str:
    """The sparse `lexical` vector's input: title, every person (all cast, director, writer),
    keywords and genres, one per line; absent fields left out. Order does not matter to it."""
    fields = [movie.title, *movie.cast, movie.director, movie.writer, *movie.keywords, *movie.genres]
    return "\n".join(f for f in fields if f)


HASH_SEPARATOR = ":"
# The Movie fields stored in the payload that no vector is computed from (same names in the payload):
# a change in these alone is written in place, without embedding the movie again.
PAYLOAD_ONLY_FIELDS = ("popularity", "vote_average", "vote_count", "local_rating_count")
# Part of the payload hash: a new format rewrites every payload in place on the next ingest, without
# embedding anything. 2: popularity and vote_count are null when the source has none (they were 0);
# 3: `people`, the names search corrects misspelt words against.
PAYLOAD_FORMAT = 3
PAYLOAD_CAST = 5  # the top-billed cast in the payload's `people` (the lexical vector holds all of it)


def payload_people(movie: Movie) -> list[str]:
    """The payload's `people`: director, writer and the first PAYLOAD_CAST of the cast, each once."""
    return list(dict.fromkeys(p for p in (movie.director, movie.writer, *movie.cast[:PAYLOAD_CAST]) if p))


def content_hash(movie: Movie) -> str:
    """Changes exactly when the embedded text, the lexical text, the poster or an indexed payload
    field changes. Two parts, `<vectors>:<payload>` (32 and 16 hex digits): a change in the second
    part only (a new rating count, TMDB's votes) needs the payload updated, not the movie re-embedded
    (`vectors_unchanged`)."""
    vectors = {"text": movie_text(movie), "lexical": lexical_text(movie), "poster": movie.poster}
    payload = [PAYLOAD_FORMAT, *(getattr(movie, name) for name in PAYLOAD_ONLY_FIELDS)]
    return f"{_digest(vectors)[:32]}{HASH_SEPARATOR}{_digest(payload)[:16]}"


def vectors_unchanged(old_hash: str | None, new_hash: str) -> bool:
    """Whether two content hashes agree on everything the vectors are computed from (a hash from
    before the two parts never does)."""
    old_vectors, sep, _ = (old_hash or "").partition(HASH_SEPARATOR)
    return bool(sep) and old_vectors == new_hash.partition(HASH_SEPARATOR)[0]


def _digest(material: object) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


# Letters that NFKD leaves whole, spelt as their ASCII readers write them ('Aeon Flux' for 'Æon Flux').
_SPELT_OUT = str.maketrans({"æ": "ae", "œ": "oe", "ß": "ss", "ø": "o", "ł": "l", "đ": "d", "þ": "th", "ð": "d"})


def normalise_title(title: str, every_script: bool = False) -> str:
    """Join key: accents, case, apostrophes, punctuation and '&' vs 'and' ignored. `every_script`:
    letters of every script kept ('千と千尋の神隠し', 'Любовь' would have no key at all: only
    a-z and 0-9 are kept otherwise) and the letters NFKD keeps whole spelt out ('æ' as 'ae')."""
    text = unicodedata.normalize("NFKD", title.lower().translate(_SPELT_OUT) if every_script else title)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().replace("&", " and ")
    text = re.sub(r"['\u2019\u02bc`]", "", text)  # "Don't" and "Dont" alike
    return " ".join(re.sub(r"[\W_]+" if every_script else r"[^a-z0-9]+", " ", text).split())
