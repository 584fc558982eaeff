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

All functions are deterministic (no random numbers) and cost independent of ``n``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from theory.blas import single_thread_blas
from theory.group_descent import (
    dense_coupling,
    dense_hessians,
    dense_objective_hessian,
    group_objective,
    second_order,
)
from theory.group_engine import GroupCoupling, newton_solve
from theory.groups import (
    GROUP_TOL,
    BlockModel,
    GroupPrediction,
    assemble_prediction,
    check_counts,
    group_accuracies,
    one_hot_deviations,
    population_accuracy,
    solve_groups,
    solve_loss_groups,
)
from theory.losses import make_loss, softmax_deviation
from theory.names import DEFAULT_Q
from theory.pll import check_pll_loss, group_top2, predict_pll, two_hot_deviations
from theory.validation import check_int, check_positive

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

#: Largest number of unknowns ``G K`` (non-empty groups times classes) of :func:`flow_student`:
#: the stiff integrator factorises the dense ``(G K) x (G K)`` Jacobian (72 MB at 3000).
FLOW_MAX_UNKNOWNS = 3000
#: Exhaustive search over output permutations in :func:`find_tie_symmetry` up to this many classes
#: (``(K - 1)!`` candidates); above it a documented family of permutations is tried.
SYMMETRY_EXHAUSTIVE_MAX_K = 8


# --------------------------------------------------------------------------------------------
# regimes (Theorem 15.2)


def curvature_bound(loss: str, q: float = DEFAULT_Q) -> float:
    r"""``h`` with ``grad^2 l(z) >= -h I`` for every logit vector ``z`` (Lemma 15.1).

    * ``ce``: ``0`` (convex).
    * ``candidate``: ``1/2``. The Hessian ``D_p - pt_a pt_b v v^T`` has ``D_p >= 0`` and the
      rank-one term has eigenvalue ``-2 pt_a pt_b >= -1/2``; the bound is the infimum (``pi -> 0``
      at ``pt = (1/2, 1/2)``, where the curvature along ``v / |v|`` is ``(pi - 1)/2``).
    * ``gce``: ``max_{pi in (0, 1]} pi^q (1/2 + 2 q (1 - pi)^2)``, since the Hessian
      ``pi^q [D_p - pt_a pt_b v v^T - q d d^T]`` has ``|d|^2 <= 2 (1 - pi)^2``. The maximum is at
      ``pi = 1`` or at a root of ``(2q + 4) pi^2 - (4q + 4) pi + (2q + 1/2) = 0`` (the stationarity
      of ``pi^q (1/2 + 2 q (1 - pi)^2)``); e.g. ``0.529`` at ``q = 0.7``, ``0.5`` as ``q -> 0``.
    """
    q = check_pll_loss(loss, q)
    if loss == "ce":
        return 0.0
    if loss == "candidate":
        return 0.5
    disc = math.sqrt(8.0 - 4.0 * q)  # > 0 for q <= 1
    roots = [((4 * q + 4) + s * disc) / (2 * (2 * q + 4)) for s in (-1.0, 1.0)]
    cands = [1.0] + [x for x in roots if 0.0 < x <= 1.0]
    return max(x**q * (0.5 + 2 * q * (1 - x) ** 2) for x in cands)


def uniqueness_lam(model: BlockModel, loss: str, q: float = DEFAULT_Q) -> float:
    r"""``mu_max h / N``: for ``lam`` above it the student's objective is strongly convex.

    ``(lam/2)|W|^2 + (1/N) sum_i l(W x_i)`` has Hessian ``>= (lam - h mu_max / N) I`` (Theorem
    15.2a), so it has exactly one stationary point (its global minimiser), which every descent
    method reaches from every start. ``0`` for ``ce``.
    """
    return float(model.eigenvalues.max()) * curvature_bound(loss, q) / model.n_samples


def order_lam(model: BlockModel, loss: str, q: float = DEFAULT_Q) -> float:
    r"""``mu_3 h / N``: for ``lam`` above it every training point's candidate order follows the
    population order of its class at every stationary point (Theorem 15.2b)."""
    return float(model.eigenvalues[2]) * curvature_bound(loss, q) / model.n_samples


