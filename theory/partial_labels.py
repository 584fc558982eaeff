"""Top-2 partial-label targets for the PLL student (paper, Section 5).

Tie rule (used by theory and simulation alike): candidates are the two largest entries of each
column; equal scores are ordered by the smaller class index first (a stable sort of ``-scores``).
"""

from __future__ import annotations

import numpy as np

from theory.validation import check_finite_matrix

__all__ = ["top2_indices", "top2_targets"]


def top2_indices(scores) -> np.ndarray:
    """Indices of the two largest scores per column, shape (2, M), ties to the smaller index."""
    s = check_finite_matrix(scores, "scores")
    if s.shape[0] < 2:
        raise ValueError(f"scores must have K >= 2 rows, got shape {s.shape}")
    order = np.argsort(-s, axis=0, kind="stable")
    return order[:2]


def top2_targets(scores) -> np.ndarray:
    """Two-hot targets, weight 1/2 on each of the top-2 classes of every column, shape (K, M)."""
    s = np.asarray(scores, dtype=float)
    idx = top2_indices(s)
    t = np.zeros_like(s)
    cols = np.arange(s.shape[1])
    t[idx[0], cols] = 0.5
    t[idx[1], cols] = 0.5
    return t
