"""The Newton loop of the probe solver: :func:`solve_probe` (package docstring,
:mod:`simulations.solver`)."""

from __future__ import annotations

import math

import numpy as np

from simulations.solver.certify import certify
from simulations.solver.factorisation import ProbeFactor, check_memory, factorize
from simulations.solver.kernels import (
    LineObjective,
    LineObjective32,
    basis_t_times,
    basis_times,
    max_abs,
    row_blocks,
)
from simulations.solver.ncg import float32_ncg
from simulations.solver.pcg import KronPreconditioner, pcg
from simulations.solver.state import Gradient, Iterate, SolveSetup, outputs_and_gradient
from simulations.solver.types import (
    Certificate,
    ConvergenceError,
    ProbeSolution,
    SoftTargets,
    as_soft_targets,
)
from theory.validation import CERTIFICATE_RTOL_CAP, check_int, check_positive, check_solver_lam

__all__ = ["solve_probe"]


_EPS = np.finfo(float).eps
_EPS32 = float(np.finfo(np.float32).eps)


#: Smallest CG forcing term: single-precision Hessian products carry relative errors ~1e-7 to
#: 1e-6 (sums over N terms), so asking CG for more than ~1e-6 is asking for round-off.
_CG_RTOL_MIN = 1e-6


#: Work ``N r K`` above which the Hessian products run in float32 by default.
_SINGLE_MIN_WORK = 1e7


#: Leave the float32 phase once the gradient norm is below this fraction of the norm of its
#: terms. Float32 products err by ~1e-7 to 1e-6 of them; on the benchmark problems the float32
#: Newton steps still converge quadratically down to ~1e-7, and from below ~1e-5 one float64
#: step (with CG forced to finish, see the forcing in :func:`solve_probe`) reaches the
#: certificate. A float64 Newton step costs ~3 float32 ones (two float64 passes over the data).
#: Measured at K = 100 (N = 10k and 50k, both workloads): 1e-5 against 1e-4 (two float64 steps)
#: saved 1-14% in 7 of 8 cells and cost 11% in one; 1e-6 cost 18% there.
_SWITCH_RTOL = 1e-5


#: ... or once float32 steps stop converging quadratically: below this gradient ratio a float32
#: Newton step that does not reduce the gradient 10-fold is limited by float32 round-off.
_STAGNATION_RTOL = 1e-4


#: Take the first float64 Newton step after a float32 phase that reached ``_SWITCH_RTOL`` whole,
#: without its line search (:func:`_newton_step`).
_TRUST_FIRST_FLOAT64_STEP = True


#: Try the certificate once the rigorous residual bound is within this factor of the target.
_SPECULATE = 100.0


def _memory_estimate(n, q, k, single) -> float:
    """Bytes the solve allocates beyond its inputs: ~14 (N, K) float64 arrays, a few (q, K) ones
    and, with single-precision Hessian products, the float32 basis (4 N q bytes, cached)."""
    return 8.0 * 14 * n * k + 8.0 * 10 * q * k + (4.0 * n * q if single else 0.0)


def _check_inputs(targets, lam, features, gram, factor):
    lam = check_solver_lam(lam)
    given = sum(v is not None for v in (features, gram, factor))
    if given != 1:
        raise ValueError("pass exactly one of features (N, p), gram (N, N) or factor")
    if factor is None:
        k = targets.n_classes if isinstance(targets, SoftTargets) else np.shape(targets)[0]
        factor = factorize(features=features, gram=gram, method="auto", n_classes=k)
    elif not isinstance(factor, ProbeFactor):
        raise ValueError("factor must be a ProbeFactor from simulations.solver.factorize")
    t = as_soft_targets(targets, factor.n_samples)
    return t, lam, factor


