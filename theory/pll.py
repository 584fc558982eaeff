r"""The PLL student in the block model: one round on the teacher's top-2 labels, weight 1/2 each.

Following the paper (Section 5), the teacher (round 0, trained on the noisy one-hot labels) proposes
its two highest-scoring classes for every training point, and the student is trained once on the
two-hot targets ``(e_a + e_b) / 2``. Since all points of a group ``(k, l)`` have the same teacher
output, they have the same candidate pair and the student is again a group-level problem.

Top-2 tie rule: that of :mod:`theory.partial_labels` (equal scores ordered by the smaller class
index first), applied with the shared tie tolerance: scores within ``TIE_ATOL`` of each other are
treated as equal, so the choice does not depend on round-off (a linearised and an exact teacher, or
the group-level and the N x N computation, then pick the same pair). ``candidate_ties`` reports how
many training points needed the rule.

The linearised student has outputs ``1/K + (T_2 - 1/K) A`` with ``T_2`` the two-hot targets;
the exact one solves the group fixed point (:func:`theory.groups.solve_groups`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.groups import (
    BlockModel,
    _assemble,
    _softmax,
    check_counts,
    linear_group_outputs,
    linear_population_outputs,
    one_hot_group_targets,
    solve_groups,
)
from theory.metrics import TIE_ATOL
from theory.partial_labels import top2_indices
from theory.validation import check_positive

__all__ = ["PLLCondition", "group_top2", "pll_condition", "predict_pll"]


def group_top2(outputs, counts, tie_atol: float = TIE_ATOL):
    """Teacher's top-2 classes per group with the tolerant tie rule (module docstring).

    Parameters
    ----------
    outputs : array_like, shape (K, K, K)
        Teacher group outputs (NaN on empty groups).
    counts : array_like of int, shape (K, K)

    Returns
    -------
    top2 : ndarray of int, shape (K, K, 2)
        ``[first, second]`` candidate per group; ``-1`` for empty groups.
    tied_points : int
        Number of training points whose choice involved a score tie within ``tie_atol``.
    """
    out = np.asarray(outputs, dtype=float)
    cnt = np.asarray(counts)
    k = cnt.shape[0]
    top2 = np.full((k, k, 2), -1, dtype=np.int64)
    groups = np.argwhere(cnt > 0)
    scores = out[groups[:, 0], groups[:, 1]].T  # (K, non-empty groups)
    choice = top2_indices(scores, tie_atol)  # the shared rule of theory.partial_labels
    top2[groups[:, 0], groups[:, 1]] = choice.T
    # Two tied leaders are both selected (the pair is rule-independent); the rule matters only
    # when the second slot is contested by several classes within tie_atol.
    rest = scores.copy()
    rest[choice[0], np.arange(scores.shape[1])] = -np.inf
    contested = np.sum(rest >= rest.max(axis=0) - tie_atol, axis=0) > 1
    tied = int(cnt[groups[:, 0], groups[:, 1]][contested].sum())
    return top2, tied


def _two_hot(top2, n_classes):
    t = np.full((n_classes, n_classes, n_classes), np.nan)
    present = top2[:, :, 0] >= 0
    t[present] = 0.0
    kk, ll = np.nonzero(present)
    t[kk, ll, top2[kk, ll, 0]] = 0.5
    t[kk, ll, top2[kk, ll, 1]] = 0.5
    return t


def predict_pll(model: BlockModel, counts, lam, *, method: str = "linear", tol=1e-12):
    r"""Group-level prediction of the PLL student (one row, ``R = 0``).

    ``method='linear'``: linearised teacher ``1/K + (Y - 1/K) A``, top-2 targets ``T_2``, student
    ``1/K + (T_2 - 1/K) A`` and linearised population outputs. ``method='exact'``: exact teacher and
    student group fixed points, population outputs ``softmax((T_2 - P) k(x) / (lam N))``.

    Returns
    -------
    GroupPrediction
        Arrays with a leading axis of length 1 (the student); ``candidate_ties`` set.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    k = model.n_classes
    onehot = one_hot_group_targets(k)
    if method == "linear":
        teacher = linear_group_outputs(model, cnt, onehot, lam)
        top2, tied = group_top2(teacher, cnt)
        targets = _two_hot(top2, k)
        student = linear_group_outputs(model, cnt, np.nan_to_num(targets), lam)
        pop = linear_population_outputs(model, cnt, np.nan_to_num(targets, nan=1.0 / k), lam)
        return _assemble(model, cnt, lam, student[None], pop[None], "linear", candidate_ties=tied)
    if method == "exact":
        teacher = solve_groups(model, cnt, onehot, lam, tol=tol)
        top2, tied = group_top2(teacher.outputs, cnt)
        targets = np.nan_to_num(_two_hot(top2, k), nan=1.0 / k)
        sol = solve_groups(model, cnt, targets, lam, init_logits=teacher.logits, tol=tol)
        return _assemble(
            model,
            cnt,
            lam,
            sol.outputs[None],
            _softmax(sol.population_logits)[None],
            "exact",
            residuals=np.array([sol.residual]),
            candidate_ties=tied,
        )
    raise ValueError(f"method must be 'linear' or 'exact', got {method!r}")


