"""One ingest, wired once: load a catalogue, validate and store it with its ratings, embed what
changed, publish the index, sum it up. The `movierec ingest` command, the tests and the benchmarks
all call `run`; they differ only in what they pass in (models already loaded, a store to time)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlmodel import Session

from app.catalog import repository as repo
from app.catalog.db import make_engine
from app.datasets import load_catalogue
from app.embedding.device import CUDA_SETTING_MISSING, resolve_device
from app.embedding.factory import build_manifest, build_movie_embedder
from app.embedding.movie import MovieEmbedder
from app.errors import ConflictError, InvalidInputError
from app.files import LockHeldError, exclusive_lock
from app.settings import Settings
from app.vectorstore import IndexStore, open_store
from ingest.pipeline import IngestSummary, index_movies, store_catalogue
from ingest.ratings import MAX_LISTED_ROW_ERRORS, UNLISTED, bad_rows, check_ratings_file

LOCK_FILE = "ingest.lock"


def run(
    settings: Settings,
    source: str,
    *,
    movies: Path | None = None,
    ratings: Path | None = None,
    directory: Path | None = None,
    limit: int | None = None,
    rating_scale: int | None = None,
    rebuild: bool = False,
    device: str | None = None,
    batch_size: int | None = None,
    collab: bool = True,
    progress: bool = False,
    store: IndexStore | None = None,
    make_embedder: Callable[[bool], MovieEmbedder] | None = None,
    report: Callable[[str], None] = lambda line: None,
) -> IngestSummary:
    """Ingest the catalogue `source` (app.datasets.SOURCES) into the settings' database and index.

    `movies`, `directory`, `limit`: as load_catalogue takes them; `ratings`: a ratings CSV streamed
    into the database (tmdb only), its scale 5 or 10 (`rating_scale`, default: detected).
    `rebuild`: re-embed everything into a fresh index. `device` (default MOVIEREC_DEVICE) and
    `batch_size` (default MOVIEREC_BATCH_SIZE, else the device's): for the embedder built from the
    settings, or `make_embedder(with_images)` instead (models already loaded). `collab=False`
    leaves the collab vectors out. `store`: the index store (default: the settings'). `report`
    receives the lines a user should read, in order: "warning: ..." per file-level note and
    "skipped: ..." per bad row (file:line). `progress`: progress bars on stderr (reading a ratings file, embedding).

    Raises UnusableFileError or RatingsFileError, before anything is written (a ratings file's header
    is checked before the database is even created), for a file that cannot be read or holds no
    usable movie; InvalidInputError for a wrong combination of arguments (`field`: which one);
    ConflictError, before anything is written, while another ingest runs on the same data dir.
    The summary's `total_seconds` is this call's wall time, `seconds` its index step's."""
    started = time.perf_counter()
    if ratings is not None and source != "tmdb":
        raise InvalidInputError(f"the {source} source reads its own ratings", field="ratings")
    if rating_scale is not None and ratings is None:
        raise InvalidInputError(
            f"--rating-scale gives the scale of a --ratings file; the {source} source's own ratings are read "
            "on the source's scale (MovieLens: 0.5-5 stars)",
            field="rating_scale",
        )
    if ratings is not None:
        check_ratings_file(ratings)  # a wrong header stops here, before the database file is created
    _check_cuda(device, settings.device)
    with ingest_lock(settings.data_dir):  # before anything is written: a second ingest is refused
        store = store or open_store(settings)
        batch = batch_size or settings.batch_size  # None: the device's own (default_batch_size)

        def embedder(with_images: bool) -> MovieEmbedder:
            # Resolved only when a movie needs embedding: an unchanged catalogue never imports torch (~1.5 s).
            return build_movie_embedder(
                settings, resolve_device(device or settings.device), batch, with_images=with_images
            )

        # A ratings file is streamed by the bulk path (ingest/ratings.py), not loaded with the catalogue.
        catalogue = load_catalogue(
            source, movies=movies, limit=limit, directory=directory, poster_base=settings.poster_base
        )
        for warning in catalogue.warnings:
            report(f"warning: {warning}")
        engine = make_engine(settings.sqlalchemy_url)
        try:
            n_ratings, errors = store_catalogue(
                engine, catalogue, ratings, rating_scale=rating_scale, force=rebuild, progress=progress
            )
            for err in errors:  # each once, in file order
                report(f"skipped: {err}")
            if unlisted := int(catalogue.stats.get(UNLISTED, 0)):
                report(
                    f"skipped: {unlisted} more bad rows of the ratings file, not listed "
                    f"(the first {MAX_LISTED_ROW_ERRORS} are above)"
                )
            with Session(engine) as session:
                stored = repo.all_movies(session)
                checksum = repo.ratings_checksum(session) if collab else None

            def rated() -> np.ndarray:  # the collab vectors learn from every rating; read only when staging
                with Session(engine) as session:
                    return repo.rated_pair_array(session)

            summary = index_movies(
                stored,
                store,
                build_manifest(settings),
                make_embedder or embedder,
                batch_size=batch,
                rebuild=rebuild,
                progress=progress,
                ratings=rated if collab else None,
                ratings_checksum=checksum,
                collab_min_ratings=settings.collab_min_ratings,
            )
            with Session(engine) as session:
                repo.mark_posters_embedded(session, summary.poster_embedded)
                session.commit()
        finally:
            engine.dispose()
        summary.ratings, summary.bad_rows = n_ratings, bad_rows(errors, catalogue.stats)
        # The source's rows, a row refused while parsing included (base.rows_read); else its movies.
        summary.movies_read = int(catalogue.stats.get("movies_read", len(catalogue.movies)))
        summary.warnings = list(catalogue.warnings)
        summary.source_stats = dict(catalogue.stats)
        summary.total_seconds = round(time.perf_counter() - started, 3)
        return summary


def _check_cuda(option: str | None, setting: str) -> None:
    """CUDA asked for (the option, else MOVIEREC_DEVICE) where there is none: InvalidInputError before
    anything is written, not a ValueError when the models load, after the database writes. "auto"
    is resolved only when a movie needs embedding (an unchanged catalogue never imports torch)."""
    if (option or setting) != "cuda":
        return
    try:
        resolve_device("cuda")
    except ValueError:
        if option:
            raise InvalidInputError("CUDA is not available on this machine; use cpu or auto", field="device") from None
        raise InvalidInputError(CUDA_SETTING_MISSING) from None


@contextmanager
def ingest_lock(data_dir: Path) -> Iterator[None]:
    """One ingest at a time per data dir: two would build the same staging index (one deleting it
    under the other) and publish each other's half. Held to the end of the run; the kernel
    releases it when the process dies, so a killed ingest never blocks its rerun.

    Raises ConflictError when another ingest holds it; OSError when the data dir is not writable."""
    try:
        with exclusive_lock(data_dir / LOCK_FILE):
            yield
    except LockHeldError as exc:
        holder = f" (process {exc.pid})" if exc.pid else ""
        raise ConflictError(
            f"another ingest{holder} is running on {data_dir}: wait for it to finish; "
            "its index is published when it does"
        ) from None
