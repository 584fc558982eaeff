r"""Exact solver for the L2-regularised linear softmax probe, with a KKT certificate.

Problem (soft targets ``T``, shape (K, N), columns on the simplex):

.. math::

    \min_W \; \frac1N \sum_{i=1}^N \mathrm{CE}\big(t_i, \mathrm{softmax}(W x_i)\big)
    + \frac{\lambda}{2} \lVert W \rVert_F^2 .

Stationarity gives ``W = (T - P) X / (lam N)`` (``X`` is (N, p), rows are samples), so the training
outputs are the unique fixed point

.. math::  P = \mathrm{softmax}\big((T - P)\, G / (\lambda N)\big), \qquad G = X X^\top.

The certificate reports the max-abs residual of this equation, evaluated with the *original*
features or Gram matrix, and the gradient norm.

Method
------
Both inputs are reduced to orthogonal "spectral features" ``F`` (N, r) with ``F F^T = G`` and
``F^T F = diag(s)``: from features, ``F = X V`` with ``X^T X = V diag(s) V^T`` (cost O(N p^2));
from a Gram matrix, ``F = U diag(sqrt(mu))`` (cost O(N^3)). The cheaper route is chosen
(``p <= N`` uses the features). The factorisation depends only on ``X`` / ``G`` and is reused
across distillation rounds (:func:`factorize`).

In the coordinates ``Theta`` (K, r), ``W = Theta V^T`` and logits ``Z = Theta F^T``; the
objective is strictly convex (``lam > 0``). We run a truncated Newton method: each step solves
``H s = -g`` by preconditioned conjugate gradients with Hessian-vector products
``H[S] = D_P[S F^T] F / N + lam S`` (``D_P`` the per-sample softmax Jacobians
``diag(p_i) - p_i p_i^T``), preconditioned by the exact K x K diagonal blocks of ``H`` in the
orthogonal basis, ``B_j = sum_i F_ij^2 D_i / N + lam I``, followed by a backtracking line search.

Attainable accuracy
-------------------
The fixed-point residual is evaluated through ``Z' = (T - P) G / (lam N)``. Its floating-point
error is bounded by ``gamma * (|T - P| |G|) / (lam N)`` entrywise (``gamma ~ sqrt(N) eps`` for
pairwise-summed BLAS products), and softmax is 1/2-Lipschitz in the max-norm, so residuals below
``floor = 0.5 * gamma * max(|T - P| |G|) / (lam N)`` are not resolvable. The solver certifies
``residual <= max(tol, floor)`` and records both numbers; ``floor`` only exceeds ``tol = 1e-9`` when
``lam`` is tiny and the logits are huge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from theory.validation import (
    check_finite_matrix,
    check_int,
    check_positive,
    check_psd_spectrum,
    check_symmetric,
    check_targets,
)

__all__ = [
    "Certificate",
    "ConvergenceError",
    "ProbeFactor",
    "ProbeSolution",
    "factorize",
    "fixed_point_residual",
    "log_softmax",
    "solve_probe",
]

_EPS = np.finfo(float).eps


class ConvergenceError(RuntimeError):
    """Raised when the solver cannot certify the KKT fixed point within its iteration budget."""


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Column-wise log-softmax of a (K, M) array via log-sum-exp (no overflow for |z| ~ 1e300)."""
    shifted = logits - logits.max(axis=0, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=0, keepdims=True))


def _softmax(logits: np.ndarray) -> np.ndarray:
    return _flush_subnormal(np.exp(log_softmax(logits)))


def _flush_subnormal(probs: np.ndarray) -> np.ndarray:
    """Set probabilities below the smallest normal double (~2e-308) to 0, in place.

    Changes each entry by < 3e-308, far below any tolerance, and keeps subnormal numbers out of
    BLAS, where they can slow matrix products down by two orders of magnitude.
    """
    probs[probs < np.finfo(float).tiny] = 0.0
    return probs


