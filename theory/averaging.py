r"""Label-averaging closed form of multi-round self-distillation (linearised softmax).

For the L2-regularised linear softmax probe, the training outputs solve the fixed point
``P = softmax((T - P) G / (lam N))`` (see ``docs/theory.md``, Section 1). Linearising softmax about
the uniform vector, ``softmax(z) ~ 1/K + (z - mean(z)) / K``, and noting that the columns of
``(T - P) G`` sum to zero (so the centring term vanishes), gives for round ``t`` (``t = 0`` is the
teacher trained on the one-hot labels ``Y``)

.. math::

    P^{(t)} - \tfrac1K = (Y - \tfrac1K)\, A^{t+1}, \qquad A = G (G + K \lambda N I)^{-1}.

With ``G = U diag(mu) U^T`` this is a spectral filter: eigenvector ``u_j`` is kept with weight

.. math::  a_j(t) = \left(\frac{\mu_j}{\mu_j + K\lambda N}\right)^{t+1}.

All functions work from a Gram matrix (N, N) or from features (N, p); from features they use a thin
SVD, costing O(N p min(N, p)) time and O(N p) memory, never forming an N x N matrix.

References
----------
Jeong & Chung, "Rethinking Self-Distillation: Label Averaging and Enhanced Soft Label Refinement
with Partial Labels", ICLR 2025 (arXiv:2402.10482), Section 3.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    "GramSpectrum",
    "eigen_weights",
    "gram_spectrum",
    "linearised_deviations",
    "linearised_outputs",
    "linearised_test_logits",
    "linearised_test_outputs",
]


@dataclass(frozen=True)
class GramSpectrum:
    """Eigen-pairs of ``G = U diag(mu) U^T`` restricted to the (numerically) nonzero spectrum.

    Attributes
    ----------
    eigenvalues : ndarray, shape (r,)
        ``mu_j > 0`` in decreasing order.
    eigenvectors : ndarray, shape (N, r)
        Orthonormal columns ``u_j``.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray

    @property
    def n_samples(self) -> int:
        return self.eigenvectors.shape[0]


def gram_spectrum(*, gram=None, features=None) -> GramSpectrum:
    """Nonzero spectrum of ``G = X X^T`` from a Gram matrix or from features (thin SVD).

    Eigenvalues below ``N * eps * mu_max`` are dropped: they are below the backward error of the
    eigensolver, and their filter weight ``mu / (mu + K lam N)`` is negligible for any ``lam`` this
    toolkit accepts.
    """
    if (gram is None) == (features is None):
        raise ValueError("pass exactly one of gram (N, N) or features (N, p)")
    if gram is not None:
        g = check_symmetric(gram)
        mu, u = np.linalg.eigh(0.5 * (g + g.T))
        check_psd_spectrum(mu)
        mu, u = mu[::-1], u[:, ::-1]
    else:
        x = check_finite_matrix(features, "features")
        u, s, _ = np.linalg.svd(x, full_matrices=False)
        mu = s**2
    n = u.shape[0]
    keep = mu > n * np.finfo(float).eps * max(float(mu[0]), np.finfo(float).tiny)
    return GramSpectrum(eigenvalues=mu[keep].copy(), eigenvectors=u[:, keep].copy())


def eigen_weights(eigenvalues, n_classes, lam, n_samples, rounds) -> np.ndarray:
    r"""Per-eigenvector label-averaging weights ``a_j(t) = (mu_j / (mu_j + K lam N))^(t+1)``.

    Parameters
    ----------
    eigenvalues : array_like, shape (m,)
        Gram eigenvalues ``mu_j >= 0``.
    n_classes, lam, n_samples : int, float, int
        ``K >= 2``, ``lam > 0``, ``N >= 1``.
    rounds : int
        Last round ``R >= 0`` (round 0 is the teacher).

    Returns
    -------
    ndarray, shape (R + 1, m)
        Row ``t`` holds ``a_j(t)``.
    """
    mu = np.asarray(eigenvalues, dtype=float)
    if mu.ndim != 1 or not np.all(np.isfinite(mu)) or np.any(mu < 0):
        raise ValueError("eigenvalues must be a 1-D array of finite values >= 0")
    k = check_int(n_classes, "n_classes", 2)
    lam = check_positive(lam, "lam")
    n = check_int(n_samples, "n_samples", 1)
    r = check_int(rounds, "rounds", 0)
    ratio = mu / (mu + k * lam * n)
    return ratio[None, :] ** np.arange(1, r + 2)[:, None]


def _prepare(targets, lam, rounds, gram, features, spectrum):
    if spectrum is None:
        spectrum = gram_spectrum(gram=gram, features=features)
    t = check_targets(targets, spectrum.n_samples)
    k = t.shape[0]
    weights = eigen_weights(spectrum.eigenvalues, k, lam, spectrum.n_samples, rounds)
    # Coordinates of the centred targets in the eigenbasis: (K, r).
    coords = (t - 1.0 / k) @ spectrum.eigenvectors
    return spectrum, t, k, weights, coords


