r"""The PLL student with candidate-set losses: exact solves with first- and second-order reports.

The student sees, for every training point ``i``, a candidate set ``S_i = {a_i, b_i}`` (by default
the teacher's top-2 labels, :func:`theory.partial_labels.top2_indices`) and minimises, over the
weights of the linear softmax probe ``p_i = softmax(W x_i)``,

.. math::

    J(W) = \frac1N \sum_{i=1}^N \ell(z_i; S_i) + \frac{\lambda}{2} \lVert W \rVert_F^2,
    \qquad z_i = W x_i, \quad s_i = \sum_{j \in S_i} p_{ij},

with one of the losses (``loss=``):

``'ce'``
    cross-entropy on the two-hot target ``tau_i = (e_a + e_b)/2``: ``-(log p_a + log p_b)/2`` --
    the theory's PLL student (:func:`simulations.distill.train_pll`); strongly convex, solved by
    :func:`simulations.solver.solve_probe`.
``'candidate'``
    candidate log-likelihood ``-log s_i``.
``'gce'``
    generalised cross-entropy of the candidate *set*, ``(1 - s_i^q)/q``, ``q in (0, 1]``.
``'gce-reference'``
    the public reference code's form (``partial_loss`` in its ``util.py``): the mean over the two
    candidates of ``(1 - p_a^q)/q``. This is what the paper's experiments run; it is **not** the
    set loss ``'gce'``: at a fixed candidate mass ``s = p_a + p_b`` it is smallest for the even
    split ``p_a = p_b = s/2`` (``p^q`` is concave), like two-hot CE, while ``'gce'`` and
    ``'candidate'`` depend on ``s`` only and leave the split to the features. ``q -> 0`` turns
    ``'gce-reference'`` into ``'ce'`` and ``'gce'`` into ``'candidate'``
    (``(1 - s^q)/q -> -log s``).

Gradients and Hessians in the logits (``D_v = diag(v) - v v^T``; ``r_i = p_i 1_{S_i} / s_i`` the
model's own distribution restricted to the candidates):

=================  ==============================  ============================================
loss               ``g_i = d ell / d z_i``          ``H_i = d^2 ell / d z_i^2``
=================  ==============================  ============================================
``ce``             ``p - tau``                      ``D_p``
``candidate``      ``p - r``                        ``D_p - D_r``
``gce``            ``s^q (p - r)``                  ``s^q [D_p - D_r - q (p - r)(p - r)^T]``
``gce-reference``  ``sum_a p_a^q (p - e_a) / 2``    ``sum_a p_a^q [D_p - q u_a u_a^T] / 2``
=================  ==============================  ============================================

(``u_a = p - e_a``.)

``D_r = r_a r_b (e_a - e_b)(e_a - e_b)^T`` is rank one, so the candidate loss is a difference of two
log-sum-exp functions and not convex: at ``s = 0.9``, ``r = (1/2, 1/2)`` the curvature along
``e_a - e_b`` is ``s(1 - s) + 4 r_a r_b (s^2 - 1) = -0.1``. The ``'candidate'`` stationarity
``p = r`` on the candidates is that of cross-entropy with the *self-referential* target ``r``
(an EM fixed point).

Stationarity and certificate
----------------------------
With ``Gamma = [g_1, ..., g_N]`` (K, N) the gradient of ``J`` is ``Gamma X / N + lam W``, so every
stationary point satisfies ``W = -Gamma X / (lam N)``: the logits solve the kernel-form equation
``Z = -Gamma(Z) G / (lam N)`` with ``G = X X^T`` (``Gamma`` depends on ``Z`` only through ``P``).
The certificate reports, evaluated with the *original* features / Gram matrix as in
:mod:`simulations.solver`,

* ``residual = max |P - softmax(-Gamma(P) G / (lam N))|`` (the solver's fixed-point residual; for
  ``'ce'`` ``-Gamma = T - P`` and it is exactly :class:`simulations.solver.Certificate.residual`),
  certified ``<= max(tol, floor)`` with the solver's round-off ``floor``;
* ``gradient_norm``, the Frobenius norm of ``grad J`` in the orthogonal coordinates below;
* the **second-order test**: the smallest eigenvalue of the Hessian of ``J`` at the solution. If it
  is positive the point is a strict local minimum; for ``'ce'`` it is the global one
  (``H >= lam I``).
  Computed (``hessian=``) from a cheap rigorous lower bound first -- ``H_i >= c_i I`` with
  ``c_i = -2 r_a r_b`` (candidate), ``-s^q (2 r_a r_b + q ||p - r||^2)`` (gce),
  ``-sum_a p_a^q q ||p - e_a||^2 / 2`` (gce-reference), so ``lambda_min(H) >= lam +
  lambda_min(F^T diag(c) F) / N`` (an ``r x r`` eigenproblem) -- and, when that bound is not
  positive, exactly: the dense Hessian for ``K r <= 3000``, Lanczos (ARPACK) otherwise.

Method
------
The coordinates are those of :func:`simulations.solver.factorize`: orthogonal spectral features
``F`` (N, r), ``W = Theta V^T`` (primal route) and logits ``Z = Theta F^T``, with ``||W||_F =
||Theta||_F`` for the minimum-norm ``W``. Starting from the teacher (as the reference code does), a
line-search truncated Newton method: preconditioned conjugate gradients on ``H s = -g`` with
Hessian-vector products ``H[S] = (H_i (S F^T)_i)_i F / N + lam S``, stopped at negative curvature
(then the current CG iterate, or the preconditioned steepest-descent direction on the first CG step,
is used: always a descent direction), preconditioned by the exact ``K x K`` diagonal blocks of the
positive part ``w_i D_p`` of the Hessian (``w_i = 1``, ``s^q`` or ``mean_a p_a^q``), then Armijo
backtracking. If the stationary point found is a saddle (negative Hessian eigenvalue), the solver
steps along the negative-curvature eigenvector and continues (``escapes`` in the certificate).
It raises :class:`simulations.solver.ConvergenceError` rather than return an unconverged point.

Cost per Newton step: O(N K r) per Hessian-vector product, O(r K^3 + N K^2 r) for the
preconditioner; memory O(N K + N r).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from simulations.solver import (
    ConvergenceError,
    ProbeFactor,
    ProbeSolution,
    factorize,
    log_softmax,
    new_point_logits,
    solve_probe,
)
from theory.names import DEFAULT_Q
from theory.names import LOSSES as NAMED_LOSSES
from theory.partial_labels import top2_indices
from theory.validation import (
    CERTIFICATE_RTOL_CAP,
    check_finite_matrix,
    check_int,
    check_positive,
)

__all__ = [
    "DEFAULT_Q",
    "LOSSES",
    "PLLCertificate",
    "PLLStudent",
    "candidate_set_loss",
    "check_candidates",
    "train_pll_student",
]

#: Candidate-set losses (module docstring; :data:`theory.names.LOSSES`). ``'gce-reference'`` is
#: the reference code's form. ``DEFAULT_Q`` (the reference code's ``q``) is the registry's.
LOSSES = NAMED_LOSSES
#: Largest ``K r`` for which the Hessian is formed densely for the second-order test (72 MB).
DENSE_HESSIAN_MAX = 3000
#: Cap on ARPACK's implicit restarts in the Lanczos second-order test (then 'not converged').
LANCZOS_MAX_RESTARTS = 300

_EPS = np.finfo(float).eps
_TINY = np.finfo(float).tiny


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def check_loss(loss) -> str:
    """Return ``loss`` if it is one of :data:`LOSSES`, else raise ``ValueError``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def check_q(q) -> float:
    """GCE exponent ``q in (0, 1]``."""
    q = check_positive(q, "q")
    if q > 1:
        raise ValueError(f"q must lie in (0, 1] (GCE exponent), got {q!r}")
    return q