def linear_defined_lam(model: BlockModel, loss: str, q: float = DEFAULT_Q) -> float:
    r"""``mu_max w_0 (1/2 - 1/K) / N``: for ``lam`` above it the linearised student exists.

    ``H(0) = w_0 [(I - 11^T/K)/K - v v^T/4 - q d d^T]`` (``w_0 = (2/K)^q``, ``q = 0`` for
    ``candidate``) has smallest eigenvalue ``w_0 (1/K - 1/2)`` (along ``v``; ``d`` has
    ``|d|^2 = 1/2 - 1/K``), so every eigenvalue of ``I + L H(0)`` is at least
    ``1 - w_0 (1/2 - 1/K) mu_max / (lam N)`` (Theorem 15.2c). A sufficient condition: the exact
    boundary is decided by the inertia (:func:`theory.pll.predict_pll`). ``0`` for ``ce``.
    """
    q = check_pll_loss(loss, q)
    if loss == "ce":
        return 0.0
    k = model.n_classes
    w0 = 1.0 if loss == "candidate" else (2.0 / k) ** q
    return float(model.eigenvalues.max()) * w0 * max(0.5 - 1.0 / k, 0.0) / model.n_samples


def tie_weight(pi, loss: str, q: float = DEFAULT_Q):
    """``w(pi) = -phi'(pi) pi``: ``1`` (``candidate``), ``pi^q`` (``gce``), as in the force
    ``w(pi) (pt - p)`` of the set losses. ``ce`` has no such factor (returns ``1``)."""
    q = check_pll_loss(loss, q)
    pi = np.asarray(pi, dtype=float)
    return pi**q if loss == "gce" else np.ones_like(pi)


def tie_margin(model: BlockModel, lam, pi, loss: str = "candidate", q: float = DEFAULT_Q) -> float:
    r"""Stability margin of a tied point along the class-wide pair direction (Proposition 15.5).

    ``2 lam N - w(pi) (1 - pi) max(mu_2, mu_3)`` with ``pi`` the candidate mass of the tied
    groups (the largest ``w (1 - pi)`` over groups if an array is given). Positive: the tied point
    is a strict local minimum along ``t (e_k - e_m)`` (every class-``k`` point moved together;
    ``d = 0``: along every pair direction); negative: it is a saddle. ``ce`` always returns
    ``2 lam N`` (convex).
    """
    lam = check_positive(lam, "lam")
    q = check_pll_loss(loss, q)
    pi = np.atleast_1d(np.asarray(pi, dtype=float))
    if np.any((pi <= 0) | (pi > 1)) or not np.all(np.isfinite(pi)):
        raise ValueError("pi (candidate mass) must lie in (0, 1]")
    n_lam = 2.0 * lam * model.n_samples
    if loss == "ce":
        return n_lam
    mu = model.eigenvalues
    return float(n_lam - np.max(tie_weight(pi, loss, q) * (1.0 - pi)) * max(mu[1], mu[2]))


# --------------------------------------------------------------------------------------------
# symmetries (Proposition 15.3)


def pair_multisets(top2, counts) -> tuple:
    """Per class, the multiset of candidate pairs: ``{(a, b): points}`` with ``a < b``.

    The student's problem depends on the labels only through these (the block Gram matrix is
    invariant under every permutation of points within a class and of whole classes).
    """
    cnt = np.asarray(counts)
    t2 = np.asarray(top2)
    out = []
    for k in range(cnt.shape[0]):
        m = {}
        for ell in np.flatnonzero(cnt[k] > 0):
            a, b = sorted((int(t2[k, ell, 0]), int(t2[k, ell, 1])))
            m[(a, b)] = m.get((a, b), 0) + int(cnt[k, ell])
        out.append(m)
    return tuple(out)


def _permute_multiset(mset, perm):
    out = {}
    for (a, b), c in mset.items():
        key = tuple(sorted((int(perm[a]), int(perm[b]))))
        out[key] = out.get(key, 0) + c
    return out


def _signature(mset):
    return tuple(sorted(mset.items()))


