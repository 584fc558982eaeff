"""Top-2 partial-label targets for the PLL student (paper, Section 5).

Tie rule (used by theory and simulation alike, so that both pick the same candidates): the first
candidate is the *smallest class index* among the classes whose score is within ``tol`` of the
column maximum; the second is chosen the same way among the remaining classes. The tolerance is
relative, as in :mod:`theory.metrics`: ``tol = tie_rtol * spread`` with ``spread`` the largest
column range of the score matrix passed in (one model's scores on one set of points). Exactly tied
scores (e.g. two wrong classes with equal outputs under symmetric noise) then give the same choice
whether they are computed exactly or carry round-off, and a genuine gap is never taken for a tie
just because every output is near ``1/K`` (pass logits or deviations ``p - 1/K``, which keep such
gaps; the rule is invariant under per-column shifts and positive scaling).
"""

from __future__ import annotations

import numpy as np

from theory.metrics import TIE_RTOL, tie_tolerance
from theory.validation import check_finite_matrix

__all__ = ["top2_indices", "top2_targets"]


def top2_indices(scores, tie_rtol: float = TIE_RTOL) -> np.ndarray:
    """Indices ``[first, second]`` of the top-2 scores per column, shape (2, M); module tie rule."""
    s = check_finite_matrix(scores, "scores")
    if s.shape[0] < 2:
        raise ValueError(f"scores must have K >= 2 rows, got shape {s.shape}")
    tol = tie_tolerance(s, tie_rtol)
    cols = np.arange(s.shape[1])
    # argmax of a boolean column returns its first True, i.e. the smallest near-maximal index.
    first = np.argmax(s >= s.max(axis=0) - tol, axis=0)
    rest = s.copy()
    rest[first, cols] = -np.inf
    second = np.argmax(rest >= rest.max(axis=0) - tol, axis=0)
    return np.vstack([first, second])


def top2_targets(scores, tie_rtol: float = TIE_RTOL) -> np.ndarray:
    """Two-hot targets, weight 1/2 on each of the top-2 classes of every column, shape (K, M)."""
    s = np.asarray(scores, dtype=float)
    idx = top2_indices(s, tie_rtol)
    t = np.zeros_like(s)
    cols = np.arange(s.shape[1])
    t[idx[0], cols] = 0.5
    t[idx[1], cols] = 0.5
    return t
