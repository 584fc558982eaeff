"""Stationary-point checks of the PLL student: the kernel-form residuals (first order) and the
smallest Hessian eigenvalue (second order), with the classification of the point found."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from simulations.pll_losses.losses import CandidateSetLoss, LossState
from simulations.pll_losses.objective import Objective
from simulations.solver import ProbeFactor, log_softmax

__all__ = [
    "DENSE_HESSIAN_MAX",
    "LANCZOS_MAX_RESTARTS",
    "check_hessian_size",
    "classify_stationary_point",
    "eig_tolerance",
    "kernel_residuals",
    "second_order",
]


#: Largest ``K r`` for which the Hessian is formed densely for the second-order test (72 MB).
DENSE_HESSIAN_MAX = 3000


#: Cap on ARPACK's implicit restarts in the Lanczos second-order test (then 'not converged').
LANCZOS_MAX_RESTARTS = 300


_EPS = np.finfo(float).eps


def check_hessian_size(hessian: str, k: int, rank: int) -> None:
    """Refuse ``hessian='dense'`` up front when ``K r`` exceeds :data:`DENSE_HESSIAN_MAX`.

    Raises
    ------
    ValueError
        If the (K r)^2 dense Hessian was asked for and is too large.
    """
    if hessian == "dense" and k * rank > DENSE_HESSIAN_MAX:
        raise ValueError(
            f"hessian='dense' needs K r <= {DENSE_HESSIAN_MAX} (a (K r)^2 matrix); here K r = "
            f"{k * rank}: use hessian='lanczos' or 'auto'"
        )


def kernel_residuals(loss: CandidateSetLoss, st: LossState, logits, lam, factor: ProbeFactor):
    """Kernel-form residuals (probabilities, logits) and the round-off floor of the former."""
    n = factor.n_samples
    z_fixed = -factor.gram_apply(st.grad.T).T / (lam * n)
    res = float(np.max(np.abs(st.probs - np.exp(log_softmax(z_fixed)))))
    logit_res = float(np.max(np.abs(logits - z_fixed)))
    # As simulations.solver.fixed_point_residual: BLAS error gamma |Gamma| |G| / (lam N), softmax
    # 1/2-Lipschitz in the max-norm, plus a few ulps for evaluating softmax itself.
    gamma = 4.0 * math.sqrt(n) * _EPS
    floor = 0.5 * gamma * factor.abs_gram_apply_max(st.grad.T) / (lam * n) + 8 * _EPS
    return res, logit_res, float(floor)


def second_order(problem: Objective, st: LossState, theta_shape, hessian: str):
    """Smallest Hessian eigenvalue (or lower bound), method, eigenvector (or None)."""
    lam, f, n = problem.lam, problem.f, problem.n
    k, r = theta_shape
    if problem.loss.name == "ce":
        return lam, "convex", None
    if hessian == "none":
        return math.nan, "skipped", None
    c = problem.loss.curvature_floor(st)
    if hessian == "auto":
        bound = lam + float(np.linalg.eigvalsh((f.T * c) @ f / n)[0]) if r else lam
        if bound > 0:
            return bound, "lower bound", None
    if hessian == "dense" or (hessian == "auto" and k * r <= DENSE_HESSIAN_MAX):
        # H[(a, j), (b, l)] = sum_i H_i[a, b] F_ij F_il / N + lam [a = b, j = l], symmetric under
        # a <-> b and under j <-> l separately: one GEMM over the unique (a <= b) x (j <= l)
        # entries per chunk of samples (chunks of <= 2**21 numbers per operand, 16 MB).
        au, bu = np.triu_indices(k)
        ju, lu = np.triu_indices(r)
        block = np.zeros((ju.size, au.size))
        chunk = max(1, 2**21 // max(au.size, ju.size))
        ft = np.ascontiguousarray(f.T)  # row gathers are much faster than column gathers
        for start in range(0, n, chunk):
            idx = slice(start, min(n, start + chunk))
            hs = problem.loss.hessians(st, idx)[:, au, bu]  # (M, K(K+1)/2)
            block += (ft[ju, idx] * ft[lu, idx]) @ hs  # (r(r+1)/2, K(K+1)/2), transposed
        block /= n
        dense = np.zeros((k, r, k, r))
        for a, b, j, m in ((au, bu, ju, lu), (au, bu, lu, ju), (bu, au, ju, lu), (bu, au, lu, ju)):
            dense[a[:, None], j[None, :], b[:, None], m[None, :]] = block.T
        dense = dense.reshape(k * r, k * r)
        dense += lam * np.eye(k * r)
        # Only the smallest eigenpair is needed (LAPACK syevr with an index range).
        vals, vecs = scipy.linalg.eigh(dense, subset_by_index=[0, 0])
        return float(vals[0]), "dense", vecs[:, 0].reshape(k, r)
    op = LinearOperator(
        (k * r, k * r),
        matvec=lambda v: problem.hvp(st, np.asarray(v).reshape(k, r)).ravel(),
        dtype=float,
    )
    try:
        # At most LANCZOS_MAX_RESTARTS implicit restarts (~20 Hessian-vector products each).
        vals, vecs = eigsh(op, k=1, which="SA", tol=1e-8, maxiter=LANCZOS_MAX_RESTARTS)
    except ArpackNoConvergence:
        return math.nan, "lanczos (not converged)", None
    return float(vals[0]), "lanczos", vecs[:, 0].reshape(k, r)


def eig_tolerance(problem: Objective) -> float:
    """Round-off level of a Hessian eigenvalue: ~ K r eps times the Hessian's norm bound.

    ``||H|| <= lam + max_j s_j / N * max_i ||H_i||`` and ``||H_i|| <= 2`` for these losses (``D_v``
    has norm ``<= 1``, the rank-one terms ``<= q ||p - e||^2 <= 2``).
    """
    s_max = float(problem.sq_norms.max()) if problem.sq_norms.size else 0.0
    scale = problem.lam + 2.0 * s_max / problem.n
    return 1e3 * _EPS * scale * max(1, problem.f.shape[1])


def classify_stationary_point(value: float, how: str, tol: float) -> str:
    if how == "convex":
        return "global minimum"
    if math.isnan(value):
        return "unknown"
    if how == "lower bound" or value > tol:
        return "local minimum"
    if value < -tol:
        return "saddle point"
    return "degenerate"