def check_candidates(candidates, n_samples: int, n_classes: int) -> np.ndarray:
    """Validate candidate sets: integer array of shape (2, N), entries in ``[0, K)``, distinct.

    Returns
    -------
    ndarray of int64, shape (2, N)
    """
    cand = np.asarray(candidates)
    if cand.ndim != 2 or cand.shape != (2, n_samples):
        raise ValueError(
            f"candidates must have shape (2, N) = (2, {n_samples}), got shape {cand.shape}"
        )
    if not np.issubdtype(cand.dtype, np.integer):
        if not (np.all(np.isfinite(cand)) and np.all(np.mod(cand, 1) == 0)):
            raise ValueError("candidates must be integer class indices")
    cand = cand.astype(np.int64)
    if cand.min() < 0 or cand.max() >= n_classes:
        raise ValueError(
            f"candidates must lie in [0, {n_classes}) (n_classes={n_classes}), "
            f"got range [{cand.min()}, {cand.max()}]"
        )
    same = np.flatnonzero(cand[0] == cand[1])
    if same.size:
        raise ValueError(
            f"candidates must be two distinct classes per sample; sample {int(same[0])} has "
            f"{int(cand[0, same[0]])} twice"
        )
    return cand


# --------------------------------------------------------------------------------------------
# Per-sample losses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _State:
    """Per-sample quantities at one set of logits (all arrays (K, N) or (N,))."""

    probs: np.ndarray
    values: np.ndarray  # ell_i, (N,)
    grad: np.ndarray  # Gamma, (K, N)
    weight: np.ndarray  # w_i of the PSD part w_i D_p, (N,)
    restricted: np.ndarray | None  # r, (K, N) (candidate, gce)
    coef: np.ndarray | None  # s^q (gce) or p_a^q / 2 per candidate (gce-reference, (2, N))


