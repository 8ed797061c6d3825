"""Input checks shared by the clearing and DebtRank algorithms (errors name the argument and range)."""

from __future__ import annotations

import numpy as np


def square_matrix(name: str, values, diagonal_note: str) -> np.ndarray:
    """A finite, non-negative, square float copy of ``values`` with a zero diagonal."""
    X = np.array(values, dtype=float, copy=True)
    if X.ndim != 2 or X.shape[0] != X.shape[1]:
        raise ValueError(f"{name} must be a square 2-D array of shape (n, n); got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} must be finite (no NaN or inf); allowed range is [0, inf)")
    if np.any(X < 0):
        raise ValueError(f"{name} must be non-negative; allowed range is [0, inf)")
    if np.any(np.diag(X) != 0):
        raise ValueError(f"{name} must have a zero diagonal ({diagonal_note})")
    return X