def solve_probe(
    targets,
    lam,
    *,
    features=None,
    gram=None,
    factor: ProbeFactor | None = None,
    init: ProbeSolution | None = None,
    tol: float = 1e-9,
    max_iter: int = 200,
    single_precision: bool | None = None,
) -> ProbeSolution:
    r"""Train the L2-regularised softmax probe exactly and certify the KKT fixed point.

    Parameters
    ----------
    targets : array_like, shape (K, N), or SoftTargets
        Soft targets, columns on the simplex; pass :class:`SoftTargets` (e.g.
        ``solution.soft_targets()``) to keep near-uniform targets exact.
    lam : float
        ``>= LAM_MIN = 1e-12`` (:func:`theory.validation.check_solver_lam`: below it
        ``mu_j / (mu_j + K lam N)`` rounds to 1); no upper end (the certificate is relative).
    features : array_like, shape (N, p), optional
    gram : array_like, shape (N, N), optional
    factor : ProbeFactor, optional
        Precomputed :func:`factorize` output (reuse across rounds). Exactly one of the three;
        features alone are prepared with ``factorize(method='auto')``.
    init : ProbeSolution, optional
        Warm start from a solution computed with the same ``factor``.
    tol : float
        Required fixed-point residual relative to ``max|P - 1/K|`` (raised to the round-off floor
        where that is larger).
    max_iter : int
        Newton iterations before :class:`ConvergenceError`.
    single_precision : bool or None
        Use float32 for the Hessian products inside CG, and for gradients and logit updates
        until the gradient is within ``_SWITCH_RTOL`` of its own round-off scale; then the
        logits are recomputed and the last Newton steps run in float64. The certificate is
        always float64, so the certified accuracy is the same. Default: when ``N q K >= 1e7``
        (smaller products are not BLAS-bound).

    Returns
    -------
    ProbeSolution
        Outputs ``P`` (K, N) with ``max|P - softmax((T - P) G / (lam N))| <= certificate.target``.

    Raises
    ------
    ConvergenceError
        If the fixed point cannot be certified within ``max_iter`` Newton steps.
    ValueError
        For bad input or a problem that would not fit in memory.
    """
    setup, init = _prepare(
        targets, lam, features, gram, factor, init, tol, max_iter, single_precision
    )
    state = _start(setup, init)
    if setup.single:
        _float32_phase(setup, state)
    grad, scale, verdict = _float64_phase(setup, state)
    return _assemble(setup, state, grad, scale, verdict)


# --------------------------------------------------------------------------------------------
# The steps of solve_probe
# --------------------------------------------------------------------------------------------


def _prepare(targets, lam, features, gram, factor, init, tol, max_iter, single_precision):
    """Check and normalise the arguments of :func:`solve_probe`.

    Returns
    -------
    setup : SolveSetup
    init : ProbeSolution or None
        The warm start, dropped for uniform targets.

    Raises
    ------
    ValueError
        Bad arguments, or a solve that would not fit in memory.
    """
    t, lam, factor = _check_inputs(targets, lam, features, gram, factor)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    n, q = factor.n_samples, factor.rank
    k = t.n_classes
    single = n * q * k >= _SINGLE_MIN_WORK if single_precision is None else bool(single_precision)
    check_memory(
        _memory_estimate(n, q, k, single and not factor.is_cached("basis32")),
        f"probe solve (N={n}, q={q}, K={k})",
    )
    dev_t = np.ascontiguousarray(t.deviations.T)  # (N, K)
    if init is not None and not np.any(dev_t):
        # Uniform targets: the optimum is W = 0 exactly (the gradient X^T (1/K - T)/N vanishes).
        # Start there: a warm start would leave its logits' round-off (~eps * earlier logits),
        # which a certificate relative to the solution's own (zero) scale can never accept.
        init = None
    setup = SolveSetup(
        factor=factor,
        lam=lam,
        tol=tol,
        max_iter=max_iter,
        single=single,
        n=n,
        q=q,
        k=k,
        dev_t=dev_t,
        # In the float32 phase the logits, outputs and every (N, K) array are float32 (half the
        # memory traffic; that phase needs a few digits relative to the outputs' spread).
        dev_t_low=dev_t.astype(np.float32) if single else None,
        b32=factor.basis32() if single else None,
        rowmax=float(np.max(factor.sample_norms)),
        features_route=factor.route in ("spectral", "direct"),  # B = X: Z' from the gradient
    )
    return setup, init


