r"""The PLL student in the block model: one round on the teacher's top-2 labels.

Following the paper (Section 5), the teacher (round 0, trained on the noisy one-hot labels) proposes
its two highest-scoring classes ``S = {a, b}`` for every training point, and the student is trained
once on them with one of the candidate-set losses of :mod:`theory.losses`:

* ``loss='ce'`` (default): cross-entropy on the two-hot targets ``(e_a + e_b) / 2`` (the theory's
  PLL student, docs/theory.md Section 7);
* ``loss='candidate'``: the candidate log-likelihood ``-log(p_a + p_b)``;
* ``loss='gce'``: the generalised cross-entropy ``(1 - (p_a + p_b)^q) / q`` of the candidate set.

Since all points of a group ``(k, l)`` have the same teacher output, they have the same candidate
pair and the student is again a group-level problem (docs/theory.md, Section 12).

Top-2 tie rule: that of :mod:`theory.partial_labels` (equal scores ordered by the smaller class
index first) on the teacher's deviations ``p - 1/K``, with its relative tolerance: scores within
``TIE_RTOL`` times the spread of the teacher's scores are treated as equal, so the choice does not
depend on round-off (a linearised and an exact teacher, or the group-level and the N x N
computation, then pick the same pair). ``candidate_ties`` reports how many training points needed
the rule.

Linearised students: ``ce`` has the closed form ``1/K + (T_2 - 1/K) A``; ``candidate`` and ``gce``
linearise the force ``-grad l`` about ``z = 0``, ``f(z) ~ f(0) - H(0) z``, and solve the linear
group fixed point ``(I + L H(0)) z = L f(0)`` (outputs ``1/K + z/K``). ``H(0)`` of those two losses
is indefinite (the pair direction ``e_a - e_b`` has curvature ``(1/K - 1/2) (2/K)^q < 0``), so
the linearised student exists only where the quadratic model is strictly convex, i.e. where
``I + L H(0)`` has no negative eigenvalue (checked exactly, ``newton_inertia``); elsewhere
:class:`LinearisationUndefinedError` is raised.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from theory.blas import single_thread_blas
from theory.group_descent import descend_to_minimum
from theory.group_engine import (
    EngineResult,
    GroupCoupling,
    StructuredInverse,
    apply_hessian,
    inertia_from_inverse,
)
from theory.groups import (
    GROUP_TOL,
    BlockModel,
    GroupSolution,
    assemble_prediction,
    check_counts,
    convergence_error,
    group_accuracies,
    linear_group_deviations,
    linear_population_deviations,
    one_hot_deviations,
    pad_groups,
    population_accuracy,
    solve_groups,
    solve_loss_groups,
)
from theory.losses import LOSSES, make_loss, softmax_deviation
from theory.metrics import TIE_RTOL, tie_tolerance
from theory.names import DEFAULT_Q
from theory.partial_labels import top2_indices
from theory.validation import check_int, check_positive

__all__ = [
    "LinearisationUndefinedError",
    "PLLCondition",
    "group_top2",
    "pll_condition",
    "predict_pll",
]


class LinearisationUndefinedError(ValueError):
    """The linearised student of a non-convex loss has no minimiser (``I + L H(0)`` indefinite)."""


def group_top2(outputs, counts, tie_rtol: float = TIE_RTOL):
    """Teacher's top-2 classes per group with the tolerant tie rule (module docstring).

    Parameters
    ----------
    outputs : array_like, shape (K, K, K)
        Teacher group scores: deviations ``p - 1/K`` (preferred), outputs or logits; NaN on empty
        groups.
    counts : array_like of int, shape (K, K)
    tie_rtol : float
        Relative tie tolerance (:mod:`theory.metrics`).

    Returns
    -------
    top2 : ndarray of int, shape (K, K, 2)
        ``[first, second]`` candidate per group; ``-1`` for empty groups.
    tied_points : int
        Number of training points whose choice involved a score tie.
    """
    out = np.asarray(outputs, dtype=float)
    cnt = np.asarray(counts)
    k = cnt.shape[0]
    top2 = np.full((k, k, 2), -1, dtype=np.int64)
    groups = np.argwhere(cnt > 0)
    scores = out[groups[:, 0], groups[:, 1]].T  # (K, non-empty groups)
    choice = top2_indices(scores, tie_rtol)  # the shared rule of theory.partial_labels
    top2[groups[:, 0], groups[:, 1]] = choice.T
    # Two tied leaders are both selected (the pair is rule-independent); the rule matters only
    # when the second slot is contested by several classes within the tolerance.
    tol = tie_tolerance(scores, tie_rtol)
    rest = scores.copy()
    rest[choice[0], np.arange(scores.shape[1])] = -np.inf
    contested = np.sum(rest >= rest.max(axis=0) - tol, axis=0) > 1
    tied = int(cnt[groups[:, 0], groups[:, 1]][contested].sum())
    return top2, tied


def two_hot_deviations(top2, n_classes):
    """``(e_a + e_b)/2 - 1/K`` per group (K, K, K); ``0`` on empty groups (ignored downstream)."""
    k = n_classes
    t = np.full((k, k, k), -1.0 / k)
    kk, ll = np.nonzero(top2[:, :, 0] >= 0)
    t[kk, ll, top2[kk, ll, 0]] += 0.5
    t[kk, ll, top2[kk, ll, 1]] += 0.5
    t[top2[:, :, 0] < 0] = 0.0
    return t


def check_pll_loss(loss, q) -> float:
    """Validate a PLL student's loss name (one of :data:`LOSSES`) and GCE exponent ``q``.

    Returns ``q`` as a float in ``(0, 1]``; raises ``ValueError`` otherwise.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    q = float(q)
    if not (np.isfinite(q) and 0.0 < q <= 1.0):
        raise ValueError(f"q (GCE exponent) must lie in (0, 1], got {q}")
    return q