def is_student_symmetry(multisets, class_perm, output_perm) -> bool:
    """Does ``(rho, r)`` map the student's problem to itself?

    ``multisets`` from :func:`pair_multisets`; ``class_perm[j] = rho(j)``,
    ``output_perm[o] = r(o)``. Condition: class ``rho(j)`` has the pair multiset ``r(M_j)`` for
    every class ``j``.
    """
    k = len(multisets)
    rho = np.asarray(class_perm, dtype=int)
    r = np.asarray(output_perm, dtype=int)
    for perm in (rho, r):
        if perm.shape != (k,) or sorted(perm.tolist()) != list(range(k)):
            raise ValueError(f"permutations must be permutations of range({k})")
    return all(
        _signature(multisets[rho[j]]) == _signature(_permute_multiset(multisets[j], r))
        for j in range(k)
    )


def _class_perm_for(multisets, r, k_fixed):
    """A class permutation ``rho`` with ``rho(k_fixed) = k_fixed`` completing ``r``, or None."""
    k = len(multisets)
    images = [_signature(_permute_multiset(multisets[j], r)) for j in range(k)]
    own = [_signature(m) for m in multisets]
    if images[k_fixed] != own[k_fixed]:
        return None
    rho = np.full(k, -1)
    rho[k_fixed] = k_fixed
    free = {j for j in range(k) if j != k_fixed}
    for j in range(k):
        if j == k_fixed:
            continue
        match = next((i for i in sorted(free) if own[i] == images[j]), None)
        if match is None:
            return None
        rho[j] = match
        free.discard(match)
    return rho


def _family(k, a, m):
    """Output permutations with ``r(a) = m`` tried for ``K > SYMMETRY_EXHAUSTIVE_MAX_K``:
    the transposition ``(a m)``, the reflection ``o -> a + m - o`` and, if ``m - a = K/2``, the
    half-turn ``o -> o + K/2`` (all mod ``K``)."""
    base = np.arange(k)
    t = base.copy()
    t[a], t[m] = m, a
    fam = [t, (a + m - base) % k]
    if (2 * (m - a)) % k == 0:
        fam.append((base + (m - a)) % k)
    return fam


def find_tie_symmetry(multisets, k: int, m: int):
    """A symmetry ``(rho, r)`` of the student's problem with ``rho(k) = k`` and ``r(k) = m``.

    Exhaustive over the ``(K - 1)!`` output permutations with ``r(k) = m`` for
    ``K <= SYMMETRY_EXHAUSTIVE_MAX_K`` (``rho`` then follows by matching pair multisets), a
    documented family otherwise (:func:`_family`: transposition, reflection, half-turn).

    Returns
    -------
    (class_perm, output_perm) or None
    """
    nk = len(multisets)
    if not (0 <= k < nk and 0 <= m < nk and k != m):
        raise ValueError(f"k and m must be distinct classes in [0, {nk})")
    if nk <= SYMMETRY_EXHAUSTIVE_MAX_K:
        rest_src = [o for o in range(nk) if o != k]
        rest_dst = [o for o in range(nk) if o != m]
        candidates = (
            np.array([m if o == k else img[rest_src.index(o)] for o in range(nk)])
            for img in itertools.permutations(rest_dst)
        )
    else:
        candidates = iter(_family(nk, k, m))
    for r in candidates:
        rho = _class_perm_for(multisets, r, k)
        if rho is not None:
            return rho, r
    return None


def forced_ties(model: BlockModel, top2, counts) -> dict:
    r"""Classes whose two-hot student provably ties (Proposition 15.3), with the reason.

    A class ``k`` all of whose points have the same pair ``{k, m}`` (a *whole-class tie*) is forced
    to tie if ``d = 0`` (the classes decouple; swapping outputs ``k, m`` in class ``k`` alone is a
    symmetry) or if :func:`find_tie_symmetry` finds a symmetry fixing ``k`` with ``r(k) = m``.

    Returns
    -------
    dict
        ``{k: (m, class_perm, output_perm)}``; the permutations are ``None`` for the class-local
        symmetry of ``d = 0``.
    """
    mult = pair_multisets(top2, counts)
    out = {}
    for k, mset in enumerate(mult):
        if len(mset) != 1:
            continue
        (a, b), _ = next(iter(mset.items()))
        if k not in (a, b):
            continue
        m = b if a == k else a
        if model.d == 0.0:
            out[k] = (m, None, None)
            continue
        sym = find_tie_symmetry(mult, k, m)
        if sym is not None:
            out[k] = (m, sym[0], sym[1])
    return out


