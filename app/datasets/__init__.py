"""Catalogue sources. `load_catalogue` picks one by name; each module is imported only when used,
because the demo pulls in pandas and the others should not pay for it."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from app.datasets.base import (
    MOVIE_COUNTS,
    RatingRow,
    RowError,
    SourceCatalogue,
    SourceMovie,
    movie_counts,
    rows_read,
    validate,
)
from app.datasets.files import UnusableFileError
from app.errors import InvalidInputError
from app.names import FolderSource, SourceName

SOURCES: tuple[SourceName, ...] = get_args(SourceName)
FOLDER_SOURCES: tuple[FolderSource, ...] = get_args(FolderSource)

__all__ = [
    "FOLDER_SOURCES",
    "SOURCES",
    "RatingRow",
    "RowError",
    "SourceCatalogue",
    "SourceMovie",
    "UnusableFileError",
    "load_catalogue",
    "validate",
]


def load_catalogue(
    source: str,
    movies: Path | None = None,
    ratings: Path | None = None,
    limit: int | None = None,
    *,
    directory: Path | None = None,
    poster_base: str | None = None,
) -> SourceCatalogue:
    """Load a named source. `limit` keeps the first N movies (file or id order) and their ratings.
    `directory`: the folder of a folder source; `poster_base`: a URL or folder that relative poster
    paths resolve against (MOVIEREC_POSTER_BASE). Raises UnusableFileError for an unreadable file and
    InvalidInputError for a wrong combination of arguments, its `field` naming the argument
    (movies, ratings, directory, limit, source): the one check of these rules, which the CLI reports
    against its own option names."""
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}", field="limit")
    if (directory is not None) != (source in FOLDER_SOURCES):
        raise InvalidInputError(
            f"a folder (--dir) is for the {' and '.join(FOLDER_SOURCES)} sources, and they need it", field="directory"
        )
    if source == "tmdb":
        if movies is None:
            raise InvalidInputError("the tmdb source needs a movies file (JSON, JSONL or CSV)", field="movies")
        from app.datasets import tmdb

        catalogue = tmdb.load(Path(movies), Path(ratings) if ratings is not None else None, poster_base)
    elif source in FOLDER_SOURCES and directory is not None:  # (a folder source without one raised above)
        if movies is not None or ratings is not None:
            field = "movies" if movies is not None else "ratings"
            raise InvalidInputError(f"the {source} source reads its files from its folder (--dir)", field=field)
        catalogue = _load_folder(source, Path(directory), poster_base)
    elif source in ("demo", "ml-100k"):
        if movies is not None or ratings is not None:
            field = "movies" if movies is not None else "ratings"
            raise InvalidInputError(f"the {source} source reads its packaged data and takes no files", field=field)
        catalogue = _load_packaged(source, limit)
    else:
        raise InvalidInputError(
            f"unknown catalogue source {source!r}; choose one of {', '.join(SOURCES)}", field="source"
        )
    return apply_limit(catalogue, limit)


def _load_folder(source: str, directory: Path, poster_base: str | None) -> SourceCatalogue:
    if not directory.is_dir():
        raise UnusableFileError(str(directory), "not a folder", f"give --dir the folder that holds the {source} files")
    if source == "movielens":
        from app.datasets import movielens

        return movielens.load(directory)
    from app.datasets import movies_dataset

    return movies_dataset.load(directory, poster_base)


def _load_packaged(source: str, limit: int | None) -> SourceCatalogue:
    if source == "demo":
        from app.datasets import demo

        return demo.load(limit)  # trims before the joins, so its match rates describe what is kept
    from app.datasets import ml100k

    return ml100k.load()


def _rows_read_up_to(catalogue: SourceCatalogue) -> int:
    """The movies file's rows up to the last movie kept by a --limit: those movies, and the rows of
    that file refused before it (as `base.rows_read` counts a whole file)."""
    if not catalogue.movies:
        return 0
    last = catalogue.movies[-1]
    bad = [e for e in catalogue.errors if (e.file, e.unit) == (last.file, last.unit) and e.line < last.line]
    return rows_read(catalogue.movies, bad)


def apply_limit(catalogue: SourceCatalogue, limit: int | None) -> SourceCatalogue:
    """Keep the first `limit` movies and only ratings of those movies (a `ratings_file`'s are
    dropped as it is streamed: `limited`)."""
    if limit is None or len(catalogue.movies) <= limit:
        return catalogue
    catalogue.limited = catalogue.ratings_file is not None
    catalogue.movies = catalogue.movies[:limit]
    kept = {item.movie.id for item in catalogue.movies}
    catalogue.ratings = [r for r in catalogue.ratings if r.movie_id in kept]
    catalogue.stats["movies_read"] = _rows_read_up_to(catalogue)
    catalogue.stats.update(movie_counts(catalogue.movies, *(k for k in MOVIE_COUNTS if k in catalogue.stats)))
    if "ratings" in catalogue.stats:
        catalogue.stats["ratings"] = len(catalogue.ratings)
    return catalogue