def _start(setup: SolveSetup, init) -> Iterate:
    """The start point: ``C = 0``, or the warm start ``init`` with its logits recomputed.

    Raises
    ------
    ValueError
        If ``init`` was computed with another factor.
    """
    q, k = setup.q, setup.k
    b_hvp = setup.b32 if setup.single else setup.basis
    dtype = np.float32 if setup.single else np.float64
    if init is None:
        return Iterate(np.zeros((q, k)), np.zeros((setup.n, k), dtype), 0, 0, b_hvp)
    if not isinstance(init, ProbeSolution):
        raise ValueError(f"init must be a ProbeSolution or None, got {type(init).__name__}")
    if init.factor is not setup.factor or init.coef.shape != (q, k):
        raise ValueError("init must be a ProbeSolution computed with the same factor")
    coef = init.coef - init.coef.mean(axis=1, keepdims=True)
    # The logits are recomputed, not taken from init: updates that shrink them (rounds at
    # large lam) leave an absolute error ~eps * (earlier logits), which would otherwise
    # persist and bound the relative accuracy. In the float32 phase this happens at the switch.
    logits = basis_times(b_hvp, coef.astype(dtype))
    return Iterate(coef, logits, 1, int(setup.single), b_hvp)


def _residual_bound(setup: SolveSetup, g: Gradient) -> float:
    """Rigorous bound ``est`` on the basis-form residual.

    ``|B g / lam|_ik <= |b_i| |g_:k|`` and softmax is 1/2-Lipschitz. It overestimates the
    residual by ~5-100x on the benchmark problems, so the certificate (one pass) is tried from
    ``est <= _SPECULATE * goal``: when it passes, a Newton step (~4-10 passes) is saved.
    """
    return 0.5 * setup.rowmax * float(np.max(np.linalg.norm(g.grad, axis=0))) / setup.lam


def _float32_phase(setup: SolveSetup, state: Iterate) -> None:
    """Float32 steps until float32 round-off, then the logits recomputed in float64.

    Nonlinear CG steps first (:func:`simulations.solver.ncg.float32_ncg`: two passes per step);
    Newton steps continue where those converge slowly. The Newton steps leave the float32 phase
    at float32 round-off (``_SWITCH_RTOL``), when they stop converging quadratically there
    (``_STAGNATION_RTOL``), when the line search stalls or at ``max_iter``. (Predicting the
    switch point from the quadratic model, even with a sharper one-pass residual estimate, cost
    more passes than it saved on the benchmarks.)
    """
    g = outputs_and_gradient(setup, state, low=True)
    g, degraded = float32_ncg(setup, state, g)
    prev_ratio = math.inf  # gradient ratio ||g|| / terms at the previous float32 step
    while degraded:  # Newton steps continue unless the ratio is at their switch point
        stagnant = prev_ratio <= _STAGNATION_RTOL and g.ratio > 0.1 * prev_ratio
        prev_ratio = g.ratio
        if g.ratio <= _SWITCH_RTOL or stagnant or state.stalls or state.it >= setup.max_iter:
            break
        est = _residual_bound(setup, g)
        state.it += 1
        _newton_step(setup, state, g, low=True, est=est, goal=0.0)  # no target in float32
        g = outputs_and_gradient(setup, state, low=True)
    state.stalls = 0
    # Drop the float32 drift of the accumulated updates.
    state.logits = basis_times(setup.basis, state.coef)
    state.passes += 1
    state.trust_next = g.ratio <= _SWITCH_RTOL
    state.logit_error = _product_error(setup, setup.q, _EPS, state.coef)


def _float64_phase(setup: SolveSetup, state: Iterate):
    """Float64 Newton steps until the certificate passes.

    Returns
    -------
    g : Gradient
        At the certified iterate.
    scale : float
        ``max|D_P|`` there.
    verdict : tuple of float
        ``(residual, floor, target)`` of the certificate (:func:`_try_certificate`).

    Raises
    ------
    ConvergenceError
        If the certificate fails at ``max_iter`` Newton steps or after three stalls.
    """
    n, k, lam, factor = setup.n, setup.k, setup.lam, setup.factor
    while True:
        g = outputs_and_gradient(setup, state, low=False)
        scale = max_abs(g.dev_p)
        est = _residual_bound(setup, g)
        # The cheap round-off floor (see certify), part of the target at tiny lam.
        abs_r = sum(factor.sample_norms[r] @ np.abs(g.resid[r]) for r in row_blocks(n, k))
        cheap = float(np.max(abs_r))
        floor_bound = 4.0 * math.sqrt(factor.inner_dim()) * _EPS * setup.rowmax * cheap / (lam * n)
        goal = max(setup.tol * scale, floor_bound)
        if (
            est <= _SPECULATE * goal
            or state.certify_next
            or state.it >= setup.max_iter
            or state.stalls >= 3
        ):
            verdict = _try_certificate(setup, state, g, scale, est)
            if verdict is not None:
                return g, scale, verdict
        state.it += 1
        _newton_step(setup, state, g, low=False, est=est, goal=goal)


