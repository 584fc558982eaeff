r"""The gradient-flow PLL student of the block model (``docs/theory.md`` Section 15).

Which stationary point a non-convex student (``candidate``, ``gce``) reaches is decided by the
start and the optimiser. :func:`flow_student` follows the **gradient flow of the training
objective from the teacher** (the small-step limit of the reference code's gradient descent from
the teacher's weights) to its end, leaves saddle points along both signs of the most negative
curvature direction and reports every outcome. :class:`StudentProblem` (:func:`student_problem`)
holds one student's teacher, candidates, group coupling and loss; :mod:`theory.pll_conditions`
shares it.

All functions are deterministic (no random numbers) and cost independent of ``n``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import LSODA, solve_ivp

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
)
from theory.losses import make_loss, softmax_deviation
from theory.names import DEFAULT_Q
from theory.pll import check_pll_loss, group_top2, two_hot_deviations
from theory.validation import check_int, check_positive

__all__ = [
    "FLOW_ATOL",
    "FLOW_INTEGRATORS",
    "FLOW_MAX_UNKNOWNS",
    "FLOW_REST",
    "FLOW_RTOL",
    "REFERENCE_ATOL",
    "FlowStudent",
    "StudentProblem",
    "flow_student",
    "pad_groups",
    "student_problem",
]

#: Largest number of unknowns ``G K`` (non-empty groups times classes) of :func:`flow_student`:
#: the stiff integrator factorises the dense ``(G K) x (G K)`` Jacobian (72 MB at 3000).
FLOW_MAX_UNKNOWNS = 3000


# --------------------------------------------------------------------------------------------
# the student's group problem


@dataclass
class StudentProblem:
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


def student_problem(model, counts, lam, loss, q, teacher, tol) -> StudentProblem:
    """Validate the inputs and build one PLL student's problem (the exact teacher if none)."""
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
    return StudentProblem(model, cnt, lam, loss, q, teacher, top2, tied, coupling, fn)


def pad_groups(coupling, rows):
    """Scatter group rows (G, ...) into a NaN-padded (K, K, ...) array (NaN on empty groups)."""
    k = coupling.k
    out = np.full((k, k) + rows.shape[1:], np.nan)
    out[coupling.kk, coupling.ll] = rows
    return out


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


#: Relative tolerance of the flow's integrator: the trajectory only has to select the basin (the
#: end point is certified by Newton); on the quick figure grid 1e-8 gives the same students at
#: 1.8x the cost.
FLOW_RTOL = 1e-6
#: Absolute tolerance of the flow's integrator, relative to the force's scale ``max |f(0)|``:
#: errors below 1e-6 of that scale are ignored in every component, as FLOW_RTOL ignores them in the
#: large ones (with 1e-12 every tiny component was followed to 1e-6 of itself: ~45% more steps,
#: and on the quick and paper grids of ``figures/pll_conditions`` the same students).
FLOW_ATOL = 1e-6
#: The absolute tolerance (relative to the force's scale) of the ``'bdf'`` reference.
REFERENCE_ATOL = 1e-12
#: The flow stops once the force balance ``max |r - f(L r)|`` holds to this fraction of the force's
#: scale; Newton then polishes the point.
FLOW_REST = 1e-9
#: Integrators of :func:`flow_student`: ``'lsoda'`` (the default: ODEPACK's LSODA, stiff BDF
#: steps with the analytic Jacobian, stepping in compiled code) and ``'bdf'`` (SciPy's BDF
#: through ``solve_ivp`` with a terminal event, the slower reference it was checked against).
FLOW_INTEGRATORS = ("lsoda", "bdf")


