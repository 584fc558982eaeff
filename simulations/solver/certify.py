"""The KKT certificate of the probe solver: the fixed-point residual and its round-off floor.

The residual ``max|D_P - dev(softmax((T - P) G / (lam N)))|`` is evaluated with the *original*
features or Gram matrix; residuals below the floor (package docstring, :mod:`simulations.solver`)
are not resolvable.
"""

from __future__ import annotations

import math

import numpy as np

from simulations.solver.factorisation import ProbeFactor
from simulations.solver.kernels import max_abs, row_blocks, softmax64_block
from simulations.solver.types import as_soft_targets
from theory.validation import check_finite_matrix, check_positive

__all__ = ["certify", "fixed_point_residual"]


_EPS = np.finfo(float).eps


def fixed_point_residual(outputs, targets, lam, *, factor: ProbeFactor) -> tuple[float, float]:
    """Residual ``max|P - softmax((T - P) G / (lam N))|`` and its round-off floor.

    ``targets`` may be an array (K, N) on the simplex or :class:`SoftTargets`. The deviations of
    ``outputs`` are formed by subtracting ``1/K`` (use a :class:`ProbeSolution`'s certificate for
    outputs near uniform).

    Returns
    -------
    residual, floor : float
    """
    lam = check_positive(lam, "lam")
    p = check_finite_matrix(outputs, "outputs")
    t = as_soft_targets(targets, factor.n_samples)
    dev_p = (p - 1.0 / p.shape[0]).T
    res, floor = certify(factor, dev_p, t.deviations.T, lam, exact_floor=True)
    return res, floor


def certify(factor, dev_p, dev_t, lam, *, exact_floor=False, tol_abs=0.0, fixed_logits=None):
    """Fixed-point residual of (N, K) deviations against the original data.

    ``fixed_logits`` may pass ``Z' = (T - P) G / (lam N)`` when it has already been formed from
    the original data (the solver does, from its gradient product). Returns (residual, floor).
    The floor uses the bound ``|G_ij| <= sqrt(G_ii G_jj)`` unless ``exact_floor`` or that bound
    exceeds ``tol_abs`` (then the floor could set the target, and it is computed exactly).
    """
    n, k = dev_p.shape
    r = None
    if fixed_logits is None:
        r = dev_t - dev_p  # (T - P), rows = samples
        z_fix = factor.gram_apply(r) / (lam * n)
    else:
        z_fix = fixed_logits
    norms = factor.sample_norms
    residual, abs_r = 0.0, np.zeros(k)  # abs_r: column sums of |b_i| |T - P|_i
    blocks = row_blocks(n, k)  # row blocks: no (N, K) temporaries (kernels._BLOCK_ELEMENTS)
    rows0 = blocks[0].stop - blocks[0].start
    p_blk, d_blk = np.empty((rows0, k)), np.empty((rows0, k))  # softmax64_block's outputs
    for rows in blocks:
        m = rows.stop - rows.start
        d = d_blk[:m]
        softmax64_block(z_fix[rows], p_blk[:m], d)  # softmax_deviation(z_fix[rows]), in place
        d -= dev_p[rows]
        residual = max(residual, max_abs(d))
        np.subtract(dev_t[rows], dev_p[rows], out=d)
        abs_r += norms[rows] @ np.abs(d, out=d)
    gamma = 8.0 * math.sqrt(factor.inner_dim()) * _EPS
    scale = max_abs(dev_p)
    cheap = float(np.max(norms)) * float(np.max(abs_r))
    floor = 0.5 * gamma * cheap / (lam * n) + 8.0 * _EPS * scale
    if exact_floor or floor > tol_abs:
        exact = factor.abs_gram_apply_max(dev_t - dev_p if r is None else r)
        floor = 0.5 * gamma * exact / (lam * n) + 8.0 * _EPS * scale
    return residual, float(floor)