def _try_certificate(setup: SolveSetup, state: Iterate, g: Gradient, scale: float, est: float):
    """Evaluate the certificate at a float64 iterate (one or two passes).

    Returns
    -------
    tuple of float or None
        ``(residual, floor, target)`` if ``residual <= target``, else None (then
        ``state.certify_next`` says whether round-off dominates ``est``).

    Raises
    ------
    ConvergenceError
        If the certificate fails at ``max_iter`` Newton steps or after three stalls.
    """
    factor, lam, tol = setup.factor, setup.lam, setup.tol
    fixed, extra, single = None, 0.0, False
    if setup.features_route:  # Z' = X W' with W' = X^T (T - P) / (lam N), from the gradient
        fixed, extra, single = _fixed_logits(setup, state, g, 0.1 * tol * scale)
    res, floor = certify(factor, g.dev_p, setup.dev_t, lam, tol_abs=tol * scale, fixed_logits=fixed)
    # The float32 route's evaluation error is part of the residual's resolution (softmax is
    # 1/2-Lipschitz in the max-norm); _fixed_logits keeps it below a tenth of the target.
    floor += 0.5 * extra
    state.passes += 1 if factor.gram is not None or setup.features_route else 2
    state.passes32 += int(single)
    # The floor raises the target, never above CERTIFICATE_RTOL_CAP * scale: a residual
    # that round-off does not resolve (lam = 1e-300: floor >> 1) is not certified.
    target = max(tol * scale, min(floor, CERTIFICATE_RTOL_CAP * scale))
    if res <= target:
        return res, floor, target
    if state.it >= setup.max_iter or state.stalls >= 3:
        # Stalls mean round-off, not the iteration count, limits the residual: at large lam a
        # distillation round's targets and outputs differ by less than the certificate resolves
        # (docs/reliability.md), where a larger lam would only make it worse.
        advice = (
            "round-off limits the residual here: at large lam distillation rounds leave the "
            "outputs closer to their targets than a certificate resolves (docs/reliability.md); "
            "try a smaller lam or fewer rounds"
            if state.stalls >= 3 and lam >= 1.0
            else "try a larger max_iter or a larger lam"
        )
        raise ConvergenceError(
            f"probe solve did not converge: residual {res:.3g} > target {target:.3g} "
            f"after {state.it} Newton steps (gradient norm {g.gnorm:.3g}, lam={lam:g}); {advice}"
        )
    state.certify_next = est <= 4 * floor  # round-off dominated: check after each step
    return None


def _product_error(setup: SolveSetup, dim: int, unit: float, coef: np.ndarray) -> float:
    """Bound on ``max|B M - fl(B M)|`` for a product of the basis with ``M`` (q, K).

    Per entry ``gamma ||b_i|| ||M_:k||`` (Cauchy-Schwarz on ``|b_i| |M_:k|``), with
    ``gamma = (8 sqrt(dim) + 2) unit``: the certificate's summation model for a length-``dim``
    product (package docstring, :mod:`simulations.solver`) plus the roundings of the factors
    (``unit`` is float32's or float64's epsilon).
    """
    gamma = (8.0 * math.sqrt(dim) + 2.0) * unit
    return gamma * setup.rowmax * float(np.max(np.linalg.norm(coef, axis=0)))


def _fixed_logits(setup: SolveSetup, state: Iterate, g: Gradient, budget: float):
    r"""``Z' = B W'`` with ``W' = -B^T (D_P - D_T) / (lam N)``, and a bound on its extra error.

    ``W' = C - \nabla J / lam`` (the gradient's class-mean part only shifts each sample's
    logits by a constant, which softmax ignores), so ``Z' = Z - B (\nabla J / lam)``: at a
    certifiable iterate ``\nabla J / lam`` is ~1e-10 of ``C``, and its product may be float32
    (half a float64 pass). Its error -- the float32 product's, the float64 logits' own
    (``state.logit_error``) and the subtraction's -- is returned as ``extra`` when it is below
    ``budget`` (then the certificate counts it in its floor); otherwise ``Z'`` is the float64
    product and ``extra = 0``.

    Returns
    -------
    fixed : ndarray, shape (N, K)
    extra : float
    single : bool
        Whether the product was float32.
    """
    lam = setup.lam
    out = setup.buffer("y64", float)
    if setup.b32 is not None and math.isfinite(state.logit_error):
        step = g.grad / lam
        extra = state.logit_error + _product_error(setup, setup.q, _EPS32, step)
        extra += 2 * _EPS * max_abs(state.logits)
        if extra <= budget:
            y = setup.buffer("image32", np.float32)  # CG's image: free between Newton steps
            np.matmul(setup.b32, step.astype(np.float32), out=y)
            np.subtract(state.logits, y, out=out)
            return out, extra, True
    return basis_times(setup.basis, -g.btr / lam, out=out), 0.0, False