@dataclass(frozen=True)
class ProbeFactor:
    """Orthogonal spectral features of a training set, reusable across rounds.

    Attributes
    ----------
    spectral : ndarray, shape (N, r)
        ``F`` with ``F F^T = G`` and orthogonal columns.
    sq_norms : ndarray, shape (r,)
        ``F^T F`` diagonal (the nonzero Gram eigenvalues, or those of ``X^T X``).
    rotation : ndarray, shape (p, r) or None
        ``V`` with ``F = X V`` when built from features (primal route), else None.
    features, gram : ndarray or None
        The original input, kept to evaluate the certificate and predictions exactly.
    """

    spectral: np.ndarray
    sq_norms: np.ndarray
    rotation: np.ndarray | None
    features: np.ndarray | None
    gram: np.ndarray | None
    route: str = field(default="primal")

    @property
    def n_samples(self) -> int:
        return self.spectral.shape[0]

    def gram_product(self, m: np.ndarray) -> np.ndarray:
        """``m @ G`` for ``m`` of shape (K, N), using the original features or Gram matrix."""
        if self.gram is not None:
            return m @ self.gram
        return (m @ self.features) @ self.features.T

    def abs_gram_product(self, m: np.ndarray) -> np.ndarray:
        """``|m| @ |G|``-type bound used for the round-off floor (|m| |X| |X|^T for features)."""
        if self.gram is not None:
            return np.abs(m) @ np.abs(self.gram)
        ax = np.abs(self.features)
        return (np.abs(m) @ ax) @ ax.T


def factorize(*, features=None, gram=None) -> ProbeFactor:
    """Build the orthogonal spectral features of ``X`` (N, p) or ``G`` (N, N), the cheaper way.

    From features with ``p <= N``: eigendecomposition of ``X^T X`` (O(N p^2), memory O(N p + p^2),
    never an N x N matrix). From features with ``p > N`` or from a Gram matrix: eigendecomposition
    of ``G`` (O(N^3)); eigenvalues below ``N eps mu_max`` (below the eigensolver's backward error)
    are dropped. Raises ``ValueError`` for non-finite input, a non-symmetric or non-PSD Gram matrix.
    """
    if (features is None) == (gram is None):
        raise ValueError("pass exactly one of features (N, p) or gram (N, N)")
    if features is not None:
        x = check_finite_matrix(features, "features")
        n, p = x.shape
        if p <= n:
            s, v = np.linalg.eigh(x.T @ x)
            s, v = s[::-1], v[:, ::-1]
            s = np.clip(s, 0.0, None)  # X^T X is PSD; negative values are round-off
            return ProbeFactor(x @ v, s, v, x, None, "primal")
        g = x @ x.T
        factor = _factor_gram(0.5 * (g + g.T))
        return ProbeFactor(factor.spectral, factor.sq_norms, None, x, None, "dual")
    g = check_symmetric(gram)
    return _factor_gram(0.5 * (g + g.T))


def _factor_gram(g: np.ndarray) -> ProbeFactor:
    mu, u = np.linalg.eigh(g)
    check_psd_spectrum(mu)
    mu, u = mu[::-1], u[:, ::-1]
    n = g.shape[0]
    keep = mu > n * _EPS * max(float(mu[0]), np.finfo(float).tiny)
    mu, u = mu[keep], u[:, keep]
    return ProbeFactor(u * np.sqrt(mu), mu, None, None, g, "dual")


@dataclass(frozen=True)
class Certificate:
    """KKT certificate of a probe solve.

    Attributes
    ----------
    residual : float
        ``max |P - softmax((T - P) G / (lam N))|`` with the original ``G`` / ``X``.
    gradient_norm : float
        Frobenius norm of the objective's gradient at the returned weights.
    iterations, cg_iterations : int
        Newton steps and total conjugate-gradient iterations.
    target : float
        The residual level certified, ``max(tol, floor)``.
    floor : float
        Round-off floor of the residual evaluation (module docstring).
    output_bound : float
        A-posteriori bound on ``max |P - P*|`` against the exact optimum ``P*``: the objective is
        ``lam``-strongly convex, so ``||W - W*||_F <= ||grad|| / lam``; each logit moves by at most
        ``||W - W*||_F max_i sqrt(G_ii)`` and softmax is 1/2-Lipschitz in the max-norm, giving
        ``0.5 sqrt(max_i G_ii) ||grad|| / lam``, plus ``64 eps (1 + max|Z|)`` for evaluating
        softmax in floating point.
    method : str
    """

    residual: float
    gradient_norm: float
    iterations: int
    cg_iterations: int
    target: float
    floor: float
    output_bound: float
    method: str

    @property
    def converged(self) -> bool:
        return self.residual <= self.target


