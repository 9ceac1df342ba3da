"""The one rule for a rating's value, shared by the API and every import.

A rating is 0.5 to 5.0 stars in steps of half a star. Anything else is refused (never rounded): an
import reports the row by file and line and skips it, the API answers 400 naming `rating`.
"""

from __future__ import annotations

import numpy as np

from app.errors import InvalidInputError

MIN_RATING, MAX_RATING, STEP = 0.5, 5.0, 0.5
RULE = "rating must be between 0.5 and 5.0 in steps of 0.5"


def valid_ratings(values: np.ndarray) -> np.ndarray:
    """Boolean mask, shape of `values` (float stars): True where the rule holds; NaN is False."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        in_range = (values >= MIN_RATING) & (values <= MAX_RATING)
        valid: np.ndarray = in_range & (np.mod(values, STEP) == 0)
        return valid


def check_rating(value: float) -> float:
    """`value` if the rule holds. Raises InvalidInputError(field="rating") otherwise."""
    if isinstance(value, bool) or not bool(valid_ratings(np.array([value], dtype=np.float64))[0]):
        raise InvalidInputError(RULE, field="rating")
    return float(value)
