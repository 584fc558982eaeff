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
    softmax32,
    softmax64,
)
from simulations.solver.pcg import KronPreconditioner, pcg
from simulations.solver.types import (
    Certificate,
    ConvergenceError,
    ProbeSolution,
    SoftTargets,
    as_soft_targets,
)
from theory.validation import CERTIFICATE_RTOL_CAP, check_int, check_positive

__all__ = ["solve_probe"]


_EPS = np.finfo(float).eps


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


#: Try the certificate once the rigorous residual bound is within this factor of the target.
_SPECULATE = 100.0


def _memory_estimate(n, q, k, single) -> float:
    """Bytes the solve allocates beyond its inputs: ~14 (N, K) float64 arrays, a few (q, K) ones
    and, with single-precision Hessian products, the float32 basis (4 N q bytes, cached)."""
    return 8.0 * 14 * n * k + 8.0 * 10 * q * k + (4.0 * n * q if single else 0.0)


def _check_inputs(targets, lam, features, gram, factor):
    lam = check_positive(lam, "lam")
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
        ``lam > 0``.
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
    t, lam, factor = _check_inputs(targets, lam, features, gram, factor)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    basis, n, q = factor.basis, factor.n_samples, factor.rank
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
    b32 = factor.basis32() if single else None
    b_hvp = b32 if single else basis
    # In the float32 phase the logits, outputs and every (N, K) array are float32 (half the
    # memory traffic; that phase needs a few digits relative to the outputs' spread).
    dtype = np.float32 if single else np.float64
    if init is not None:
        if init.factor is not factor or init.coef.shape != (q, k):
            raise ValueError("init must be a ProbeSolution computed with the same factor")
        coef = init.coef - init.coef.mean(axis=1, keepdims=True)
        # The logits are recomputed, not taken from init: updates that shrink them (rounds at
        # large lam) leave an absolute error ~eps * (earlier logits), which would otherwise
        # persist and bound the relative accuracy. In the float32 phase this happens at the switch.
        logits = basis_times(b_hvp, coef.astype(dtype))
        passes = 1
        passes32 = int(single)
    else:
        coef = np.zeros((q, k))
        logits = np.zeros((n, k), dtype)
        passes = passes32 = 0
    dev_t_low = dev_t.astype(np.float32) if single else None
    # (N, K) work arrays, allocated once per solve and overwritten in place (each iteration's
    # outputs are dead once the next softmax is formed; see kernels._BLOCK_ELEMENTS for why).
    work: dict[str, np.ndarray] = {}

    def buffer(name, dt):
        if name not in work:
            work[name] = np.empty((n, k), dt)
        return work[name]

    features_route = factor.route in ("spectral", "direct")  # B = X: Z' from the gradient
    rowmax = float(np.max(factor.sample_norms))
    low = single  # float32 gradients / logit updates until close to the optimum

    cg_total = it = stalls = 0
    certify_next = False
    prev_ratio = math.inf  # gradient ratio ||g|| / terms at the previous float32 step
    while True:
        if low:
            probs, dev_p = softmax32(logits, buffer("p32", np.float32), buffer("d32", np.float32))
            resid = np.subtract(dev_p, dev_t_low, out=buffer("r32", np.float32))
            btr = (b32.T @ resid).astype(np.float64) / n
        else:
            probs, dev_p = buffer("p64", float), buffer("d64", float)
            softmax64(logits, probs, dev_p)
            resid = np.subtract(dev_p, dev_t, out=buffer("r64", float))
            btr = basis_t_times(basis, resid) / n  # (q, K)
        passes += 1
        passes32 += int(low)
        # Iterates and the optimum satisfy sum_k C_jk = 0, where the Hessian is positive definite;
        # the class-mean part of the computed gradient is round-off, which CG cannot remove.
        grad = btr + lam * coef
        grad -= grad.mean(axis=1, keepdims=True)
        gnorm = float(np.linalg.norm(grad))
        # Round-off scale of the gradient: float32 products err by ~1e-6 of the terms.
        terms = float(np.linalg.norm(btr)) + lam * float(np.linalg.norm(coef))
        ratio = gnorm / terms if terms > 0 else 0.0
        if low:
            # Leave the float32 phase at float32 round-off (_SWITCH_RTOL), when its steps stop
            # converging quadratically there (_STAGNATION_RTOL), or when the line search stalls.
            # (Predicting the switch point from the quadratic model, even with a sharper
            # one-pass residual estimate, cost more passes than it saved on the benchmarks.)
            stagnant = prev_ratio <= _STAGNATION_RTOL and ratio > 0.1 * prev_ratio
            prev_ratio = ratio
            if ratio <= _SWITCH_RTOL or stagnant or stalls or it >= max_iter:
                low, stalls = False, 0
                # Drop the float32 drift of the accumulated updates.
                logits = basis_times(basis, coef)
                passes += 1
                continue
        scale = 0.0 if low else max_abs(dev_p)
        # Rigorous bound on the basis-form residual: |B g / lam|_ik <= |b_i| |g_:k|; softmax is
        # 1/2-Lipschitz. It overestimates the residual by ~5-100x on the benchmark problems, so
        # the certificate (one pass) is tried from est <= _SPECULATE * goal: when it passes, a
        # Newton step (~4-10 passes) is saved.
        est = 0.5 * rowmax * float(np.max(np.linalg.norm(grad, axis=0))) / lam
        goal = 0.0  # the target is irrelevant in the float32 phase
        if not low:  # the cheap round-off floor (see certify), part of the target at tiny lam
            abs_r = sum(factor.sample_norms[r] @ np.abs(resid[r]) for r in row_blocks(n, k))
            cheap = float(np.max(abs_r))
            floor_bound = 4.0 * math.sqrt(factor.inner_dim()) * _EPS * rowmax * cheap / (lam * n)
            goal = max(tol * scale, floor_bound)
        if not low and (est <= _SPECULATE * goal or certify_next or it >= max_iter or stalls >= 3):
            fixed = None
            if features_route:  # Z' = X W' with W' = X^T (T - P) / (lam N), from the gradient
                fixed = basis_times(basis, -btr / lam, out=buffer("y64", float))
            res, floor = certify(factor, dev_p, dev_t, lam, tol_abs=tol * scale, fixed_logits=fixed)
            passes += 1 if factor.gram is not None or features_route else 2
            # The floor raises the target, never above CERTIFICATE_RTOL_CAP * scale: a residual
            # that round-off does not resolve (lam = 1e-300: floor >> 1) is not certified.
            target = max(tol * scale, min(floor, CERTIFICATE_RTOL_CAP * scale))
            if res <= target:
                break
            if it >= max_iter or stalls >= 3:
                raise ConvergenceError(
                    f"probe solve did not converge: residual {res:.3g} > target {target:.3g} "
                    f"after {it} Newton steps (gradient norm {gnorm:.3g}, lam={lam:g}); "
                    "try a larger max_iter or a larger lam"
                )
            certify_next = est <= 4 * floor  # round-off dominated: check after each step
        it += 1
        pre = KronPreconditioner(factor, probs, lam)
        # Forcing: loose CG solves far away, tight near the solution (Eisenstat-Walker), never
        # more accurate than the certificate needs (the next gradient is ~rtol * gnorm), and,
        # once the target is within reach of one step, tight enough to finish in that step. The
        # float64 phase after float32 steps starts within reach: there CG is asked (as far as
        # float32 products allow) to bring the rigorous bound ``est`` to the goal in this step (a
        # float64 Newton step costs as many passes as ~6 CG iterations).
        rtol_min = _CG_RTOL_MIN if b_hvp.dtype == np.float32 else 1e-12
        rtol = min(0.5, math.sqrt(gnorm / terms)) if terms > 0 else 0.5
        if not low and b_hvp.dtype == np.float32:
            rtol = min(rtol, max(goal / est if est > 0 else 0.5, rtol_min))
        elif not low:
            finish = 10.0 * goal / est if est > 0 else 0.5
            if finish >= 10 * rtol_min:
                rtol = min(rtol, finish)
        rtol = max(rtol, 0.1 * goal / est if est > 0 else 0.5, rtol_min)
        p_h = np.asarray(probs, dtype=b_hvp.dtype)
        hvp_y = buffer(f"hvp_y{b_hvp.dtype}", b_hvp.dtype)
        hvp_m = buffer(f"hvp_m{b_hvp.dtype}", b_hvp.dtype)

        def hvp(s, p_h=p_h, b=b_hvp, y=hvp_y, m=hvp_m):
            basis_times(b, s, out=y)
            for rows in row_blocks(n, k):  # D_i y_i = p_i * (y_i - p_i . y_i)
                pb, yb = p_h[rows], y[rows]
                mb = np.subtract(yb, np.einsum("ik,ik->i", pb, yb)[:, None], out=m[rows])
                mb *= pb
            return basis_t_times(b, m).astype(np.float64) / n + lam * s, y

        cg_maxiter = max(50, 10 * k)
        image = buffer("image32", np.float32) if low else None
        step, n_cg, image = pcg(hvp, -grad, pre, rtol, cg_maxiter, image)
        cg_total += n_cg
        passes += 2 * n_cg
        passes32 += 2 * n_cg if b_hvp.dtype == np.float32 else 0
        if not low and single and n_cg >= cg_maxiter and b_hvp is b32:
            # Float32 Hessian products cannot deliver this CG accuracy (tiny lam: condition
            # numbers ~1/lam): the remaining Newton steps use float64 products.
            b_hvp = basis
        if low:
            y = image  # float32-accurate logit change, accumulated inside CG
        else:
            step -= step.mean(axis=1, keepdims=True)  # stay on sum_k C_jk = 0 (round-off)
            y = basis_times(basis, step, out=buffer("y64", float))
            passes += 1
        slope = float(np.sum(grad * step))
        alpha, change = 1.0, 0.0
        # Round-off of the objective change: float32 sums in the float32 phase.
        eps = float(np.finfo(np.float32).eps) if low else _EPS
        if slope < 0:
            line_cls = LineObjective32 if low else LineObjective
            line = line_cls(probs, dev_p, dev_t_low if low else dev_t, y, coef, step, lam)
            while alpha >= 1e-10:
                change, magnitude = line(alpha)
                # A non-finite change (overflow, or log1p(-1) by float32 round-off) rejects.
                if math.isfinite(change) and change <= 1e-4 * alpha * slope + 8 * eps * magnitude:
                    break
                alpha *= 0.5
        if not slope < 0 or alpha < 1e-10:  # only round-off (or an overflow: NaN) causes these
            stalls += 1
            certify_next = True
            continue
        coef = coef + alpha * step
        coef -= coef.mean(axis=1, keepdims=True)  # no drift off sum_k C_jk = 0 across rounds
        y *= y.dtype.type(alpha)  # y (CG's image or a work array) is dead after this step
        logits += y
        # Progress beyond the round-off of the change itself resets the stall counter.
        stalls = 0 if change < -64 * eps * magnitude else stalls + 1

    dual = np.divide(resid, -lam * n, out=resid).T  # the work array is free now
    if factor.route in ("spectral", "direct"):
        weights = np.ascontiguousarray(coef.T)
    elif factor.features is not None:
        weights = dual @ factor.features
    else:
        weights = None
    output_bound = 0.5 * rowmax * gnorm / lam + 64 * _EPS * (scale + max_abs(logits))
    cert = Certificate(
        residual=res,
        gradient_norm=gnorm,
        iterations=it,
        cg_iterations=cg_total,
        target=target,
        floor=floor,
        output_bound=float(output_bound),
        method=f"newton-cg ({factor.route})",
        scale=scale,
        passes=passes,
        single_passes=passes32,
    )
    # (K, N) views of the row-major (N, K) arrays: no copies (transposing costs ~30 ms each at
    # N = 10,000, K = 100).
    return ProbeSolution(probs.T, logits.T, dual, weights, cert, lam, factor, coef, dev_p.T)
