r"""Nonlinear preconditioned conjugate gradients for the float32 phase of the probe solver.

A Newton step costs one pass over the data for its gradient and two per CG iteration, and
the last CG iteration's second pass (``B^T`` of the Jacobian-weighted image) only updates a
residual that the next gradient replaces. Nonlinear CG (Polak-Ribiere+, preconditioned by the
Newton steps' :class:`~simulations.solver.pcg.KronPreconditioner`) spends exactly two passes per
step: the image ``y = B d`` of the direction and the gradient at the new point. Its step length
comes from the curvature along ``d``, which needs no pass:

.. math::

    d^\top H d = \frac1N \sum_i \sum_k p_{ik} (y_{ik} - p_i \cdot y_i)^2 + \lambda \lVert d
    \rVert^2 ,

(the per-sample softmax Jacobians applied to ``y``), checked by the same scale-free Armijo test
as the Newton steps (:class:`~simulations.solver.kernels.LineObjective32`). Where the objective is
nearly quadratic and the preconditioner good (soft outputs, well-conditioned features: the
isotropic benchmark workload at ``lam = 1e-3``) this reaches float32 round-off in about half the
passes of Newton-CG; where it is not (confident outputs, ill-conditioned features) its rate per
step degrades, and the solver hands over to Newton steps (:data:`MAX_RATE`). Near the optimum
(:data:`TRUST_RTOL`) a step whose predecessor was accepted at the model's length skips the Armijo
test, whose objective costs about a softmax; a trusted step that does not reduce the gradient is
undone and Newton steps take over.
"""

from __future__ import annotations

import math

import numpy as np

from simulations.solver.kernels import LineObjective32, basis_times, row_blocks
from simulations.solver.pcg import KronPreconditioner
from simulations.solver.state import Gradient, Iterate, SolveSetup, outputs_and_gradient

__all__ = ["MAX_RATE", "NCG_SWITCH_RTOL", "TRUST_RTOL", "curvature_along", "float32_ncg"]


#: Hand over to Newton steps once a nonlinear CG step reduces the gradient ratio
#: ``||g|| / terms`` by less than this factor: a step costs two passes, a Newton step with
#: ``m`` CG iterations ``2 m + 1``, and Newton-CG reduced the ratio by ~0.3 per pair of passes on
#: the benchmark problems where nonlinear CG is slower.
MAX_RATE = 0.4


#: Below this gradient ratio a step whose predecessor passed the Armijo test at the quadratic
#: model's length is taken without the test (:func:`float32_ncg`).
TRUST_RTOL = 1e-3


#: Leave the nonlinear CG steps for the float64 phase once the gradient ratio is below this:
#: float32 gradients err by ~1e-7 of their terms, and from here one float64 Newton step (CG
#: with float32 products to ~1e-5) reaches the certificate.
NCG_SWITCH_RTOL = 1e-6


def curvature_along(probs: np.ndarray, y: np.ndarray) -> float:
    r"""``sum_i sum_k p_ik (y_ik - p_i . y_i)^2`` (module docstring), in row blocks.

    Parameters
    ----------
    probs, y : ndarray, shape (N, K)
        Outputs and the image ``B d`` of a direction (float32 or float64); each block's sum is
        accumulated in float64.

    Returns
    -------
    float
        ``N`` times the Jacobian part of ``d^T H d`` (non-negative).
    """
    total = 0.0
    for rows in row_blocks(*y.shape):
        pb, yb = probs[rows], y[rows]
        centred = yb - np.einsum("ik,ik->i", pb, yb)[:, None]
        # Products in float64 (einsum casts first): squares of float32 images ~1e-20 (outputs
        # that close to uniform) would underflow in float32.
        total += float(np.einsum("ik,ik,ik->", pb, centred, centred, dtype=np.float64))
    return total


def _leading_bits(alpha: float, bits: int = 12) -> float:
    """``alpha`` rounded to ``bits`` significant bits.

    The quadratic model's step length needs a few digits (a relative error ``e`` costs ``e^2``
    of the step's decrease), but its float32 curvature varies at ~1e-7 with the order of the
    sums (row blocks, BLAS threads). Rounded, the steps are the same for every such order
    except with probability ~``1e-7 * 2^bits`` per step, as with the Newton steps' halving line
    search, so the solution does not depend on the blocking beyond round-off.
    """
    if not (math.isfinite(alpha) and alpha > 0):
        return alpha
    mantissa, exponent = math.frexp(alpha)
    return math.ldexp(round(mantissa * 2**bits) / 2**bits, exponent)