def _dv(v, y):
    """``D_v y = v * (y - <v, y>)`` column-wise for (K, M) arrays."""
    return v * (y - np.sum(v * y, axis=0, keepdims=True))


class _Loss:
    """Values, gradients and Hessian actions of one candidate-set loss (module docstring table)."""

    def __init__(self, name: str, cand: np.ndarray, q: float, n_classes: int):
        self.name, self.cand, self.q, self.k = name, cand, q, n_classes
        n = cand.shape[1]
        self.cols = np.arange(n)
        self.mask = np.zeros((n_classes, n), dtype=bool)
        self.mask[cand[0], self.cols] = True
        self.mask[cand[1], self.cols] = True

    def state(self, logp: np.ndarray) -> _State:
        probs = np.exp(logp)
        probs[probs < _TINY] = 0.0  # keep subnormals out of BLAS (see simulations.solver)
        la, lb = logp[self.cand[0], self.cols], logp[self.cand[1], self.cols]
        n = self.cols.size
        if self.name == "ce":
            tau = 0.5 * self.mask
            return _State(probs, -0.5 * (la + lb), probs - tau, np.ones(n), None, None)
        if self.name == "gce-reference":
            pq = np.exp(self.q * np.stack([la, lb]))  # p_a^q, (2, N)
            # (1 - p^q)/q = -expm1(q log p)/q: accurate for small q log p (no cancellation).
            values = -0.5 * (np.expm1(self.q * la) + np.expm1(self.q * lb)) / self.q
            grad = 0.5 * pq.sum(axis=0) * probs
            grad[self.cand[0], self.cols] -= 0.5 * pq[0]
            grad[self.cand[1], self.cols] -= 0.5 * pq[1]
            return _State(probs, values, grad, 0.5 * pq.sum(axis=0), None, 0.5 * pq)
        log_s = np.logaddexp(la, lb)  # log of the candidate mass s
        # r = p 1_S / s, formed in logs; off the candidates log r = -inf (no overflow in exp).
        restricted = np.exp(np.where(self.mask, logp - log_s, -np.inf))
        if self.name == "candidate":
            return _State(probs, -log_s, probs - restricted, np.ones(n), restricted, None)
        sq = np.exp(self.q * log_s)  # s^q
        values = -np.expm1(self.q * log_s) / self.q
        return _State(probs, values, sq * (probs - restricted), sq, restricted, sq)

    def hvp(self, st: _State, y: np.ndarray) -> np.ndarray:
        """``H_i y_i`` for every column of ``y`` (K, N)."""
        p = st.probs
        if self.name == "ce":
            return _dv(p, y)
        if self.name == "gce-reference":
            out = st.weight * _dv(p, y)
            for j in range(2):
                u = p.copy()
                u[self.cand[j], self.cols] -= 1.0  # p - e_a
                out -= (self.q * st.coef[j] * np.sum(u * y, axis=0)) * u
            return out
        base = _dv(p, y) - _dv(st.restricted, y)
        if self.name == "candidate":
            return base
        u = p - st.restricted
        return st.coef * (base - self.q * np.sum(u * y, axis=0) * u)

    def hessians(self, st: _State, idx=slice(None)) -> np.ndarray:
        """Dense per-sample Hessians of the samples ``idx``, shape (M, K, K)."""
        p = st.probs[:, idx].T  # (M, K)
        cand, cols = self.cand[:, idx], np.arange(p.shape[0])
        eye = np.eye(self.k)

        def d(v):
            return v[:, :, None] * eye - v[:, :, None] * v[:, None, :]

        if self.name == "ce":
            return d(p)
        if self.name == "gce-reference":
            out = st.weight[idx, None, None] * d(p)
            for j in range(2):
                u = p.copy()
                u[cols, cand[j]] -= 1.0
                out -= (self.q * st.coef[j, idx])[:, None, None] * u[:, :, None] * u[:, None, :]
            return out
        r = st.restricted[:, idx].T
        base = d(p) - d(r)
        if self.name == "candidate":
            return base
        u = p - r
        return st.coef[idx, None, None] * (base - self.q * u[:, :, None] * u[:, None, :])

    def curvature_floor(self, st: _State) -> np.ndarray:
        """``c_i <= 0`` with ``H_i >= c_i I`` (module docstring), shape (N,)."""
        if self.name == "ce":
            return np.zeros(self.cols.size)
        if self.name == "gce-reference":
            out = np.zeros(self.cols.size)
            for j in range(2):
                u = st.probs.copy()
                u[self.cand[j], self.cols] -= 1.0
                out -= self.q * st.coef[j] * np.sum(u * u, axis=0)
            return out
        r = st.restricted
        ra, rb = r[self.cand[0], self.cols], r[self.cand[1], self.cols]
        if self.name == "candidate":
            return -2.0 * ra * rb
        u = st.probs - r
        return -st.coef * (2.0 * ra * rb + self.q * np.sum(u * u, axis=0))