@dataclass(frozen=True, eq=False)
class ProbeSolution:
    """Solution of one probe training.

    Attributes
    ----------
    outputs : ndarray, shape (K, N)
        Training outputs ``P = softmax(Z)``.
    logits : ndarray, shape (K, N)
    dual : ndarray, shape (K, N)
        ``(T - P) / (lam N)``; the weights are ``W = dual @ X`` and new logits ``dual @ k(x)``.
    weights : ndarray, shape (K, p) or None
        Primal weights when features were given, else None.
    certificate : Certificate
    lam : float
    """

    outputs: np.ndarray
    logits: np.ndarray
    dual: np.ndarray
    weights: np.ndarray | None
    certificate: Certificate
    lam: float
    factor: ProbeFactor = field(repr=False)
    coef: np.ndarray = field(repr=False)

    def predict(self, *, features=None, kernel_rows=None) -> np.ndarray:
        """Outputs ``softmax(W x)`` for new points, shape (K, M).

        Parameters
        ----------
        features : array_like, shape (M, p), optional
            New feature vectors (requires training from features).
        kernel_rows : array_like, shape (M, N), optional
            ``<x_new, x_i>`` against every training point; logits are ``dual @ kernel_rows.T``.
        """
        if (features is None) == (kernel_rows is None):
            raise ValueError("pass exactly one of features (M, p) or kernel_rows (M, N)")
        if kernel_rows is not None:
            rows = check_finite_matrix(kernel_rows, "kernel_rows")
            if rows.shape[1] != self.dual.shape[1]:
                raise ValueError(
                    f"kernel_rows must have N={self.dual.shape[1]} columns, got {rows.shape}"
                )
            return _softmax(self.dual @ rows.T)
        if self.factor.features is None:
            raise ValueError("this probe was trained from a Gram matrix; pass kernel_rows")
        x = check_finite_matrix(features, "features")
        p = self.factor.features.shape[1]
        if x.shape[1] != p:
            raise ValueError(f"features must have p={p} columns, got shape {x.shape}")
        w = self.weights if self.weights is not None else self.dual @ self.factor.features
        return _softmax(w @ x.T)


def fixed_point_residual(outputs, targets, lam, *, factor: ProbeFactor) -> tuple[float, float]:
    """Residual ``max|P - softmax((T - P) G / (lam N))|`` and its round-off floor.

    Returns
    -------
    residual, floor : float
    """
    n = factor.n_samples
    diff = targets - outputs
    z = factor.gram_product(diff) / (lam * n)
    residual = float(np.max(np.abs(outputs - _softmax(z))))
    gamma = 4.0 * math.sqrt(n) * _EPS
    floor = 0.5 * gamma * float(np.max(factor.abs_gram_product(diff))) / (lam * n) + 8 * _EPS
    floor = float(floor)
    return residual, floor


def _check_inputs(targets, lam, features, gram, factor):
    lam = check_positive(lam, "lam")
    given = sum(v is not None for v in (features, gram, factor))
    if given != 1:
        raise ValueError("pass exactly one of features (N, p), gram (N, N) or factor")
    if factor is None:
        factor = factorize(features=features, gram=gram)
    elif not isinstance(factor, ProbeFactor):
        raise ValueError("factor must be a ProbeFactor from simulations.solver.factorize")
    t = check_targets(targets, factor.n_samples)
    return t, lam, factor


def _hess_apply(s, f, probs, lam, n):
    """``H[S] = D_P[S F^T] F / N + lam S`` for S of shape (K, r)."""
    y = s @ f.T
    dy = probs * (y - np.sum(probs * y, axis=0, keepdims=True))
    return dy @ f / n + lam * s


def _block_preconditioner(f_sq, probs, lam, n):
    """Inverses of the diagonal K x K Hessian blocks ``sum_i F_ij^2 D_i / N + lam I``, (r, K, K)."""
    k = probs.shape[0]
    diag = probs @ f_sq / n  # (K, r)
    outer = np.einsum("ki,li->kli", probs, probs).reshape(k * k, -1) @ f_sq / n
    blocks = -outer.reshape(k, k, -1).transpose(2, 0, 1)
    idx = np.arange(k)
    blocks[:, idx, idx] += diag.T + lam
    return np.linalg.inv(blocks)