# --------------------------------------------------------------------------------------------
# the student's group problem


@dataclass
class _Problem:
    """Teacher, candidates, coupling and loss of one PLL student (non-empty groups only)."""

    model: BlockModel
    counts: np.ndarray
    lam: float
    loss_name: str
    q: float
    teacher: object
    top2: np.ndarray
    candidate_ties: int
    coupling: GroupCoupling
    loss: object

    @property
    def rows(self):
        return self.coupling.kk, self.coupling.ll


def _problem(model, counts, lam, loss, q, teacher, tol) -> _Problem:
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    check_positive(tol, "tol")
    q = check_pll_loss(loss, q)
    k = model.n_classes
    if teacher is None:
        teacher = solve_groups(
            model, cnt, None, lam, target_deviations=one_hot_deviations(k), tol=tol
        )
    elif teacher.deviations.shape != (k, k, k):
        raise ValueError(f"teacher must be a GroupSolution of shape (K, K, K) = {(k, k, k)}")
    top2, tied = group_top2(teacher.deviations, cnt)
    coupling = GroupCoupling(model, cnt, lam)
    kk, ll = coupling.kk, coupling.ll
    if loss == "ce":
        fn = make_loss("ce", k, target_deviation=two_hot_deviations(top2, k)[kk, ll])
    else:
        fn = make_loss(loss, k, candidates=top2[kk, ll], q=q)
    return _Problem(model, cnt, lam, loss, q, teacher, top2, tied, coupling, fn)


def _pad(coupling, rows):
    k = coupling.k
    out = np.full((k, k) + rows.shape[1:], np.nan)
    out[coupling.kk, coupling.ll] = rows
    return out


# The group objective and its dense Hessian are shared with the saddle escape of the engine's
# students (theory.group_descent).
_objective = group_objective
_dense_hessians = dense_hessians
_dense_coupling = dense_coupling
_objective_hessian = dense_objective_hessian


# --------------------------------------------------------------------------------------------
# gradient flow from the teacher


@dataclass(frozen=True)
class FlowStudent:
    """The PLL student reached by gradient flow from the teacher (:func:`flow_student`).

    Attributes
    ----------
    prediction : GroupPrediction
        The reported student (one row, ``method='exact'``; ``second_order`` from
        :func:`theory.group_engine.newton_inertia`, ``(0, 0)`` = strict local minimum).
    flow_time : float
        Flow time ``lam t`` until the end point (summed over escapes).
    escapes : int
        Saddle points left along a negative-curvature direction before the reported point.
    outcomes : tuple of (train_acc, population_acc, objective)
        For every escaped saddle: the saddle, then the end points reached on its two sides.
    ambiguous : bool
        The two sides of an escaped saddle led to end points with different training or
        population accuracy: the flow's outcome is decided by an infinitesimal perturbation, not
        by the problem (e.g. mirror minima, Proposition 15.6).
    top2 : ndarray of int, shape (K, K, 2)
    """

    prediction: GroupPrediction
    flow_time: float
    escapes: int
    outcomes: tuple
    ambiguous: bool
    top2: np.ndarray = field(repr=False)


def _flow_to_rest(prob: _Problem, r0, tol, s_max):
    """Integrate ``dr/ds = -(r - f(L r))`` (``s = lam t``) from ``r0`` until ``F`` is tiny."""
    cp, loss = prob.coupling, prob.loss
    g, k = cp.n_groups, cp.k
    lg = _dense_coupling(cp)
    scale = max(float(np.abs(loss.force0()).max()), 1e-300)
    # Stop once the force balance holds to ~1e-9 of the problem's scale; Newton then polishes.
    stop = 1e-9 * scale

    def rhs(_s, y):
        r = y.reshape(g, k)
        return -(r - loss.force(cp.apply(r))).ravel()

    def jac(_s, y):
        r = y.reshape(g, k)
        hd = _dense_hessians(loss.hessian(cp.apply(r)))
        mat = np.einsum("gil,gh->gihl", hd, lg).reshape(g * k, g * k)
        mat[np.diag_indices_from(mat)] += 1.0
        return -mat

    def rest(_s, y):
        r = y.reshape(g, k)
        return float(np.abs(r - loss.force(cp.apply(r))).max()) - stop

    rest.terminal = True
    # rtol 1e-6: the trajectory only has to select the basin (the end point is certified by
    # Newton); on the quick figure grid 1e-8 gives the same students at 1.8x the cost.
    sol = solve_ivp(
        rhs,
        (0.0, s_max),
        np.ravel(r0),
        method="BDF",
        jac=jac,
        rtol=1e-6,
        atol=1e-12 * scale,
        events=rest,
    )
    if sol.status < 0:
        raise RuntimeError(f"gradient flow integration failed: {sol.message}")
    return sol.y[:, -1].reshape(g, k), float(sol.t[-1]), sol.status == 1