def linearised_deviations(targets, lam, rounds, *, gram=None, features=None, spectrum=None):
    r"""Closed-form deviations ``P^(t) - 1/K = (Y - 1/K) A^(t+1)`` of rounds ``0..R``.

    Computed directly in the eigenbasis (``1/K`` is never added and subtracted), so they keep
    their relative accuracy however close the outputs come to uniform (``docs/theory.md``,
    Section 8): decide accuracies on these, not on :func:`linearised_outputs`. Parameters as in
    :func:`linearised_outputs`; returns shape (R + 1, K, N), columns summing to 0.
    """
    lam = check_positive(lam, "lam")
    spectrum, _, k, weights, coords = _prepare(targets, lam, rounds, gram, features, spectrum)
    u = spectrum.eigenvectors
    out = np.empty((weights.shape[0], k, u.shape[0]))
    for t, w in enumerate(weights):
        out[t] = (coords * w) @ u.T
    return out


def linearised_outputs(targets, lam, rounds, *, gram=None, features=None, spectrum=None):
    r"""Closed-form training outputs of rounds ``0..R``: ``1/K + (Y - 1/K) A^(t+1)``.

    Parameters
    ----------
    targets : array_like, shape (K, N)
        Round-0 targets ``Y`` (one-hot noisy labels, or any columns on the simplex).
    lam : float
        Regularisation ``lam > 0``.
    rounds : int
        Last round ``R >= 0``.
    gram : array_like, shape (N, N), optional
    features : array_like, shape (N, p), optional
        Exactly one of ``gram`` / ``features`` (or a precomputed ``spectrum``).

    Returns
    -------
    ndarray, shape (R + 1, K, N)
        ``out[t]`` is the linearised round-``t`` output matrix; columns sum to 1. For decisions
        use :func:`linearised_deviations` (``1/K + delta`` rounds away ``|delta| < 1e-17``).
    """
    dev = linearised_deviations(
        targets, lam, rounds, gram=gram, features=features, spectrum=spectrum
    )
    return 1.0 / dev.shape[1] + dev


def linearised_test_logits(
    targets, lam, rounds, kernel_rows, *, gram=None, features=None, spectrum=None
):
    r"""Linearised round-``t`` outputs at new points from their kernel rows ``k(x) = X x``.

    Round ``t`` is trained on ``T_t = 1/K + (Y - 1/K) A^t`` and reaches
    ``P_t = 1/K + (Y - 1/K) A^(t+1)``, so its weights are ``W_t = (T_t - P_t) X / (lam N)`` and a
    new point gets logits

    .. math::

        z_t(x) = (Y - \tfrac1K)\, U
        \operatorname{diag}\!\Big(a_j^t \tfrac{K}{\mu_j + K\lambda N}\Big) U^\top k(x),

    whose class-mean is zero (linearised outputs ``1/K + z_t / K``,
    :func:`linearised_test_outputs`). Decide on these logits: they keep their relative accuracy.

    Parameters
    ----------
    kernel_rows : array_like, shape (M, N)
        Row ``m`` is ``<x_m, x_i>`` for every training point ``i``.

    Returns
    -------
    ndarray, shape (R + 1, K, M)
        Logits ``z_t(x)``.
    """
    lam = check_positive(lam, "lam")
    spectrum, _, k, weights, coords = _prepare(targets, lam, rounds, gram, features, spectrum)
    rows = check_finite_matrix(kernel_rows, "kernel_rows")
    if rows.shape[1] != spectrum.n_samples:
        raise ValueError(
            f"kernel_rows must have N={spectrum.n_samples} columns, got shape {rows.shape}"
        )
    mu = spectrum.eigenvalues
    proj = rows @ spectrum.eigenvectors  # (M, r)
    # a_j^t = weights[t-1] for t >= 1 and 1 for t = 0.
    prev = np.vstack([np.ones_like(mu), weights[:-1]])
    gain = k / (mu + k * lam * spectrum.n_samples)
    out = np.empty((weights.shape[0], k, rows.shape[0]))
    for t in range(weights.shape[0]):
        out[t] = (coords * (prev[t] * gain)) @ proj.T
    return out


def linearised_test_outputs(
    targets, lam, rounds, kernel_rows, *, gram=None, features=None, spectrum=None
):
    r"""Linearised round-``t`` outputs ``1/K + z_t(x)/K`` at new points.

    ``z_t`` from :func:`linearised_test_logits` (decide on those).

    Returns shape (R + 1, K, M).
    """
    z = linearised_test_logits(
        targets, lam, rounds, kernel_rows, gram=gram, features=features, spectrum=spectrum
    )
    return 1.0 / z.shape[1] + z / z.shape[1]