def float32_ncg(setup: SolveSetup, state: Iterate, g: Gradient) -> tuple[Gradient, bool]:
    """Nonlinear CG steps in float32 from the iterate ``state`` with gradient ``g``.

    Updates ``state`` in place (coefficients, float32 logits, passes, steps counted as Newton
    steps in ``state.it``). Stops when the gradient ratio is below :data:`NCG_SWITCH_RTOL` or
    at ``setup.max_iter``, or when a step reduces it by less than :data:`MAX_RATE` (float32
    round-off, or a problem where Newton steps do better) or the line search fails.

    Returns
    -------
    g : Gradient
        At the final iterate (its float32 work arrays).
    degraded : bool
        Whether the steps stopped on their rate or a failed line search: then Newton steps
        continue the float32 phase unless the ratio is already at their switch point.
    """
    lam, n = setup.lam, setup.n
    eps32 = float(np.finfo(np.float32).eps)
    pre = KronPreconditioner(setup.factor, g.probs, lam)
    z = pre(g.grad)
    d = -z
    gz = float(np.sum(g.grad * z))
    first_it = state.it  # steps are counted from here
    y = setup.buffer("image32", np.float32)  # the Newton steps' CG image: free between steps
    trusted = False
    while g.ratio > NCG_SWITCH_RTOL and state.it < setup.max_iter:
        slope = float(np.sum(g.grad * d))
        if not slope < 0:  # lost conjugacy (round-off): restart along -M g
            d, slope = -z, -gz
            if not slope < 0:
                return g, False
        basis_times(setup.b32, d.astype(np.float32), out=y)
        state.passes += 1
        state.passes32 += 1
        curv = curvature_along(g.probs, y) / n + lam * float(np.sum(d * d))
        alpha = _leading_bits(-slope / curv)
        backtracked = not trusted
        if not trusted:
            line = LineObjective32(g.probs, g.dev_p, setup.dev_t_low, y, state.coef, d, lam)
            for tries in range(30):  # Armijo backtracking from the quadratic model's minimiser
                change, magnitude = line(alpha)
                if math.isfinite(change) and (
                    change <= 1e-4 * alpha * slope + 8 * eps32 * magnitude
                ):
                    backtracked = tries > 0
                    break
                alpha *= 0.5
            else:
                return g, True  # no descent found: Newton steps (their own line search) take over
        coef_old = state.coef
        coef = coef_old + alpha * d
        coef -= coef.mean(axis=1, keepdims=True)  # stay on sum_k C_jk = 0
        state.coef = coef
        y *= np.float32(alpha)
        state.logits += y
        state.it += 1
        g_new = outputs_and_gradient(setup, state, low=True)
        if trusted and not g_new.ratio < g.ratio:  # (NaN included) undo; Newton steps go on
            state.coef = coef_old
            state.logits -= y
            return outputs_and_gradient(setup, state, low=True), True
        rate = g_new.ratio / g.ratio
        # Trust the next model step (no Armijo test, whose objective costs about a softmax)
        # once this one was accepted whole this close to the optimum, where the objective along
        # a direction is quadratic to ~ratio; a step that goes wrong shows in the rate below.
        trusted = not backtracked and g_new.ratio <= TRUST_RTOL and rate <= MAX_RATE
        g = g_new
        # The first step's rate is not judged: from the start point (W = 0, outputs uniform)
        # the quadratic model is least accurate where the outputs end up confident, and its
        # rate says little about the next steps (anisotropic workload, K = 100, N = 10,000:
        # 46 -> 42 and 132 -> 123 passes at lam = 1e-3, 1e-4 with the first step exempt).
        if rate > MAX_RATE and state.it > first_it + 1:
            # Float32 round-off once the ratio is small (then the float64 phase takes over),
            # else a problem on which Newton steps converge faster per pass.
            return g, True
        pre = KronPreconditioner(setup.factor, g.probs, lam)
        z_new = pre(g.grad)
        gz_new = float(np.sum(g.grad * z_new))
        gz_cross = float(np.sum(g.grad * z))
        beta = max(0.0, (gz_new - gz_cross) / gz) if gz > 0 else 0.0  # Polak-Ribiere+
        if abs(gz_cross) > 0.2 * gz_new:  # Powell's restart: conjugacy lost (nonlinearity)
            beta = 0.0
        d = beta * d - z_new
        z, gz = z_new, gz_new
    return g, False