def _forcing(dtype, low: bool, gnorm: float, terms: float, est: float, goal: float) -> float:
    """CG's relative tolerance for one Newton step (Hessian products of ``dtype``).

    Loose CG solves far away, tight near the solution (Eisenstat-Walker), never more accurate
    than the certificate needs (the next gradient is ~rtol * gnorm), and, once the target is
    within reach of one step, tight enough to finish in that step. The float64 phase after
    float32 steps starts within reach: there CG is asked (as far as float32 products allow) to
    bring the rigorous bound ``est`` to the goal in this step (a float64 Newton step costs as
    many passes as ~6 CG iterations).
    """
    rtol_min = _CG_RTOL_MIN if dtype == np.float32 else 1e-12
    rtol = min(0.5, math.sqrt(gnorm / terms)) if terms > 0 else 0.5
    if not low and dtype == np.float32:
        rtol = min(rtol, max(goal / est if est > 0 else 0.5, rtol_min))
    elif not low:
        finish = 10.0 * goal / est if est > 0 else 0.5
        if finish >= 10 * rtol_min:
            rtol = min(rtol, finish)
    return max(rtol, 0.1 * goal / est if est > 0 else 0.5, rtol_min)


def _hessian_product(setup: SolveSetup, probs: np.ndarray, b: np.ndarray):
    """``hvp(S) -> (H S, B S)`` with ``H[S] = B^T D_P[B S] / N + lam S`` in ``b``'s precision.

    The images ``B S`` are written to a work array (returned as the second element, which
    :func:`pcg` may scale in place).
    """
    n, k, lam = setup.n, setup.k, setup.lam
    p_h = np.asarray(probs, dtype=b.dtype)
    y = setup.buffer(f"hvp_y{b.dtype}", b.dtype)
    m = setup.buffer(f"hvp_m{b.dtype}", b.dtype)

    def hvp(s):
        basis_times(b, s, out=y)
        for rows in row_blocks(n, k):  # D_i y_i = p_i * (y_i - p_i . y_i)
            pb, yb = p_h[rows], y[rows]
            mb = np.subtract(yb, np.einsum("ik,ik->i", pb, yb)[:, None], out=m[rows])
            mb *= pb
        return basis_t_times(b, m).astype(np.float64) / n + lam * s, y

    return hvp


def _newton_step(setup: SolveSetup, state: Iterate, g: Gradient, *, low, est, goal) -> None:
    """One Newton step: CG on ``H S = -g`` (:func:`pcg`), then the Armijo line search.

    In the float32 phase (``low``) the step's logit change is CG's accumulated image; in the
    float64 phase it is formed from the step (one pass). The first float64 step after a float32
    phase that reached its switch point (``state.trust_next``) is taken whole, without a line
    search: from there the quadratic model errs by ~the gradient ratio (<= 1e-5) of the step's
    decrease, and the certificate, not the objective, decides the float64 phase. Updates
    ``state`` in place.
    """
    lam, k = setup.lam, setup.k
    b_hvp = state.b_hvp
    pre = KronPreconditioner(setup.factor, g.probs, lam)
    rtol = _forcing(b_hvp.dtype, low, g.gnorm, g.terms, est, goal)
    hvp = _hessian_product(setup, g.probs, b_hvp)
    cg_maxiter = max(50, 10 * k)
    image = setup.buffer("image32", np.float32) if low else None
    step, n_cg, image = pcg(hvp, -g.grad, pre, rtol, cg_maxiter, image)
    state.cg_total += n_cg
    state.passes += 2 * n_cg
    state.passes32 += 2 * n_cg if b_hvp.dtype == np.float32 else 0
    if not low and setup.single and n_cg >= cg_maxiter and b_hvp is setup.b32:
        # Float32 Hessian products cannot deliver this CG accuracy (tiny lam: condition
        # numbers ~1/lam): the remaining Newton steps use float64 products.
        state.b_hvp = setup.basis
    if low:
        y = image  # float32-accurate logit change, accumulated inside CG
    else:
        step -= step.mean(axis=1, keepdims=True)  # stay on sum_k C_jk = 0 (round-off)
        y = basis_times(setup.basis, step, out=setup.buffer("y64", float))
        state.passes += 1
    trust = state.trust_next and not low and _TRUST_FIRST_FLOAT64_STEP
    state.trust_next = False
    alpha = _line_search(setup, state, g, step, y, low, trust)
    if not low:  # the float64 logits accumulate the products' errors (_fixed_logits)
        state.logit_error += _product_error(setup, setup.q, _EPS, alpha * step)
        state.logit_error += _EPS * max_abs(state.logits)