def _flow_to_rest(prob: StudentProblem, r0, s_max, integrator="lsoda"):
    """Integrate ``dr/ds = -(r - f(L r))`` (``s = lam t``) from ``r0`` until ``F`` is tiny.

    Returns the end point ``r`` (G, K), the flow time ``s`` and whether the force balance was
    reached (else ``s = s_max``).
    """
    cp, loss = prob.coupling, prob.loss
    g, k = cp.n_groups, cp.k
    lg = dense_coupling(cp)
    scale = max(float(np.abs(loss.force0()).max()), 1e-300)
    stop = FLOW_REST * scale

    def rhs(_s, y):
        r = y.reshape(g, k)
        return -(r - loss.force(cp.apply(r))).ravel()

    def jac(_s, y):
        r = y.reshape(g, k)
        hd = dense_hessians(loss.hessian(cp.apply(r)))
        mat = np.einsum("gil,gh->gihl", hd, lg).reshape(g * k, g * k)
        mat[np.diag_indices_from(mat)] += 1.0
        return -mat

    y0 = np.ravel(r0).astype(float)
    if integrator == "bdf":  # the reference: the integrator and tolerances used before LSODA

        def rest(_s, y):
            return float(np.abs(rhs(_s, y)).max()) - stop

        rest.terminal = True
        sol = solve_ivp(
            rhs,
            (0.0, s_max),
            y0,
            method="BDF",
            jac=jac,
            rtol=FLOW_RTOL,
            atol=REFERENCE_ATOL * scale,
            events=rest,
        )
        if sol.status < 0:
            raise RuntimeError(f"gradient flow integration failed: {sol.message}")
        return sol.y[:, -1].reshape(g, k), float(sol.t[-1]), sol.status == 1
    # LSODA one step at a time (about half the cost of solve_ivp's BDF for the same tolerances:
    # its steps run in compiled code, and no event function costs an extra force evaluation per
    # step). The force balance is evaluated only when the step's mean speed |dy| / ds is below the
    # threshold (near rest the flow decays monotonically, so the speed at the end of a step is at
    # most its mean): the flow stops at the first step end with max |F| <= stop, or one step later.
    solver = LSODA(rhs, 0.0, y0, s_max, rtol=FLOW_RTOL, atol=FLOW_ATOL * scale, jac=jac)
    y_prev = y0
    while solver.status == "running":
        message = solver.step()
        if solver.status == "failed":
            raise RuntimeError(f"gradient flow integration failed: {message}")
        ds = solver.t - solver.t_old
        if np.abs(solver.y - y_prev).max() <= stop * ds and np.abs(rhs(0, solver.y)).max() <= stop:
            return solver.y.reshape(g, k), float(solver.t), True
        y_prev = solver.y.copy()  # (older SciPy's LSODA reuses its state array)
    return solver.y.reshape(g, k), float(solver.t), False


def _polish(prob: StudentProblem, r, tol):
    """Newton on ``F(z) = z - L f(z)`` from ``z = L r``: the stationary point next to the flow's
    end (root finding, so it converges to saddles as well as minima)."""
    cp, loss = prob.coupling, prob.loss
    z0 = cp.apply(r)
    res = newton_solve(cp, loss, z0, tol=tol, max_iter=50)
    if not res.converged:
        return z0, res
    return res.z, res


def _escape_direction(prob: StudentProblem, z):
    """Most negative curvature direction of the objective in ``r`` (None if none)."""
    hess = prob.loss.hessian(z)
    m = dense_objective_hessian(prob.coupling, hess)
    vals, vecs = np.linalg.eigh(m)
    # Eigenvalues below round-off of the matrix's size are not negative curvature.
    if vals[0] >= -1e-10 * max(1.0, float(np.abs(vals).max())):
        return None
    u = vecs[:, 0]
    u = u * np.sign(u[np.argmax(np.abs(u))])  # deterministic sign
    return u.reshape(prob.coupling.n_groups, prob.coupling.k)


def _step_off(prob: StudentProblem, r, u):
    """Smallest step ``r + eps u`` (``eps`` halved from ``1e-2 (1 + |r|)``) that lowers the
    objective: leaves the saddle without jumping over a basin."""
    f0 = group_objective(prob.coupling, prob.loss, r)
    eps = 1e-2 * (1.0 + float(np.abs(r).max()))
    for _ in range(40):
        trial = r + eps * u
        if group_objective(prob.coupling, prob.loss, trial) < f0:
            return trial
        eps *= 0.5
    return r + eps * u


def _accuracies(prob: StudentProblem, z):
    cp = prob.coupling
    dev = pad_groups(cp, softmax_deviation(z))
    pop = softmax_deviation(cp.population_logits(prob.loss.force(z)))
    return group_accuracies(dev, prob.counts)[0], population_accuracy(pop)[0]


