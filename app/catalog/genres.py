"""Genre names: cleaning on the way in, and the key that filters match them by."""

from __future__ import annotations

from collections.abc import Iterable

# MovieLens's placeholder for a movie without genres: it means none, not a genre of that name.
NO_GENRES = "(no genres listed)"


def genre_key(name: str) -> str:
    """The matching key of a genre name: case and spaces ignored, so 'science fiction',
    'Science  Fiction' and 'ScienceFiction' match, while 'Sci-Fi' stays a different genre."""
    return "".join(name.split()).casefold()


def clean_genres(names: Iterable[str]) -> list[str]:
    """Names stripped, inner runs of spaces collapsed, empties and the '(no genres listed)'
    placeholder dropped, repeats (by `genre_key`) dropped; order kept."""
    seen: dict[str, str] = {}
    for raw in names:
        name = " ".join(str(raw).split())
        if name and genre_key(name) != genre_key(NO_GENRES):
            seen.setdefault(genre_key(name), name)
    return list(seen.values())
