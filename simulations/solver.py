r"""Exact solver for the L2-regularised linear softmax probe, with a KKT certificate.

Problem (soft targets ``T``, shape (K, N), columns on the simplex):

.. math::

    \min_W \; \frac1N \sum_{i=1}^N \mathrm{CE}\big(t_i, \mathrm{softmax}(W x_i)\big)
    + \frac{\lambda}{2} \lVert W \rVert_F^2 .

Stationarity gives ``W = (T - P) X / (lam N)`` (``X`` is (N, p), rows are samples), so the training
outputs are the unique fixed point

.. math::  P = \mathrm{softmax}\big((T - P)\, G / (\lambda N)\big), \qquad G = X X^\top.

Scale-free representation
-------------------------
Targets and outputs are carried as deviations from uniform, ``T = 1/K + D_T`` and
``P = 1/K + D_P`` (:class:`SoftTargets`, :mod:`simulations.softmax`). Everything the solver
computes -- gradients ``(D_P - D_T) X / N + lam W``, objective changes in the line search, the
fixed-point residual -- is formed from these deviations and the logits, never by subtracting
``1/K`` from a probability. At ``lam = 1`` after ten self-distillation rounds the deviations are
~1e-15 or smaller; they are still resolved to ~15 digits, and the certificate is *relative*: the
residual is certified against ``tol * max|D_P|``, the outputs' own distance from uniform.

Method
------
Internally samples are rows: logits ``Z = B C`` (N, K) for a data matrix ``B`` (N, q) and
coefficients ``C`` (q, K); the row-wise work (softmax, line search, certificate, the Jacobian part
of Hessian products) runs in row blocks of ~2 MB (:data:`_BLOCK_ELEMENTS`) on (N, K) work arrays
allocated once per solve. In float64 the products are formed in the orientation OpenBLAS runs
fastest (:func:`basis_times`, :func:`basis_t_times`; ``python -m benchmarks.blas_orientation``).
Three routes (:func:`factorize`):

``'spectral'``
    ``B = X``, plus the eigendecomposition ``X^T X = V diag(s) V^T`` for the preconditioner
    (O(N p^2 + p^3) once, p x p memory; ``F = X V`` is never formed). Reused by every round, lam
    value and the PLL student (:func:`simulations.distill.self_distill` factorises once).
``'direct'``
    ``B = X`` and no factorisation: the preconditioner uses ``diag(X^T X)``. The choice for a
    one-off solve with ``p >> K`` (at ``p = 2048, N = 50,000, K = 100`` the eigendecomposition
    costs as much as ~15 passes over the data).
``'dual'``
    ``B = U diag(sqrt(mu))`` from ``G = U diag(mu) U^T`` (O(N^3)), for a Gram matrix, or features
    with ``p > N``.

On any route we run a truncated Newton method with a scale-free Armijo line search
(:class:`_LineObjective`). Each step solves ``H S = -g`` by preconditioned conjugate gradients
with Hessian-vector products ``H[S] = B^T D_P[B S] / N + lam S`` (``D_P`` the per-sample softmax
Jacobians ``diag(p_i) - p_i p_i^T``), evaluated in float32 for large problems: the Newton direction
needs only a few digits. Until the gradient is within ``_SWITCH_RTOL`` of its own round-off scale
the whole iteration is float32 (the *float32 phase*: logits, softmax deviations (computed with
``expm1``, relative to the outputs' spread, :func:`_softmax32`), residuals, gradients, CG's logit
images and the Armijo line search (:class:`_LineObjective32`)); then the logits are recomputed in
float64 and the last Newton steps (and the certificate) are float64, so the certified accuracy is
unchanged.

The preconditioner (:class:`_KronPreconditioner`) replaces every Jacobian ``D_i`` by their mean
``Dbar``: ``(Dbar (x) diag(s) / N + lam I)^{-1}`` in the eigenbasis of ``B^T B`` (or with
``s = diag(X^T X)`` on the direct route). It costs O(N K^2 + K^3) to build, O(q K^2) (plus two
p x p rotations on the spectral route) to apply, never allocates an N x K x K array, and is exact
at uniform outputs on the spectral and dual routes (the first Newton step of a teacher, and all of
them when ``lam`` is large). Cost of a solve is counted in *passes*, products of the (N, q) data
matrix with a (q, K) or (N, K) array (``Certificate.passes``).

All iterates keep ``sum_k C_jk = 0`` (the optimum does: ``sum_k (T - P)_k = 0``); on that subspace
the Hessian is positive definite for ``lam > 0``.

Certificate
-----------
The fixed-point residual ``max|D_P - dev(softmax((T - P) G / (lam N)))|`` is evaluated with the
*original* features or Gram matrix. Floating-point error of ``Z' = (T - P) G / (lam N)`` is bounded
by ``gamma (|T - P| |G|) / (lam N)`` entrywise (``gamma = 8 sqrt(max(N, p)) eps``, pairwise-summed
BLAS products), and softmax is 1/2-Lipschitz in the max-norm, so residuals below
``floor = 0.5 gamma max(|T - P| |G|) / (lam N) + 8 eps max|D_P|`` are not resolvable. The solver
certifies ``residual <= target = max(tol * max|D_P|, floor)``. The floor is first bounded cheaply
with ``|G_ij| <= sqrt(G_ii G_jj)``; the exact ``|T - P| |X| |X|^T`` (in row blocks) is computed
only when that bound exceeds ``tol * max|D_P|`` (tiny ``lam``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from selfdistill_cli import available_bytes
from simulations import softmax as _softmax_mod
from simulations.softmax import (
    expm1_minus_identity,
    log1p_minus_identity,
    softmax_deviation,
    softmax_with_deviation,
)
from theory.blas import single_thread_blas
from theory.validation import (
    CERTIFICATE_RTOL_CAP,
    SIMPLEX_ATOL,
    check_finite_matrix,
    check_int,
    check_positive,
    check_psd_spectrum,
    check_symmetric,
    check_targets,
)

__all__ = [
    "FACTOR_METHODS",
    "Certificate",
    "ConvergenceError",
    "ProbeFactor",
    "ProbeSolution",
    "SoftTargets",
    "factorize",
    "fixed_point_residual",
    "new_point_logits",
    "log_softmax",
    "solve_probe",
]

_EPS = np.finfo(float).eps
#: Basis choices of :func:`factorize`.
FACTOR_METHODS = ("auto", "spectral", "direct")
#: Smallest CG forcing term: single-precision Hessian products carry relative errors ~1e-7 to
#: 1e-6 (sums over N terms), so asking CG for more than ~1e-6 is asking for round-off.
_CG_RTOL_MIN = 1e-6
#: Work ``N r K`` above which the Hessian products run in float32 by default.
_SINGLE_MIN_WORK = 1e7
#: Leave the float32 phase once the gradient norm is below this fraction of the norm of its
#: terms. Float32 products err by ~1e-7 to 1e-6 of them; on the benchmark problems the float32
#: Newton steps still converge quadratically down to ~1e-7, and from below ~1e-5 one float64
#: step (with CG forced to finish, see the forcing in :func:`solve_probe`) reaches the
#: certificate. A float64 Newton step costs ~3 float32 ones (two float64 passes over the data).
#: Measured at K = 100 (N = 10k and 50k, both workloads): 1e-5 against 1e-4 (two float64 steps)
#: saved 1-14% in 7 of 8 cells and cost 11% in one; 1e-6 cost 18% there.
_SWITCH_RTOL = 1e-5
#: ... or once float32 steps stop converging quadratically: below this gradient ratio a float32
#: Newton step that does not reduce the gradient 10-fold is limited by float32 round-off.
_STAGNATION_RTOL = 1e-4
#: Try the certificate once the rigorous residual bound is within this factor of the target.
_SPECULATE = 100.0
#: Work ``N q K`` from which float64 products ``B @ M`` are formed as ``(M^T B^T)^T``
#: (:func:`basis_times`).
_ORIENT_MIN_WORK = 2e8
#: Elements per block of the row-wise kernels (softmax, line search, certificate, the Jacobian
#: part of Hessian products): 2 MB in float64. A block's temporaries stay in cache and come back
#: from the heap, whereas whole (N, K) temporaries above glibc's 32 MB mmap limit are fresh
#: mappings whose pages the kernel faults in and zeroes on every call (at N = 50,000, K = 100
#: that system time was ~1 s of a ~4.4 s solve).
_BLOCK_ELEMENTS = 1 << 18
#: 'auto' factorises features when the eigendecomposition costs at most this many solver passes
#: over the data (one pass ~ 2 N p K flops; the factorisation ~ 3 N p^2 + 10 p^3 flops).
_AUTO_MAX_PASSES = 12
#: Row-block size for streamed products over the data (bounded temporary memory).
_ROW_BLOCK = 8192


def log_softmax(logits) -> np.ndarray:
    """Column-wise log-softmax of a (K, M) array via log-sum-exp (no overflow for |z| ~ 1e300)."""
    return _softmax_mod.log_softmax(logits, axis=0)


class ConvergenceError(RuntimeError):
    """Raised when the solver cannot certify the KKT fixed point within its iteration budget."""


def available_memory() -> float:
    """Bytes of memory available now (``selfdistill_cli.available_bytes``; inf if unknown)."""
    avail = available_bytes()[0]
    return math.inf if avail is None else float(avail)


def _check_memory(nbytes: float, what: str) -> None:
    avail = available_memory()
    if nbytes > avail:
        raise ValueError(
            f"{what} needs ~{nbytes / 1e9:.2f} GB but only {avail / 1e9:.2f} GB are available; "
            "use fewer samples or features"
        )


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


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


def _as_soft_targets(targets, n_samples: int) -> SoftTargets:
    t = targets if isinstance(targets, SoftTargets) else SoftTargets.from_probabilities(targets)
    if t.n_samples != n_samples:
        raise ValueError(f"targets has {t.n_samples} columns but there are {n_samples} samples")
    return t


# --------------------------------------------------------------------------------------------
# Factorisation (basis)
# --------------------------------------------------------------------------------------------


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
            _check_memory(8.0 * 3 * p * p, f"spectral factorisation (p={p})")
            s, v = np.linalg.eigh(x.T @ x)
            s = np.clip(s, 0.0, None)  # X^T X is PSD; negative values are round-off
            return ProbeFactor(x, s, v, x, None, "spectral")
        _check_memory(8.0 * 3 * n * n, f"Gram factorisation (N={n})")
        g = x @ x.T
        factor = _factor_gram(0.5 * (g + g.T))
        return ProbeFactor(factor.basis, factor.col_sq_norms, None, x, None, "dual")
    g = check_symmetric(gram)
    _check_memory(8.0 * 3 * g.shape[0] ** 2, f"Gram factorisation (N={g.shape[0]})")
    return _factor_gram(0.5 * (g + g.T))


def _factor_gram(g: np.ndarray) -> ProbeFactor:
    mu, u = np.linalg.eigh(g)
    check_psd_spectrum(mu)
    mu, u = mu[::-1], u[:, ::-1]
    n = g.shape[0]
    keep = mu > n * _EPS * max(float(mu[0]), np.finfo(float).tiny)
    mu, u = mu[keep], u[:, keep]
    return ProbeFactor(np.ascontiguousarray(u * np.sqrt(mu)), mu, None, None, g, "dual")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


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


def fixed_point_residual(outputs, targets, lam, *, factor: ProbeFactor) -> tuple[float, float]:
    """Residual ``max|P - softmax((T - P) G / (lam N))|`` and its round-off floor.

    ``targets`` may be an array (K, N) on the simplex or :class:`SoftTargets`. The deviations of
    ``outputs`` are formed by subtracting ``1/K`` (use a :class:`ProbeSolution`'s certificate for
    outputs near uniform).

    Returns
    -------
    residual, floor : float
    """
    lam = check_positive(lam, "lam")
    p = check_finite_matrix(outputs, "outputs")
    t = _as_soft_targets(targets, factor.n_samples)
    dev_p = (p - 1.0 / p.shape[0]).T
    res, floor = _certify(factor, dev_p, t.deviations.T, lam, exact_floor=True)
    return res, floor


def _certify(factor, dev_p, dev_t, lam, *, exact_floor=False, tol_abs=0.0, fixed_logits=None):
    """Fixed-point residual of (N, K) deviations against the original data.

    ``fixed_logits`` may pass ``Z' = (T - P) G / (lam N)`` when it has already been formed from
    the original data (the solver does, from its gradient product). Returns (residual, floor).
    The floor uses the bound ``|G_ij| <= sqrt(G_ii G_jj)`` unless ``exact_floor`` or that bound
    exceeds ``tol_abs`` (then the floor could set the target, and it is computed exactly).
    """
    n, k = dev_p.shape
    r = None
    if fixed_logits is None:
        r = dev_t - dev_p  # (T - P), rows = samples
        z_fix = factor.gram_apply(r) / (lam * n)
    else:
        z_fix = fixed_logits
    norms = factor.sample_norms
    residual, abs_r = 0.0, np.zeros(k)  # abs_r: column sums of |b_i| |T - P|_i
    for rows in _row_blocks(n, k):  # row blocks: no (N, K) temporaries (_BLOCK_ELEMENTS)
        d = softmax_deviation(z_fix[rows], axis=1)
        d -= dev_p[rows]
        residual = max(residual, _max_abs(d))
        np.subtract(dev_t[rows], dev_p[rows], out=d)
        abs_r += norms[rows] @ np.abs(d, out=d)
    gamma = 8.0 * math.sqrt(factor.inner_dim()) * _EPS
    scale = _max_abs(dev_p)
    cheap = float(np.max(norms)) * float(np.max(abs_r))
    floor = 0.5 * gamma * cheap / (lam * n) + 8.0 * _EPS * scale
    if exact_floor or floor > tol_abs:
        exact = factor.abs_gram_apply_max(dev_t - dev_p if r is None else r)
        floor = 0.5 * gamma * exact / (lam * n) + 8.0 * _EPS * scale
    return residual, float(floor)


# --------------------------------------------------------------------------------------------
# Newton-CG internals (row layout: samples are rows, (N, K) and (q, K) arrays)
# --------------------------------------------------------------------------------------------


def _max_abs(a: np.ndarray) -> float:
    """``max|a|`` without an ``|a|`` temporary."""
    return max(float(np.max(a)), -float(np.min(a)))


def _row_blocks(n: int, k: int) -> list[slice]:
    """Row slices of an (n, k) array with about ``_BLOCK_ELEMENTS`` entries each."""
    rows = max(1, _BLOCK_ELEMENTS // max(k, 1))
    return [slice(a, min(a + rows, n)) for a in range(0, n, rows)]


def basis_times(b: np.ndarray, m: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``B @ M``, C-contiguous (N, K), for the basis ``B`` (N, q) and ``M`` (q, K).

    In float64, OpenBLAS forms the transposed product ``(M^T B^T)^T`` (computed in row blocks
    and copied back to rows) 1.1-1.6x faster than ``B M`` from ``N q K ~ 5e8`` on, and up to
    ~25% slower for small ``q`` (``python -m benchmarks.blas_orientation``); float32 is level,
    so it keeps ``B M``. ``out`` (N, K) of ``B``'s dtype receives the product if given.
    """
    n, k = b.shape[0], m.shape[1]
    m = m.astype(b.dtype, copy=False)
    if b.dtype == np.float64 and n * b.shape[1] * k >= _ORIENT_MIN_WORK:
        out = np.empty((n, k)) if out is None else out
        mt = np.ascontiguousarray(m.T)
        for rows in _row_blocks(n, k):
            out[rows] = (mt @ b[rows].T).T
        return out
    return b @ m if out is None else np.matmul(b, m, out=out)


