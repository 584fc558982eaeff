"""Numeric Gram-matrix constructions and their spectra.

The block model (paper, Section 4) has ``K`` classes of ``n`` samples each, ordered class-major
(sample ``i`` belongs to class ``i // n``), and Gram matrix

.. math::  G = (1-c) I_N + (c-d) B + d \\mathbf 1 \\mathbf 1^\\top,

where ``B`` is block-diagonal with ``K`` all-ones ``n x n`` blocks: 1 on the diagonal, ``c``
within a class and ``d`` across classes. Its eigenvalues are (``N = K n``)

* ``mu_1 = 1 - c + n (c - d) + N d`` on the all-ones vector (multiplicity 1),
* ``mu_2 = 1 - c + n (c - d)`` on the class contrasts (multiplicity ``K - 1``),
* ``mu_3 = 1 - c`` on the within-class contrasts (multiplicity ``N - K``).

``G`` is a valid Gram matrix (PSD) iff all three are ``>= 0``.
"""

from __future__ import annotations

import numpy as np

from theory.validation import MAX_SAMPLES, check_int

__all__ = [
    "block_eigenvalues",
    "block_gram",
    "check_block_params",
    "check_mixture_params",
    "gram_from_spectrum",
    "mean_coordinates",
]


def check_block_params(n_classes, per_class, c, d) -> tuple[int, int, float, float]:
    """Validate block-model parameters; ``ValueError`` naming the parameter otherwise.

    Requires ``K >= 2``, ``1 <= n`` with ``N = K n <= 2^53``
    (:data:`theory.validation.MAX_SAMPLES`), finite ``c <= 1`` and ``d``, and all three eigenvalues
    of the block Gram matrix ``>= 0`` (positive semidefinite, so that features realising it exist).
    """
    k = check_int(n_classes, "n_classes", 2)
    n = check_int(per_class, "per_class", 1)
    if k > MAX_SAMPLES or n > MAX_SAMPLES // k:
        raise ValueError(
            f"per_class must be an integer in [1, {MAX_SAMPLES // max(min(k, MAX_SAMPLES), 1)}] "
            f"for n_classes={k} (N = K n at most 2^53, exactly representable in float64), "
            f"got per_class={n}"
        )
    c, d = float(c), float(d)
    if not (np.isfinite(c) and np.isfinite(d)):
        raise ValueError(f"c and d must be finite, got c={c}, d={d}")
    if c > 1:
        raise ValueError(f"c must be <= 1 (diagonal of G is 1, |c| <= 1), got c={c}")
    if not (-1 <= c and -1 <= d <= 1):  # else n (c - d) overflows and the PSD test sees NaN
        raise ValueError(
            f"c and d must lie in [-1, 1] (inner products of unit-norm features), got c={c}, d={d}"
        )
    mu1, mu2, mu3 = _eigs(k, n, c, d)
    if mu3 < 0:
        raise ValueError(f"c must be <= 1 for a PSD block Gram matrix, got c={c}")
    if mu2 < 0:
        raise ValueError(
            f"c, d give a non-PSD block Gram matrix: mu_2 = 1 - c + n (c - d) = {mu2:.3g} < 0"
        )
    if mu1 < 0:
        raise ValueError(
            "d too negative for a PSD block Gram matrix: "
            f"mu_1 = 1 - c + n (c - d) + N d = {mu1:.3g} < 0"
        )
    return k, n, c, d


def _eigs(k: int, n: int, c: float, d: float) -> tuple[float, float, float]:
    mu3 = 1.0 - c
    mu2 = mu3 + n * (c - d)
    mu1 = mu2 + k * n * d
    return mu1, mu2, mu3


def block_eigenvalues(n_classes, per_class, c, d) -> tuple[float, float, float]:
    """Distinct eigenvalues ``(mu_1, mu_2, mu_3)`` of the block Gram matrix.

    Multiplicities are ``1``, ``K - 1`` and ``N - K`` (see module docstring).
    """
    k, n, c, d = check_block_params(n_classes, per_class, c, d)
    return _eigs(k, n, c, d)


def block_gram(n_classes, per_class, c, d) -> np.ndarray:
    """Block Gram matrix ``G = (1-c) I + (c-d) B + d 11^T``, shape (N, N), class-major order."""
    k, n, c, d = check_block_params(n_classes, per_class, c, d)
    cls = np.repeat(np.arange(k), n)
    g = np.where(cls[:, None] == cls[None, :], c, d)
    np.fill_diagonal(g, 1.0)
    return g


def gram_from_spectrum(basis, eigenvalues) -> np.ndarray:
    """Known-answer Gram matrix ``Q diag(mu) Q^T`` for orthogonal ``Q`` (N, N) and ``mu >= 0``."""
    q = np.asarray(basis, dtype=float)
    mu = np.asarray(eigenvalues, dtype=float)
    if q.ndim != 2 or q.shape[0] != q.shape[1] or mu.shape != (q.shape[0],):
        raise ValueError(f"basis must be (N, N) and eigenvalues (N,), got {q.shape} and {mu.shape}")
    if np.any(mu < 0):
        raise ValueError("eigenvalues must be >= 0 for a Gram matrix")
    if not np.allclose(q.T @ q, np.eye(q.shape[0]), atol=1e-10):
        raise ValueError("basis must be orthogonal (Q^T Q = I)")
    g = (q * mu) @ q.T
    return 0.5 * (g + g.T)


def check_mixture_params(n_classes, dim, c, d) -> tuple[int, int, float, float]:
    """Validate Gaussian-mixture parameters; ``ValueError`` naming the violated condition.

    The mixture (:mod:`simulations.features`, :mod:`theory.finite`) has class means with
    ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d`` and isotropic noise of total variance ``1 - c``.
    Requires ``K >= 2``, ``p >= K``, ``0 <= c <= 1``, ``d <= c`` and ``c + (K - 1) d >= 0`` (the
    class-mean Gram ``(c - d) I + d 1 1^T`` must be PSD).
    """
    k = check_int(n_classes, "n_classes", 2)
    p = check_int(dim, "dim", k)
    c, d = float(c), float(d)
    if not (np.isfinite(c) and np.isfinite(d)):
        raise ValueError(f"c and d must be finite, got c={c}, d={d}")
    if not 0 <= c <= 1:
        raise ValueError(f"c must lie in [0, 1] (c = ||mu_k||^2 <= E||x||^2 = 1), got c={c}")
    if d > c:
        raise ValueError(
            f"d must be <= c (class-mean Gram (c-d) I + d 11^T is PSD), got c={c}, d={d}"
        )
    if c + (k - 1) * d < 0:
        raise ValueError(
            f"d must be >= -c/(K-1) = {-c / (k - 1):.6g} so that c + (K-1) d >= 0 "
            f"(class-mean Gram PSD), got d={d}"
        )
    return k, p, c, d


def mean_coordinates(n_classes, c, d) -> np.ndarray:
    r"""Class means in ``R^K`` with Gram ``(c - d) I + d 1 1^T``, shape (K, K); row k is ``mu_k``.

    ``mu_k = alpha e_k + beta 1`` with ``alpha = sqrt(c - d)``,
    ``beta = (-alpha + sqrt(c + (K - 1) d)) / K``: then ``||mu_k||^2 = alpha^2 + 2 alpha beta +
    K beta^2 = c`` and ``<mu_k, mu_l> = 2 alpha beta + K beta^2 = d``.
    """
    k = int(n_classes)
    alpha = np.sqrt(max(c - d, 0.0))
    beta = (-alpha + np.sqrt(max(c + (k - 1) * d, 0.0))) / k
    return alpha * np.eye(k) + beta