@dataclass(frozen=True)
class PLLCondition:
    """Condition for 100% training accuracy of the (linearised) PLL student.

    Attributes
    ----------
    holds : bool
        The linearised student classifies every training point correctly (``margin > 0``);
        necessary and sufficient for the linearised prediction, exact arithmetic.
    margin : float
        Smallest score gap (true class minus best rival) of the linearised student.
    top2_contains_true : bool
        Every training point has its true class among the teacher's top-2.
    tied_classes : tuple of int
        Classes all of whose points received the same candidate pair (a whole-class tie: the
        student cannot separate the pair within that class).
    balanced_candidates : bool
        Every class is a candidate of exactly ``2n`` points (the two-hot global histogram is
        balanced), so the global-histogram part cancels.
    sufficient : bool
        ``top2_contains_true and not tied_classes and (balanced_candidates or d == 0)``:
        the sufficient condition of the PLL theorem (docs/theory.md, Theorem 7.1); implies
        ``holds``.
    teacher_top2 : ndarray of int, shape (K, K, 2)
    """

    holds: bool
    margin: float
    top2_contains_true: bool
    tied_classes: tuple
    balanced_candidates: bool
    sufficient: bool
    teacher_top2: np.ndarray


def pll_condition(model: BlockModel, counts, lam) -> PLLCondition:
    r"""Evaluate the PLL 100%-accuracy condition with the linearised teacher and student.

    Student score gap for a point of group ``(k, l)`` with candidates ``tau`` vs rival ``m``:
    ``a_3 (tau_k - tau_m) + (a_2 - a_3)(ht_kk - ht_km) + (a_1 - a_2)(ht_k - ht_m)`` with
    ``ht_k = sum_l C[k,l] tau_(k,l) / n`` (class candidate histogram) and ``ht = sum_k ht_k / K``.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    k, n = model.n_classes, model.per_class
    teacher = linear_group_outputs(model, cnt, one_hot_group_targets(k), lam)
    top2, _ = group_top2(teacher, cnt)
    targets = np.nan_to_num(_two_hot(top2, k))
    student = linear_group_outputs(model, cnt, targets, lam)
    kk, ll = np.nonzero(cnt > 0)
    scores = student[kk, ll]  # (G, K)
    own = scores[np.arange(kk.size), kk]
    rival = scores.copy()
    rival[np.arange(kk.size), kk] = -np.inf
    margin = float((own - rival.max(axis=1)).min())
    contains = bool(np.all((top2[kk, ll, 0] == kk) | (top2[kk, ll, 1] == kk)))
    tied = []
    for c in range(k):
        pairs = {tuple(sorted(top2[c, j])) for j in range(k) if cnt[c, j] > 0}
        if len(pairs) == 1:
            tied.append(c)
    # Number of points having each class as a candidate (2N slots in total; balanced = 2n each).
    cand_hist = (cnt[:, :, None] * targets).sum(axis=(0, 1)) * 2
    balanced = bool(np.allclose(cand_hist, 2 * n))
    sufficient = contains and not tied and (balanced or model.d == 0.0)
    return PLLCondition(margin > 0, margin, contains, tuple(tied), balanced, sufficient, top2)