def _polish(prob: _Problem, r, tol):
    """Newton on ``F(z) = z - L f(z)`` from ``z = L r``: the stationary point next to the flow's
    end (root finding, so it converges to saddles as well as minima)."""
    cp, loss = prob.coupling, prob.loss
    z0 = cp.apply(r)
    res = newton_solve(cp, loss, z0, tol=tol, max_iter=50)
    if not res.converged:
        return z0, res
    return res.z, res


def _escape_direction(prob: _Problem, z):
    """Most negative curvature direction of the objective in ``r`` (None if none)."""
    hess = prob.loss.hessian(z)
    m = _objective_hessian(prob.coupling, hess)
    vals, vecs = np.linalg.eigh(m)
    # Eigenvalues below round-off of the matrix's size are not negative curvature.
    if vals[0] >= -1e-10 * max(1.0, float(np.abs(vals).max())):
        return None
    u = vecs[:, 0]
    u = u * np.sign(u[np.argmax(np.abs(u))])  # deterministic sign
    return u.reshape(prob.coupling.n_groups, prob.coupling.k)


def _step_off(prob: _Problem, r, u):
    """Smallest step ``r + eps u`` (``eps`` halved from ``1e-2 (1 + |r|)``) that lowers the
    objective: leaves the saddle without jumping over a basin."""
    f0 = _objective(prob.coupling, prob.loss, r)
    eps = 1e-2 * (1.0 + float(np.abs(r).max()))
    for _ in range(40):
        trial = r + eps * u
        if _objective(prob.coupling, prob.loss, trial) < f0:
            return trial
        eps *= 0.5
    return r + eps * u


def _accuracies(prob: _Problem, z):
    cp = prob.coupling
    dev = _pad(cp, softmax_deviation(z))
    pop = softmax_deviation(cp.population_logits(prob.loss.force(z)))
    return group_accuracies(dev, prob.counts)[0], population_accuracy(pop)[0]


def _run_flow(prob, r0, tol, s_max, max_escapes):
    """Flow + polish, escaping saddles on both sides; returns the end state and the outcomes."""
    cp = prob.coupling
    r, s_tot, _ = _flow_to_rest(prob, r0, tol, s_max)
    z, res = _polish(prob, r, tol)
    escapes, outcomes, ambiguous = 0, [], False
    while escapes < max_escapes and second_order(cp, prob.loss.hessian(z)) != (0, 0):
        u = _escape_direction(prob, z)
        if u is None:
            break
        r_here = prob.loss.force(z)  # at a stationary point r = f(z)
        outcomes.append((*_accuracies(prob, z), _objective(cp, prob.loss, r_here)))
        ends = []
        for sign in (1.0, -1.0):
            r1 = _step_off(prob, r_here, sign * u)
            r2, s2, _ = _flow_to_rest(prob, r1, tol, s_max)
            z2, res2 = _polish(prob, r2, tol)
            acc = _accuracies(prob, z2)
            f2 = _objective(cp, prob.loss, prob.loss.force(z2))
            ends.append((f2, z2, res2, s2, acc))
            outcomes.append((*acc, f2))
        ambiguous |= ends[0][4] != ends[1][4]
        # The lower end point; the + side if both are equal up to round-off (mirror images).
        f_plus, f_minus = ends[0][0], ends[1][0]
        pick = ends[1] if f_minus < f_plus - 1e-9 * max(1.0, abs(f_plus)) else ends[0]
        _, z, res, s2, _ = pick
        s_tot += s2
        escapes += 1
    return z, res, s_tot, escapes, outcomes, ambiguous


