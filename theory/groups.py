r"""Group-level predictions for the block feature model: linearised and exact, round by round.

Model (``docs/theory.md``, Sections 3-4): ``K`` classes of ``n`` points, ``N = K n``, Gram matrix
``G = (1-c) I + (c-d) B + d 11^T``. Label noise is a count matrix ``C`` (K, K): ``C[k, l]``
points of true class ``k`` carry the given label ``l`` (rows sum to ``n``). The probe objective is
invariant under permutations of the points of one *group* ``(k, l)`` and the optimum is unique, so
every point of a group has the same output; all predictions reduce to ``K^2`` groups, at a cost
independent of ``n``.

Array conventions
-----------------
* Group arrays have shape (K, K, K) indexed ``[true class k, given label l, output class]``.
  Groups with ``C[k, l] = 0`` contain no point; their entries are ``NaN`` (there is no output to
  report, and inventing one would change the training set).
* Round ``t = 0`` is the teacher trained on the one-hot given labels; round ``t >= 1`` is trained on
  the round ``t-1`` outputs (group level).
* Population point of class ``k``: a fresh point whose kernel row is ``c`` on class-``k`` training
  points and ``d`` on all others (the infinite-dimensional limit of a Gaussian mixture). Population
  accuracy is the fraction of classes whose population point is classified correctly.
* Outputs are stored as deviations ``P - 1/K`` computed without cancellation (from the logits via
  ``expm1``, :func:`theory.losses.softmax_deviation`; the linearised forms are deviations by
  construction), and targets are carried between rounds as deviations. A prediction whose outputs
  are all within 1e-20 of ``1/K`` keeps its gaps (``docs/theory.md``, Section 13).
* Accuracies use :func:`theory.metrics.correct_and_tied` on the deviations: the true class must
  win by more than ``TIE_RTOL`` times the spread of the round's scores; ties count as errors and
  are counted in ``ties`` (training points) and ``population_ties`` (classes).

Layout (issue 23): the types -- :class:`BlockModel`, :func:`check_counts`,
:class:`GroupPrediction`, :class:`GroupSolution`, the accuracies -- live in
:mod:`theory.group_model`, the linearised predictions (:func:`predict_linear`,
:func:`linear_accuracy_grid`, ...) in :mod:`theory.group_linear`, and the exact group fixed point
(:func:`solve_groups`, :func:`predict_exact`) here. Every public name of the three is importable
from :mod:`theory.groups`.
"""

from __future__ import annotations

import numpy as np

from theory.blas import single_thread_blas
from theory.group_engine import (
    GroupCoupling,
    force_to_logits_inverse,
    minimise_objective,
    newton_solve,
)
from theory.group_linear import (
    linear_accuracy_grid,
    linear_group_outputs,
    linear_population_outputs,
    one_hot_deviations,
    one_hot_group_targets,
    predict_linear,
)

# Re-exported (not in __all__) for the modules that import them from here (theory.pll).
from theory.group_linear import linear_group_deviations as linear_group_deviations
from theory.group_linear import linear_population_deviations as linear_population_deviations
from theory.group_model import (
    GROUP_TOL,
    BlockModel,
    GroupConvergenceError,
    GroupPrediction,
    GroupSolution,
    assemble_prediction,
    check_counts,
    group_accuracies,
    newton_build_flops,
    population_accuracy,
    prediction_memory_bytes,
)
from theory.losses import CrossEntropy, softmax, softmax_deviation
from theory.validation import check_int, check_positive

__all__ = [
    "BlockModel",
    "GroupConvergenceError",
    "GroupPrediction",
    "GroupSolution",
    "check_counts",
    "group_accuracies",
    "linear_accuracy_grid",
    "linear_group_outputs",
    "linear_population_outputs",
    "one_hot_group_targets",
    "population_accuracy",
    "newton_build_flops",
    "prediction_memory_bytes",
    "predict_exact",
    "predict_linear",
    "solve_groups",
]


# --------------------------------------------------------------------------------------------
# exact group-level fixed point


def _softmax(z):
    return softmax(z)


def pad_groups(coupling, rows):
    """Per-group rows (G, K) of the non-empty groups as a (K, K, K) array, NaN on empty groups.

    ``coupling`` (:class:`theory.group_engine.GroupCoupling`) lists the non-empty groups
    ``(kk, ll)`` in the order of ``rows``.
    """
    k = coupling.k
    out = np.full((k, k, k), np.nan)
    out[coupling.kk, coupling.ll] = rows
    return out


