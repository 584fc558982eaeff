"""Types of the probe solver: targets, certificates, solutions and the convergence error.

:class:`SoftTargets` holds targets as deviations from uniform (``T = 1/K + D``),
:class:`Certificate` the KKT report of a solve and :class:`ProbeSolution` its result
(:func:`simulations.solver.solve_probe`); :func:`new_point_logits` is shared by every linear probe
of the toolkit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from simulations.softmax import softmax_deviation, softmax_with_deviation
from theory.validation import SIMPLEX_ATOL, check_finite_matrix, check_positive, check_targets

if TYPE_CHECKING:
    from simulations.solver.factorisation import ProbeFactor

__all__ = [
    "Certificate",
    "ConvergenceError",
    "ProbeSolution",
    "SoftTargets",
    "as_soft_targets",
    "new_point_logits",
]


class ConvergenceError(RuntimeError):
    """Raised when the solver cannot certify the KKT fixed point within its iteration budget."""


@dataclass(frozen=True, eq=False)
class SoftTargets:
    """Soft targets held as deviations from uniform, ``T = 1/K + D`` (exact near ``1/K``).

    Attributes
    ----------
    deviations : ndarray, shape (K, N)
        ``D``: columns sum to 0 and ``1/K + D >= 0`` (each up to ``SIMPLEX_ATOL``).

    Use :meth:`from_probabilities` for ordinary targets and :meth:`from_logits` to pass one
    round's outputs to the next round without ever forming ``P - 1/K`` by subtraction.
    """

    deviations: np.ndarray

    def __post_init__(self):
        d = check_finite_matrix(self.deviations, "target deviations")
        k = d.shape[0]
        if k < 2:
            raise ValueError(f"target deviations must have K >= 2 rows, got shape {d.shape}")
        if float(np.min(d)) < -1.0 / k - SIMPLEX_ATOL:
            raise ValueError("target deviations give negative probabilities (1/K + D < 0)")
        col = float(np.max(np.abs(d.sum(axis=0))))
        if col > SIMPLEX_ATOL * k:
            raise ValueError(f"target deviations must sum to 0 per column; max |sum| {col:.3g}")
        object.__setattr__(self, "deviations", d)

    @classmethod
    def from_probabilities(cls, targets) -> SoftTargets:
        """From targets (K, N) on the simplex (validated by ``check_targets``)."""
        t = check_targets(targets)
        return cls(t - 1.0 / t.shape[0])

    @classmethod
    def from_logits(cls, logits, temperature: float = 1.0) -> SoftTargets:
        """``softmax(Z / tau) - 1/K`` column-wise, computed without cancellation."""
        z = check_finite_matrix(logits, "logits")
        tau = check_positive(temperature, "temperature")
        return cls(softmax_deviation(z / tau, axis=0))

    @property
    def n_classes(self) -> int:
        return self.deviations.shape[0]

    @property
    def n_samples(self) -> int:
        return self.deviations.shape[1]

    @property
    def probabilities(self) -> np.ndarray:
        """``1/K + D``, shape (K, N) (rounded: near-uniform information is lost here)."""
        return np.clip(1.0 / self.n_classes + self.deviations, 0.0, None)


def as_soft_targets(targets, n_samples: int) -> SoftTargets:
    t = targets if isinstance(targets, SoftTargets) else SoftTargets.from_probabilities(targets)
    if t.n_samples != n_samples:
        raise ValueError(f"targets has {t.n_samples} columns but there are {n_samples} samples")
    return t


@dataclass(frozen=True)
class Certificate:
    """KKT certificate of a probe solve.

    Attributes
    ----------
    residual : float
        ``max |P - softmax((T - P) G / (lam N))|`` with the original ``G`` / ``X``, computed from
        deviations (no cancellation near uniform outputs).
    gradient_norm : float
        Frobenius norm of the objective's gradient at the returned weights.
    iterations, cg_iterations : int
        Newton steps and total conjugate-gradient iterations (Hessian products).
    target : float
        The residual level certified, ``max(tol * scale, min(floor, CERTIFICATE_RTOL_CAP *
        scale))`` (:data:`theory.validation.CERTIFICATE_RTOL_CAP`).
    floor : float
        Round-off floor of the residual evaluation (module docstring; an upper bound, exact when
        it decides).
    output_bound : float
        A-posteriori bound on ``max |P - P*|`` against the exact optimum ``P*``: the objective is
        ``lam``-strongly convex, so ``||W - W*||_F <= ||grad|| / lam``; each logit moves by at most
        ``||W - W*||_F max_i sqrt(G_ii)`` and softmax is 1/2-Lipschitz in the max-norm, giving
        ``0.5 sqrt(max_i G_ii) ||grad|| / lam``, plus ``64 eps (scale + max|Z|)`` for evaluating
        softmax deviations in floating point.
    method : str
    scale : float
        ``max |P - 1/K|``, the outputs' distance from uniform that the residual is relative to.
    passes : int
        Products with the data matrix (N x r, double or single precision) during the solve, the
        unit of its cost.
    single_passes : int
        How many of those ``passes`` were single-precision products (about half the time of a
        double-precision one).
    """

    residual: float
    gradient_norm: float
    iterations: int
    cg_iterations: int
    target: float
    floor: float
    output_bound: float
    method: str
    scale: float = 1.0
    passes: int = 0
    single_passes: int = 0

    @property
    def converged(self) -> bool:
        return self.residual <= self.target

    @property
    def relative_residual(self) -> float:
        """``residual / scale`` (``inf`` for exactly uniform outputs with a nonzero residual)."""
        if self.scale > 0:
            return self.residual / self.scale
        return 0.0 if self.residual == 0 else math.inf


@dataclass(frozen=True, eq=False)
class ProbeSolution:
    """Solution of one probe training.

    Attributes
    ----------
    outputs : ndarray, shape (K, N)
        Training outputs ``P = softmax(Z)``.
    logits : ndarray, shape (K, N)
        ``Z``; decide from these (or from :attr:`deviations`), not from rounded outputs.
    dual : ndarray, shape (K, N)
        ``(T - P) / (lam N)``; the weights are ``W = dual @ X`` and new logits ``dual @ k(x)``.
    weights : ndarray, shape (K, p) or None
        Primal weights when features were given, else None.
    certificate : Certificate
    lam : float
    deviations : ndarray, shape (K, N)
        ``P - 1/K`` computed from the logits without cancellation.
    """

    outputs: np.ndarray
    logits: np.ndarray
    dual: np.ndarray
    weights: np.ndarray | None
    certificate: Certificate
    lam: float
    factor: ProbeFactor = field(repr=False)
    coef: np.ndarray = field(repr=False)
    deviations: np.ndarray = field(default=None, repr=False)

    def soft_targets(self, temperature: float = 1.0) -> SoftTargets:
        """These outputs as next-round targets, ``softmax(Z / tau)``, held as deviations."""
        if temperature == 1.0 and self.deviations is not None:
            return SoftTargets(self.deviations)
        return SoftTargets.from_logits(self.logits, temperature)

    def predict_logits(self, *, features=None, kernel_rows=None) -> np.ndarray:
        """Logits ``W x`` for new points, shape (K, M) (decide from these).

        Parameters
        ----------
        features : array_like, shape (M, p), optional
            New feature vectors (requires training from features).
        kernel_rows : array_like, shape (M, N), optional
            ``<x_new, x_i>`` against every training point; logits are ``dual @ kernel_rows.T``.
        """
        w = None
        if features is not None and self.factor.features is not None:
            w = self.weights if self.weights is not None else self.dual @ self.factor.features
        return new_point_logits(self.dual, w, features=features, kernel_rows=kernel_rows)

    def predict(self, *, features=None, kernel_rows=None) -> np.ndarray:
        """Outputs ``softmax(W x)`` for new points, shape (K, M) (see :meth:`predict_logits`)."""
        z = self.predict_logits(features=features, kernel_rows=kernel_rows)
        return softmax_with_deviation(z, axis=0)[0]


def new_point_logits(dual, weights, *, features=None, kernel_rows=None) -> np.ndarray:
    """Logits of new points, shape (K, M), from kernel rows or from features.

    ``dual @ kernel_rows.T`` (kernel rows ``<x_new, x_i>``, shape (M, N)) or ``weights @ x.T``
    (features (M, p)); exactly one of the two. ``weights`` is None when the model was trained
    from a Gram matrix (then only kernel rows can be used). Shared by every linear probe of the
    toolkit (:class:`ProbeSolution`, :class:`simulations.pll_losses.PLLStudent`).
    """
    if (features is None) == (kernel_rows is None):
        raise ValueError("pass exactly one of features (M, p) or kernel_rows (M, N)")
    if kernel_rows is not None:
        rows = check_finite_matrix(kernel_rows, "kernel_rows")
        if rows.shape[1] != dual.shape[1]:
            raise ValueError(f"kernel_rows must have N={dual.shape[1]} columns, got {rows.shape}")
        return dual @ rows.T
    if weights is None:
        raise ValueError("this model was trained from a Gram matrix; pass kernel_rows")
    x = check_finite_matrix(features, "features")
    if x.shape[1] != weights.shape[1]:
        raise ValueError(f"features must have p={weights.shape[1]} columns, got shape {x.shape}")
    return weights @ x.T
