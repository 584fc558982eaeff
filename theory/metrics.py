"""Accuracy with explicit tie handling, shared by theory and simulation.

A prediction is *correct* only if the true class's score exceeds every other class's score by more
than ``TIE_ATOL``; a near-tie (within ``TIE_ATOL``) counts as an error and is reported as a tie.
The exact group-level theory is solved to ~1e-12 and the exact solver to <= 1e-9 in outputs, so a
gap below 1e-9 cannot be resolved by either and is honestly a tie.
"""

from __future__ import annotations

import numpy as np

#: Score gap below which two classes are considered tied (see module docstring).
TIE_ATOL = 1e-9

__all__ = ["TIE_ATOL", "correct_and_tied", "accuracy"]


def correct_and_tied(scores, true_labels, tie_atol: float = TIE_ATOL):
    """Per-sample correctness and tie flags.

    Parameters
    ----------
    scores : array_like, shape (K, M)
        Class scores (outputs or logits), one column per sample.
    true_labels : array_like of int, shape (M,)

    Returns
    -------
    correct, tied : ndarray of bool, shape (M,)
        ``correct[m]``: ``scores[y_m, m] - max_{k != y_m} scores[k, m] > tie_atol``.
        ``tied[m]``: the true class is within ``tie_atol`` of the best other class.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(true_labels, dtype=np.int64)
    if s.ndim != 2 or y.shape != (s.shape[1],):
        raise ValueError(f"scores must be (K, M) and true_labels (M,), got {s.shape}, {y.shape}")
    cols = np.arange(s.shape[1])
    own = s[y, cols]
    other = s.copy()
    other[y, cols] = -np.inf
    gap = own - other.max(axis=0)
    return gap > tie_atol, np.abs(gap) <= tie_atol


def accuracy(scores, true_labels, tie_atol: float = TIE_ATOL) -> float:
    """Fraction of samples whose true class wins strictly (ties count as errors)."""
    correct, _ = correct_and_tied(scores, true_labels, tie_atol)
    return float(np.mean(correct))
