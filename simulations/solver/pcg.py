"""Preconditioned conjugate gradients of the probe solver's Newton steps, and its preconditioner.

:func:`pcg` solves ``H S = -g`` on (q, K) arrays; :class:`KronPreconditioner` replaces every
per-sample softmax Jacobian by their mean (a Kronecker-product approximation of the Hessian).
"""

from __future__ import annotations

import numpy as np

from theory.blas import single_thread_blas

__all__ = ["KronPreconditioner", "pcg"]


class KronPreconditioner:
    r"""``(Dbar (x) diag(s) / N + lam I)^{-1}`` in the preconditioner basis, on zero-sum rows.

    ``Dbar = diag(mean_i p_i) - P^T P / N`` is the mean softmax Jacobian (K x K, O(N K^2) to
    form) and ``s`` the curvature scale of each basis direction (``ProbeFactor.col_sq_norms``),
    so the Hessian ``sum_i D_i (x) b_i b_i^T / N + lam I`` is approximated by a Kronecker product,
    exact when every ``D_i`` is the same (uniform outputs) and ``B^T B`` is diagonal in the
    preconditioner basis. Applying it costs two (q, K) x (K, K) products (plus two (p, p) x (p, K)
    rotations on the ``'spectral'`` route). Measured alternatives -- exact K x K blocks per basis
    direction with Jacobians averaged over groups of samples, the exact Hessian diagonal, a
    curvature-weighted Kronecker factor, limited-memory quasi-Newton updates from earlier CG
    steps -- gave no fewer CG iterations on the benchmark problems and cost more.
    """

    def __init__(self, factor, probs, lam):
        n = probs.shape[0]
        # Float32 outputs (float32 phase) give a float32 product; the eigensolver runs in float64.
        jac = (np.diag(probs.mean(axis=0)) - probs.T @ probs / n).astype(float)
        with single_thread_blas():  # a K x K problem: threads only add contention
            evals, self.q = np.linalg.eigh(jac)
        evals = np.clip(evals, 0.0, None)  # PSD (softmax Jacobians); negatives are round-off
        self.inv_scale = 1.0 / (factor.col_sq_norms[:, None] / n * evals[None, :] + lam)
        self.rotation = factor.rotation

    def __call__(self, res: np.ndarray) -> np.ndarray:
        v = self.rotation
        r = res if v is None else v.T @ res
        with single_thread_blas():  # (q, K) x (K, K): too small for threads to pay
            out = ((r @ self.q) * self.inv_scale) @ self.q.T
        if v is not None:
            out = v @ out
        return out - out.mean(axis=1, keepdims=True)


def pcg(hvp, rhs, precond, rtol, maxiter, image=None):
    """Preconditioned CG on (q, K) arrays.

    ``hvp(d)`` returns ``(H d, B d)``; with an ``image`` buffer (N, K) the images ``B d`` are
    accumulated there (zeroed first; ``B d`` is scaled in place) so that the solution's logit
    change ``B x`` comes for free (at the precision of ``hvp``). Returns
    ``(x, iterations, image)``.
    """
    x = np.zeros_like(rhs)
    if image is not None:
        image.fill(0.0)
    r = rhs.copy()
    z = precond(r)
    d = z.copy()
    rz = float(np.sum(r * z))
    stop = rtol * float(np.linalg.norm(rhs))
    for it in range(1, maxiter + 1):
        hd, bd = hvp(d)
        curv = float(np.sum(d * hd))
        if curv <= 0:  # cannot happen for lam > 0 except through round-off; stop safely
            return x, it, image
        alpha = rz / curv
        x += alpha * d
        if image is not None:
            bd *= bd.dtype.type(alpha)  # bd is hvp's scratch: no (N, K) temporary
            image += bd
        r -= alpha * hd
        if np.linalg.norm(r) <= stop:
            return x, it, image
        z = precond(r)
        rz_new = float(np.sum(r * z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x, maxiter, image
