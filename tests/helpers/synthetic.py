"""A catalogue wide enough to pass the Edge engine's indexing threshold, for the tests of a killed
`optimize()`; its payloads are the vector-store tests' synthetic catalogue's (tests/helpers/vectorstore.py).
"""

from __future__ import annotations

import numpy as np

from app.vectorstore.base import Manifest, MoviePoint
from tests.helpers.vectorstore import CATALOGUE, N_MOVIES, unit

# One wide vector, so that 1,200 points pass the Edge engine's indexing threshold (10 MB of one
# vector) and `optimize()` builds a segment in temp_segments/.
WIDE = Manifest(
    text_model="t", text_dim=8, image_model="i", image_dim=8, combined_dim=2560, projection_seed=7, collab_dim=8
)
WIDE_POINTS = 1200


def wide_points() -> list[MoviePoint]:
    """WIDE_POINTS movies with WIDE's vectors and the catalogue's payloads, seeded."""
    rng = np.random.default_rng(3)
    points = []
    for i in range(WIDE_POINTS):
        vectors = {name: unit(rng.standard_normal(dim)) for name, dim in WIDE.vector_dims().items()}
        points.append(MoviePoint(i + 1, vectors, dict(CATALOGUE.points[i % N_MOVIES].payload)))
    return points
