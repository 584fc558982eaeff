r"""Synthetic features whose Gram matrix is (exactly or in expectation) the block model.

Gaussian mixture
----------------
``K`` class means ``mu_k`` in ``R^p`` with ``||mu_k||^2 = c`` and ``<mu_k, mu_l> = d`` (``k != l``);
a sample of class ``k`` is ``x = mu_k + z`` with isotropic ``z ~ N(0, (1 - c)/p I_p)`` (total noise
variance ``1 - c``). Hence ``E[||x||^2] = 1``, ``E<x_i, x_j> = c`` within a class and ``d`` across
classes: the expected Gram matrix is ``theory.gram.block_gram(K, n, c, d)``, and as ``p -> inf``
the Gram matrix of a fixed set of samples converges to it (entry fluctuations ``O(1/sqrt(p))``).

The means exist iff their Gram ``M = (c - d) I_K + d 1 1^T`` is PSD, i.e. ``0 <= c <= 1``,
``d <= c`` and ``c + (K - 1) d >= 0``; and ``p >= K`` is required to embed them. Explicitly

.. math::  \mu_k = \alpha e_k + \beta \mathbf 1_K, \quad \alpha = \sqrt{c - d}, \quad
           \beta = \frac{-\alpha + \sqrt{c + (K-1) d}}{K},

(``||mu_k||^2 = alpha^2 + 2 alpha beta + K beta^2 = c`` and ``<mu_k, mu_l> = 2 alpha beta + K
beta^2 = d``), embedded in the first ``K`` coordinates of ``R^p`` (or a random orthonormal frame).

Exact block
-----------
:func:`exact_block_features` returns ``N x (K + N)`` features ``x_i = [mu_{y_i}, sqrt(1-c) e_i]``
whose Gram matrix equals the block model exactly (up to float round-off ~1e-16). A *fresh* point of
class ``k`` in this construction is ``[mu_k, sqrt(1-c) e_new]`` with ``e_new`` orthogonal to all
training directions, so its kernel row is exactly ``c`` on class ``k`` and ``d`` elsewhere
(:func:`exact_block_kernel_rows`) — the ``p -> inf`` limit of a Gaussian-mixture test point.
For block parameters that are PSD at finite ``n`` but admit no means (``d > c`` slightly), the
features fall back to the spectral construction ``X = Q diag(sqrt(mu))``.

Perturbed block
---------------
:func:`perturbed_block_gram` mixes exact-block features with random unit-norm directions, so the
result is always the Gram matrix of actual features (symmetric PSD, unit diagonal); it never adds
independent entrywise noise, which would break positive semidefiniteness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.gram import block_gram, check_block_params, check_mixture_params
from theory.gram import mean_coordinates as _means_small
from theory.validation import check_int

__all__ = [
    "FeatureDraw",
    "GaussianMixture",
    "PerturbedGram",
    "as_generator",
    "check_mixture_params",
    "class_means",
    "exact_block_features",
    "exact_block_kernel_rows",
    "mixture_gram",
    "perturbed_block_gram",
]


def as_generator(rng, name: str = "rng") -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from a Generator, int seed or ``SeedSequence``.

    ``None`` is rejected on purpose: every random draw in the toolkit is explicitly seeded.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise ValueError(
        f"{name} must be a numpy.random.Generator, a SeedSequence or an int seed >= 0, got {rng!r}"
    )


def class_means(n_classes, dim, c, d, *, rng=None) -> np.ndarray:
    """Class means of shape (K, p) with ``||mu_k||^2 = c``, ``<mu_k, mu_l> = d``.

    With ``rng=None`` they live in the first ``K`` coordinates; with an ``rng`` they are rotated
    into a Haar-random ``K``-frame of ``R^p`` (QR of a Gaussian matrix, signs fixed).
    """
    k, p, c, d = check_mixture_params(n_classes, dim, c, d)
    small = _means_small(k, c, d)
    if rng is None:
        means = np.zeros((k, p))
        means[:, :k] = small
        return means
    gen = as_generator(rng)
    q, r = np.linalg.qr(gen.standard_normal((p, k)))
    q = q * np.sign(np.diag(r))
    return small @ q.T


@dataclass(frozen=True)
class FeatureDraw:
    """Samples in class-major order: ``features`` (N, p) and true ``labels`` (N,)."""

    features: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class GaussianMixture:
    """K-class isotropic Gaussian mixture realising the block model in expectation.

    Attributes
    ----------
    n_classes, dim : int
    c, d : float
        Within/across-class expected inner products (module docstring).
    means : ndarray, shape (K, p)
    """

    n_classes: int
    dim: int
    c: float
    d: float
    means: np.ndarray

    @classmethod
    def create(cls, n_classes, dim, c, d, *, rng=None) -> GaussianMixture:
        """Validate parameters and build the means (see :func:`class_means`)."""
        k, p, c, d = check_mixture_params(n_classes, dim, c, d)
        return cls(k, p, c, d, class_means(k, p, c, d, rng=rng))

    @property
    def noise_std(self) -> float:
        """Per-coordinate noise standard deviation ``sqrt((1 - c) / p)``."""
        return float(np.sqrt((1.0 - self.c) / self.dim))

    def sample(self, per_class, rng) -> FeatureDraw:
        """Draw ``per_class`` samples of every class, class-major order (sample i in class i // n).

        Returns
        -------
        FeatureDraw
            ``features`` (K n, p) and ``labels`` (K n,).
        """
        n = check_int(per_class, "per_class", 1)
        gen = as_generator(rng)
        labels = np.repeat(np.arange(self.n_classes), n)
        noise = gen.standard_normal((labels.size, self.dim)) * self.noise_std
        return FeatureDraw(self.means[labels] + noise, labels)

    def expected_gram(self, per_class) -> np.ndarray:
        """``E[X X^T]`` for ``per_class`` samples per class: the block Gram matrix (N, N)."""
        return block_gram(self.n_classes, per_class, self.c, self.d)


def exact_block_features(n_classes, per_class, c, d) -> np.ndarray:
    """Features whose Gram matrix equals ``theory.gram.block_gram(K, n, c, d)`` exactly.

    Returns
    -------
    ndarray, shape (N, K + N) or (N, N)
        ``[mu_{y_i}, sqrt(1 - c) e_i]`` when class means exist (``d <= c``,
        ``c + (K-1) d >= 0``, ``c >= 0``); otherwise the spectral features ``Q diag(sqrt(mu))``
        of the (PSD) block matrix. Class-major order.
    """
    k, n, c, d = check_block_params(n_classes, per_class, c, d)
    big_n = k * n
    if 0 <= c and d <= c and c + (k - 1) * d >= 0:
        labels = np.repeat(np.arange(k), n)
        x = np.zeros((big_n, k + big_n))
        x[:, :k] = _means_small(k, c, d)[labels]
        x[:, k:] = np.sqrt(1.0 - c) * np.eye(big_n)
        return x
    mu, q = np.linalg.eigh(block_gram(k, n, c, d))
    return q * np.sqrt(np.clip(mu, 0.0, None))


def exact_block_kernel_rows(n_classes, per_class, c, d, test_labels) -> np.ndarray:
    """Kernel rows of fresh exact-block points against the ``N`` training points, shape (M, N).

    Row ``m`` is ``c`` on training points of class ``test_labels[m]`` and ``d`` elsewhere (module
    docstring). Requires class means to exist (same conditions as the Gaussian mixture).
    """
    k, n, c, d = check_block_params(n_classes, per_class, c, d)
    if not (0 <= c and d <= c and c + (k - 1) * d >= 0):
        raise ValueError(
            "fresh exact-block points need class means: 0 <= c, d <= c and c + (K-1) d >= 0; "
            f"got c={c}, d={d}"
        )
    lab = np.asarray(test_labels)
    if (
        lab.ndim != 1
        or lab.size == 0
        or not np.issubdtype(lab.dtype, np.integer)
        or lab.min() < 0
        or lab.max() >= k
    ):
        raise ValueError(f"test_labels must be a 1-D int array with values in [0, {k})")
    train = np.repeat(np.arange(k), n)
    return np.where(lab[:, None] == train[None, :], c, d)


@dataclass(frozen=True)
class PerturbedGram:
    """A perturbed block Gram matrix and the features realising it.

    Attributes
    ----------
    gram : ndarray, shape (N, N)
        ``features @ features.T``: symmetric PSD with unit diagonal.
    features : ndarray, shape (N, q)
    c_eff, d_eff : float
        Block parameters of ``E[gram]``: ``(1 - strength) c`` and ``(1 - strength) d``.
    """

    gram: np.ndarray
    features: np.ndarray
    c_eff: float
    d_eff: float


def perturbed_block_gram(n_classes, per_class, c, d, strength, rng, *, dim=None) -> PerturbedGram:
    """Valid (PSD) perturbation of the block Gram matrix, built from actual features.

    ``features = [sqrt(1 - s) X_block, sqrt(s) Z]`` where ``X_block`` are the exact-block features
    and the rows of ``Z`` (N, m) are independent uniform random unit vectors in ``R^m``. Then
    ``G = (1 - s) G_block + s Z Z^T``: unit diagonal, off-diagonal entries perturbed by
    ``s <z_i, z_j>`` (mean 0, standard deviation ``s / sqrt(m)``), always PSD.

    Parameters
    ----------
    strength : float
        ``s`` in ``[0, 1]``; 0 returns the block matrix exactly.
    rng : Generator, SeedSequence or int
    dim : int, optional
        ``m >= 1`` (default ``N``).
    """
    k, n, c, d = check_block_params(n_classes, per_class, c, d)
    s = float(strength)
    if not np.isfinite(s) or not 0 <= s <= 1:
        raise ValueError(f"strength must lie in [0, 1], got {strength!r}")
    m = k * n if dim is None else check_int(dim, "dim", 1)
    gen = as_generator(rng)
    z = gen.standard_normal((k * n, m))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    x = np.hstack([np.sqrt(1.0 - s) * exact_block_features(k, n, c, d), np.sqrt(s) * z])
    g = x @ x.T
    return PerturbedGram(0.5 * (g + g.T), x, (1.0 - s) * c, (1.0 - s) * d)


def mixture_gram(n_classes, dim, c, d, labels, rng, *, with_mean_rows: bool = False):
    """Gram matrix (N', N') of Gaussian-mixture points with the given true ``labels`` (N',).

    Exact in distribution for every ``dim = p >= K``: the noise outside the means' span is Wishart,
    drawn by the Bartlett decomposition (:mod:`simulations.gram_trials` derives it); ``O(N'^3)``
    time for ``p - K >= N'``, ``O(N'^2 p)`` otherwise.

    With ``with_mean_rows=True`` also returns the inner products with the class means,
    ``mean_rows[k, i] = <mu_k, x_i>`` (K, N'), jointly exact in distribution with the Gram matrix:
    the means span the first ``K`` coordinates, where ``x_i`` is
    ``low_i = means_small[y_i] + sigma z_i``, so ``<mu_k, x_i> = means_small[k] . low_i``. The
    random stream is the same either way (the returned Gram matrix does not change).

    Returns
    -------
    gram : ndarray, shape (N', N')
    mean_rows : ndarray, shape (K, N')
        Only with ``with_mean_rows=True`` (then a tuple ``(gram, mean_rows)`` is returned).
    """
    k, p, c, d = check_mixture_params(n_classes, dim, c, d)
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0 or lab.min() < 0 or lab.max() >= k:
        raise ValueError(f"labels must be a non-empty 1-D int array with values in [0, {k})")
    gen = as_generator(rng)
    big = lab.size
    sigma2 = (1.0 - c) / p
    means_small = class_means(k, k, c, d)
    low = means_small[lab] + np.sqrt(sigma2) * gen.standard_normal((big, k))
    gram = low @ low.T
    dof = p - k
    if dof >= big:
        chol = np.tril(gen.standard_normal((big, big)), -1)
        chol[np.diag_indices(big)] = np.sqrt(gen.chisquare(dof - np.arange(big)))
        gram += sigma2 * (chol @ chol.T)
    elif dof > 0:
        z = gen.standard_normal((big, dof))
        gram += sigma2 * (z @ z.T)
    gram = 0.5 * (gram + gram.T)
    if with_mean_rows:
        return gram, means_small @ low.T
    return gram