def candidate_set_loss(logits, candidates, *, loss="gce", q=DEFAULT_Q):
    """Per-sample loss values and logit gradients of a candidate-set loss (module docstring).

    Parameters
    ----------
    logits : array_like, shape (K, N)
    candidates : array_like of int, shape (2, N)
    loss : {'ce', 'candidate', 'gce', 'gce-reference'}
    q : float
        GCE exponent in ``(0, 1]`` (``'gce'``, ``'gce-reference'``).

    Returns
    -------
    values : ndarray, shape (N,)
        ``ell(z_i; S_i)``.
    gradient : ndarray, shape (K, N)
        ``Gamma``, column ``i`` is ``d ell / d z_i``.
    """
    z = check_finite_matrix(logits, "logits")
    loss = check_loss(loss)
    q = check_q(q)
    cand = check_candidates(candidates, z.shape[1], z.shape[0])
    st = _Loss(loss, cand, q, z.shape[0]).state(log_softmax(z))
    return st.values, st.grad


# --------------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PLLCertificate:
    """First- and second-order report of a PLL student solve.

    Attributes
    ----------
    residual : float
        ``max |P - softmax(-Gamma(P) G / (lam N))|`` with the original ``X`` / ``G``.
    logit_residual : float
        ``max |Z + Gamma(P) G / (lam N)|`` (the same equation on the logits).
    gradient_norm : float
        Frobenius norm of ``grad J`` in the orthogonal coordinates.
    converged : bool
        ``residual <= target`` (a stationary point to the requested accuracy).
    method : str
    target, floor : float
        Certified residual level ``max(tol, min(floor, CERTIFICATE_RTOL_CAP))``
        (:data:`theory.validation.CERTIFICATE_RTOL_CAP`) and the round-off floor.
    iterations, cg_iterations : int
        Newton steps and conjugate-gradient iterations.
    objective, initial_objective : float
        ``J`` at the solution and at the teacher's start.
    min_hessian_eigenvalue : float
        Smallest eigenvalue of the Hessian of ``J`` at the solution, or a rigorous lower bound on it
        (``hessian_method`` says which); NaN if not computed.
    hessian_method : str
        ``'convex'`` (``'ce'``: ``H >= lam I``, value ``lam``), ``'lower bound'``, ``'dense'``,
        ``'lanczos'``, ``'skipped'`` or ``'lanczos (not converged)'``.
    stationary_point : str
        ``'global minimum'`` (``'ce'``), ``'local minimum'`` (smallest eigenvalue, or its lower
        bound, ``> 0``), ``'saddle point'``, ``'degenerate'`` (smallest eigenvalue within round-off
        of 0: second-order test inconclusive) or ``'unknown'`` (not computed).
    escapes : int
        Saddle points left along a negative-curvature direction before the returned point.
    """

    residual: float
    logit_residual: float
    gradient_norm: float
    converged: bool
    method: str
    target: float
    floor: float
    iterations: int
    cg_iterations: int
    objective: float
    initial_objective: float
    min_hessian_eigenvalue: float
    hessian_method: str
    stationary_point: str
    escapes: int = 0