def predict_pll(
    model: BlockModel,
    counts,
    lam,
    *,
    method: str = "linear",
    loss: str = "ce",
    q: float = DEFAULT_Q,
    tol=GROUP_TOL,
    allow_unconverged: bool = False,
    teacher: GroupSolution | None = None,
    max_escapes: int = 4,
):
    r"""Group-level prediction of the PLL student (one row, ``R = 0``).

    Parameters
    ----------
    method : {'linear', 'exact'}
        ``'linear'``: linearised teacher ``1/K + (Y - 1/K) A`` and linearised student (module
        docstring); ``'exact'``: exact teacher and the student's exact group fixed point
        ``z = L f(z)`` started from the teacher (:func:`theory.groups.solve_loss_groups`),
        population outputs ``softmax(L_pop f(z))``.
    loss : {'ce', 'candidate', 'gce'}
        Student loss on the teacher's top-2 candidates (:mod:`theory.losses`). ``'ce'`` is the
        two-hot student (identical to earlier versions of this function).
    q : float
        GCE exponent in ``(0, 1]`` (``loss='gce'`` only).
    tol : float
        Certified relative residual of the exact solves (:func:`theory.groups.solve_groups`).
    allow_unconverged : bool
        Exact method: return an uncertified student (``converged=[False]``) instead of raising
        :class:`theory.groups.GroupConvergenceError`.
    teacher : GroupSolution, optional
        Exact method: the exact teacher (round 0 of ``predict_exact(...).teacher`` for the same
        model, counts and ``lam``), so that several students share one teacher solve.
    max_escapes : int
        Exact method, non-convex losses: saddle points left before giving up (then the
        accuracies are ``NaN`` and ``descent.status`` says why).

    Returns
    -------
    GroupPrediction
        Arrays with a leading axis of length 1 (the student); ``candidate_ties`` and ``loss`` set;
        exact: ``residuals``, ``converged``, ``residual_targets`` (the student's own; ``converged``
        is False if the teacher was not certified either); non-convex exact students also carry
        ``second_order`` (:func:`theory.group_descent.second_order` at the reported point:
        ``(0, 0)`` = strict local minimum) and ``descent`` (the saddles left on the way, see
        :class:`theory.group_descent.Descent`). Accuracies are ``NaN`` if no local minimum was
        reached within the group structure (``descent.status``): a saddle's accuracies are never
        reported as the student's.

    Raises
    ------
    LinearisationUndefinedError
        ``method='linear'`` with ``loss`` in {'candidate', 'gce'} where ``I + L H(0)`` has a
        negative eigenvalue (the quadratic model has no minimiser).
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    q = check_pll_loss(loss, q)
    if method not in ("linear", "exact"):
        raise ValueError(f"method must be 'linear' or 'exact', got {method!r}")
    max_escapes = check_int(max_escapes, "max_escapes", 0)
    k = model.n_classes
    onehot = one_hot_deviations(k)
    kk, ll = np.nonzero(cnt > 0)
    if method == "linear":
        teacher_dev = linear_group_deviations(model, cnt, onehot, lam)
        top2, tied = group_top2(teacher_dev, cnt)
        if loss == "ce":
            targets = two_hot_deviations(top2, k)
            student = linear_group_deviations(model, cnt, targets, lam)
            pop = linear_population_deviations(model, cnt, targets, lam)
        else:
            student, pop = _linear_candidate_student(model, cnt, lam, top2, loss, q)
        return assemble_prediction(
            model, cnt, lam, student[None], pop[None], "linear", candidate_ties=tied, loss=loss
        )
    if teacher is None:
        teacher = solve_groups(
            model,
            cnt,
            None,
            lam,
            target_deviations=onehot,
            tol=tol,
            raise_on_failure=not allow_unconverged,
        )
    elif teacher.deviations.shape != (k, k, k):
        raise ValueError(f"teacher must be a GroupSolution of shape (K, K, K) = {(k, k, k)}")
    top2, tied = group_top2(teacher.deviations, cnt)
    if loss == "ce":
        student_loss = make_loss("ce", k, target_deviation=two_hot_deviations(top2, k)[kk, ll])
    else:
        student_loss = make_loss(loss, k, candidates=top2[kk, ll], q=q)
    # Start from the teacher: its logits and (for the representer form) its force T - p.
    # The teacher's Newton system (same model, counts and lam) preconditions the student's
    # first steps: the student starts at the teacher, where that inverse was built.
    system = teacher.system
    if system is not None and system.coupling.n_groups != kk.size:
        system = None
    sol = solve_loss_groups(
        model,
        cnt,
        student_loss,
        lam,
        init_logits=teacher.logits,
        init_force=onehot - teacher.deviations,
        tol=tol,
        system=system,
    )
    if not sol.converged and not allow_unconverged:
        raise convergence_error(sol, model, lam, what=f"PLL student ({loss})")
    if student_loss.convex:
        return assemble_prediction(
            model,
            cnt,
            lam,
            sol.deviations[None],
            sol.population_deviations[None],
            "exact",
            pops=[population_accuracy(sol.population_logits, sol.population_floor)],
            residuals=np.array([sol.residual]),
            candidate_ties=tied,
            converged=np.array([bool(sol.converged and teacher.converged)]),
            residual_targets=np.array([sol.target]),
            loss=loss,
        )
    return _descended_student(
        model, cnt, lam, sol, student_loss, teacher, tied, loss, tol, max_escapes
    )


def _descended_student(model, cnt, lam, sol, student_loss, teacher, tied, loss, tol, max_escapes):
    """The non-convex student: from the engine's stationary point down to a local minimum.

    :func:`theory.group_descent.descend_to_minimum` leaves saddle points along their most
    negative curvature direction; the prediction is the local minimum it reaches, with the
    saddles in ``descent``. If no minimum is reached in the group-symmetric space, the accuracies
    are ``NaN`` (never a saddle's accuracies).
    """
    coupling = GroupCoupling(model, cnt, lam)
    kk, ll = coupling.kk, coupling.ll
    start = EngineResult(
        sol.logits[kk, ll], sol.residual, sol.target, np.nan, sol.converged, sol.iterations, 0
    )

    def classify(z):
        dev = pad_groups(coupling, softmax_deviation(z))
        force = student_loss.force(z)
        pop = coupling.population_logits(force)
        acc = group_accuracies(dev, cnt)
        pop_acc = population_accuracy(pop, coupling.population_logit_error(force))
        return acc[:3] + (pop_acc[0], acc[3], pop_acc[1])

    with single_thread_blas():
        descent = descend_to_minimum(
            coupling, student_loss, start, tol=tol, classify=classify, max_escapes=max_escapes
        )
    end = descent.end
    end_force = student_loss.force(end.z)
    pop_logits = coupling.population_logits(end_force)
    pred = assemble_prediction(
        model,
        cnt,
        lam,
        pad_groups(coupling, softmax_deviation(end.z))[None],
        softmax_deviation(pop_logits)[None],
        "exact",
        pops=[population_accuracy(pop_logits, coupling.population_logit_error(end_force))],
        residuals=np.array([end.residual]),
        candidate_ties=tied,
        converged=np.array([bool(end.converged and teacher.converged)]),
        residual_targets=np.array([end.target]),
        loss=loss,
        second_order=end.second_order,
        descent=descent,
    )
    if descent.status.startswith("saddle"):
        nan = np.array([np.nan])
        pred = replace(
            pred, train_acc=nan, train_acc_clean=nan, train_acc_mislabeled=nan, population_acc=nan
        )
    return pred


def _linear_candidate_student(model, cnt, lam, top2, loss, q):
    """Linearised candidate-set student: ``(I + L H0) z = L f0``, deviations ``z / K``."""
    k = model.n_classes
    kk, ll = np.nonzero(cnt > 0)
    student_loss = make_loss(loss, k, candidates=top2[kk, ll], q=q)
    coupling = GroupCoupling(model, cnt, lam)
    hess0 = student_loss.hessian0()
    inertia, inverse = None, None
    with single_thread_blas():
        try:
            inverse = StructuredInverse(coupling, hess0)
            inertia = inertia_from_inverse(inverse)
        except np.linalg.LinAlgError:
            pass
        if inertia != (0, 0):
            what = (
                "an undetermined inertia"
                if inertia is None
                else f"{inertia[0]} negative eigenvalue(s) and {inertia[1]} group(s) with "
                "negative within-group curvature"
            )
            raise LinearisationUndefinedError(
                f"linearised {loss!r} student undefined at lam={lam:g}: I + L H(0) has {what} "
                "(the quadratic model has no minimiser)"
            )
        f0 = student_loss.force0()
        z = inverse.apply(coupling.apply(f0))
    force = f0 - apply_hessian(hess0, z)
    student = pad_groups(coupling, z / k)
    pop = coupling.population_logits(force) / k
    return student, pop


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
    teacher = linear_group_deviations(model, cnt, one_hot_deviations(k), lam)
    top2, _ = group_top2(teacher, cnt)
    target_dev = two_hot_deviations(top2, k)
    student = linear_group_deviations(model, cnt, target_dev, lam)
    kk, ll = np.nonzero(cnt > 0)
    scores = student[kk, ll]  # (G, K) deviations: exact gaps, however close to uniform
    own = scores[np.arange(kk.size), kk]
    rival = scores.copy()
    rival[np.arange(kk.size), kk] = -np.inf
    margin = float((own - rival.max(axis=1)).min())
    contains = bool(np.all((top2[kk, ll, 0] == kk) | (top2[kk, ll, 1] == kk)))
    # Whole-class tie: every non-empty group of the class has the same (unordered) pair.
    code = np.minimum(top2[kk, ll, 0], top2[kk, ll, 1]) * k + np.maximum(
        top2[kk, ll, 0], top2[kk, ll, 1]
    )
    lo = np.full(k, np.iinfo(np.int64).max)
    hi = np.full(k, -1)
    np.minimum.at(lo, kk, code)
    np.maximum.at(hi, kk, code)
    tied = np.flatnonzero(lo == hi).tolist()
    # Number of points having each class as a candidate (2N slots in total; balanced = 2n each).
    cand_hist = np.bincount(top2[kk, ll].ravel(), weights=np.repeat(cnt[kk, ll], 2), minlength=k)
    balanced = bool(np.allclose(cand_hist, 2 * n))
    sufficient = contains and not tied and (balanced or model.d == 0.0)
    return PLLCondition(margin > 0, margin, contains, tuple(tied), balanced, sufficient, top2)
