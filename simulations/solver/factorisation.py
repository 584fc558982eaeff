"""Factorisation of the probe solver's data: :func:`factorize` and :class:`ProbeFactor`.

Three routes (package docstring, :mod:`simulations.solver`): ``'spectral'`` (``B = X`` and the
eigendecomposition of ``X^T X``), ``'direct'`` (``B = X``, no factorisation) and ``'dual'``
(``B = U diag(sqrt(mu))`` from ``G = U diag(mu) U^T``). Also the memory guard shared with
:func:`simulations.solver.solve_probe` (:func:`available_memory`, :func:`check_memory`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from selfdistill_cli import available_bytes
from selfdistill_cli.memory import check_memory as check_memory_limit
from simulations.solver.kernels import basis_t_times, basis_times
from theory.validation import check_finite_matrix, check_psd_spectrum, check_symmetric

__all__ = ["FACTOR_METHODS", "ProbeFactor", "available_memory", "check_memory", "factorize"]


_EPS = np.finfo(float).eps


#: Basis choices of :func:`factorize`.
FACTOR_METHODS = ("auto", "spectral", "direct")


#: 'auto' factorises features when the eigendecomposition costs at most this many solver passes
#: over the data (one pass ~ 2 N p K flops; the factorisation ~ 3 N p^2 + 10 p^3 flops).
_AUTO_MAX_PASSES = 12


#: Row-block size for streamed products over the data (bounded temporary memory).
_ROW_BLOCK = 8192


def available_memory() -> float:
    """Bytes of memory available now (``selfdistill_cli.available_bytes``; inf if unknown)."""
    avail = available_bytes()[0]
    return math.inf if avail is None else float(avail)


def check_memory(nbytes: float, what: str) -> None:
    """Refuse ``nbytes`` above :func:`available_memory` (the one checker,
    :func:`selfdistill_cli.memory.check_memory`, with the solver's own wording)."""

    def message(estimate: float, limit: float) -> str:
        return (
            f"{what} needs ~{estimate / 1e9:.2f} GB but only {limit / 1e9:.2f} GB are "
            "available; use fewer samples or features"
        )

    check_memory_limit(nbytes, what, available_memory(), option=None, message=message)


@dataclass(frozen=True, eq=False)
class ProbeFactor:
    """The data the solver multiplies with, plus its preconditioning basis (:func:`factorize`).

    Attributes
    ----------
    basis : ndarray, shape (N, q)
        ``B`` with ``B B^T = G``: the features ``X`` (routes ``'spectral'`` and ``'direct'``) or
        ``U diag(sqrt(mu))`` from ``G = U diag(mu) U^T`` (route ``'dual'``).
    col_sq_norms : ndarray, shape (q,)
        The curvature scale of each preconditioner direction: eigenvalues ``s`` of ``X^T X``
        (``'spectral'``), ``mu`` (``'dual'``) or ``diag(X^T X)`` (``'direct'``).
    rotation : ndarray, shape (p, p) or None
        ``V`` with ``X^T X = V diag(s) V^T`` (``'spectral'``), else None (the preconditioner
        works in the basis's own coordinates).
    features, gram : ndarray or None
        The original input, kept to evaluate the certificate and predictions exactly.
    route : {'spectral', 'dual', 'direct'}
    """

    basis: np.ndarray
    col_sq_norms: np.ndarray
    rotation: np.ndarray | None
    features: np.ndarray | None
    gram: np.ndarray | None
    route: str = "spectral"
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def spectral(self) -> np.ndarray:
        """Alias of :attr:`basis` (the name of the earlier API)."""
        return self.basis

    @property
    def n_samples(self) -> int:
        return self.basis.shape[0]

    @property
    def rank(self) -> int:
        """Number of columns ``q`` of the basis (= parameters per class)."""
        return self.basis.shape[1]

    @property
    def sample_norms(self) -> np.ndarray:
        """``sqrt(G_ii)`` per sample, shape (N,) (cached)."""
        if "sample_norms" not in self._cache:
            if self.gram is not None:
                sq = np.clip(np.diag(self.gram), 0.0, None)
            else:
                sq = np.einsum("ij,ij->i", self.features, self.features)
            self._cache["sample_norms"] = np.sqrt(sq)
        return self._cache["sample_norms"]

    def cached(self, key: str, compute):
        """``compute()``, computed once per factor and kept under ``key``.

        For quantities derived from the factorisation by other modules (e.g. the PLL students'
        orthogonal features, :mod:`simulations.pll_losses`), which live as long as the factor.
        """
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def is_cached(self, key: str) -> bool:
        """Whether ``key`` (e.g. ``'basis32'``) has been computed for this factor."""
        return key in self._cache

    def basis32(self) -> np.ndarray:
        """Single-precision copy of the basis (cached; 4 N q bytes)."""
        if "basis32" not in self._cache:
            self._cache["basis32"] = self.basis.astype(np.float32)
        return self._cache["basis32"]

    def gram_apply(self, m: np.ndarray) -> np.ndarray:
        """``G @ m`` for ``m`` of shape (N, K), from the original features or Gram matrix."""
        if self.gram is not None:
            return self.gram @ m
        return basis_times(self.features, basis_t_times(self.features, m))

    def abs_gram_apply_max(self, m: np.ndarray) -> float:
        """``max(|G| |m|)`` (``|X| |X|^T |m|`` for features), in row blocks of bounded memory."""
        am = np.abs(m)
        n = self.n_samples
        if self.gram is not None:
            return max(
                float(np.max(np.abs(self.gram[a : a + _ROW_BLOCK]) @ am))
                for a in range(0, n, _ROW_BLOCK)
            )
        x = self.features
        xtm = np.zeros((x.shape[1], m.shape[1]))
        for a in range(0, n, _ROW_BLOCK):
            xtm += np.abs(x[a : a + _ROW_BLOCK]).T @ am[a : a + _ROW_BLOCK]
        return max(
            float(np.max(np.abs(x[a : a + _ROW_BLOCK]) @ xtm)) for a in range(0, n, _ROW_BLOCK)
        )

    def inner_dim(self) -> int:
        """Length of the longest inner product in ``G @ m`` (for the round-off factor)."""
        if self.gram is not None:
            return self.n_samples
        return max(self.n_samples, self.features.shape[1])


def _auto_method(n: int, p: int, n_classes: int | None) -> str:
    """'spectral' when its eigendecomposition costs at most ``_AUTO_MAX_PASSES`` solver passes."""
    k = 10 if n_classes is None else n_classes
    if p > n:
        return "spectral"  # the dual route: N^3 instead of products with the wide X
    factor_flops = n * p * p + 10.0 * p**3  # X^T X (syrk) + symmetric eigensolver
    pass_flops = 2.0 * n * p * k
    return "spectral" if factor_flops <= _AUTO_MAX_PASSES * pass_flops else "direct"


def factorize(*, features=None, gram=None, method: str = "spectral", n_classes=None) -> ProbeFactor:
    """Prepare ``X`` (N, p) or ``G`` (N, N) for :func:`solve_probe`.

    Parameters
    ----------
    features : array_like, shape (N, p), optional
    gram : array_like, shape (N, N), optional
        Exactly one of the two.
    method : {'spectral', 'direct', 'auto'}
        For features with ``p <= N``: ``'spectral'`` (default) computes the eigendecomposition of
        ``X^T X`` (O(N p^2 + p^3), p x p memory; never an N x N matrix), which makes the
        preconditioner exact at uniform outputs -- worth it when several problems share the
        features (rounds, lam values, the PLL student). ``'direct'`` skips it (the preconditioner
        then uses ``diag(X^T X)``): one-off solves with ``p >> K``. ``'auto'`` picks
        ``'spectral'`` when it costs at most ``_AUTO_MAX_PASSES`` solver passes over the data (a
        pass is ~``2 N p K`` flops; ``n_classes`` defaults to 10). Features with ``p > N`` and
        Gram matrices use the eigendecomposition of ``G`` (O(N^3); eigenvalues below
        ``N eps mu_max``, under the eigensolver's backward error, are dropped).

    Raises ``ValueError`` for non-finite input, a non-symmetric or non-PSD Gram matrix, an unknown
    method, or a factorisation that would not fit in memory.
    """
    if (features is None) == (gram is None):
        raise ValueError("pass exactly one of features (N, p) or gram (N, N)")
    if method not in FACTOR_METHODS:
        raise ValueError(f"method must be one of {FACTOR_METHODS}, got {method!r}")
    if features is not None:
        x = np.ascontiguousarray(check_finite_matrix(features, "features"))
        n, p = x.shape
        if method == "auto":
            method = _auto_method(n, p, n_classes)
        if method == "direct":
            return ProbeFactor(x, np.einsum("ij,ij->j", x, x), None, x, None, "direct")
        if p <= n:
            check_memory(8.0 * 3 * p * p, f"spectral factorisation (p={p})")
            s, v = np.linalg.eigh(x.T @ x)
            s = np.clip(s, 0.0, None)  # X^T X is PSD; negative values are round-off
            return ProbeFactor(x, s, v, x, None, "spectral")
        check_memory(8.0 * 3 * n * n, f"Gram factorisation (N={n})")
        g = x @ x.T
        factor = _factor_gram(0.5 * (g + g.T))
        return ProbeFactor(factor.basis, factor.col_sq_norms, None, x, None, "dual")
    g = check_symmetric(gram)
    check_memory(8.0 * 3 * g.shape[0] ** 2, f"Gram factorisation (N={g.shape[0]})")
    return _factor_gram(0.5 * (g + g.T))


def _factor_gram(g: np.ndarray) -> ProbeFactor:
    mu, u = np.linalg.eigh(g)
    check_psd_spectrum(mu)
    mu, u = mu[::-1], u[:, ::-1]
    n = g.shape[0]
    keep = mu > n * _EPS * max(float(mu[0]), np.finfo(float).tiny)
    mu, u = mu[keep], u[:, keep]
    return ProbeFactor(np.ascontiguousarray(u * np.sqrt(mu)), mu, None, None, g, "dual")