def _line_search(
    setup: SolveSetup, state: Iterate, g: Gradient, step, y, low: bool, trust: bool = False
) -> float:
    """Scale-free Armijo backtracking along ``step`` (logit change ``y``) and the update.

    A failed search (no descent, or only round-off: NaN from an overflow included) counts as a
    stall and asks for the certificate next; otherwise ``coef`` and ``logits`` move by
    ``alpha`` times the step, and progress beyond the change's round-off resets the stalls.
    With ``trust`` a descent direction is taken whole (``alpha = 1``), without evaluating the
    objective. Returns ``alpha`` (0 for a failed search).
    """
    slope = float(np.sum(g.grad * step))
    alpha, change = 1.0, 0.0
    # Round-off of the objective change: float32 sums in the float32 phase.
    eps = float(np.finfo(np.float32).eps) if low else _EPS
    magnitude = 1.0
    if trust and slope < 0:
        change = -math.inf  # progress: resets the stall counter below
    elif slope < 0:
        line_cls = LineObjective32 if low else LineObjective
        dev_t = setup.dev_t_low if low else setup.dev_t
        line = line_cls(g.probs, g.dev_p, dev_t, y, state.coef, step, setup.lam)
        while alpha >= 1e-10:
            change, magnitude = line(alpha)
            # A non-finite change (overflow, or log1p(-1) by float32 round-off) rejects.
            if math.isfinite(change) and change <= 1e-4 * alpha * slope + 8 * eps * magnitude:
                break
            alpha *= 0.5
    if not slope < 0 or alpha < 1e-10:  # only round-off (or an overflow: NaN) causes these
        state.stalls += 1
        state.certify_next = True
        return 0.0
    coef = state.coef + alpha * step
    coef -= coef.mean(axis=1, keepdims=True)  # no drift off sum_k C_jk = 0 across rounds
    state.coef = coef
    y *= y.dtype.type(alpha)  # y (CG's image or a work array) is dead after this step
    state.logits += y
    # Progress beyond the round-off of the change itself resets the stall counter.
    state.stalls = 0 if change < -64 * eps * magnitude else state.stalls + 1
    return alpha


def _assemble(setup: SolveSetup, state: Iterate, g: Gradient, scale: float, verdict):
    """The :class:`ProbeSolution` of a certified iterate, with its :class:`Certificate`.

    ``verdict`` is ``(residual, floor, target)`` (:func:`_try_certificate`).
    """
    factor, lam, n = setup.factor, setup.lam, setup.n
    res, floor, target = verdict
    dual = np.divide(g.resid, -lam * n, out=g.resid).T  # the work array is free now
    if factor.route in ("spectral", "direct"):
        weights = np.ascontiguousarray(state.coef.T)
    elif factor.features is not None:
        weights = dual @ factor.features
    else:
        weights = None
    output_bound = 0.5 * setup.rowmax * g.gnorm / lam + 64 * _EPS * (scale + max_abs(state.logits))
    cert = Certificate(
        residual=res,
        gradient_norm=g.gnorm,
        iterations=state.it,
        cg_iterations=state.cg_total,
        target=target,
        floor=floor,
        output_bound=float(output_bound),
        method=f"newton-cg ({factor.route})",
        scale=scale,
        passes=state.passes,
        single_passes=state.passes32,
    )
    # (K, N) views of the row-major (N, K) arrays: no copies (transposing costs ~30 ms each at
    # N = 10,000, K = 100).
    return ProbeSolution(
        g.probs.T, state.logits.T, dual, weights, cert, lam, factor, state.coef, g.dev_p.T
    )
