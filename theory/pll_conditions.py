r"""Conditions for 100% accuracy of the candidate-set PLL students in the block model.

The PLL student (:mod:`theory.pll`) is trained once on the teacher's top-2 candidate set
``S = {a, b}`` of every training point with one of the losses of :mod:`theory.losses`: two-hot
cross-entropy ``ce`` (convex), the candidate log-likelihood ``candidate`` ``-log pi`` or the
generalised cross-entropy ``gce`` ``(1 - pi^q)/q`` of the candidate mass ``pi = p_a + p_b``
(non-convex). ``docs/theory.md`` Section 15 states and proves the results implemented here:

* **Regimes** (Theorem 15.2). Every Hessian of a set loss is ``>= -h I`` with ``h = 1/2``
  (``candidate``) or :func:`curvature_bound` (``gce``). If ``lam N > mu_max h`` the training
  objective is strongly convex: one stationary point, whatever the start (:func:`uniqueness_lam`);
  if ``lam N > mu_3 h`` every training point's candidate order follows the population order of its
  class (:func:`order_lam`); the linearised student exists if ``lam N > mu_max w_0 (1/2 - 1/K)``
  (:func:`linear_defined_lam`).
* **Forced ties** (Proposition 15.3). A permutation of classes and of outputs that maps the
  student's problem to itself, fixes class ``k`` and maps output ``k`` to ``m`` forces every
  class-``k`` point and the class-``k`` population point of the two-hot student (and of any student
  in the uniqueness regime) to tie between ``k`` and ``m`` (:func:`forced_ties`).
* **The tied point and its stability** (Propositions 15.4, 15.5). Where the two-hot student ties
  in every group, it is a stationary point of the ``candidate`` student (and ``gce`` has a tied
  stationary point next to it); along the class-wide pair direction it is a strict local minimum iff
  ``w(pi) (1 - pi) max(mu_2, mu_3) < 2 lam N`` (:func:`tie_margin`, :func:`tied_point`).
* **Mirror minima** (Proposition 15.6): under such a symmetry every stationary point has a mirror
  image with the same objective and Hessian inertia whose class-``k`` predictions are permuted;
  the problem itself cannot prefer 100% over the mirror (0% for pair noise).
* **Population implies training** (Theorem 15.7): if every training point's true class is a
  candidate and every group's candidate order is its class's population order (two-hot CE: always;
  set losses: ``lam N > mu_3 h``), a correct population point makes its whole class correct
  (:attr:`LossCondition.population_implies_train`).

Which stationary point a non-convex student reaches is decided by the start and the optimiser.
:func:`flow_student` follows the **gradient flow of the training objective from the teacher** (the
small-step limit of the reference code's gradient descent from the teacher's weights) to its end,
leaves saddle points along both signs of the most negative curvature direction and reports every
outcome; :func:`loss_condition` collects the proved conditions beside that measured student.

Layout: the regimes and forced ties live in :mod:`theory.pll_regimes`, the gradient-flow student
(and the student's group problem) in :mod:`theory.pll_flow`; this module holds the tied point and
the condition report and re-exports the names of both.

All functions are deterministic (no random numbers) and cost independent of ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.blas import single_thread_blas
from theory.group_descent import second_order
from theory.group_engine import newton_solve
from theory.groups import (
    GROUP_TOL,
    BlockModel,
    solve_loss_groups,
)
from theory.losses import make_loss
from theory.names import DEFAULT_Q
from theory.pll import check_pll_loss, predict_pll, two_hot_deviations
from theory.pll_flow import (
    FLOW_MAX_UNKNOWNS,
    FlowStudent,
    flow_student,
    pad_groups,
    student_problem,
)
from theory.pll_regimes import (
    curvature_bound,
    find_tie_symmetry,
    forced_ties,
    is_student_symmetry,
    linear_defined_lam,
    order_lam,
    pair_multisets,
    tie_margin,
    tie_weight,
    uniqueness_lam,
)

__all__ = [
    "FLOW_MAX_UNKNOWNS",
    "FlowStudent",
    "LossCondition",
    "TiedPoint",
    "curvature_bound",
    "find_tie_symmetry",
    "flow_student",
    "forced_ties",
    "is_student_symmetry",
    "linear_defined_lam",
    "loss_condition",
    "order_lam",
    "pair_multisets",
    "tie_margin",
    "tie_weight",
    "tied_point",
    "uniqueness_lam",
]


# --------------------------------------------------------------------------------------------
# the tied point (Propositions 15.4, 15.5)


@dataclass(frozen=True)
class TiedPoint:
    """The tied stationary point of a set-loss student (:func:`tied_point`).

    Attributes
    ----------
    logits : ndarray, shape (K, K, K)
        Group logits (NaN on empty groups).
    pi : ndarray, shape (K, K)
        Candidate mass per group (NaN on empty groups).
    residual : float
        Certified fixed-point residual (:func:`theory.group_engine.newton_solve`).
    converged : bool
    tie_gap : float
        ``max |z_a - z_b|`` over groups, relative to ``max |z|`` (``~1e-16``: tied).
    margin : float
        :func:`tie_margin` with the tied point's ``pi`` (closed form; positive = stable along the
        class-wide pair direction).
    second_order : tuple or None
        :func:`theory.group_engine.newton_inertia` at the tied point: ``(0, 0)`` = strict local
        minimum of the ``N x N`` objective.
    """

    logits: np.ndarray
    pi: np.ndarray
    residual: float
    converged: bool
    tie_gap: float
    margin: float
    second_order: tuple | None


def tied_point(
    model: BlockModel,
    counts,
    lam,
    *,
    loss: str = "candidate",
    q: float = DEFAULT_Q,
    teacher=None,
    tol: float = GROUP_TOL,
) -> TiedPoint:
    r"""The stationary point of a set-loss student at which every group's candidates tie.

    Requires that the two-hot (``ce``) student ties in every group (``p_a = p_b``, e.g. forced by
    symmetry: pair noise, ``d = 0`` with whole-class ties in every class; Proposition 15.3). Then
    ``pt = (e_a + e_b)/2`` is the two-hot target in every group, the ``candidate`` force
    ``pt - p`` equals the two-hot force and the two-hot student **is** a stationary point of the
    ``candidate`` student (Proposition 15.4); for ``gce`` the force is ``pi^q (t - p)``, and Newton
    on ``z = L f(z)`` started from the two-hot student converges to the tied point next to it.

    Raises
    ------
    ValueError
        If the two-hot student is not tied in every group (relative gap above ``1e-9``), or
        ``loss='ce'``.
    """
    q = check_pll_loss(loss, q)
    if loss == "ce":
        raise ValueError("tied_point is for the set losses 'candidate' and 'gce'")
    prob = student_problem(model, counts, lam, loss, q, teacher, tol)
    cp = prob.coupling
    kk, ll = prob.rows
    k = model.n_classes
    ce_loss = make_loss("ce", k, target_deviation=two_hot_deviations(prob.top2, k)[kk, ll])
    ce = solve_loss_groups(model, prob.counts, ce_loss, prob.lam, tol=tol)
    z = ce.logits[kk, ll]
    g = np.arange(kk.size)
    a, b = prob.top2[kk, ll, 0], prob.top2[kk, ll, 1]
    scale = max(float(np.abs(z).max()), 1e-300)
    gap = float(np.abs(z[g, a] - z[g, b]).max()) / scale
    if gap > 1e-9:
        raise ValueError(
            f"the two-hot student is not tied in every group (relative gap {gap:.2g}): no tied "
            "point to continue from"
        )
    with single_thread_blas():
        res = newton_solve(cp, prob.loss, z, tol=tol, max_iter=50)
        z = res.z
        second = second_order(cp, prob.loss.hessian(z))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    pi = p[g, a] + p[g, b]
    scale = max(float(np.abs(z).max()), 1e-300)
    gap = float(np.abs(z[g, a] - z[g, b]).max()) / scale
    margin = tie_margin(model, prob.lam, pi, loss, q)
    return TiedPoint(
        logits=pad_groups(cp, z),
        pi=pad_groups(cp, pi),
        residual=float(res.residual),
        converged=bool(res.converged),
        tie_gap=gap,
        margin=margin,
        second_order=second,
    )


# --------------------------------------------------------------------------------------------
# the condition report


@dataclass(frozen=True)
class LossCondition:
    """Proved conditions and the measured student for one loss (:func:`loss_condition`).

    Attributes
    ----------
    loss : str
    q : float
    lam : float
    unique : bool
        ``lam > uniqueness_lam``: the objective is strongly convex, the student is unique
        (always True for ``ce``; Theorem 15.2a).
    order_preserving : bool
        ``lam > order_lam``: candidate order = population order at every stationary point
        (Theorem 15.2b; always True for ``ce``, Theorem 15.7a).
    linear_defined : bool
        ``lam > linear_defined_lam`` (sufficient for the linearised student to exist).
    top2_contains_true : bool
        Every training point has its true class among its candidates.
    whole_class_ties : tuple of int
        Classes all of whose points share one pair containing the true class.
    forced_ties : tuple of int
        Classes whose tie is forced by a symmetry (Proposition 15.3): the two-hot student ties
        there, and so does every student in the uniqueness regime.
    population_implies_train : bool
        The hypotheses of Theorem 15.7 hold (``top2_contains_true`` and ``order_preserving``):
        100% population accuracy implies 100% training accuracy at every stationary point.
    tie : TiedPoint or None
        Set losses whose two-hot student ties in every group: the tied point, its closed-form
        ``margin`` and its ``second_order`` certificate.
    train_acc, population_acc : float
        Of the student: ``ce`` the unique exact student (:func:`theory.pll.predict_pll`), the set
        losses the gradient-flow student (:func:`flow_student`).
    ties : int
    second_order : tuple or None
    ambiguous : bool
        The flow's outcome depended on the side a saddle was left on.
    """

    loss: str
    q: float
    lam: float
    unique: bool
    order_preserving: bool
    linear_defined: bool
    top2_contains_true: bool
    whole_class_ties: tuple
    forced_ties: tuple
    population_implies_train: bool
    tie: TiedPoint | None
    train_acc: float
    population_acc: float
    ties: int
    second_order: tuple | None
    ambiguous: bool

    @property
    def train_100(self) -> bool:
        return self.train_acc == 1.0

    @property
    def population_100(self) -> bool:
        return self.population_acc == 1.0


def loss_condition(
    model: BlockModel,
    counts,
    lam,
    *,
    loss: str = "candidate",
    q: float = DEFAULT_Q,
    teacher=None,
    tol: float = GROUP_TOL,
) -> LossCondition:
    """Evaluate the proved conditions of Section 15 and the measured student for one loss."""
    q = check_pll_loss(loss, q)
    prob = student_problem(model, counts, lam, loss, q, teacher, tol)
    kk, ll = prob.rows
    lam = prob.lam
    top2 = prob.top2
    contains = bool(np.all((top2[kk, ll, 0] == kk) | (top2[kk, ll, 1] == kk)))
    mult = pair_multisets(top2, prob.counts)
    whole = tuple(k for k, m in enumerate(mult) if len(m) == 1 and k in next(iter(m)))
    forced = tuple(sorted(forced_ties(model, top2, prob.counts)))
    unique = loss == "ce" or lam > uniqueness_lam(model, loss, q)
    order = loss == "ce" or lam > order_lam(model, loss, q)
    lin = loss == "ce" or lam > linear_defined_lam(model, loss, q)
    tie = None
    if loss != "ce" and whole and len(whole) == model.n_classes:
        try:
            tie = tied_point(model, prob.counts, lam, loss=loss, q=q, teacher=prob.teacher, tol=tol)
        except ValueError:
            tie = None
    if loss == "ce":
        pred = predict_pll(model, prob.counts, lam, method="exact", loss="ce", teacher=prob.teacher)
        second, ambiguous = None, False
    else:
        fs = flow_student(model, prob.counts, lam, loss=loss, q=q, teacher=prob.teacher, tol=tol)
        pred, second, ambiguous = fs.prediction, fs.prediction.second_order, fs.ambiguous
    return LossCondition(
        loss=loss,
        q=q,
        lam=lam,
        unique=bool(unique),
        order_preserving=bool(order),
        linear_defined=bool(lin),
        top2_contains_true=contains,
        whole_class_ties=whole,
        forced_ties=forced,
        population_implies_train=bool(contains and order),
        tie=tie,
        train_acc=float(pred.train_acc[0]),
        population_acc=float(pred.population_acc[0]),
        ties=int(pred.ties[0]),
        second_order=second,
        ambiguous=bool(ambiguous),
    )
