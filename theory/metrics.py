r"""Accuracy with explicit, scale-free tie handling, shared by theory and simulation.

Rule. Scores are passed as a (K, M) matrix: one column per sample, from ONE model on one set of
points (logits, outputs, or deviations ``p - 1/K``; the rule is invariant under adding a constant
to a column and under scaling all scores by a positive factor). With

.. math::  \mathrm{gap}_m = s_{y_m m} - \max_{k \ne y_m} s_{k m}, \qquad
           \mathrm{spread} = \max_m \big(\max_k s_{km} - \min_k s_{km}\big),

sample ``m`` is *correct* iff ``gap_m > TIE_RTOL * spread`` and *tied* iff
``|gap_m| <= TIE_RTOL * spread``; ties count as errors.

Why relative. The solvers (group theory and ``simulations.solver``) determine every score to a
relative accuracy far better than ``1e-9`` of the scores' own scale, but outputs of a heavily
regularised or many-times distilled model are all within ``1e-20`` of ``1/K``: an absolute
tolerance would turn every such gap into a tie although it is resolved. A gap below ``1e-9`` of
the spread cannot be trusted to have the right sign, and exact symmetric ties (computed with
round-off ``~1e-15`` of the spread) are still recognised. Scores must carry their small gaps: pass
logits or deviations computed without cancellation (``theory.losses.softmax_deviation``), not
probabilities rounded to ``1/K + O(eps)``. A matrix whose scores are all equal (spread 0) is all
ties.
"""

from __future__ import annotations

import numpy as np

#: Relative tie tolerance: gaps within ``TIE_RTOL`` times the spread of the scores are ties.
TIE_RTOL = 1e-9

__all__ = ["TIE_RTOL", "accuracy", "correct_and_tied", "score_spread", "tie_tolerance"]


def score_spread(scores) -> float:
    """``max_m (max_k s_km - min_k s_km)`` of a (K, M) score matrix (0 if M = 0)."""
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        return 0.0
    return float(np.max(s.max(axis=0) - s.min(axis=0)))


def tie_tolerance(scores, tie_rtol: float = TIE_RTOL) -> float:
    """Absolute gap below which two scores of this matrix are tied: ``tie_rtol * spread``."""
    rtol = float(tie_rtol)
    if not (np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"tie_rtol must be a finite number >= 0, got {tie_rtol!r}")
    return rtol * score_spread(scores)


def correct_and_tied(scores, true_labels, tie_rtol: float = TIE_RTOL, tie_atol: float = 0.0):
    """Per-sample correctness and tie flags (module docstring).

    Parameters
    ----------
    scores : array_like, shape (K, M)
        Class scores (logits, outputs or deviations from 1/K), one column per sample.
    true_labels : array_like of int, shape (M,)
    tie_rtol : float
        Relative tie tolerance (default :data:`TIE_RTOL`).
    tie_atol : float
        Absolute tie tolerance (default 0): a caller's bound on the scores' round-off, for
        scores that may be round-off entirely (then their spread is too).

    Returns
    -------
    correct, tied : ndarray of bool, shape (M,)
        ``correct[m]``: ``gap_m > tie_rtol * spread``; ``tied[m]``: ``|gap_m| <= tie_rtol *
        spread``.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(true_labels, dtype=np.int64)
    if s.ndim != 2 or y.shape != (s.shape[1],):
        raise ValueError(f"scores must be (K, M) and true_labels (M,), got {s.shape}, {y.shape}")
    atol = float(tie_atol)
    if not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"tie_atol must be a finite number >= 0, got {tie_atol!r}")
    tol = max(tie_tolerance(s, tie_rtol), atol)
    cols = np.arange(s.shape[1])
    own = s[y, cols]
    other = s.copy()
    other[y, cols] = -np.inf
    gap = own - other.max(axis=0)
    return gap > tol, np.abs(gap) <= tol


def accuracy(scores, true_labels, tie_rtol: float = TIE_RTOL) -> float:
    """Fraction of samples whose true class wins strictly (ties count as errors)."""
    correct, _ = correct_and_tied(scores, true_labels, tie_rtol)
    return float(np.mean(correct))