def flow_student(
    model: BlockModel,
    counts,
    lam,
    *,
    loss: str = "candidate",
    q: float = DEFAULT_Q,
    teacher=None,
    tol: float = GROUP_TOL,
    s_max: float = 1e7,
    max_escapes: int = 3,
) -> FlowStudent:
    r"""The PLL student reached by gradient flow of its training objective from the teacher.

    In the representer coordinates ``W = sum_g r_g (sum_{i in g} x_i)^T / (lam N)`` (group level,
    ``z = L r``) gradient flow ``dW/dt = -grad J(W)`` reads ``dr/dt = -lam (r - f(L r))`` (the
    gradient is ``sum_i (r_i - f_i) x_i^T / N``). Started from the teacher's ``r = T - p`` (its
    weights, as in the reference code), it is integrated in ``s = lam t`` with a stiff (BDF)
    integrator and the analytic Jacobian ``-(I + H L)`` until ``max|r - f(L r)|`` falls below
    ``1e-9`` of the force's scale; Newton on ``z = L f(z)`` then certifies the nearby stationary
    point (:func:`theory.group_engine.newton_solve`). If it is a saddle (``newton_inertia`` not
    ``(0, 0)``) -- which the flow reaches only from a start on its stable manifold, e.g. a start
    with the problem's symmetry -- the flow is restarted on both sides of it along the most
    negative curvature direction of the objective (a step that lowers the objective) and the
    lower end point is reported; ``outcomes`` lists all of them.

    Parameters
    ----------
    loss : {'ce', 'candidate', 'gce'}
    q : float
        GCE exponent in ``(0, 1]``.
    teacher : GroupSolution, optional
        The exact teacher (``predict_exact(...).teacher``) to share between students.
    tol : float
        Relative residual certified by the final Newton polish.
    s_max : float
        Largest flow time ``lam t`` per leg.
    max_escapes : int
        Saddles left before the point is reported as it is.

    Returns
    -------
    FlowStudent

    Raises
    ------
    ValueError
        Bad parameters, or more than :data:`FLOW_MAX_UNKNOWNS` unknowns ``G K`` (the integrator
        factorises a dense ``(G K)^2`` Jacobian).
    """
    s_max = check_positive(s_max, "s_max")
    max_escapes = check_int(max_escapes, "max_escapes", 0)
    cnt = check_counts(counts, model)
    n_unknowns = int(np.count_nonzero(cnt > 0)) * model.n_classes
    if n_unknowns > FLOW_MAX_UNKNOWNS:
        raise ValueError(
            f"flow_student needs G K <= {FLOW_MAX_UNKNOWNS} unknowns (a dense (G K)^2 Jacobian); "
            f"here G K = {n_unknowns}"
        )
    prob = _problem(model, cnt, lam, loss, q, teacher, tol)
    kk, ll = prob.rows
    r0 = (one_hot_deviations(model.n_classes) - prob.teacher.deviations)[kk, ll]
    with single_thread_blas():
        z, res, s_tot, escapes, outcomes, ambiguous = _run_flow(prob, r0, tol, s_max, max_escapes)
        second = None if prob.loss.convex else second_order(prob.coupling, prob.loss.hessian(z))
    cp = prob.coupling
    pop = softmax_deviation(cp.population_logits(prob.loss.force(z)))
    pred = assemble_prediction(
        model,
        cnt,
        prob.lam,
        _pad(cp, softmax_deviation(z))[None],
        pop[None],
        "exact",
        residuals=np.array([res.residual]),
        candidate_ties=prob.candidate_ties,
        converged=np.array([bool(res.converged and prob.teacher.converged)]),
        residual_targets=np.array([res.target]),
        loss=loss,
        second_order=second,
    )
    return FlowStudent(pred, s_tot, escapes, tuple(outcomes), ambiguous, prob.top2)


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
    prob = _problem(model, counts, lam, loss, q, teacher, tol)
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
        logits=_pad(cp, z),
        pi=_pad(cp, pi),
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
    prob = _problem(model, counts, lam, loss, q, teacher, tol)
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
