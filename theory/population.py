r"""Exact (conditional) population accuracy of a linear probe on the Gaussian mixture.

The project's mixture (:mod:`simulations.features`): a point of class ``k`` is ``x = mu_k + z``
with ``z ~ N(0, sigma^2 I_p)``, ``sigma^2 = (1 - c)/p``. For *any* fixed probe ``W`` (K x p), the
logits of a fresh point of class ``k`` are Gaussian,

.. math::  W x \sim N\big(W \mu_k,\ \sigma^2 W W^T\big),

so the probability that it is classified correctly is the Gaussian orthant probability
``P(z_k > z_j for all j != k)`` of :func:`theory.orthant.win_probability`, and the population
accuracy (classes equally likely) is the mean over ``k``. "Conditional": given the trained probe,
i.e. given the training set; the expectation over fresh test points is done exactly (up to the
quadrature error, which is reported), not by sampling.

Kernel form: with dual coefficients ``A = (T - P)/(lam N)`` (K x N) and ``W = A X``,
``W mu_k = A (X mu_k)`` and ``W W^T = A G A^T``: only ``<x_i, mu_k>`` (``mean_rows``) and the Gram
matrix ``G`` are needed.

Ties (a deterministic logit difference within the tie tolerance of :mod:`theory.orthant`) count as
errors, as everywhere in the project, and their probability is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.orthant import DEFAULT_ABS_TOL, win_probability
from theory.validation import check_finite_matrix

__all__ = [
    "PopulationAccuracy",
    "mixture_population_accuracy",
    "mixture_population_accuracy_kernel",
    "population_accuracy_from_moments",
]


@dataclass(frozen=True, eq=False)
class PopulationAccuracy:
    """Exact population accuracy of one probe.

    Attributes
    ----------
    per_class : ndarray, shape (K,)
        ``P(correct | class k)`` (strict win of the true class).
    per_class_err : ndarray, shape (K,)
        Error estimates of ``per_class`` (:func:`theory.orthant.win_probability`).
    per_class_ties : ndarray, shape (K,)
        Probability that the true class ties with the best other class (counted as an error).
    accuracy : float
        ``mean(per_class)`` (classes equally likely).
    err : float
        ``mean(per_class_err)``: the per-class errors added linearly (conservative).
    ties : float
        ``mean(per_class_ties)``.
    """

    per_class: np.ndarray
    per_class_err: np.ndarray
    per_class_ties: np.ndarray

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.per_class))

    @property
    def err(self) -> float:
        return float(np.mean(self.per_class_err))

    @property
    def ties(self) -> float:
        return float(np.mean(self.per_class_ties))


def _check_noise_var(noise_var) -> float:
    try:
        val = float(noise_var)
    except (TypeError, ValueError):
        raise ValueError(f"noise_var must be a finite number >= 0, got {noise_var!r}") from None
    if not np.isfinite(val) or val < 0:
        raise ValueError(f"noise_var must be a finite number >= 0, got {noise_var!r}")
    return val


def population_accuracy_from_moments(
    mean_logits,
    cov_logits=None,
    *,
    cov_factor=None,
    abs_tol: float = DEFAULT_ABS_TOL,
    max_points: int | None = None,
) -> PopulationAccuracy:
    r"""Population accuracy when class-``k`` logits are ``N(mean_logits[k], cov)``.

    ``accuracy = (1/K) sum_k P(z_k > z_j for all j != k)``, ``z ~ N(mean_logits[k], cov_k)``.

    Parameters
    ----------
    mean_logits : array_like, shape (K, K)
        Row ``k``: mean logits (over the ``K`` outputs) of a point of true class ``k``.
    cov_logits : array_like, shape (K, K) or (K, K, K), optional
        Logit covariance, shared by the classes or one per class (``cov_logits[k]``). PSD,
        singular allowed.
    cov_factor : array_like, shape (K, q) or (K, K, q), optional
        ``F`` with ``cov = F F^T`` instead of ``cov_logits`` (exactly one of the two).
    abs_tol, max_points
        Quadrature target and cap per class (:func:`theory.orthant.win_probability`).

    Returns
    -------
    PopulationAccuracy
    """
    m = check_finite_matrix(mean_logits, "mean_logits")
    k = m.shape[0]
    if m.shape != (k, k) or k < 2:
        raise ValueError(f"mean_logits must have shape (K, K) with K >= 2, got {m.shape}")
    if (cov_logits is None) == (cov_factor is None):
        raise ValueError("pass exactly one of cov_logits (K, K) and cov_factor (K, q)")
    if cov_logits is not None:
        s = np.asarray(cov_logits, dtype=float)
        if s.shape not in ((k, k), (k, k, k)):
            raise ValueError(
                f"cov_logits must have shape ({k}, {k}) or ({k}, {k}, {k}), got {s.shape}"
            )
        res = win_probability(m, s, np.arange(k), abs_tol=abs_tol, max_points=max_points)
    else:
        f = np.asarray(cov_factor, dtype=float)
        if f.ndim not in (2, 3) or f.shape[-2] != k or (f.ndim == 3 and f.shape[0] != k):
            raise ValueError(f"cov_factor must have shape ({k}, q) or ({k}, {k}, q), got {f.shape}")
        res = win_probability(
            m, None, np.arange(k), cov_factor=f, abs_tol=abs_tol, max_points=max_points
        )
    return PopulationAccuracy(np.asarray(res.prob), np.asarray(res.err), np.asarray(res.tie_prob))


def _reduced_factor(factor: np.ndarray) -> np.ndarray:
    """``F'`` (K, min(K, q)) with ``F' F'^T = F F^T`` (R factor of ``F^T``; cheaper for q > K)."""
    if factor.shape[1] <= factor.shape[0]:
        return factor
    return np.linalg.qr(factor.T, mode="r").T