def solve_loss_groups(
    model: BlockModel,
    counts,
    loss,
    lam,
    *,
    init_logits=None,
    init_force=None,
    tol=GROUP_TOL,
    max_iter=100,
    system=None,
) -> GroupSolution:
    r"""Exact group fixed point ``z = L f(z)`` of any per-sample loss (:mod:`theory.losses`).

    ``loss`` acts on the rows of the non-empty groups in ``np.nonzero(counts > 0)`` order.
    Convex losses (cross-entropy): damped Newton on ``F(z) = z - L f(z)`` from ``init_logits``
    (:func:`theory.group_engine.newton_solve`). Non-convex losses: descent on the training
    objective in the representer coefficients ``r`` (``z = L r``) from ``init_force`` (or the ``r``
    reproducing ``init_logits``), Newton steps where they descend
    (:func:`theory.group_engine.minimise_objective`): the result is a stationary point reached
    from that start -- for the PLL students the teacher, as in the reference code.

    Returns the best iterate with its certificate; never raises on non-convergence (see
    ``converged``). ``system`` (a :class:`theory.group_engine.NewtonSystem` for the same model,
    counts and ``lam``) lets consecutive solves share a preconditioner.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    coupling = system.coupling if system is not None else GroupCoupling(model, cnt, lam)
    k = model.n_classes
    z0 = np.zeros((coupling.n_groups, k))
    if init_logits is not None:
        init = np.asarray(init_logits, dtype=float)[coupling.kk, coupling.ll]
        if np.all(np.isfinite(init)):
            z0 = init.copy()
    with single_thread_blas():  # see theory.blas: small batched solves
        res = None
        if loss.convex:
            res = newton_solve(coupling, loss, z0, tol=tol, max_iter=max_iter, system=system)
        if res is None or not res.converged:
            # Non-convex losses, and the rare convex solve whose max|F| backtracking crawls
            # (far start at tiny lam): descent on the objective itself, globally convergent for
            # convex losses.
            if init_force is not None:
                r0 = np.asarray(init_force, dtype=float)[coupling.kk, coupling.ll]
            elif coupling.a > 0:
                r0 = force_to_logits_inverse(coupling, z0)
            else:
                r0 = np.zeros_like(z0)
            alt = minimise_objective(
                coupling, loss, r0, tol=tol, max_iter=2 * max_iter, system=system
            )
            if res is None or alt.converged or alt.residual < res.residual:
                res = alt
        if loss.convex and not res.converged and np.any(z0 != 0):
            # A convex loss has one minimiser whatever the start: from a saturated start (e.g. the
            # teacher's logits at lam <= 1e-8, where damped Newton moves the saturated logits by
            # O(1) per step) restart from zero logits, the start of every teacher solve.
            alt = newton_solve(coupling, loss, np.zeros_like(z0), tol=tol, max_iter=max_iter)
            if alt.converged or alt.residual < res.residual:
                res = alt
    force = loss.force(res.z)
    pop_logits = coupling.population_logits(force)
    return GroupSolution(
        logits=pad_groups(coupling, res.z),
        residual=res.residual,
        iterations=res.iterations,
        population_logits=pop_logits,
        deviations=pad_groups(coupling, softmax_deviation(res.z)),
        population_deviations=softmax_deviation(pop_logits),
        converged=res.converged,
        target=res.target,
        fallback_steps=res.fallback_steps,
        system=res.system,
        population_floor=coupling.population_logit_error(force),
    )


def convergence_error(sol, model, lam, what="group-level Newton"):
    """The :class:`GroupConvergenceError` for an unconverged group-level solve ``sol``.

    Shared by the group solvers here and in :mod:`theory.pll`, so that every such error names
    the iterations, the residual against its target and the model the same way.
    """
    return GroupConvergenceError(
        f"{what} did not converge in {sol.iterations} iterations: residual {sol.residual:.3g} > "
        f"target {sol.target:.3g} (K={model.n_classes}, n={model.per_class}, c={model.c}, "
        f"d={model.d}, lam={lam})"
    )


def solve_groups(
    model: BlockModel,
    counts,
    targets,
    lam,
    *,
    target_deviations=None,
    init_logits=None,
    init_force=None,
    tol=GROUP_TOL,
    max_iter=100,
    raise_on_failure: bool = True,
    system=None,
) -> GroupSolution:
    r"""Exact group fixed point ``p = softmax(z)`` of cross-entropy on soft targets.

    ``z_(k,l) = [(1-c) r_(k,l) + c S_k + d (S - S_k)] / (lam N)`` with ``r = T - p``,
    ``S_k = sum_l C[k,l] r_(k,l)``, ``S = sum_k S_k``.

    Damped Newton on ``F(z) = z - L(T - softmax(z))`` (unknowns: K logits per non-empty group),
    each step solved exactly by the structured elimination of :mod:`theory.group_engine`
    (``O(K^4)`` time, ``O(K^3)`` memory). ``r = (T - 1/K) - (p - 1/K)`` is formed from deviations,
    so targets within 1e-20 of uniform lose nothing.

    Parameters
    ----------
    targets : array_like, shape (K, K, K) or None
        Group targets on the simplex (entries of empty groups are ignored).
    target_deviations : array_like, shape (K, K, K), optional
        ``targets - 1/K`` instead of ``targets`` (exactly one of the two); carries the targets
        of later rounds without cancellation.
    tol : float
        Required residual relative to the targets' size: the certificate is
        ``max|p - softmax(z(T - p))| <= max(tol * max|T - 1/K|, floor)``, with the round-off floor
        ``64 eps (max|p - 1/K| + max|z| + max(|L| |T - p|))`` below which the residual is not
        computable in float64 (``docs/theory.md``, Section 13).
    raise_on_failure : bool
        Raise :class:`GroupConvergenceError` if the certificate is not reached (default);
        otherwise return the best iterate with ``converged=False``.
    """
    cnt = check_counts(counts, model)
    k = model.n_classes
    if (targets is None) == (target_deviations is None):
        raise ValueError("pass exactly one of targets or target_deviations")
    if target_deviations is None:
        target_deviations = np.asarray(targets, dtype=float) - 1.0 / k
    kk, ll = np.nonzero(cnt > 0)
    loss = CrossEntropy(np.asarray(target_deviations, dtype=float)[kk, ll])
    sol = solve_loss_groups(
        model,
        cnt,
        loss,
        lam,
        init_logits=init_logits,
        init_force=init_force,
        tol=tol,
        max_iter=max_iter,
        system=system,
    )
    if raise_on_failure and not sol.converged:
        raise convergence_error(sol, model, lam)
    return sol


def predict_exact(
    model: BlockModel,
    counts,
    lam,
    rounds,
    tol=GROUP_TOL,
    *,
    allow_unconverged: bool = False,
    progress=None,
) -> GroupPrediction:
    """Exact (non-linearised) group-level predictions for rounds ``0..R``.

    Round ``t`` solves :func:`solve_groups` with the round ``t-1`` output deviations as targets
    (one-hot labels for ``t = 0``), warm-started from its logits; population outputs are
    ``softmax(z)`` with the exact population logits ``z = (T - P) k(x) / (lam N)``.

    Parameters
    ----------
    allow_unconverged : bool
        ``False`` (default): raise :class:`GroupConvergenceError` at the first uncertified round.
        ``True``: report every round; ``converged``, ``residuals`` and ``residual_targets`` say
        which rounds are certified (a partial result, e.g. at ``lam <= 1e-7``).
    progress : callable, optional
        Called as ``progress(t, solution)`` after every round (for long runs; no I/O here).
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    k = model.n_classes
    target_dev = one_hot_deviations(k)
    dev = np.empty((r + 1, k, k, k))
    pop = np.empty((r + 1, k, k))
    residuals = np.empty(r + 1)
    targets_ = np.empty(r + 1)
    converged = np.zeros(r + 1, dtype=bool)
    pops = []
    init = init_force = system = None
    ok = True
    for t in range(r + 1):
        sol = solve_groups(
            model,
            cnt,
            None,
            lam,
            target_deviations=target_dev,
            init_logits=init,
            init_force=init_force,
            tol=tol,
            raise_on_failure=not allow_unconverged,
            system=system,  # consecutive rounds share the Newton preconditioner
        )
        system = sol.system
        dev[t], pop[t] = sol.deviations, sol.population_deviations
        # Decided from the logits, with their round-off bound: exact ties (equal label
        # histograms, c = d) are all round-off, which the relative rule alone cannot see.
        pops.append(population_accuracy(sol.population_logits, sol.population_floor))
        residuals[t], targets_[t] = sol.residual, sol.target
        ok = ok and sol.converged
        converged[t] = ok
        # The next round starts from this round's solution: logits z and force T - p (L f = z).
        init_force = target_dev - sol.deviations
        target_dev, init = sol.deviations, sol.logits
        if t == 0:
            teacher = sol  # keeps its Newton system: the PLL students reuse its preconditioner
        if progress is not None:
            progress(t, sol)
    return assemble_prediction(
        model,
        cnt,
        lam,
        dev,
        pop,
        "exact",
        pops=pops,
        residuals=residuals,
        converged=converged,
        residual_targets=targets_,
        teacher=teacher,
    )