@dataclass(frozen=True, eq=False)
class PLLStudent:
    """A trained PLL student.

    Attributes
    ----------
    outputs : ndarray, shape (K, N)
        Training outputs ``softmax(Z)``.
    logits : ndarray, shape (K, N)
        Training logits ``Z = W X^T``.
    weights : ndarray, shape (K, p) or None
        Primal weights when the features are known, else None.
    dual : ndarray, shape (K, N)
        ``-Gamma / (lam N)``: at the stationary point ``W = dual @ X`` and new logits are
        ``dual @ k(x)``.
    certificate : PLLCertificate
    loss : str
    q : float
    candidates : ndarray of int, shape (2, N)
    lam : float
    """

    outputs: np.ndarray
    logits: np.ndarray
    weights: np.ndarray | None
    dual: np.ndarray
    certificate: PLLCertificate
    loss: str
    q: float
    candidates: np.ndarray
    lam: float
    factor: ProbeFactor = field(repr=False)
    coef: np.ndarray = field(repr=False)

    def decision_function(self, features=None, kernel_rows=None) -> np.ndarray:
        """Logits ``W x`` for new points, shape (K, M).

        Parameters
        ----------
        features : array_like, shape (M, p), optional
            New feature vectors (requires training from features).
        kernel_rows : array_like, shape (M, N), optional
            ``<x_new, x_i>`` against every training point; logits ``dual @ kernel_rows.T``.
        """
        return new_point_logits(self.dual, self.weights, features=features, kernel_rows=kernel_rows)

    def predict(self, features=None, kernel_rows=None) -> np.ndarray:
        """Outputs ``softmax(W x)`` for new points, shape (K, M) (arguments as
        :meth:`decision_function`)."""
        probs = np.exp(log_softmax(self.decision_function(features, kernel_rows)))
        probs[probs < _TINY] = 0.0
        return probs


# --------------------------------------------------------------------------------------------
# Solver
# --------------------------------------------------------------------------------------------


def _residuals(loss: _Loss, st: _State, logits, lam, factor: ProbeFactor):
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


def _block_preconditioner(f_sq, probs, weight, lam, n):
    """Inverses of ``sum_i F_ij^2 w_i D_{p_i} / N + lam I`` (r, K, K): PD for any loss."""
    k = probs.shape[0]
    wp = probs * weight
    diag = wp @ f_sq / n
    outer = (np.einsum("ki,li->kli", wp, probs).reshape(k * k, -1) @ f_sq) / n
    blocks = -outer.reshape(k, k, -1).transpose(2, 0, 1)
    idx = np.arange(k)
    blocks[:, idx, idx] += diag.T + lam
    return np.linalg.inv(blocks)


