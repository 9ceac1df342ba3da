"""2-D maps of vector spaces, computed at ingest and stored with the index generation.

The dashboard's Map page draws them; computing them at ingest (seconds) keeps the page instant.
Each map is the PCA projection (scikit-learn, seeded randomized SVD: the exact solver took 19 s
for 3,000 x 768 here, the randomized one 1.5 s) of a seeded sample of at most MAP_MAX_POINTS movies
that have the named vector, scaled so that the largest coordinate is 1. They live in the manifest's
stats (`stats["maps"]`), so they belong to exactly one generation on both engines; a 3,000-point
map adds about 140 KB of JSON to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from app.vectorstore.base import MovieIndex

MAP_SPACES = ("combined", "collab")
MAP_MAX_POINTS = 3000
MAP_SEED = 0
RETRIEVE_BATCH = 512


def project_maps(
    index: MovieIndex,
    movie_ids: Sequence[int],
    spaces: Sequence[str] = MAP_SPACES,
    max_points: int = MAP_MAX_POINTS,
    seed: int = MAP_SEED,
    transforms: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> dict[str, dict[str, Any]]:
    """{space: {"ids": [movie id, ...], "xy": [[x, y], ...], "explained_variance": [r1, r2]}}.

    `transforms` maps a space to what is projected from its stored vectors (rows in, rows out), e.g.
    the collab vectors' item factors without the coordinate that only equalises their norms.
    Coordinates are in [-1, 1], rounded to 4 decimals; `explained_variance` is the share of the
    sample's variance along each axis. A space with fewer than 3 movies having its vector, or whose
    vectors are all the same, is left out: there is nothing to draw.
    """
    ids = np.asarray(sorted(movie_ids), dtype=np.int64)
    if len(ids) > max_points:  # the same sample for every space, so the maps show the same movies
        ids = np.sort(np.random.default_rng(seed).choice(ids, size=max_points, replace=False))
    vectors: dict[str, dict[int, np.ndarray]] = {space: {} for space in spaces}
    for start in range(0, len(ids), RETRIEVE_BATCH):
        for movie in index.retrieve(ids[start : start + RETRIEVE_BATCH].tolist(), vectors=list(spaces)):
            for space in spaces:
                if space in movie.vectors:
                    vectors[space][movie.id] = movie.vectors[space]
    transforms = transforms or {}
    maps = {space: _pca_map(found, seed, transforms.get(space)) for space, found in vectors.items() if len(found) >= 3}
    return {space: m for space, m in maps.items() if m is not None}


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero): a map of directions, which cosine ranks by,
    rather than of lengths (a collab factor's length mostly says how popular the movie is)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def _pca_map(
    vectors: dict[int, np.ndarray], seed: int, transform: Callable[[np.ndarray], np.ndarray] | None
) -> dict[str, Any] | None:
    from sklearn.decomposition import PCA  # imported here: the API never needs it

    ids = sorted(vectors)
    matrix = np.asarray([vectors[i] for i in ids], dtype=np.float32)
    if transform is not None:
        matrix = transform(matrix)
    if float(matrix.var(axis=0).sum()) <= 1e-12:
        return None
    pca = PCA(n_components=2, svd_solver="randomized", random_state=seed)
    xy = pca.fit_transform(matrix)
    xy /= max(float(np.abs(xy).max()), 1e-12)
    return {
        "ids": ids,
        "xy": np.round(xy, 4).tolist(),
        "explained_variance": np.round(pca.explained_variance_ratio_, 4).tolist(),
    }