def basis_t_times(b: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``B^T @ R`` (q, K) for ``R`` (N, K): in float64 formed as ``(R^T B)^T``, which OpenBLAS
    runs 1.0-1.6x faster on every shape ``python -m benchmarks.blas_orientation`` measures."""
    if b.dtype == np.float64:
        return np.ascontiguousarray((r.T @ b).T)
    return b.T @ r


class _LineObjective:
    r"""``J(C + alpha S) - J(C)`` along a step without cancellation (``y = B S``, (N, K)).

    Per sample, with ``f(z) = lse(z) - mean(z)`` (the cross-entropy up to constants),
    ``phi(w) = e^w - 1 - w``, ``psi(a) = log(1 + a) - a`` and ``a = sum_k p_k expm1(alpha y_k)``:

    ``f(z + alpha y) - f(z) = alpha D_P . y + sum_k p_k phi(alpha y_k) + psi(a)``,

    exact, with every term of the size of the change itself (so Armijo tests still work when all
    changes are 1e-30). Rows with ``max |alpha y| > 1/2`` use
    ``lse(z + alpha y) - lse(z) = m + log sum_k p_k e^{alpha y_k - m}`` (``m`` the row maximum of
    ``alpha y``; no cancellation problem there, no overflow). The target term is
    ``-alpha D_T . y`` and the penalty ``lam (alpha <C, S> + alpha^2 ||S||^2 / 2)``. The
    alpha-independent row sums are formed once per step.
    """

    def __init__(self, probs, dev_p, dev_t, y, coef, step, lam):
        self.probs, self.y, self.lam = probs, y, lam
        n, k = y.shape
        self.blocks = _row_blocks(n, k)
        self.lin, self.py, self.ymax = np.empty(n), np.empty(n), np.empty(n)
        for rows in self.blocks:
            yb = y[rows]
            self.lin[rows] = np.einsum("ik,ik->i", dev_p[rows] - dev_t[rows], yb)
            self.py[rows] = np.einsum("ik,ik->i", probs[rows], yb)
            self.ymax[rows] = np.maximum(yb.max(axis=1), -yb.min(axis=1))
        self.cs = float(np.sum(coef * step))
        self.ss = float(np.sum(step * step))

    def _second(self, alpha: float, y, probs, py, ymax) -> np.ndarray:
        """``sum_k p_k phi(alpha y_k) + psi(a)`` per row of one block (class docstring)."""
        second = np.empty(y.shape[0])
        big = alpha * ymax > 0.5
        n_big = int(np.count_nonzero(big))
        if n_big < y.shape[0]:
            rows = slice(None) if n_big == 0 else ~big
            ay = alpha * y[rows]
            pphi = np.einsum("ik,ik->i", probs[rows], expm1_minus_identity(ay))
            a = alpha * py[rows] + pphi
            second[rows] = pphi + log1p_minus_identity(a)
        if n_big:
            rows = slice(None) if n_big == y.shape[0] else big
            ay = alpha * y[rows]
            m = ay.max(axis=1)
            ay -= m[:, None]
            total = np.einsum("ik,ik->i", probs[rows], np.exp(ay, out=ay))
            second[rows] = m + np.log(total) - alpha * py[rows]
        return second

    def __call__(self, alpha: float) -> tuple[float, float]:
        """Returns (change, magnitude); magnitude sums the terms' absolute values (the scale of
        the change's round-off)."""
        n = self.y.shape[0]
        second = np.empty(n)
        for rows in self.blocks:
            second[rows] = self._second(
                alpha, self.y[rows], self.probs[rows], self.py[rows], self.ymax[rows]
            )
        lin = alpha * self.lin
        pen_lin = self.lam * alpha * self.cs
        pen_sq = 0.5 * self.lam * alpha**2 * self.ss
        change = float(np.sum(lin) + np.sum(second)) / n + pen_lin + pen_sq
        magnitude = float(np.sum(np.abs(lin)) + np.sum(np.abs(second))) / n + abs(pen_lin) + pen_sq
        return change, magnitude


def _softmax32(logits: np.ndarray, probs=None, dev=None) -> tuple[np.ndarray, np.ndarray]:
    """Float32 softmax ``P`` and deviations ``P - 1/K`` of (N, K) float32 logits (rows).

    The float32 phase only needs a few digits, but relative to the outputs' own spread:
    ``D = (expm1(w) - mean expm1(w)) / sum e^w`` with ``w = z - max z`` never subtracts ``1/K``
    (:mod:`simulations.softmax`), and ``sum e^w`` is a sum of positive terms (relative error
    ~``eps_32 log2 K``). Two transcendentals per entry are cheaper than the memory traffic a
    branch on the spread would save. ``probs`` and ``dev`` (N, K) float32 receive the results
    if given (computed in row blocks, :data:`_BLOCK_ELEMENTS`).
    """
    probs = np.empty_like(logits) if probs is None else probs
    dev = np.empty_like(logits) if dev is None else dev
    for rows in _row_blocks(*logits.shape):
        w = probs[rows]
        np.subtract(logits[rows], logits[rows].max(axis=1, keepdims=True), out=w)
        d = np.expm1(w, out=dev[rows])
        d -= d.mean(axis=1, keepdims=True)
        np.exp(w, out=w)
        total = w.sum(axis=1, keepdims=True)
        w /= total
        d /= total
    return probs, dev


def softmax64(logits: np.ndarray, probs: np.ndarray, dev: np.ndarray) -> None:
    """:func:`simulations.softmax.softmax_with_deviation` of (N, K) rows into ``probs`` and
    ``dev``, in row blocks (:data:`_BLOCK_ELEMENTS`)."""
    for rows in _row_blocks(*logits.shape):
        probs[rows], dev[rows] = softmax_with_deviation(logits[rows], axis=1)


class _LineObjective32:
    r"""``J(C + alpha S) - J(C)`` in float32 for the float32 phase (:class:`_LineObjective`).

    Per sample ``log(1 + a) - alpha p.y + alpha (D_P - D_T).y`` with
    ``a = sum_k p_k expm1(alpha y_k)`` (the same identity, without the series for small
    ``alpha y``: the float32 phase ends while changes are still far above float32 round-off, and
    the magnitude returned makes the Armijo test tolerate that round-off). Sums over samples
    are accumulated in float64.
    """

    def __init__(self, probs, dev_p, dev_t, y, coef, step, lam):
        self.probs, self.y, self.lam = probs, y, lam
        n, k = y.shape
        self.blocks = _row_blocks(n, k)
        self.lin, self.py = np.empty(n, np.float32), np.empty(n, np.float32)
        for rows in self.blocks:
            self.lin[rows] = np.einsum("ik,ik->i", dev_p[rows] - dev_t[rows], y[rows])
            self.py[rows] = np.einsum("ik,ik->i", probs[rows], y[rows])
        self.cs = float(np.sum(coef * step))
        self.ss = float(np.sum(step * step))

    def __call__(self, alpha: float) -> tuple[float, float]:
        a32 = np.float32(alpha)
        log_term = np.empty(self.y.shape[0], np.float32)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for rows in self.blocks:
                u = np.expm1(a32 * self.y[rows])
                log_term[rows] = np.log1p(np.einsum("ik,ik->i", self.probs[rows], u))
        lin = a32 * (self.lin - self.py)
        pen_lin = self.lam * alpha * self.cs
        pen_sq = 0.5 * self.lam * alpha**2 * self.ss
        n = self.y.shape[0]
        change = float(np.sum(log_term, dtype=float) + np.sum(lin, dtype=float)) / n
        change += pen_lin + pen_sq
        magnitude = (
            float(np.sum(np.abs(log_term), dtype=float) + np.sum(np.abs(lin), dtype=float)) / n
            + abs(pen_lin)
            + pen_sq
        )
        return change, magnitude


class _KronPreconditioner:
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


def _memory_estimate(n, q, k, single) -> float:
    """Bytes the solve allocates beyond its inputs: ~14 (N, K) float64 arrays, a few (q, K) ones
    and, with single-precision Hessian products, the float32 basis (4 N q bytes, cached)."""
    return 8.0 * 14 * n * k + 8.0 * 10 * q * k + (4.0 * n * q if single else 0.0)


def _check_inputs(targets, lam, features, gram, factor):
    lam = check_positive(lam, "lam")
    given = sum(v is not None for v in (features, gram, factor))
    if given != 1:
        raise ValueError("pass exactly one of features (N, p), gram (N, N) or factor")
    if factor is None:
        k = targets.n_classes if isinstance(targets, SoftTargets) else np.shape(targets)[0]
        factor = factorize(features=features, gram=gram, method="auto", n_classes=k)
    elif not isinstance(factor, ProbeFactor):
        raise ValueError("factor must be a ProbeFactor from simulations.solver.factorize")
    t = _as_soft_targets(targets, factor.n_samples)
    return t, lam, factor


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
    single_precision: bool | None = None,
) -> ProbeSolution:
    r"""Train the L2-regularised softmax probe exactly and certify the KKT fixed point.

    Parameters
    ----------
    targets : array_like, shape (K, N), or SoftTargets
        Soft targets, columns on the simplex; pass :class:`SoftTargets` (e.g.
        ``solution.soft_targets()``) to keep near-uniform targets exact.
    lam : float
        ``lam > 0``.
    features : array_like, shape (N, p), optional
    gram : array_like, shape (N, N), optional
    factor : ProbeFactor, optional
        Precomputed :func:`factorize` output (reuse across rounds). Exactly one of the three;
        features alone are prepared with ``factorize(method='auto')``.
    init : ProbeSolution, optional
        Warm start from a solution computed with the same ``factor``.
    tol : float
        Required fixed-point residual relative to ``max|P - 1/K|`` (raised to the round-off floor
        where that is larger).
    max_iter : int
        Newton iterations before :class:`ConvergenceError`.
    single_precision : bool or None
        Use float32 for the Hessian products inside CG, and for gradients and logit updates
        until the gradient is within ``_SWITCH_RTOL`` of its own round-off scale; then the
        logits are recomputed and the last Newton steps run in float64. The certificate is
        always float64, so the certified accuracy is the same. Default: when ``N q K >= 1e7``
        (smaller products are not BLAS-bound).

    Returns
    -------
    ProbeSolution
        Outputs ``P`` (K, N) with ``max|P - softmax((T - P) G / (lam N))| <= certificate.target``.

    Raises
    ------
    ConvergenceError
        If the fixed point cannot be certified within ``max_iter`` Newton steps.
    ValueError
        For bad input or a problem that would not fit in memory.
    """
    t, lam, factor = _check_inputs(targets, lam, features, gram, factor)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    basis, n, q = factor.basis, factor.n_samples, factor.rank
    k = t.n_classes
    single = n * q * k >= _SINGLE_MIN_WORK if single_precision is None else bool(single_precision)
    _check_memory(
        _memory_estimate(n, q, k, single and "basis32" not in factor._cache),
        f"probe solve (N={n}, q={q}, K={k})",
    )
    dev_t = np.ascontiguousarray(t.deviations.T)  # (N, K)
    if init is not None and not np.any(dev_t):
        # Uniform targets: the optimum is W = 0 exactly (the gradient X^T (1/K - T)/N vanishes).
        # Start there: a warm start would leave its logits' round-off (~eps * earlier logits),
        # which a certificate relative to the solution's own (zero) scale can never accept.
        init = None
    b32 = factor.basis32() if single else None
    b_hvp = b32 if single else basis
    # In the float32 phase the logits, outputs and every (N, K) array are float32 (half the
    # memory traffic; that phase needs a few digits relative to the outputs' spread).
    dtype = np.float32 if single else np.float64
    if init is not None:
        if init.factor is not factor or init.coef.shape != (q, k):
            raise ValueError("init must be a ProbeSolution computed with the same factor")
        coef = init.coef - init.coef.mean(axis=1, keepdims=True)
        # The logits are recomputed, not taken from init: updates that shrink them (rounds at
        # large lam) leave an absolute error ~eps * (earlier logits), which would otherwise
        # persist and bound the relative accuracy. In the float32 phase this happens at the switch.
        logits = basis_times(b_hvp, coef.astype(dtype))
        passes = 1
        passes32 = int(single)
    else:
        coef = np.zeros((q, k))
        logits = np.zeros((n, k), dtype)
        passes = passes32 = 0
    dev_t_low = dev_t.astype(np.float32) if single else None
    # (N, K) work arrays, allocated once per solve and overwritten in place (each iteration's
    # outputs are dead once the next softmax is formed; see _BLOCK_ELEMENTS for why).
    work: dict[str, np.ndarray] = {}

    def buffer(name, dt):
        if name not in work:
            work[name] = np.empty((n, k), dt)
        return work[name]

    features_route = factor.route in ("spectral", "direct")  # B = X: Z' from the gradient
    rowmax = float(np.max(factor.sample_norms))
    low = single  # float32 gradients / logit updates until close to the optimum

    cg_total = it = stalls = 0
    certify_next = False
    prev_ratio = math.inf  # gradient ratio ||g|| / terms at the previous float32 step
    while True:
        if low:
            probs, dev_p = _softmax32(logits, buffer("p32", np.float32), buffer("d32", np.float32))
            resid = np.subtract(dev_p, dev_t_low, out=buffer("r32", np.float32))
            btr = (b32.T @ resid).astype(np.float64) / n
        else:
            probs, dev_p = buffer("p64", float), buffer("d64", float)
            softmax64(logits, probs, dev_p)
            resid = np.subtract(dev_p, dev_t, out=buffer("r64", float))
            btr = basis_t_times(basis, resid) / n  # (q, K)
        passes += 1
        passes32 += int(low)
        # Iterates and the optimum satisfy sum_k C_jk = 0, where the Hessian is positive definite;
        # the class-mean part of the computed gradient is round-off, which CG cannot remove.
        grad = btr + lam * coef
        grad -= grad.mean(axis=1, keepdims=True)
        gnorm = float(np.linalg.norm(grad))
        # Round-off scale of the gradient: float32 products err by ~1e-6 of the terms.
        terms = float(np.linalg.norm(btr)) + lam * float(np.linalg.norm(coef))
        ratio = gnorm / terms if terms > 0 else 0.0
        if low:
            # Leave the float32 phase at float32 round-off (_SWITCH_RTOL), when its steps stop
            # converging quadratically there (_STAGNATION_RTOL), or when the line search stalls.
            # (Predicting the switch point from the quadratic model, even with a sharper
            # one-pass residual estimate, cost more passes than it saved on the benchmarks.)
            stagnant = prev_ratio <= _STAGNATION_RTOL and ratio > 0.1 * prev_ratio
            prev_ratio = ratio
            if ratio <= _SWITCH_RTOL or stagnant or stalls or it >= max_iter:
                low, stalls = False, 0
                # Drop the float32 drift of the accumulated updates.
                logits = basis_times(basis, coef)
                passes += 1
                continue
        scale = 0.0 if low else _max_abs(dev_p)
        # Rigorous bound on the basis-form residual: |B g / lam|_ik <= |b_i| |g_:k|; softmax is
        # 1/2-Lipschitz. It overestimates the residual by ~5-100x on the benchmark problems, so
        # the certificate (one pass) is tried from est <= _SPECULATE * goal: when it passes, a
        # Newton step (~4-10 passes) is saved.
        est = 0.5 * rowmax * float(np.max(np.linalg.norm(grad, axis=0))) / lam
        goal = 0.0  # the target is irrelevant in the float32 phase
        if not low:  # the cheap round-off floor (see _certify), part of the target at tiny lam
            abs_r = sum(factor.sample_norms[r] @ np.abs(resid[r]) for r in _row_blocks(n, k))
            cheap = float(np.max(abs_r))
            floor_bound = 4.0 * math.sqrt(factor.inner_dim()) * _EPS * rowmax * cheap / (lam * n)
            goal = max(tol * scale, floor_bound)
        if not low and (est <= _SPECULATE * goal or certify_next or it >= max_iter or stalls >= 3):
            fixed = None
            if features_route:  # Z' = X W' with W' = X^T (T - P) / (lam N), from the gradient
                fixed = basis_times(basis, -btr / lam, out=buffer("y64", float))
            res, floor = _certify(
                factor, dev_p, dev_t, lam, tol_abs=tol * scale, fixed_logits=fixed
            )
            passes += 1 if factor.gram is not None or features_route else 2
            # The floor raises the target, never above CERTIFICATE_RTOL_CAP * scale: a residual
            # that round-off does not resolve (lam = 1e-300: floor >> 1) is not certified.
            target = max(tol * scale, min(floor, CERTIFICATE_RTOL_CAP * scale))
            if res <= target:
                break
            if it >= max_iter or stalls >= 3:
                raise ConvergenceError(
                    f"probe solve did not converge: residual {res:.3g} > target {target:.3g} "
                    f"after {it} Newton steps (gradient norm {gnorm:.3g}, lam={lam:g}); "
                    "try a larger max_iter or a larger lam"
                )
            certify_next = est <= 4 * floor  # round-off dominated: check after each step
        it += 1
        pre = _KronPreconditioner(factor, probs, lam)
        # Forcing: loose CG solves far away, tight near the solution (Eisenstat-Walker), never
        # more accurate than the certificate needs (the next gradient is ~rtol * gnorm), and,
        # once the target is within reach of one step, tight enough to finish in that step. The
        # float64 phase after float32 steps starts within reach: there CG is asked (as far as
        # float32 products allow) to bring the rigorous bound ``est`` to the goal in this step (a
        # float64 Newton step costs as many passes as ~6 CG iterations).
        rtol_min = _CG_RTOL_MIN if b_hvp.dtype == np.float32 else 1e-12
        rtol = min(0.5, math.sqrt(gnorm / terms)) if terms > 0 else 0.5
        if not low and b_hvp.dtype == np.float32:
            rtol = min(rtol, max(goal / est if est > 0 else 0.5, rtol_min))
        elif not low:
            finish = 10.0 * goal / est if est > 0 else 0.5
            if finish >= 10 * rtol_min:
                rtol = min(rtol, finish)
        rtol = max(rtol, 0.1 * goal / est if est > 0 else 0.5, rtol_min)
        p_h = np.asarray(probs, dtype=b_hvp.dtype)
        hvp_y = buffer(f"hvp_y{b_hvp.dtype}", b_hvp.dtype)
        hvp_m = buffer(f"hvp_m{b_hvp.dtype}", b_hvp.dtype)

        def hvp(s, p_h=p_h, b=b_hvp, y=hvp_y, m=hvp_m):
            basis_times(b, s, out=y)
            for rows in _row_blocks(n, k):  # D_i y_i = p_i * (y_i - p_i . y_i)
                pb, yb = p_h[rows], y[rows]
                mb = np.subtract(yb, np.einsum("ik,ik->i", pb, yb)[:, None], out=m[rows])
                mb *= pb
            return basis_t_times(b, m).astype(np.float64) / n + lam * s, y

        cg_maxiter = max(50, 10 * k)
        image = buffer("image32", np.float32) if low else None
        step, n_cg, image = pcg(hvp, -grad, pre, rtol, cg_maxiter, image)
        cg_total += n_cg
        passes += 2 * n_cg
        passes32 += 2 * n_cg if b_hvp.dtype == np.float32 else 0
        if not low and single and n_cg >= cg_maxiter and b_hvp is b32:
            # Float32 Hessian products cannot deliver this CG accuracy (tiny lam: condition
            # numbers ~1/lam): the remaining Newton steps use float64 products.
            b_hvp = basis
        if low:
            y = image  # float32-accurate logit change, accumulated inside CG
        else:
            step -= step.mean(axis=1, keepdims=True)  # stay on sum_k C_jk = 0 (round-off)
            y = basis_times(basis, step, out=buffer("y64", float))
            passes += 1
        slope = float(np.sum(grad * step))
        alpha, change = 1.0, 0.0
        # Round-off of the objective change: float32 sums in the float32 phase.
        eps = float(np.finfo(np.float32).eps) if low else _EPS
        if slope < 0:
            line_cls = _LineObjective32 if low else _LineObjective
            line = line_cls(probs, dev_p, dev_t_low if low else dev_t, y, coef, step, lam)
            while alpha >= 1e-10:
                change, magnitude = line(alpha)
                # A non-finite change (overflow, or log1p(-1) by float32 round-off) rejects.
                if math.isfinite(change) and change <= 1e-4 * alpha * slope + 8 * eps * magnitude:
                    break
                alpha *= 0.5
        if not slope < 0 or alpha < 1e-10:  # only round-off (or an overflow: NaN) causes these
            stalls += 1
            certify_next = True
            continue
        coef = coef + alpha * step
        coef -= coef.mean(axis=1, keepdims=True)  # no drift off sum_k C_jk = 0 across rounds
        y *= y.dtype.type(alpha)  # y (CG's image or a work array) is dead after this step
        logits += y
        # Progress beyond the round-off of the change itself resets the stall counter.
        stalls = 0 if change < -64 * eps * magnitude else stalls + 1

    dual = np.divide(resid, -lam * n, out=resid).T  # the work array is free now
    if factor.route in ("spectral", "direct"):
        weights = np.ascontiguousarray(coef.T)
    elif factor.features is not None:
        weights = dual @ factor.features
    else:
        weights = None
    output_bound = 0.5 * rowmax * gnorm / lam + 64 * _EPS * (scale + _max_abs(logits))
    cert = Certificate(
        residual=res,
        gradient_norm=gnorm,
        iterations=it,
        cg_iterations=cg_total,
        target=target,
        floor=floor,
        output_bound=float(output_bound),
        method=f"newton-cg ({factor.route})",
        scale=scale,
        passes=passes,
        single_passes=passes32,
    )
    # (K, N) views of the row-major (N, K) arrays: no copies (transposing costs ~30 ms each at
    # N = 10,000, K = 100).
    return ProbeSolution(probs.T, logits.T, dual, weights, cert, lam, factor, coef, dev_p.T)
