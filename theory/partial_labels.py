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

__all__ = [
    "PLL_MIN_CLASSES",
    "check_pll_classes",
    "pll_undefined_reason",
    "top2_indices",
    "top2_targets",
]

#: Fewest classes for which a PLL student on the teacher's top-2 candidates is defined.
PLL_MIN_CLASSES = 3


def pll_undefined_reason(method: str, n_classes: int) -> str:
    """Why ``method`` (a PLL student) is undefined with ``n_classes < 3``: the same words at every
    entry point (estimator, ``run``, sweep specs, ``probe``, ``theory predict``)."""
    return (
        f"method={method!r} needs at least {PLL_MIN_CLASSES} classes: with K={n_classes} the "
        "teacher's top-2 candidate set is every class and the PLL student learns nothing; use "
        "method='sd'"
    )


def check_pll_classes(method: str, n_classes: int) -> None:
    """Raise ``ValueError`` (:func:`pll_undefined_reason`) if a PLL method gets ``K < 3``.

    With two classes the top-2 candidate set of every point is {0, 1}: the two-hot target is
    uniform, the student's optimum is ``W = 0`` (every output ``1/2``, every decision a tie) and
    its accuracy 0 says nothing about the method.
    """
    if int(n_classes) < PLL_MIN_CLASSES:
        raise ValueError(pll_undefined_reason(method, int(n_classes)))


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
