"""What a model "knows" in an evaluation: an Edge index and a Recommender built from one training
table only. Popularity, collab vectors and user histories all come from that table, so nothing
of the test part can leak in; the content vectors come from the movies' text alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from app.catalog.models import Movie
from app.catalog.repository import UserRating
from app.embedding.collab import content_inputs, from_content, item_vectors
from app.embedding.movie import combine
from app.recommend.recommender import Recommender
from app.recommend.tuning import Tuning
from app.vectorstore import COLLAB_DIM, Manifest, MoviePoint, payload_for
from app.vectorstore.base import Vector
from app.vectorstore.edge import EdgeIndex

UPSERT_BATCH = 512


@dataclass
class World:
    index: EdgeIndex
    recommender: Recommender
    combined: dict[int, np.ndarray]
    collab: dict[int, np.ndarray]
    histories: dict[int, list[UserRating]] = field(default_factory=dict)  # newest first, as the API passes them
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        self.index.close()
        if self._tmp is not None:
            self._tmp.cleanup()


def build_world(
    movies: Sequence[Movie],
    text: dict[int, np.ndarray],
    train: pd.DataFrame,
    manifest: Manifest,
    *,
    tuning: Tuning,
    history_size: int,
    half_life_days: float,
) -> World:
    """Index every movie (content vectors; collab vectors fitted on the training part, or predicted
    from content for a movie it never rated) in a fresh Edge shard in a temporary directory, and a
    Recommender over it."""
    combined = {m.id: combine(text[m.id], None)[0] for m in movies}  # the eval catalogues have no posters
    rated = item_vectors(train["user_id"].to_numpy(), train["movie_id"].to_numpy(), COLLAB_DIM)
    # As the ingest does: a movie the training part never rated gets factors predicted from content.
    inputs = content_inputs(combined, {m.id: m.genres for m in movies}, {m.id: m.year for m in movies})
    collab = {**rated, **from_content(rated, inputs)}
    tmp = tempfile.TemporaryDirectory(prefix="movierec-eval-")
    index = EdgeIndex.create(Path(tmp.name) / "shard", manifest)
    stats = train.groupby("movie_id")["rating"].agg(["size", "mean"])
    points = [_point(m, text[m.id], combined[m.id], collab.get(m.id), stats, m.id in rated) for m in movies]
    for start in range(0, len(points), UPSERT_BATCH):
        index.upsert(points[start : start + UPSERT_BATCH])
    # No optimize(): small unindexed segments are searched exactly, which is what an evaluation wants.
    recommender = Recommender(
        index=lambda: index,
        encode_query=_no_search,
        history_size=history_size,
        half_life_days=half_life_days,
        tuning=tuning,
    )
    return World(index, recommender, combined, collab, histories(train), tmp)


def _point(
    movie: Movie,
    text: np.ndarray,
    combined: np.ndarray,
    collab: np.ndarray | None,
    stats: pd.DataFrame,
    rated: bool,
) -> MoviePoint:
    """Popularity and votes from the training part only (the source's own counts include the test part)."""
    # pandas-stubs types a cell (.at) as any scalar: hence the two ignores
    count = int(stats.at[movie.id, "size"]) if movie.id in stats.index else 0  # type: ignore[arg-type]
    vectors: dict[str, Vector] = {"text": text, "combined": combined}
    if collab is not None:
        vectors["collab"] = collab
    payload = payload_for(
        title=movie.title,
        year=movie.year,
        genres=list(movie.genres),
        popularity=float(count),
        vote_average=round(float(stats.at[movie.id, "mean"]), 3) if count else None,  # type: ignore[arg-type]
        vote_count=count,
        has_poster=False,
        content_hash="",
        local_rating_count=count,
    )
    if collab is not None:
        payload["collab_source"] = "ratings" if rated else "content"
    return MoviePoint(movie.id, vectors, payload)


def histories(train: pd.DataFrame) -> dict[int, list[UserRating]]:
    """Each user's training ratings, newest first (ties: higher movie id first, as the repository orders)."""
    ordered = train.sort_values(["user_id", "timestamp", "movie_id"], ascending=[True, False, False])
    out: dict[int, list[UserRating]] = {}
    for user, movie, rating, ts in ordered[["user_id", "movie_id", "rating", "timestamp"]].itertuples(index=False):
        out.setdefault(int(user), []).append(UserRating(int(movie), float(rating), int(ts)))
    return out


def _no_search(text: str) -> np.ndarray:
    raise RuntimeError("the evaluation does not run text search")
