"""Result types of the PLL student: :class:`PLLCertificate` and :class:`PLLStudent`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulations.solver import ProbeFactor, log_softmax, new_point_logits

__all__ = ["PLLCertificate", "PLLStudent"]


_TINY = np.finfo(float).tiny


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
