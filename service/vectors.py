"""Rows of vectors made unit length: the one rule every task and check shares (a zero row stays
zero instead of dividing by it)."""

from __future__ import annotations

import numpy as np


def normalize_rows(rows: np.ndarray) -> np.ndarray:
    """(n, H) -> (n, H), each row divided by its L2 norm (norms below 1e-12 count as 1e-12)."""
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    unit: np.ndarray = rows / np.maximum(norms, 1e-12)
    return unit