def mixture_population_accuracy(
    weights,
    means,
    noise_var,
    *,
    abs_tol: float = DEFAULT_ABS_TOL,
    max_points: int | None = None,
) -> PopulationAccuracy:
    r"""Exact population accuracy of the probe ``W`` on the mixture ``x = mu_y + N(0, s^2 I)``.

    Class-``k`` logits ``~ N(W mu_k, s^2 W W^T)`` (module docstring), evaluated with the factor
    ``s W`` (so identical rows of ``W`` give exactly deterministic logit differences).

    Parameters
    ----------
    weights : array_like, shape (K, p)
        Probe weights (rows = classes), no bias.
    means : array_like, shape (K, p)
        Class means ``mu_k``.
    noise_var : float
        Per-coordinate noise variance ``s^2 >= 0`` (``(1 - c)/p`` for the project's mixture).
    abs_tol, max_points
        Quadrature target and cap per class (:func:`theory.orthant.win_probability`).

    Returns
    -------
    PopulationAccuracy
    """
    w = check_finite_matrix(weights, "weights")
    mu = check_finite_matrix(means, "means")
    if w.shape[0] < 2:
        raise ValueError(f"weights must have shape (K, p) with K >= 2, got {w.shape}")
    if mu.shape != w.shape:
        raise ValueError(f"means must have the shape of weights {w.shape}, got {mu.shape}")
    s2 = _check_noise_var(noise_var)
    factor = _reduced_factor(np.sqrt(s2) * w)
    return population_accuracy_from_moments(
        mu @ w.T, cov_factor=factor, abs_tol=abs_tol, max_points=max_points
    )


def mixture_population_accuracy_kernel(
    dual,
    mean_rows,
    gram=None,
    noise_var=0.0,
    *,
    gram_factor=None,
    abs_tol: float = DEFAULT_ABS_TOL,
    max_points: int | None = None,
) -> PopulationAccuracy:
    r"""Exact population accuracy of a kernel-form probe (weights ``W = A X`` never formed).

    Class-``k`` logits ``~ N(A m_k, s^2 A G A^T)`` with ``m_k = X mu_k`` (module docstring).

    Parameters
    ----------
    dual : array_like, shape (K, N)
        Dual coefficients ``A = (T - P)/(lam N)`` (``ProbeSolution.dual``).
    mean_rows : array_like, shape (K, N)
        ``mean_rows[k, i] = <mu_k, x_i>`` for every class ``k`` and training point ``i``.
    gram : array_like (N, N) or callable, optional
        The training Gram matrix ``G = X X^T``, or a function ``v -> G v`` for ``v`` of shape
        (N, m). Exactly one of ``gram`` and ``gram_factor``.
    noise_var : float
        Per-coordinate noise variance ``s^2 >= 0``.
    gram_factor : array_like, shape (N, q), optional
        Any ``F`` with ``F F^T = G`` (e.g. the features, or ``ProbeFactor.spectral``); the logit
        covariance is then used in factor form ``s A F``, which is exact for singular cases.
    abs_tol, max_points
        Quadrature target and cap per class (:func:`theory.orthant.win_probability`).

    Returns
    -------
    PopulationAccuracy
    """
    a = check_finite_matrix(dual, "dual")
    k, n = a.shape
    if k < 2:
        raise ValueError(f"dual must have shape (K, N) with K >= 2, got {a.shape}")
    rows = check_finite_matrix(mean_rows, "mean_rows")
    if rows.shape != (k, n):
        raise ValueError(f"mean_rows must have shape (K, N) = ({k}, {n}), got {rows.shape}")
    s2 = _check_noise_var(noise_var)
    if (gram is None) == (gram_factor is None):
        raise ValueError("pass exactly one of gram (N, N) or callable, and gram_factor (N, q)")
    mean = rows @ a.T
    if gram_factor is not None:
        x = check_finite_matrix(gram_factor, "gram_factor")
        if x.shape[0] != n:
            raise ValueError(f"gram_factor must have N = {n} rows, got shape {x.shape}")
        factor = _reduced_factor(np.sqrt(s2) * (a @ x))
        return population_accuracy_from_moments(
            mean, cov_factor=factor, abs_tol=abs_tol, max_points=max_points
        )
    if callable(gram):
        prod = np.asarray(gram(a.T), dtype=float)
        if prod.shape != (n, k) or not np.all(np.isfinite(prod)):
            raise ValueError(
                f"gram(v) must return a finite (N, m) = ({n}, {k}) array for v of shape ({n}, {k})"
                f", got shape {prod.shape}"
            )
    else:
        g = check_finite_matrix(gram, "gram")
        if g.shape != (n, n):
            raise ValueError(f"gram must have shape (N, N) = ({n}, {n}), got {g.shape}")
        prod = g @ a.T
    cov = s2 * (a @ prod)
    cov = 0.5 * (cov + cov.T)
    return population_accuracy_from_moments(mean, cov, abs_tol=abs_tol, max_points=max_points)