def _pcg(apply_h, rhs, precond_inv, rtol, maxiter):
    """Preconditioned CG on (K, r) matrices; returns (solution, iterations)."""

    def prec(r):
        return np.einsum("jkl,lj->kj", precond_inv, r)

    x = np.zeros_like(rhs)
    r = rhs.copy()
    z = prec(r)
    d = z.copy()
    rz = float(np.sum(r * z))
    stop = rtol * float(np.linalg.norm(rhs))
    for it in range(1, maxiter + 1):
        hd = apply_h(d)
        curv = float(np.sum(d * hd))
        if curv <= 0:  # cannot happen for lam > 0 except through round-off; stop safely
            return x, it
        alpha = rz / curv
        x += alpha * d
        r -= alpha * hd
        if np.linalg.norm(r) <= stop:
            return x, it
        z = prec(r)
        rz_new = float(np.sum(r * z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x, maxiter


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
) -> ProbeSolution:
    r"""Train the L2-regularised softmax probe exactly and certify the KKT fixed point.

    Parameters
    ----------
    targets : array_like, shape (K, N)
        Soft targets, columns on the simplex.
    lam : float
        ``lam > 0``.
    features : array_like, shape (N, p), optional
    gram : array_like, shape (N, N), optional
    factor : ProbeFactor, optional
        Precomputed :func:`factorize` output (reuse across rounds). Exactly one of the three.
    init : ProbeSolution, optional
        Warm start from a solution computed with the same ``factor``.
    tol : float
        Required fixed-point residual (raised to the round-off floor where that is larger).
    max_iter : int
        Newton iterations before :class:`ConvergenceError`.

    Returns
    -------
    ProbeSolution
        Outputs ``P`` (K, N) with ``max|P - softmax((T - P) G / (lam N))| <= certificate.target``.
    """
    t, lam, factor = _check_inputs(targets, lam, features, gram, factor)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    f, n = factor.spectral, factor.n_samples
    f_sq = f**2
    k, r = t.shape[0], f.shape[1]
    if init is not None:
        if init.factor is not factor or init.coef.shape != (k, r):
            raise ValueError("init must be a ProbeSolution computed with the same factor")
        theta = init.coef.copy()
    else:
        theta = np.zeros((k, r))

    def evaluate(th):
        z = th @ f.T
        logp = log_softmax(z)
        obj = float(np.mean(-np.sum(t * logp, axis=0))) + 0.5 * lam * float(np.sum(th * th))
        return z, logp, obj

    z, logp, obj = evaluate(theta)
    cg_total = 0
    best_res = np.inf
    stalls = 0
    it = 0
    while True:
        probs = _flush_subnormal(np.exp(logp))
        grad = (probs - t) @ f / n + lam * theta
        gnorm = float(np.linalg.norm(grad))
        res, floor = fixed_point_residual(probs, t, lam, factor=factor)
        target = max(tol, floor)
        if res <= target:
            break
        # A stall is a step that neither lowers the objective beyond round-off nor halves the
        # best residual so far; five in a row mean round-off has won.
        if res < 0.5 * best_res:
            stalls = 0
        best_res = min(best_res, res)
        if it >= max_iter or stalls >= 5:
            raise ConvergenceError(
                f"probe solve did not converge: residual {res:.3g} > target {target:.3g} after "
                f"{it} Newton steps (gradient norm {gnorm:.3g}, lam={lam:g}); "
                "try a larger max_iter or a larger lam"
            )
        it += 1
        # Eisenstat-Walker-type forcing: loose solves far away, tight near the solution.
        rtol = min(0.1, math.sqrt(gnorm)) if gnorm > 0 else 0.1
        precond = _block_preconditioner(f_sq, probs, lam, n)
        step, n_cg = _pcg(
            lambda s, pr=probs: _hess_apply(s, f, pr, lam, n),
            -grad,
            precond,
            max(rtol, 1e-14),
            maxiter=max(50, 5 * r * k),
        )
        cg_total += n_cg
        slope = float(np.sum(grad * step))
        alpha = 1.0
        # Slack for round-off in the objective (~eps |f|), else Armijo stalls near the optimum.
        slack = 16 * _EPS * max(1.0, abs(obj))
        while True:
            z_new, logp_new, obj_new = evaluate(theta + alpha * step)
            if obj_new <= obj + 1e-4 * alpha * slope + slack:
                break
            alpha *= 0.5
            if alpha < 1e-12:
                raise ConvergenceError(
                    f"probe solve: line search failed at residual {res:.3g} (lam={lam:g})"
                )
        theta = theta + alpha * step
        progressed = obj_new < obj - slack
        z, logp, obj = z_new, logp_new, obj_new
        stalls = 0 if progressed else stalls + 1

    probs = _flush_subnormal(np.exp(logp))
    weights = None
    if factor.rotation is not None:
        weights = theta @ factor.rotation.T
    dual = (t - probs) / (lam * n)
    if weights is None and factor.features is not None:
        weights = dual @ factor.features
    max_diag = float(np.max(f_sq.sum(axis=1))) if r else 0.0
    output_bound = 0.5 * math.sqrt(max_diag) * gnorm / lam + 64 * _EPS * (1 + np.abs(z).max())
    cert = Certificate(
        residual=res,
        gradient_norm=gnorm,
        iterations=it,
        cg_iterations=cg_total,
        target=target,
        floor=floor,
        output_bound=float(output_bound),
        method=f"newton-cg ({factor.route})",
    )
    return ProbeSolution(probs, z, dual, weights, cert, lam, factor, theta)