def _truncated_cg(apply_h, grad, precond_inv, rtol, maxiter):
    """Preconditioned CG on ``H s = -g`` stopped at negative curvature (Steihaug, no radius).

    Returns ``(step, iterations, negative_curvature)``; the step is a descent direction.
    """

    def prec(v):
        return np.einsum("jkl,lj->kj", precond_inv, v)

    x = np.zeros_like(grad)
    r = -grad
    z = prec(r)
    d = z.copy()
    rz = float(np.sum(r * z))
    stop = rtol * float(np.linalg.norm(grad))
    for it in range(1, maxiter + 1):
        hd = apply_h(d)
        curv = float(np.sum(d * hd))
        if curv <= 1e-14 * float(np.sum(d * d)):
            # Negative (or zero) curvature: the current iterate is a descent direction (CG
            # iterates decrease the quadratic model monotonically); on the first step use the
            # preconditioned steepest-descent direction.
            return (x if it > 1 else z), it, True
        alpha = rz / curv
        x += alpha * d
        r -= alpha * hd
        if np.linalg.norm(r) <= stop:
            return x, it, False
        z = prec(r)
        rz_new = float(np.sum(r * z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return x, maxiter, False


def _orthogonal(factor: ProbeFactor):
    """Orthogonal spectral features ``F`` (N, r), ``s = diag(F^T F)`` and ``V`` with ``F = X V``.

    The students work in coordinates ``Theta`` with logits ``Theta F^T`` and ``F^T F`` diagonal,
    whatever route the solver's factorisation took (:func:`simulations.solver.factorize`): the
    Gram route's basis ``U diag(sqrt(mu))`` is already orthogonal; from features ``F = X V`` with
    ``X^T X = V diag(s) V^T`` (reusing the solver's ``V`` when it has one). Cached on the factor.
    """

    def compute():
        if factor.route == "dual":
            return factor.basis, np.asarray(factor.col_sq_norms, dtype=float), None
        x = factor.features
        if factor.route == "spectral" and factor.rotation is not None:
            rot, sq = factor.rotation, np.asarray(factor.col_sq_norms, dtype=float)
        else:
            sq, rot = np.linalg.eigh(x.T @ x)
            sq, rot = np.clip(sq[::-1], 0.0, None), rot[:, ::-1]
        return x @ rot, sq, rot

    return factor.cached("pll_orthogonal", compute)


class _Problem:
    """Objective, gradient and Hessian action of ``J`` in the coordinates ``Theta`` (K, r)."""

    def __init__(self, loss: _Loss, factor: ProbeFactor, lam: float):
        self.loss, self.factor, self.lam = loss, factor, lam
        self.f, self.sq_norms, self.rotation = _orthogonal(factor)
        self.n = factor.n_samples

    def evaluate(self, theta):
        z = theta @ self.f.T
        st = self.loss.state(log_softmax(z))
        obj = float(np.mean(st.values)) + 0.5 * self.lam * float(np.sum(theta * theta))
        return z, st, obj

    def gradient(self, theta, st):
        return st.grad @ self.f / self.n + self.lam * theta

    def hvp(self, st, s):
        return self.loss.hvp(st, s @ self.f.T) @ self.f / self.n + self.lam * s


def _second_order(problem: _Problem, st: _State, theta_shape, hessian: str):
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


def _eig_tolerance(problem: _Problem) -> float:
    """Round-off level of a Hessian eigenvalue: ~ K r eps times the Hessian's norm bound.

    ``||H|| <= lam + max_j s_j / N * max_i ||H_i||`` and ``||H_i|| <= 2`` for these losses (``D_v``
    has norm ``<= 1``, the rank-one terms ``<= q ||p - e||^2 <= 2``).
    """
    s_max = float(problem.sq_norms.max()) if problem.sq_norms.size else 0.0
    scale = problem.lam + 2.0 * s_max / problem.n
    return 1e3 * _EPS * scale * max(1, problem.f.shape[1])


def _classify(value: float, how: str, tol: float) -> str:
    if how == "convex":
        return "global minimum"
    if math.isnan(value):
        return "unknown"
    if how == "lower bound" or value > tol:
        return "local minimum"
    if value < -tol:
        return "saddle point"
    return "degenerate"


def _initial_coef(teacher: ProbeSolution, factor: ProbeFactor, k: int) -> np.ndarray:
    """Teacher's coordinates ``Theta`` (K, r) in ``factor``'s orthogonal features.

    ``Theta = Z F diag(1/s)``: exact, because the teacher's training logits ``Z = W X^T`` lie in
    the row space of ``F^T`` (least squares for a teacher trained on other features).
    """
    z = np.asarray(teacher.logits, dtype=float)
    if z.shape != (k, factor.n_samples):
        raise ValueError(
            f"the teacher has {z.shape[1]} training samples but the features / gram have "
            f"{factor.n_samples}"
        )
    f, s, _ = _orthogonal(factor)
    inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 0)
    return (z @ f) * inv


def _solve_nonconvex(loss, factor, lam, theta, tol, max_iter, hessian, max_escapes=5):
    problem = _Problem(loss, factor, lam)
    f = problem.f
    f_sq = f**2
    k, r = theta.shape
    z, st, obj = problem.evaluate(theta)
    obj0 = obj
    it = cg_total = escapes = 0
    best_res, stalls = np.inf, 0
    while True:
        grad = problem.gradient(theta, st)
        gnorm = float(np.linalg.norm(grad))
        res, logit_res, floor = _residuals(loss, st, z, lam, factor)
        # The round-off floor raises the target, never above CERTIFICATE_RTOL_CAP (outputs are
        # O(1) from uniform here): a residual round-off does not resolve is not certified.
        target = max(tol, min(floor, CERTIFICATE_RTOL_CAP))
        if res <= target:
            min_eig, how, vec = _second_order(problem, st, (k, r), hessian)
            kind = _classify(min_eig, how, _eig_tolerance(problem))
            if kind != "saddle point" or vec is None or escapes >= max_escapes:
                break
            # Leave the saddle along the negative-curvature eigenvector: J(theta + t v) ~
            # J + t^2 min_eig / 2 for either sign; take the sign and length that decrease J.
            escapes += 1
            moved = False
            for t in (1.0, 0.3, 0.1, 0.03, 0.01):
                for sign in (1.0, -1.0):
                    cand = theta + sign * t * vec * max(1.0, float(np.linalg.norm(theta)))
                    z_c, st_c, obj_c = problem.evaluate(cand)
                    if obj_c < obj - 16 * _EPS * max(1.0, abs(obj)):
                        theta, z, st, obj, moved = cand, z_c, st_c, obj_c, True
                        break
                if moved:
                    break
            if not moved:
                break
            best_res, stalls = np.inf, 0
            continue
        if res < 0.5 * best_res:
            stalls = 0
        best_res = min(best_res, res)
        if it >= max_iter or stalls >= 5:
            raise ConvergenceError(
                f"PLL student ({loss.name}) did not converge: residual {res:.3g} > target "
                f"{target:.3g} after {it} Newton steps (gradient norm {gnorm:.3g}, lam={lam:g})"
            )
        it += 1
        rtol = min(0.1, math.sqrt(gnorm)) if gnorm > 0 else 0.1
        precond = _block_preconditioner(f_sq, st.probs, st.weight, lam, problem.n)
        step, n_cg, _ = _truncated_cg(
            lambda s, st_=st: problem.hvp(st_, s),
            grad,
            precond,
            max(rtol, 1e-14),
            maxiter=max(50, 5 * r * k),
        )
        cg_total += n_cg
        slope = float(np.sum(grad * step))
        if slope >= 0:  # cannot happen in exact arithmetic (descent direction); be safe
            step, slope = -grad, -(gnorm**2)
        alpha = 1.0
        slack = 16 * _EPS * max(1.0, abs(obj))
        while True:
            z_new, st_new, obj_new = problem.evaluate(theta + alpha * step)
            if obj_new <= obj + 1e-4 * alpha * slope + slack:
                break
            alpha *= 0.5
            if alpha < 1e-12:
                raise ConvergenceError(
                    f"PLL student ({loss.name}): line search failed at residual {res:.3g} "
                    f"(lam={lam:g})"
                )
        theta = theta + alpha * step
        progressed = obj_new < obj - slack
        z, st, obj = z_new, st_new, obj_new
        stalls = 0 if progressed else stalls + 1

    cert = PLLCertificate(
        residual=res,
        logit_residual=logit_res,
        gradient_norm=gnorm,
        converged=bool(res <= target),
        method=f"truncated newton-cg ({factor.route})",
        target=target,
        floor=floor,
        iterations=it,
        cg_iterations=cg_total,
        objective=obj,
        initial_objective=obj0,
        min_hessian_eigenvalue=min_eig,
        hessian_method=how,
        stationary_point=kind,
        escapes=escapes,
    )
    return theta, z, st, cert


def train_pll_student(
    teacher: ProbeSolution,
    lam,
    *,
    loss: str = "ce",
    q: float = DEFAULT_Q,
    candidates=None,
    features=None,
    gram=None,
    factor: ProbeFactor | None = None,
    tol: float = 1e-9,
    max_iter: int = 200,
    hessian: str = "auto",
) -> PLLStudent:
    r"""Train the PLL student with a candidate-set loss, exactly, from the teacher.

    Parameters
    ----------
    teacher : ProbeSolution
        The round-0 probe (e.g. ``self_distill(...).solutions[0]``); the start of the solve and,
        by default, the source of the candidates and of the features.
    lam : float
        ``lam > 0`` of the penalty ``(lam/2) ||W||^2``.
    loss : {'ce', 'candidate', 'gce', 'gce-reference'}
        Module docstring. ``'ce'`` is the theory's student (strongly convex).
    q : float, default 0.7
        GCE exponent in ``(0, 1]``; ignored by ``'ce'`` and ``'candidate'``.
    candidates : array_like of int, shape (2, N), optional
        Two distinct classes per sample; default the teacher's top-2
        (:func:`theory.partial_labels.top2_indices` of its outputs, shared tie rule).
    features, gram, factor
        At most one: the training features (N, p), Gram matrix (N, N) or a
        :func:`simulations.solver.factorize` output; default the teacher's own factorisation.
    tol : float
        Fixed-point residual to certify (raised to the round-off floor where that is larger).
    max_iter : int
        Newton steps before :class:`simulations.solver.ConvergenceError`.
    hessian : {'auto', 'dense', 'lanczos', 'none'}
        Second-order test at the solution (module docstring); ``'auto'`` tries the cheap lower
        bound, then the dense Hessian if ``K r <= 3000`` (O(N K^2 r^2 + (K r)^3) time), else
        Lanczos (a few hundred to a few thousand Hessian-vector products of O(N K r) each).
        ``'dense'`` refuses ``K r > 3000``; ``'none'`` skips the test (``stationary_point`` is
        then ``'unknown'`` for the non-convex losses).

    Returns
    -------
    PLLStudent

    Raises
    ------
    ValueError
        Bad ``lam``, ``loss``, ``q``, candidates, or data that does not match the teacher.
    simulations.solver.ConvergenceError
        If the stationarity residual cannot be certified.
    """
    if not isinstance(teacher, ProbeSolution):
        raise ValueError("teacher must be a ProbeSolution (e.g. self_distill(...).solutions[0])")
    lam = check_positive(lam, "lam")
    loss = check_loss(loss)
    q = check_q(q)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    if hessian not in ("auto", "dense", "lanczos", "none"):
        raise ValueError(f"hessian must be 'auto', 'dense', 'lanczos' or 'none', got {hessian!r}")
    if sum(v is not None for v in (features, gram, factor)) > 1:
        raise ValueError("pass at most one of features (N, p), gram (N, N) or factor")
    if factor is None:
        factor = (
            teacher.factor
            if features is None and gram is None
            else factorize(features=features, gram=gram)
        )
    elif not isinstance(factor, ProbeFactor):
        raise ValueError("factor must be a ProbeFactor from simulations.solver.factorize")
    k, n = teacher.outputs.shape
    rank = _orthogonal(factor)[0].shape[1]
    if hessian == "dense" and k * rank > DENSE_HESSIAN_MAX:
        raise ValueError(
            f"hessian='dense' needs K r <= {DENSE_HESSIAN_MAX} (a (K r)^2 matrix); here K r = "
            f"{k * rank}: use hessian='lanczos' or 'auto'"
        )
    if factor.n_samples != n:
        raise ValueError(
            f"the teacher has {n} training samples but the features / gram have {factor.n_samples}"
        )
    if candidates is None:
        cand = top2_indices(teacher.logits)  # decide from logits (issue 11)
    else:
        cand = check_candidates(candidates, n, k)
    loss_fn = _Loss(loss, cand, q, k)

    if loss == "ce":
        targets = 0.5 * loss_fn.mask.astype(float)
        init = teacher if teacher.factor is factor else None
        sol = solve_probe(targets, lam, factor=factor, init=init, tol=tol, max_iter=max_iter)
        problem = _Problem(loss_fn, factor, lam)
        z = sol.logits
        inv = np.divide(
            1.0, problem.sq_norms, out=np.zeros_like(problem.sq_norms), where=problem.sq_norms > 0
        )
        theta = (z @ problem.f) * inv
        st = loss_fn.state(log_softmax(z))
        _, _, obj0 = problem.evaluate(_initial_coef(teacher, factor, k))
        _, logit_res, _ = _residuals(loss_fn, st, z, lam, factor)
        c = sol.certificate
        cert = PLLCertificate(
            residual=c.residual,
            logit_residual=logit_res,
            gradient_norm=c.gradient_norm,
            converged=bool(c.converged),
            method=c.method,
            target=c.target,
            floor=c.floor,
            iterations=c.iterations,
            cg_iterations=c.cg_iterations,
            objective=problem.evaluate(theta)[2],
            initial_objective=obj0,
            min_hessian_eigenvalue=lam,
            hessian_method="convex",
            stationary_point="global minimum",
        )
    else:
        theta0 = _initial_coef(teacher, factor, k)
        theta, z, st, cert = _solve_nonconvex(loss_fn, factor, lam, theta0, tol, max_iter, hessian)

    dual = -st.grad / (lam * n)
    rotation = _orthogonal(factor)[2]
    if rotation is not None:
        weights = theta @ rotation.T
    elif factor.features is not None:
        weights = dual @ factor.features
    else:
        weights = None
    return PLLStudent(
        outputs=st.probs,
        logits=z,
        weights=weights,
        dual=dual,
        certificate=cert,
        loss=loss,
        q=q,
        candidates=cand,
        lam=lam,
        factor=factor,
        coef=theta,
    )
