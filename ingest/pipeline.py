"""The batched, incremental, resumable ingest: catalogue -> database -> embeddings -> index.

- Incremental: a movie is embedded only when its content hash differs from the index's.
- Resumable: batches land in a staging index that survives a crash; the rerun skips what is there.
- Atomic: readers keep the published index until the staging one is complete and published.
- Collaborative: after the content embedding, item factors are learned from the database's
  ratings (app/embedding/collab.py) and set as the `collab` vector of every movie with at least
  MOVIEREC_COLLAB_MIN_RATINGS ratings; every other movie gets one predicted from its content
  (payload `collab_source`: `ratings`/`content`).
  They are recomputed whenever anything is staged, and a change in the ratings alone (their
  fingerprint, kept in the manifest's stats) is enough to stage. The CLI passes the database's
  checksum of the pairs and a reader called only when staging: an unchanged re-ingest never reads
  the ratings out of the database.
The index mirrors the database's movies table, so what a crashed run stored is never lost.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import Session
from tqdm import tqdm

from app.catalog import repository as repo
from app.catalog.models import Movie
from app.catalog.text import PAYLOAD_ONLY_FIELDS, content_hash, payload_people, vectors_unchanged
from app.datasets.base import RowError, SourceCatalogue, validate
from app.datasets.files import UnusableFileError
from app.embedding import collab, lexical
from app.embedding.collab import factor_part, item_vectors
from app.embedding.movie import MovieEmbedder
from app.vectorstore import (
    SPARSE_VECTOR,
    IndexStore,
    Manifest,
    MovieFilter,
    MovieIndex,
    MoviePoint,
    content_hashes,
    payload_for,
)
from app.vectorstore.base import Vector
from app.vectorstore.maps import project_maps, unit_rows
from ingest.ratings import FileImport, bad_rows, import_rows, release_freed_memory, source_key

log = logging.getLogger(__name__)
COLLAB_BATCH = 1024
Pairs = Sequence[tuple[int, int]] | np.ndarray  # (user id, movie id) rows


@dataclass
class IngestSummary:
    movies: int = 0
    embedded: int = 0
    skipped_unchanged: int = 0  # movies not embedded again: their vectors' inputs are unchanged
    payload_updated: int = 0  # of those, the ones whose payload-only fields changed (e.g. a rating count)
    failed: int = 0  # posters that failed (missing, unreadable): those movies are indexed text-only
    with_poster: int = 0
    without_poster: int = 0
    deleted: int = 0
    ratings: int = 0
    bad_rows: int = 0  # rows skipped, each reported once with its file and line (or record)
    movies_read: int = 0  # movie rows the source read, before validation
    collab_vectors: int = 0  # movies given a collaborative vector (from ratings, or predicted from content)
    collab_fitted: int = 0  # of those, the ones fitted from ratings (the rest: predicted from content)
    collab_seconds: float = 0.0  # the collab step of this run (reading the pairs, fit, writes); 0 when skipped
    seconds: float = 0.0  # the index step (embedding, collab, publish); an unchanged index: its check
    movies_per_s: float = 0.0
    total_seconds: float = 0.0  # the whole ingest (ingest.run): reading, the database, the index
    source_stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # file-level notes, e.g. an encoding guessed
    # movie id -> whether an image was embedded, for the movies embedded in this run (not printed)
    poster_embedded: dict[int, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["poster_embedded"]
        return data


def store_catalogue(
    engine: Engine,
    catalogue: SourceCatalogue,
    ratings_file: Path | None = None,
    *,
    rating_scale: int | None = None,
    force: bool = False,
    progress: bool = False,
) -> tuple[int, list[RowError]]:
    """Validate and save movies, then ratings, then refresh each movie's local rating statistics.

    Ratings come from `catalogue.ratings`, or streamed from `ratings_file` (the bulk path,
    ingest/ratings.py). Either way the shared rules apply: latest timestamp wins, pairs the user
    wrote or deleted are never touched, and only what changed since the last import is written
    (`force`: every pair). Returns (ratings of this input now stored, row errors in file order,
    each once, for the caller to report); the counts and notes of the ratings import go into
    `catalogue.stats`. `rating_scale`: of `ratings_file` when given beside the source (None: detected);
    a source's own file has the source's scale (`catalogue.rating_scale`) when it defines one.
    `progress`: a bar on stderr while a ratings file is read.
    Raises UnusableFileError, writing nothing, when no movie is usable."""
    movies, rows, errors = validate(catalogue)
    ratings_file = ratings_file or catalogue.ratings_file
    if not movies:
        raise NothingUsableError(in_file_order(errors), catalogue.movies_file or catalogue.name)
    source = source_key(catalogue.name, ratings_file)
    movie_ids = np.array([m.id for m in movies], dtype=np.int64)
    started = time.perf_counter()  # the ratings' part: read, check, write, refresh the movies' counts
    own_file = ratings_file == catalogue.ratings_file  # not `--ratings FILE` given beside the source
    file_import = (
        FileImport(
            engine,
            ratings_file,
            source,
            catalogue.rating_scale if own_file and catalogue.rating_scale else rating_scale,
            force,
            known_only=catalogue.limited,
            links=catalogue.ratings_links if own_file else None,
            layout=catalogue.ratings_layout if own_file else None,
            progress=progress,
        )
        if ratings_file
        else None
    )
    if file_import is not None:
        file_import.prepare(movie_ids)  # a file problem raises here, before anything is written
    with Session(engine) as session:
        if purged := repo.purge_unaddressable_movies(session):
            log.warning("removed %d stored movies with ids outside 1..MAX_ID: %s", len(purged), purged[:10])
        repo.upsert_movies(session, movies)
        session.commit()
    result = file_import.store() if file_import is not None else import_rows(engine, rows, movie_ids, source, force)
    if result.written or not result.unchanged:
        with Session(engine) as session:
            repo.refresh_rating_stats(session)
            session.commit()
    ratings_seconds = time.perf_counter() - started
    ratings_files = {r.file for r in catalogue.ratings} | ({ratings_file.name} if ratings_file else set())
    errors = in_file_order([*errors, *result.errors], ratings_files)
    if bad := bad_rows(errors, result.notes):
        log.info("%d bad rows skipped", bad)
    catalogue.stats.update({**result.stats(), "ratings": result.stored, "ratings_seconds": round(ratings_seconds, 3)})
    return result.stored, errors


class NothingUsableError(UnusableFileError):
    """Not one movie of a catalogue is usable; `errors` says why, row by row."""

    def __init__(self, errors: list[RowError], movies_file: str) -> None:
        """`movies_file`: the name of the file (or the source) that holds no movie row at all."""
        self.errors = errors
        if not errors:  # a header, or an empty JSON list, and nothing under it
            super().__init__(movies_file, "no movie rows in it (only a header, or an empty list)", "export it again")
            return
        super().__init__(errors[0].file, f"no usable movie ({len(errors)} bad rows)", "fix the rows reported above")


def in_file_order(errors: list[RowError], ratings_files: Collection[str] = ()) -> list[RowError]:
    """Grouped by file (catalogue files first, `ratings_files` after; each group in the order first
    met), by line within a file; each error once."""
    rank: dict[str, int] = {}
    for e in errors:
        rank.setdefault(e.file, len(rank))
    return sorted(dict.fromkeys(errors), key=lambda e: (e.file in ratings_files, rank[e.file], e.line))


# What a payload-only update writes: those fields, the content hash that now covers them, and
# `people`, so that a new PAYLOAD_FORMAT that added it fills it in without embedding anything.
PAYLOAD_ONLY = (*PAYLOAD_ONLY_FIELDS, "people", "content_hash")


def to_point(movie: Movie, vectors: Mapping[str, np.ndarray], has_poster: bool) -> MoviePoint:
    named: dict[str, Vector] = {**vectors, SPARSE_VECTOR: lexical.movie_vector(movie)}
    return MoviePoint(movie.id, named, movie_payload(movie, has_poster))


def movie_payload(movie: Movie, has_poster: bool) -> dict[str, Any]:
    return payload_for(
        title=movie.title,
        year=movie.year,
        genres=list(movie.genres),
        popularity=movie.popularity,
        vote_average=movie.vote_average,
        vote_count=movie.vote_count,
        has_poster=has_poster,
        content_hash=content_hash(movie),
        local_rating_count=movie.local_rating_count,
        people=payload_people(movie),
    )


def index_movies(
    movies: Sequence[Movie],
    store: IndexStore,
    manifest: Manifest,
    make_embedder: Callable[[bool], MovieEmbedder],
    *,
    batch_size: int | None = None,
    rebuild: bool = False,
    progress: bool = True,
    ratings: Pairs | Callable[[], Pairs] | None = None,
    ratings_checksum: str | None = None,
    collab_min_ratings: int = collab.MIN_RATINGS,
) -> IngestSummary:
    """Bring the index up to date with `movies` and publish it.

    `ratings`: (user id, movie id) pairs to learn the collab vectors from (shape (n, 2)), or a
    function returning them, called only when something is staged; None leaves collab vectors out.
    `ratings_checksum`: what identifies those pairs (repo.ratings_checksum), so that they need not
    be read to see that nothing changed; None: a hash of the pairs themselves. Movies with at least
    `collab_min_ratings` of them get rating-fitted collab vectors, the others content-predicted ones.
    `batch_size`: movies embedded and upserted at a time (None: the embedder's text batch size)."""
    started = time.perf_counter()
    wanted = {m.id: content_hash(m) for m in movies}
    summary = IngestSummary(movies=len(movies))
    if ratings is not None and ratings_checksum is None and callable(ratings):
        ratings = ratings()
    store.recover()  # a publish killed halfway is finished, not embedded again
    if ratings is None:
        fingerprint = None
    else:
        # Without a checksum, a callable `ratings` was called above (the ignore: mypy cannot follow that).
        pairs_id = f"db:{ratings_checksum}" if ratings_checksum is not None else ratings_fingerprint(ratings)  # type: ignore[arg-type]
        # The fit's own identity too: another method or threshold refits even when the ratings are the same.
        fingerprint = f"{pairs_id}|{collab.FIT_ID}|min{collab_min_ratings}"
    published = store.manifest()
    if (
        not rebuild
        and manifest.compatible(published)
        and store.published_hashes() == wanted
        and (published is not None and published.stats.get("ratings_fingerprint") == fingerprint)
    ):
        summary.skipped_unchanged = len(movies)
        _finish(summary, published, started)
        return summary

    index = store.stage(manifest, rebuild, points=len(movies))
    present = content_hashes(index)
    changed = [m for m in movies if present.get(m.id) != wanted[m.id]]
    in_place: list[Movie] = []
    todo: list[Movie] = []
    for m in changed:
        (in_place if vectors_unchanged(present.get(m.id), wanted[m.id]) else todo).append(m)
    summary.payload_updated = _update_payloads(index, in_place)
    summary.skipped_unchanged = len(movies) - len(todo)
    orphans = set(present) - set(wanted)
    if todo:
        embedder = make_embedder(any(m.poster for m in todo))  # no CNN for poster-less catalogues
        batch = batch_size or embedder.text_batch_size
        summary.failed = _embed_into(index, todo, embedder, batch, progress, summary.poster_embedded)
        del embedder  # the models (a few hundred MB): not held through the collab fit and the publish
        release_freed_memory()
    index.delete(orphans)
    summary.embedded, summary.deleted = len(todo), len(orphans)
    if ratings is not None:
        collab_started = time.perf_counter()
        pairs = ratings() if callable(ratings) else ratings
        summary.collab_fitted, summary.collab_vectors = _set_collab(
            index, set(wanted), pairs, manifest.collab_dim, collab_min_ratings
        )
        del pairs  # 400 MB at 25M ratings, and the fit's freed matrices: not held through the maps and publish
        release_freed_memory()
        summary.collab_seconds = round(time.perf_counter() - collab_started, 3)
    stats = {
        "points": index.count(),
        "with_poster": index.count(MovieFilter(has_poster=True)),
        "collab_vectors": summary.collab_vectors,
        "collab_fitted": summary.collab_fitted,
        "ratings_fingerprint": fingerprint,
        # The dashboard's 2-D maps, stored with the generation; collab: the directions of the model's
        # factors (the stored vector's last coordinate only pads norms; a factor's length is popularity).
        "maps": project_maps(index, sorted(wanted), transforms={"collab": lambda m: unit_rows(factor_part(m))}),
    }
    store.publish(index, _with_stats(manifest, stats))
    _finish(summary, store.manifest(), started)
    return summary


FLUSH_EVERY_S = 10.0


def _update_payloads(index: MovieIndex, movies: Sequence[Movie]) -> int:
    """Write the payload-only fields of movies whose vectors' inputs are unchanged (a rating count
    that moved): a new rating must not re-run the text model and the poster CNN."""
    for movie in movies:
        payload = movie_payload(movie, has_poster=False)
        index.set_payload([movie.id], {key: payload[key] for key in PAYLOAD_ONLY})
    return len(movies)


def _embed_into(
    index: MovieIndex,
    todo: Sequence[Movie],
    embedder: MovieEmbedder,
    batch_size: int,
    progress: bool,
    poster_embedded: dict[int, bool],
) -> int:
    """Embed and upsert `todo`; returns the number of posters that failed, and records in
    `poster_embedded` whether each movie got an image vector."""
    # Length-sorted batches pad far less: twice the CPU throughput on the demo catalogue.
    todo = embedder.in_batch_order(todo)
    failures, flushed_at = 0, time.monotonic()
    # Closed on the way out of an error or Ctrl-C too, so the CLI's message comes after the bar
    # (garbage collection closed it later, redrawing it under the message).
    with tqdm(total=len(todo), unit="movie", desc="embedding", disable=not progress, smoothing=0.1) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            result = embedder.embed(batch)
            points = [to_point(m, v.as_dict(), v.image is not None) for m, v in zip(batch, result.vectors, strict=True)]
            index.upsert(points)
            poster_embedded.update((p.id, bool(p.payload["has_poster"])) for p in points)
            # Upserts are in the engine's write-ahead log at once, so a killed ingest keeps them (the
            # kill test proves it); a flush only bounds what an OS crash could lose, and costs 13-280 ms.
            if time.monotonic() - flushed_at > FLUSH_EVERY_S:
                index.flush()
                flushed_at = time.monotonic()
            failures += result.poster_failures
            bar.update(len(batch))
    return failures


def ratings_fingerprint(ratings: Pairs | None) -> str | None:
    """Changes exactly when the set of (user, movie) pairs does."""
    if ratings is None:
        return None
    pairs = np.asarray(ratings, dtype=np.int64).reshape(-1, 2)
    if not _strictly_sorted(pairs):  # the database's pairs come sorted and unique: no second sort
        pairs = np.unique(pairs, axis=0)
    return hashlib.sha256(np.ascontiguousarray(pairs).tobytes()).hexdigest()[:32]


def _strictly_sorted(pairs: np.ndarray) -> bool:
    """Whether the (n, 2) rows are in strictly increasing (first, second) order."""
    u, m = pairs[:, 0], pairs[:, 1]
    return bool(np.all((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (m[1:] > m[:-1]))))


def _set_collab(index: MovieIndex, movie_ids: set[int], ratings: Pairs, dim: int, min_ratings: int) -> tuple[int, int]:
    """Learn the item factors and set them on the points, keeping their other vectors. A movie with
    fewer than `min_ratings` ratings gets factors predicted from its content, marked
    `collab_source: content`. Returns (movies fitted from ratings, movies given a collab vector in all)."""
    started = time.perf_counter()
    pairs = np.asarray(ratings, dtype=np.int64).reshape(-1, 2)
    known = np.isin(pairs[:, 1], np.fromiter(movie_ids, dtype=np.int64, count=len(movie_ids)))
    if not known.all():  # else the columns as they are: no 2 x 200 MB copy at 25M ratings
        pairs = pairs[known]
    vectors = item_vectors(pairs[:, 0], pairs[:, 1], dim, min_ratings=min_ratings)
    predicted = collab_from_content(index, movie_ids, vectors)
    for source, found in (("ratings", vectors), ("content", predicted)):
        ids = sorted(found)
        for start in range(0, len(ids), COLLAB_BATCH):
            index.set_vectors("collab", {i: found[i] for i in ids[start : start + COLLAB_BATCH]})
            index.set_payload(ids[start : start + COLLAB_BATCH], {"collab_source": source})
    index.delete_vectors("collab", sorted(movie_ids - vectors.keys() - predicted.keys()))
    index.flush()
    log.info(
        "collab vectors for %d movies (%d from content) in %.1f s",
        len(vectors) + len(predicted),
        len(predicted),
        time.perf_counter() - started,
    )
    return len(vectors), len(vectors) + len(predicted)


def collab_from_content(index: MovieIndex, movie_ids: set[int], rated: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Predicted collab vectors for the movies without rating-fitted ones (app/embedding/collab.py)."""
    ids = sorted(movie_ids)
    content, genres, years = {}, {}, {}
    for start in range(0, len(ids), COLLAB_BATCH):
        for m in index.retrieve(ids[start : start + COLLAB_BATCH], vectors=("combined",)):
            if "combined" in m.vectors:
                content[m.id] = m.vectors["combined"]
                genres[m.id], years[m.id] = m.payload.get("genres") or [], m.payload.get("year")
    return collab.from_content(rated, collab.content_inputs(content, genres, years))


def _with_stats(manifest: Manifest, stats: dict[str, Any]) -> Manifest:
    return Manifest.from_dict({**manifest.to_dict(), "stats": {**stats, "built_at": int(time.time())}})


def _finish(summary: IngestSummary, manifest: Manifest | None, started: float) -> None:
    stats = manifest.stats if manifest else {}
    summary.with_poster = int(stats.get("with_poster", 0))
    summary.without_poster = int(stats.get("points", 0)) - summary.with_poster
    summary.collab_vectors = int(stats.get("collab_vectors", 0))
    summary.collab_fitted = int(stats.get("collab_fitted", 0))
    summary.seconds = round(time.perf_counter() - started, 3)
    summary.movies_per_s = round(summary.embedded / summary.seconds, 2) if summary.seconds else 0.0