def _run_flow(prob, r0, tol, s_max, max_escapes, integrator):
    """Flow + polish, escaping saddles on both sides; returns the end state and the outcomes."""
    cp = prob.coupling
    r, s_tot, _ = _flow_to_rest(prob, r0, s_max, integrator)
    z, res = _polish(prob, r, tol)
    escapes, outcomes, ambiguous = 0, [], False
    while escapes < max_escapes and second_order(cp, prob.loss.hessian(z)) != (0, 0):
        u = _escape_direction(prob, z)
        if u is None:
            break
        r_here = prob.loss.force(z)  # at a stationary point r = f(z)
        outcomes.append((*_accuracies(prob, z), group_objective(cp, prob.loss, r_here)))
        ends = []
        for sign in (1.0, -1.0):
            r1 = _step_off(prob, r_here, sign * u)
            r2, s2, _ = _flow_to_rest(prob, r1, s_max, integrator)
            z2, res2 = _polish(prob, r2, tol)
            acc = _accuracies(prob, z2)
            f2 = group_objective(cp, prob.loss, prob.loss.force(z2))
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
    integrator: str = "lsoda",
) -> FlowStudent:
    r"""The PLL student reached by gradient flow of its training objective from the teacher.

    In the representer coordinates ``W = sum_g r_g (sum_{i in g} x_i)^T / (lam N)`` (group level,
    ``z = L r``) gradient flow ``dW/dt = -grad J(W)`` reads ``dr/dt = -lam (r - f(L r))`` (the
    gradient is ``sum_i (r_i - f_i) x_i^T / N``). Started from the teacher's ``r = T - p`` (its
    weights, as in the reference code), it is integrated in ``s = lam t`` with a stiff integrator
    (LSODA, or SciPy's BDF) and the analytic Jacobian ``-(I + H L)`` to relative accuracy
    :data:`FLOW_RTOL` until ``max|r - f(L r)|`` falls below :data:`FLOW_REST` (``1e-9``) of the
    force's scale; Newton on ``z = L f(z)`` then certifies the nearby stationary
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
    integrator : {'lsoda', 'bdf'}
        ``'lsoda'`` (default) or ``'bdf'``, the reference it replaced: SciPy's
        ``solve_ivp(method='BDF')`` with a terminal event and :data:`REFERENCE_ATOL`, at ~3x the
        cost (``test_flow_student_lsoda_vs_bdf``). On every cell of the quick and paper grids of
        ``figures/pll_conditions`` (228 and 2483 cells) the two give the same accuracies, ties and
        markers, and the same end point up to a mirror image: a start on a saddle's stable
        manifold (symmetric problems) is left on either side by round-off, to mirror minima.
        Where the mirror minima differ in accuracy the flow's answer is round-off's (K = 5, pair
        noise ``eta = 0.3``, ``lam = 1e-2``: 60% or 40% by the order of a sum in ``L r``; it passes
        next to the saddle without stopping there, so it is not marked ``ambiguous``).

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
    if integrator not in FLOW_INTEGRATORS:
        raise ValueError(f"integrator must be one of {FLOW_INTEGRATORS}, got {integrator!r}")
    max_escapes = check_int(max_escapes, "max_escapes", 0)
    cnt = check_counts(counts, model)
    n_unknowns = int(np.count_nonzero(cnt > 0)) * model.n_classes
    if n_unknowns > FLOW_MAX_UNKNOWNS:
        raise ValueError(
            f"flow_student needs G K <= {FLOW_MAX_UNKNOWNS} unknowns (a dense (G K)^2 Jacobian); "
            f"here G K = {n_unknowns}"
        )
    prob = student_problem(model, cnt, lam, loss, q, teacher, tol)
    kk, ll = prob.rows
    r0 = (one_hot_deviations(model.n_classes) - prob.teacher.deviations)[kk, ll]
    with single_thread_blas():
        z, res, s_tot, escapes, outcomes, ambiguous = _run_flow(
            prob, r0, tol, s_max, max_escapes, integrator
        )
        second = None if prob.loss.convex else second_order(prob.coupling, prob.loss.hessian(z))
    cp = prob.coupling
    pop = softmax_deviation(cp.population_logits(prob.loss.force(z)))
    pred = assemble_prediction(
        model,
        cnt,
        prob.lam,
        pad_groups(cp, softmax_deviation(z))[None],
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
