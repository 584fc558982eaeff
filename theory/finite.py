r"""Finite-dimension theory: label averaging on the random Gram matrix of a Gaussian mixture.

Everything else in :mod:`theory` is the ``p -> inf`` block limit, where the Gram matrix is exactly
``(1-c) I + (c-d) B + d 11^T``. Here the features are the project's Gaussian mixture at finite
dimension ``p`` (:mod:`simulations.features`): ``x = mu_y + z``, ``||mu_k||^2 = c``,
``<mu_k, mu_l> = d``, ``z ~ N(0, sigma^2 I_p)``, ``sigma^2 = (1 - c)/p``. The Gram matrix is then
random: ``K`` class spikes on top of a Marchenko-Pastur bulk. This module gives deterministic
predictions -- computed, not sampled -- of the linearised dynamics (``docs/theory.md`` §11)

.. math::  P_t - \tfrac1K = \hat Y_c f_t(G), \qquad f_t(x) = \Big(\frac{x}{x + \kappa}\Big)^{t+1},
           \quad \kappa = K \lambda N, \quad \hat Y_c = \hat Y - \tfrac1K,

round by round: the mean and covariance of every group's training outputs (true class ``k``,
given label ``l``), hence the training accuracy of all / clean / mislabeled points through
Gaussian orthant probabilities (:mod:`theory.orthant`), and the population accuracy from the
exact conditional law of a fresh point's logits (:mod:`theory.population`).

Derivation in one paragraph (§11 has every step and the named assumptions). Rotate ``R^p`` so the
means span the first ``K`` coordinates: ``X = [J M + Z_1, Z_2]`` with ``J`` (N, K) the class
indicator, ``M`` (K, K) the mean coordinates (:func:`theory.gram.mean_coordinates`), ``Z_1``
(N, K) and ``Z_2`` (N, p - K) Gaussian. So ``G = W + V V^T`` *exactly*, with a white Wishart
``W = Z_2 Z_2^T`` (``p - K`` degrees of freedom) independent of ``V = J M + Z_1``. Functions of
``G`` are contour integrals of the resolvent ``Q(z) = (G + z)^{-1}`` on a circle around
``kappa`` (:func:`contour_weights`); Woodbury reduces ``Q`` to ``Q_W = (W + z)^{-1}`` and ``K x K``
algebra; ``W``'s eigenvectors are Haar distributed, so bilinear forms of ``Q_W`` concentrate on
the Marchenko-Pastur Stieltjes transform ``s(z)`` (:func:`bulk_stieltjes`), with Gaussian
fluctuations whose covariance is the divided difference of ``s``. The point's own row gives the
own-label (memorisation) part, the class sums give the class-histogram part. Second-order terms in
the ``K x K`` fluctuations (relative size ``K/N``) and the training set's trial-to-trial
fluctuations are kept: at ``N = 100`` they move accuracies by a few percent.

Cost: ``O(m^2 K^4)`` for ``m ~ 40 + 2R`` contour points and ``K^2`` groups, independent of ``n``,
plus ``K^2 (R + 1)`` orthant probabilities.

References
----------
R. Couillet, Z. Liao, *Random Matrix Methods for Machine Learning*, Cambridge UP, 2022, ch. 2-4
(deterministic equivalents, Marchenko-Pastur, spiked models, contour integrals).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from theory.blas import single_thread_blas
from theory.class_symmetry import class_symmetry
from theory.gram import check_mixture_params, mean_coordinates
from theory.groups import BlockModel, check_counts
from theory.orthant import win_probability
from theory.validation import check_int, check_positive

__all__ = [
    "FINITE_MAX_ROUNDS",
    "FinitePrecisionError",
    "FinitePrediction",
    "FiniteResolutionError",
    "PopulationRounds",
    "finite_phase_diagram",
    "finite_resource_estimate",
    "population_rounds",
    "FiniteSpectrum",
    "MixtureModel",
    "bulk_density",
    "bulk_eigen_weights",
    "bulk_stieltjes",
    "bulk_variance_kernel",
    "contour_weights",
    "finite_spectrum",
    "predict_finite",
]

#: Quadrature target of the orthant probabilities. The deterministic equivalents' own error at
#: N ~ 100 is ~1e-2 in accuracy (docs §11.9), so a 2e-3 quadrature error estimate is invisible; it
#: is reported in ``FinitePrediction.quadrature_err``.
ORTHANT_TOL = 2e-3
#: First QMC pass of the orthant rule (points per shift); doubled until ``ORTHANT_TOL`` is met.
_FIRST_POINTS = 32
#: Numbers per chunk of groups in the training moments (2^24 doubles = 128 MB).
_CHUNK_NUMBERS = 2**24


# --------------------------------------------------------------------------------------------
# the model


@dataclass(frozen=True)
class MixtureModel:
    """Gaussian mixture of dimension ``dim``: ``K = n_classes`` classes of ``n = per_class`` points.

    ``dim = math.inf`` is the block limit (Gram matrix exactly the block model). Validated with
    :func:`theory.gram.check_mixture_params` (``0 <= c <= 1``, ``d <= c``,
    ``c + (K - 1) d >= 0``) and ``p > K`` (the theory's noise bulk has ``p - K`` dimensions; a
    simulation may use ``p = K``, the theory has nothing to describe there).
    """

    n_classes: int
    per_class: int
    dim: float
    c: float
    d: float

    def __post_init__(self):
        dim = self.dim
        if isinstance(dim, float) and math.isinf(dim) and dim > 0:
            k, _, c, d = check_mixture_params(self.n_classes, self.n_classes, self.c, self.d)
        else:
            if isinstance(dim, float) and dim.is_integer():
                dim = int(dim)
            k, dim, c, d = check_mixture_params(self.n_classes, dim, self.c, self.d)
            if dim <= k:  # no noise outside the means' span: the bulk spectrum does not exist
                raise ValueError(
                    f"dim (p) must be > K = {k} for the finite-p theory (its noise bulk has p - K "
                    f"dimensions), got {dim}"
                )
        n = check_int(self.per_class, "per_class", 1)
        for name, value in (("n_classes", k), ("per_class", n), ("dim", dim), ("c", c), ("d", d)):
            object.__setattr__(self, name, value)

    @property
    def n_samples(self) -> int:
        """``N = K n``."""
        return self.n_classes * self.per_class

    @property
    def infinite(self) -> bool:
        """Whether this is the ``p -> inf`` block limit."""
        return math.isinf(self.dim)

    @property
    def noise_var(self) -> float:
        """Per-coordinate noise variance ``sigma^2 = (1 - c)/p`` (0 in the block limit)."""
        return 0.0 if self.infinite else (1.0 - self.c) / self.dim

    @property
    def bulk_dof(self) -> float:
        """Degrees of freedom ``p - K`` of the Wishart part ``W = Z_2 Z_2^T``."""
        return math.inf if self.infinite else float(self.dim - self.n_classes)

    @property
    def bulk_scale(self) -> float:
        """``sigma^2 (p - K)``: ``E W = sigma^2 (p - K) I`` (``1 - c`` in the block limit)."""
        if self.infinite:
            return 1.0 - self.c
        return self.noise_var * self.bulk_dof

    @property
    def ratio(self) -> float:
        """``N / p`` (0 in the block limit)."""
        return 0.0 if self.infinite else self.n_samples / self.dim

    def means(self) -> np.ndarray:
        """Mean coordinates ``M`` (K, K), row ``k`` = ``mu_k`` in the means' span."""
        return mean_coordinates(self.n_classes, self.c, self.d)

    def block(self) -> BlockModel:
        """The block model with the same ``K, n, c, d`` (the ``p -> inf`` limit)."""
        return BlockModel(self.n_classes, self.per_class, self.c, self.d)


# --------------------------------------------------------------------------------------------
# the bulk: Marchenko-Pastur


def bulk_stieltjes(z, model: MixtureModel):
    r"""``s(z) = lim (1/N) tr (W + z)^{-1}`` and ``s'(z)`` for the Wishart bulk, ``Re z > 0``.

    ``W = Z_2 Z_2^T`` (N, N) with ``p' = p - K`` i.i.d. ``N(0, sigma^2)`` columns. Its resolvent
    has the deterministic equivalent ``s I`` with the Marchenko-Pastur equation

    .. math::  s = \frac{1}{z + p'\sigma^2/(1 + N\sigma^2 s)}
               \iff N\sigma^2 z\, s^2 + (z + (p' - N)\sigma^2)\, s - 1 = 0,

    of which ``s`` is the root of a Stieltjes transform of a measure on ``[0, inf)`` evaluated at
    ``-z``: ``Im s Im z < 0`` off the real axis (on it, ``0 < s <= 1/z`` for ``z > 0``).
    ``sigma = 0`` (block limit or ``c = 1``) gives
    ``W = bulk_scale I``: ``s = 1/(z + bulk_scale)``.

    Returns
    -------
    s, ds : ndarray (complex)
    """
    z = np.asarray(z, dtype=complex)
    scale = model.bulk_scale
    if model.noise_var == 0.0:
        s = 1.0 / (z + scale)
        return s, -(s**2)
    n, s2, dof = model.n_samples, model.noise_var, model.bulk_dof
    a = n * s2 * z
    b = z + (dof - n) * s2
    disc = np.sqrt(b * b + 4.0 * a)
    r1 = (-b + disc) / (2.0 * a)
    r2 = (-b - disc) / (2.0 * a)
    # The Stieltjes branch: Im s and Im z have opposite signs off the real axis (s is the
    # transform of a measure on [0, inf) evaluated at -z); on the real axis right of the support
    # 0 < s <= 1/z, left of it s < 0 and s -> 1/z.
    with np.errstate(divide="ignore", invalid="ignore"):
        real_ok = np.where(
            z.real > 0,
            (r1.real > 0) & (np.abs(r1) <= 1.0 / np.abs(z) * (1 + 1e-9)),
            np.abs(r1 - 1.0 / z) < np.abs(r2 - 1.0 / z),
        )
    ok1 = np.where(z.imag != 0, r1.imag * z.imag < 0, real_ok)
    s = np.where(ok1, r1, r2)
    ds = -(n * s2 * s * s + s) / (2.0 * n * s2 * z * s + b)
    return s, ds


def bulk_variance_kernel(s1, s2, model: MixtureModel):
    r"""``c(z_1, z_2) = (1/N) tr Q_W(z_1) Q_W(z_2) - s(z_1) s(z_2)`` (Haar fluctuation kernel).

    From the Marchenko-Pastur equation, with ``u_i = 1 + N sigma^2 s_i``: the divided difference
    ``(s_1 - s_2)/(z_2 - z_1) = s_1 s_2 / (1 - x)``, ``x = p' N sigma^4 s_1 s_2 / (u_1 u_2)``, so

    .. math::  c(z_1, z_2) = s_1 s_2\, \frac{x}{1 - x},

    without cancellation, also on the diagonal (``-s' - s^2``). It is the spread of the bulk's
    filter weights: ``c(z, z) = (1/N) sum_j (1/(lambda_j + z) - s)^2 >= 0``.
    """
    s1 = np.asarray(s1, dtype=complex)
    s2 = np.asarray(s2, dtype=complex)
    if model.noise_var == 0.0:
        return np.zeros(np.broadcast(s1, s2).shape, dtype=complex)
    n, sv, dof = model.n_samples, model.noise_var, model.bulk_dof
    u1, u2 = 1.0 + n * sv * s1, 1.0 + n * sv * s2
    x = dof * n * sv**2 * s1 * s2 / (u1 * u2)
    return s1 * s2 * x / (1.0 - x)


def bulk_density(x, model: MixtureModel):
    r"""Marchenko-Pastur density of the bulk of ``G`` (eigenvalues of ``W``), and its atom at 0.

    With ``gamma = N / p'`` and scale ``v = sigma^2 p'``: support ``[v (1 - sqrt gamma)^2,
    v (1 + sqrt gamma)^2]``, density ``sqrt((b - x)(x - a)) / (2 pi gamma v x)`` (per unit mass of
    the ``N`` eigenvalues), plus an atom ``1 - 1/gamma`` at 0 when ``p' < N``.

    Returns
    -------
    density : ndarray, atom : float
    """
    x = np.asarray(x, dtype=float)
    if model.noise_var == 0.0:
        raise ValueError("the block limit has no bulk density (a point mass at 1 - c)")
    gamma = model.n_samples / model.bulk_dof
    v = model.noise_var * model.bulk_dof
    lo, hi = v * (1 - math.sqrt(gamma)) ** 2, v * (1 + math.sqrt(gamma)) ** 2
    inside = (x > lo) & (x < hi)
    dens = np.zeros_like(x)
    xi = x[inside]
    dens[inside] = np.sqrt((hi - xi) * (xi - lo)) / (2 * math.pi * gamma * v * xi)
    return dens, max(0.0, 1.0 - 1.0 / gamma)


# --------------------------------------------------------------------------------------------
# spectrum: spikes + bulk


@dataclass(frozen=True)
class FiniteSpectrum:
    """Predicted Gram spectrum: class spikes outside a Marchenko-Pastur bulk.

    Attributes
    ----------
    bulk_edges : (float, float)
        Support of the bulk (the block limit: both ``1 - c``).
    bulk_atom : float
        Fraction of the ``N`` eigenvalues at 0 (``1 - p'/N`` when ``p - K < N``).
    spike_strengths : ndarray, shape (K,)
        Eigenvalues ``tau_j`` of ``E[V^T V] = n M^T M + N sigma^2 I`` (the class part).
    spikes : ndarray, shape (K,)
        Predicted outlier eigenvalues of ``G``: solutions of ``1 + tau_j s(-mu) = 0`` above the
        bulk; ``NaN`` for a spike below the detection threshold (it merges with the bulk).
    """

    bulk_edges: tuple
    bulk_atom: float
    spike_strengths: np.ndarray
    spikes: np.ndarray


def _spike_strengths(model: MixtureModel) -> np.ndarray:
    mu = model.means()
    t = model.per_class * mu.T @ mu + model.n_samples * model.noise_var * np.eye(model.n_classes)
    return np.sort(np.linalg.eigvalsh(0.5 * (t + t.T)))[::-1]


def _real_stieltjes_above(x, model: MixtureModel) -> float:
    """``s(-x) = (1/N) tr (W - x)^{-1}`` for ``x`` above the bulk (real, negative)."""
    if model.noise_var == 0.0:
        return 1.0 / (model.bulk_scale - x)
    n, s2, dof = model.n_samples, model.noise_var, model.bulk_dof
    z = -x
    a, b = n * s2 * z, z + (dof - n) * s2
    disc = math.sqrt(b * b + 4 * a)
    roots = ((-b + disc) / (2 * a), (-b - disc) / (2 * a))
    # Above the bulk s(-x) is negative and tends to -1/x: take the root closest to it.
    return min(roots, key=lambda r: abs(r + 1.0 / x))


def finite_spectrum(model: MixtureModel) -> FiniteSpectrum:
    r"""Bulk support and class spikes of ``G = W + V V^T`` (:class:`FiniteSpectrum`).

    By Woodbury, ``mu`` outside the bulk is an eigenvalue of ``G`` iff ``I + V^T Q_W(-mu) V`` is
    singular; with ``V^T Q_W V ~ s(-mu) V^T V`` the spikes solve ``1 + tau_j s(-mu) = 0``.
    ``s(-mu)`` increases from ``s(-b)`` (upper edge ``b``) to 0, so a spike exists iff
    ``tau_j > -1/s(-b)`` (a BBP-type threshold) and is found by bisection.
    """
    tau = _spike_strengths(model)
    if model.noise_var == 0.0:
        edge = (model.bulk_scale, model.bulk_scale)
        atom = 0.0
    else:
        gamma = model.n_samples / model.bulk_dof
        v = model.noise_var * model.bulk_dof
        edge = (v * (1 - math.sqrt(gamma)) ** 2, v * (1 + math.sqrt(gamma)) ** 2)
        atom = max(0.0, 1.0 - 1.0 / gamma)
    spikes = np.full(tau.shape, np.nan)
    top = edge[1]
    # Equal strengths have equal spikes (the same bisection): K - 1 of the K strengths coincide
    # when the class means are exchangeable, so each distinct value is solved once.
    solved: dict[float, float] = {}
    for j, t in enumerate(tau):
        if float(t) in solved:
            spikes[j] = solved[float(t)]
            continue
        solved[float(t)] = spikes[j] = _spike(float(t), top, model)
    return FiniteSpectrum(edge, atom, tau, spikes)


def _spike(t: float, top: float, model: MixtureModel) -> float:
    """The spike of strength ``t`` above the bulk edge ``top`` (NaN below the threshold)."""
    lo = top * (1 + 1e-12) + 1e-300
    if 1.0 + t * _real_stieltjes_above(lo, model) >= 0:  # below the threshold
        return math.nan
    hi = max(2 * lo, top + 2 * t + 1.0)
    while 1.0 + t * _real_stieltjes_above(hi, model) < 0:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 1.0 + t * _real_stieltjes_above(mid, model) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


@functools.lru_cache(maxsize=64)
def spectrum_top(model: MixtureModel) -> float:
    """Upper end of the predicted spectrum (largest spike or bulk edge), with a 10% margin.

    The deterministic equivalents are analytic in ``z`` off ``[-top, 0]``; the contour of
    :func:`contour_weights` must keep ``[-top, 0]`` on one side and ``kappa`` on the other.

    It depends on the model only (not on ``lam``, the counts or the rounds), so it is cached
    per model (LRU of 64; :class:`MixtureModel` is frozen and hashable): a slider move of the
    explorer in ``lam``, ``eta`` or the rounds reuses it (its bisections cost ~10 ms at K = 10).
    """
    spec = finite_spectrum(model)
    spikes = spec.spikes[np.isfinite(spec.spikes)]
    top = max([spec.bulk_edges[1], *spikes, float(spec.spike_strengths.max())])
    return 1.1 * top + 1e-12


def bulk_eigen_weights(model: MixtureModel, lam, rounds) -> np.ndarray:
    r"""Label-averaging weights averaged over the bulk: ``E_bulk[(mu/(mu + kappa))^(t+1)]``.

    The block model keeps every within-class direction with the single weight ``a_3^(t+1)``,
    ``a_3 = (1-c)/(1-c+kappa)``; at finite ``p`` the bulk eigenvalues spread over the
    Marchenko-Pastur support and the weight averaged over them is

    .. math::  \bar a(t) = \int \Big(\frac{\mu}{\mu + \kappa}\Big)^{t+1} d\mu_{\rm bulk}
               = 1 - \frac{1}{2\pi i}\oint w_t(z)\, z\, s(z)\, dz

    (:func:`contour_weights`). Returns shape (R + 1,).
    """
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    kappa = model.n_classes * lam * model.n_samples
    cont = contour_weights(kappa, r, spectrum_top(model))
    s, _ = bulk_stieltjes(cont.z, model)
    return cont.identity - np.real(cont.weights @ (cont.z * s))


# --------------------------------------------------------------------------------------------
# contour


@dataclass(frozen=True)
class Contour:
    """Trapezoid rule on a circle in the Mobius coordinate ``u = z/(z - kappa)``.

    Attributes
    ----------
    z, u : ndarray (complex), shape (m,)
    weights : ndarray (complex), shape (R + 1, m)
    identity : float
        ``1`` if the contour encloses ``u = 1`` (``z = inf``), else ``0``: the coefficient of the
        identity in ``f_t(G) = identity I - sum_j weights[t, j] z_j Q(z_j)``.
    kappa : float
    center, radius : float
        The circle ``|u - center| = radius``.
    """

    z: np.ndarray
    u: np.ndarray
    weights: np.ndarray
    identity: float
    kappa: float
    center: float
    radius: float


def contour_weights(kappa: float, rounds: int, top: float | None = None) -> Contour:
    r"""Contour points ``z_j`` and weights for ``f_t(G)`` and ``g_t(G) = G^t (G + kappa)^{-t-1}``.

    With ``w_t(z) = z^t/(z - kappa)^{t+1}`` and ``x >= 0``, residues give

    .. math::  g_t(x) = \frac{x^t}{(x + \kappa)^{t+1}}
               = \frac{1}{2\pi i}\oint \frac{w_t(z)\, dz}{x + z}, \qquad
               f_t(x) = \Big(\frac{x}{x+\kappa}\Big)^{t+1}
               = c_0 - \frac{1}{2\pi i}\oint \frac{w_t(z)\, z\, dz}{x + z},

    for a contour separating the pole ``x + z = 0`` from ``kappa`` (``c_0 = 1`` if it encloses
    ``kappa``, ``0`` if it encloses the spectrum). In the Mobius coordinate
    ``u = z/(z - kappa)`` (``z = kappa u/(u - 1)``) the spectrum ``z in [-top, 0]`` maps to
    ``u in [0, u_top]``, ``u_top = top/(top + kappa)``, ``z = kappa`` to ``u = inf`` and
    ``z = inf`` to ``u = 1``, and ``w_t dz/(2 pi i) = u^t du/((u - 1) 2 pi i)`` on a
    counter-clockwise ``u``-circle enclosing ``[0, u_top]`` (then ``g_t`` has the single residue
    ``u_x^t/(x + kappa)``, ``u_x = x/(x + kappa)``). Every function integrated here is analytic
    in ``z`` off ``[-top, 0]``. Two circles ``|u - u_c| = r``, trapezoid rule on ``m`` points:

    * around ``kappa`` (when ``eps (q/u_top)^{R+1} <= 1e-7``): ``u_c = 0``,
      ``r = q = min(4, max(1.25, 10^(6/R)))`` (encloses ``u = 1``: ``c_0 = 1``); aliasing
      ``O(q^{-(m - R)})`` (``u = 1`` is a pole of ``w_t dz``), round-off ``O(eps q^R)``, i.e.
      ``eps (q/u_top)^{R+1}`` relative to the largest output ``u_top^{R+1}``;
    * otherwise (large ``kappa``: every output is close to ``1/K``) around the spectrum:
      ``u_c = u_top/2``, ``r = min(0.9 u_top, sqrt(u_c (1 - u_c)))`` (``c_0 = 0``); aliasing
      ``O(max(u_c/r, r/(1 - u_c))^{m - R})``, round-off ``O(eps ((u_c + r)/u_top)^{R+1}) <=
      eps 1.4^{R+1}`` *relative to* ``u_top^{R+1}``, so outputs that differ from ``1/K`` by
      ``1e-40`` keep their digits.

    ``m`` is chosen for aliasing below ``1e-14``.

    Parameters
    ----------
    kappa : float
        ``K lam N > 0``.
    rounds : int
    top : float, optional
        Upper end of the spectrum (of ``G`` and of the deterministic equivalents' singular set);
        ``None``: unknown (the first circle is used).

    Returns
    -------
    Contour
    """
    kappa = check_positive(kappa, "kappa")
    r = check_int(rounds, "rounds", 0)
    u_top = 1.0 if top is None else check_positive(top, "top") / (top + kappa)
    q = min(4.0, max(1.25, 10.0 ** (6.0 / max(r, 1))))
    if np.finfo(float).eps * (q / u_top) ** (r + 1) <= 1e-7:
        center, radius, identity = 0.0, q, 1.0
        ratio = q  # the pole of w_t dz at u = 1 (z = inf) is the closest singularity inside
    else:
        center = 0.5 * u_top
        radius = min(0.9 * u_top, math.sqrt(center * (1.0 - center)))
        identity = 0.0
        ratio = 1.0 / max(center / radius, radius / (1.0 - center))
    m = r + 1 + int(math.ceil(14.0 / math.log10(ratio)))
    m += m % 2
    phi = 2.0 * math.pi * (np.arange(m) + 0.5) / m
    unit = np.exp(1j * phi)
    u = center + radius * unit
    z = kappa * u / (u - 1.0)
    # u^t/(u - 1) du/(2 pi i), du = i radius e^{i phi} dphi, dphi = 2 pi/m
    base = radius * unit / ((u - 1.0) * m)
    weights = u[None, :] ** np.arange(r + 1)[:, None] * base[None, :]
    return Contour(z, u, weights, identity, kappa, center, radius)


# --------------------------------------------------------------------------------------------
# resolvent-level deterministic equivalents


@dataclass
class _Resolvent:
    """Everything that depends on the contour point ``z`` but not on a group (docs §11.3-11.5)."""

    model: MixtureModel
    kappa: float
    z: np.ndarray  # (m,)
    s: np.ndarray  # (m,)
    ds: np.ndarray
    var: np.ndarray  # (m, m) Haar kernel c(z_a, z_b)
    abar: np.ndarray  # (m, K, K) (I + s T)^-1
    mcal: np.ndarray  # (m, K, K) E[Yc Q V]
    ncal: np.ndarray  # (m, K, K) E[Yc Q Yc^T]
    gam: np.ndarray  # (2K, 2K) Gram of [Yc^T, V]
    chat: np.ndarray  # (K, K) centred counts, [output r, class k]
    cm: np.ndarray  # (K, K) Chat M = E[Yc V]
    yy: np.ndarray  # (K, K) Yc Yc^T
    tt: np.ndarray  # (K, K) E[V^T V]
    mu: np.ndarray  # (K, K) mean coordinates
    identity: float  # c_0 of the contour
    amu: np.ndarray = None  # (m, K, K) A_j M_c^T  [j, class c, :]
    gmat: np.ndarray = None  # (m, K, K) s Chat M A
    ag: np.ndarray = None  # (m, K, 2K) [I, -gmat] Gam
    aga: np.ndarray = None  # (m, m, K, K) A_a Gam A_b^T
    alpha: np.ndarray = None  # (m, m) Haar second-moment coefficients
    beta: np.ndarray = None


def label_grams(counts, n_classes, per_class):
    """``Chat = Yc J`` (K, K) and ``Yc Yc^T`` (K, K) from the count matrix (exact)."""
    k, n = n_classes, per_class
    cnt = np.asarray(counts, dtype=float)
    chat = cnt.T - n / k  # [r, k'] = sum over class k' of (y_r - 1/K)
    hist = cnt.sum(axis=0)
    ones = np.ones(k)
    yy = np.diag(hist) - (np.outer(hist, ones) + np.outer(ones, hist)) / k + k * n / k**2
    return chat, yy


def _second_order(rv: _Resolvent, j: int):
    r"""``E[Yc Q V]`` and ``E[Yc Q Yc^T]`` at ``z_j`` to second order in the ``K x K`` fluctuations.

    ``Phi = [Yc; V^T] Q_W [Yc^T, V]`` fluctuates around ``s Gamma`` (Haar, covariance
    ``alpha (Gamma Gamma + Gamma Gamma) + beta Gamma Gamma``, ``alpha = N c/((N+2)(N-1))``,
    ``beta = -2 alpha/N``), and ``V = J M + Z_1`` around ``J M`` (Gaussian ``Z_1``). With
    ``X = Phi_YV``, ``Y = Phi_VV``, ``A = (I + E Y)^{-1}``:
    ``E[X (I+Y)^{-1}] ~ X A - E[dX A dY] A + X A E[dY A dY] A`` and
    ``E[Phi_YY - X (I+Y)^{-1} X^T] ~ s YY - X A X^T - E[dX A dX^T] + E[dX A dY] A X^T
    + X A E[dY A dX^T] - X A E[dY A dY] A X^T`` (docs §11.5).
    """
    model = rv.model
    k, n, big_n, s2 = model.n_classes, model.per_class, model.n_samples, model.noise_var
    a = rv.abar[j]
    s = rv.s[j]
    eye = np.eye(k)
    tr_a = np.trace(a)
    v = rv.var[j, j]
    alpha = big_n * v / ((big_n + 2) * (big_n - 1)) if big_n > 1 else 0.0
    beta = -2.0 * alpha / big_n
    cm, yy, tt, mu = rv.cm, rv.yy, rv.tt, rv.mu
    m2 = mu.T @ mu
    x_bar = s * cm
    tr_at = np.trace(a @ tt)
    # E[dX A dX^T]: Z_1 part s^2 sigma^2 tr(A) YY; Haar part.
    exax = s * s * s2 * tr_a * yy + alpha * (cm @ a @ cm.T + yy * tr_at) + beta * (cm @ a @ cm.T)
    # E[dX A dY]: Z_1 part s^2 sigma^2 (Chat M A A + tr(A) Chat M A); Haar part.
    exay = s * s * s2 * (cm @ a @ a + tr_a * (cm @ a))
    exay = exay + alpha * (cm @ a @ tt + cm * tr_at) + beta * (cm @ a @ tt)
    # E[dT A dT] for dT = M^T J^T Z_1 + Z_1^T J M + (Z_1^T Z_1 - N sigma^2 I).
    edt = s2 * n * (m2 @ a + a @ m2 + m2 * tr_a + eye * np.trace(m2 @ a))
    edt = edt + big_n * s2 * s2 * (a + eye * tr_a)
    eyay = s * s * edt + alpha * (tt @ a @ tt + tt * tr_at) + beta * (tt @ a @ tt)
    mcal = x_bar @ a - exay @ a + x_bar @ a @ eyay @ a
    ncal = (
        s * yy
        - x_bar @ a @ x_bar.T
        - exax
        + exay @ a @ x_bar.T
        + x_bar @ a @ exay.T
        - x_bar @ a @ eyay @ a @ x_bar.T
    )
    return mcal, 0.5 * (ncal + ncal.T)


def _resolvent(
    model: MixtureModel, counts, lam, rounds, light=False
) -> tuple[_Resolvent, np.ndarray]:
    """Deterministic equivalents on the contour for rounds ``0..rounds`` and the contour weights.

    ``light=True`` stops after ``E[Yc Q V]`` and ``E[Yc Q Yc^T]`` (enough for the population
    covariance, which uses its own contour for round ``2t + 1``).
    """
    k, n, big_n = model.n_classes, model.per_class, model.n_samples
    kappa = k * lam * big_n
    cont = contour_weights(kappa, rounds, spectrum_top(model))
    z, weights = cont.z, cont.weights
    s, ds = bulk_stieltjes(z, model)
    var = bulk_variance_kernel(s[:, None], s[None, :], model)
    mu = model.means()
    chat, yy = label_grams(counts, k, n)
    tt = n * mu.T @ mu + big_n * model.noise_var * np.eye(k)
    cm = chat @ mu
    abar = np.linalg.inv(np.eye(k)[None] + s[:, None, None] * tt[None])
    gam = np.block([[yy, cm], [cm.T, tt]])
    rv = _Resolvent(
        model=model,
        kappa=kappa,
        z=z,
        s=s,
        ds=ds,
        var=var,
        abar=abar,
        mcal=None,
        ncal=None,
        gam=gam,
        chat=chat,
        cm=cm,
        yy=yy,
        tt=tt,
        mu=mu,
        identity=cont.identity,
    )
    pairs = [_second_order(rv, j) for j in range(z.size)]
    rv.mcal = np.array([p[0] for p in pairs])
    rv.ncal = np.array([p[1] for p in pairs])
    if light:  # only E[Yc Q Yc^T] is needed (the fresh-noise covariance of the population)
        return rv, weights
    rv.amu = np.einsum("mij,cj->mci", abar, mu)
    rv.gmat = s[:, None, None] * (cm[None] @ abar)
    amat = np.concatenate([np.broadcast_to(np.eye(k), rv.gmat.shape), -rv.gmat], axis=2)
    rv.ag = amat @ gam
    rv.aga = np.einsum("aiq,bjq->abij", rv.ag, amat, optimize=True)
    rv.alpha = big_n * var / ((big_n + 2) * (big_n - 1))
    rv.beta = -2.0 * rv.alpha / big_n
    return rv, weights


# --------------------------------------------------------------------------------------------
# fluctuations of the training set (common to all points of a trial)


def _global_covariance(rv: _Resolvent, weights):
    r"""Covariance over training sets of ``sum_j u_j E[Yc Q V](z_j) M^T`` for every class.

    First order in the Gaussian ``Z_1`` (exactly Gaussian: linear forms ``Yc Z_1``, ``J^T Z_1``
    and ``Z_1^T Z_1``) and in the Haar fluctuation of ``Phi`` (kernel :func:`bulk_variance_kernel`
    between contour points), docs §11.6. ``weights``: (m,) contour weights ``u_j``.

    Returns
    -------
    ndarray, shape (K, K, K)
        ``[class k, output r, output r']``.
    """
    model = rv.model
    k, n, big_n, s2 = model.n_classes, model.per_class, model.n_samples, model.noise_var
    s, mu = rv.s, rv.mu
    m = s.size
    u = np.asarray(weights) * s
    g = rv.amu  # (m, class c, K): A_j M_c^T
    gmat = rv.gmat  # (m, K, K): s Chat M A
    # Haar part: a_r^T dPhi b with A_j = [I, -G_j] (K x 2K) and B_jc = [0; g_jc] (2K).
    bvec = np.concatenate([np.zeros_like(g), g], axis=2)  # (m, C, 2K)
    bg = bvec @ rv.gam  # (m, C, 2K)
    w2 = np.outer(u, u)
    w_alpha, w_beta = w2 * rv.alpha, w2 * rv.beta
    bgb = np.einsum("acq,bcq->abc", bg, bvec, optimize=True)  # (m, m, C)
    hv = np.tensordot(w_alpha[:, :, None] * bgb, rv.aga, axes=([0, 1], [0, 1]))  # (C, K, K)
    agb = (rv.ag.reshape(m * k, 2 * k) @ bvec.reshape(m * k, 2 * k).T).reshape(m, k, m, k)
    agb = agb.transpose(0, 2, 3, 1)  # [a, b, c, i] = A_a Gam B_bc
    left = (w_alpha[:, :, None, None] * agb).reshape(m * m, k, k).transpose(1, 2, 0)  # [c, i, ab]
    right = agb.transpose(1, 0, 2, 3).reshape(m * m, k, k).transpose(1, 0, 2)  # [c, ab, j]
    hv = hv + left @ right
    agb_self = np.einsum("aiq,acq->aci", rv.ag, bvec, optimize=True)  # (m, C, K)
    yb = (w_beta @ agb_self.reshape(m, k * k)).reshape(m, k, k)
    hv = hv + np.einsum("aci,acj->cij", agb_self, yb, optimize=True)
    if s2 > 0:
        # Z_1 part: coefficients of Y1 = Yc Z_1, J1 = J^T Z_1, S1 = Z_1^T Z_1 - N sigma^2 I.
        ug = u[:, None, None] * gmat  # (m, K, K)
        cy = np.tensordot(u, g, axes=(0, 0))  # (C, K)
        gm_mu = ug @ mu.T  # (m, r, k)
        h2 = g @ mu.T  # (m, c, k)
        cj = -np.einsum("mrk,mca->crka", gm_mu, g, optimize=True)
        cj -= np.einsum("mra,mck->crka", ug, h2, optimize=True)
        cs = -np.einsum("mra,mcb->crab", ug, g, optimize=True)
        zc = s2 * rv.yy[None] * np.einsum("ca,ca->c", cy, cy)[:, None, None]
        cross = s2 * np.einsum("ca,qk,ctka->cqt", cy, rv.chat, cj, optimize=True)
        zc = zc + cross + cross.transpose(0, 2, 1)
        zc = zc + s2 * n * np.einsum("crka,ctka->crt", cj, cj, optimize=True)
        zc = zc + big_n * s2 * s2 * (
            np.einsum("crab,ctab->crt", cs, cs, optimize=True)
            + np.einsum("crab,ctba->crt", cs, cs, optimize=True)
        )
        hv = hv + zc
    out = hv.real
    return 0.5 * (out + out.transpose(0, 2, 1))


# --------------------------------------------------------------------------------------------
# predictions


@dataclass(frozen=True)
class FinitePrediction:
    """Finite-``p`` prediction of the linearised dynamics, rounds ``0..R``.

    Attributes
    ----------
    train_acc, train_acc_clean, train_acc_mislabeled, population_acc : ndarray, shape (R + 1,)
        Expected accuracies (training w.r.t. the true labels; ``NaN`` for an empty subset).
    group_means : ndarray, shape (R + 1, K, K, K)
        ``[t, k, l]``: mean of ``P_t - 1/K`` over points of true class ``k`` with label ``l``
        (``NaN`` for empty groups).
    group_covs : ndarray, shape (R + 1, K, K, K, K)
        Covariance of those outputs (per point and over training sets).
    group_acc : ndarray, shape (R + 1, K, K)
        Probability that a point of the group is classified correctly.
    population_means : ndarray, shape (R + 1, K, K)
        ``[t, k]``: mean logits (scaled by ``1/K``) of a fresh class-``k`` point.
    population_covs : ndarray, shape (R + 1, K, K, K)
        Their covariance (fresh noise plus the training set's fluctuation).
    quadrature_err : float
        Largest error estimate of the orthant probabilities (:mod:`theory.orthant`).
    bulk_weights : ndarray, shape (R + 1,)
        :func:`bulk_eigen_weights`.
    counts : ndarray, shape (K, K)
    lam : float
    model : MixtureModel
    symmetry : str
        ``'none'`` (every group computed), or the class symmetry of ``counts`` that the
        computation used (``'exchangeable'``, ``'cyclic'``; :mod:`theory.class_symmetry`). Then
        ``group_means``, ``group_covs`` and ``population_covs`` are
        :class:`theory.finite_symmetric.OrbitArray`, which index like the ndarrays (one entry
        stored per orbit of groups or classes).
    """

    train_acc: np.ndarray
    train_acc_clean: np.ndarray
    train_acc_mislabeled: np.ndarray
    population_acc: np.ndarray
    group_means: np.ndarray
    group_covs: np.ndarray
    group_acc: np.ndarray
    population_means: np.ndarray
    population_covs: np.ndarray
    quadrature_err: float
    bulk_weights: np.ndarray
    counts: np.ndarray
    lam: float
    model: MixtureModel
    symmetry: str = "none"

    @property
    def rounds(self) -> int:
        return self.train_acc.size - 1


def _training_moments(rv: _Resolvent, weights, kk, ll, identity):
    r"""Mean (G, K) and covariance (G, K, K) of every non-empty group's outputs, one round.

    For a point ``i`` of class ``k`` with label ``l`` (``y = e_l - 1/K``), per contour point:
    ``E[Yc Q e_i] = own y - s E[Yc Q V] M_k^T`` with the own-label coefficient
    ``own = s - E[b^T A b] + s^2 M_k A M_k^T``, ``b = V^T Q_W e_i``; fluctuations
    ``eps c + xi_Y - B_f xi_V - s B_f z_1i`` (docs §11.4); ``P_t - 1/K = y - sum_j nu_j Yc Q e_i``,
    ``nu_j = omega_t(z_j) z_j``.
    """
    model = rv.model
    k, big_n, s2 = model.n_classes, model.n_samples, model.noise_var
    s, abar, mu, var = rv.s, rv.abar, rv.mu, rv.var
    nu = weights * rv.z
    eye = np.eye(k)
    y = eye[ll] - 1.0 / k  # (G, K)
    mk = mu[kk]  # (G, K)
    h = np.einsum("mij,gj->gmi", abar, mk)  # (G, m, K): A M_k^T
    m_a_m = np.einsum("gj,gmj->gm", mk, h)
    tr_a = np.trace(abar, axis1=1, axis2=2)
    tr_at = np.einsum("mij,ji->m", abar, rv.tt)
    v_diag = np.diagonal(var).copy()
    tr_at_minus = tr_at[None, :] - m_a_m - s2 * tr_a[None, :]
    ebb = (s * s + 2 * v_diag / (big_n + 2))[None, :] * (m_a_m + s2 * tr_a[None, :])
    ebb = ebb + (v_diag / (big_n - 1))[None, :] * tr_at_minus
    own = s[None, :] - ebb + (s * s)[None, :] * m_a_m  # (G, m)
    class_part = np.einsum("m,mij,gj->gmi", s, rv.mcal, mk)  # s E[Yc Q V] M_k^T  (G, m, K)
    mean = y * (identity - own @ nu)[:, None] + np.einsum("m,gmi->gi", nu, class_part)
    # fluctuations: B_f = s (Chat M + y M_k) A = s E[YcQV]/... first order coefficient
    bf = s[None, :, None, None] * (
        np.einsum("ij,mjl->mil", rv.cm, abar)[None]
        + np.einsum("gi,gmj->gmij", y, np.einsum("gj,mjl->gml", mk, abar))
    )  # (G, m, K, K)
    cvec = y[:, None, :] - np.einsum("gmij,gj->gmi", bf, mk)  # (G, m, K)
    w2 = np.outer(nu, nu) * var  # (m, m)
    g_n, m_n = bf.shape[0], bf.shape[1]
    cov = (2.0 / (big_n + 2)) * (cvec.transpose(0, 2, 1) @ (w2[None] @ cvec))
    # xi part: (1/(N-1)) sum_ab w2_ab L_a Gam_- L_b^T, L_a = [I, -B_f,a].
    gam = rv.gam
    gvec = np.concatenate([y, mk], axis=1)  # (G, 2K): the point's own row of [Yc^T, V]
    gm = gam[None] - gvec[:, :, None] * gvec[:, None, :]
    gm[:, k:, k:] -= s2 * eye
    wsum = w2.sum()
    ub = w2.sum(axis=0)  # (m,)
    bf_u = np.tensordot(bf, ub, axes=([1], [0]))  # (G, K, K): sum_b u_b B_f,b  [i, j]
    x_g = (w2[None] @ bf.reshape(g_n, m_n, k * k)).reshape(g_n, m_n, k, k)  # sum_b w2_ab B_f,b
    t_yy = wsum * gm[:, :k, :k]
    t_yv = gm[:, :k, k:] @ bf_u.transpose(0, 2, 1)
    bg = bf @ gm[:, None, k:, k:]  # (G, m, K, K): B_f,a Gam_VV
    left = bg.transpose(0, 2, 1, 3).reshape(g_n, k, m_n * k)  # [i, (a, j)]
    right = x_g.transpose(0, 1, 3, 2).reshape(g_n, m_n * k, k)  # [(a, j), l]
    t_vv = left @ right
    cov = cov + (t_yy - t_yv - t_yv.transpose(0, 2, 1) + t_vv) / (big_n - 1)
    # z_1i part: sigma^2 (sum nu s B_f)(...)^T
    zb = np.tensordot(bf, nu * s, axes=([1], [0]))  # (G, K, K)
    cov = cov + s2 * (zb @ zb.transpose(0, 2, 1))
    cov = cov.real
    return mean.real, 0.5 * (cov + cov.transpose(0, 2, 1))


def _population_moments(rv: _Resolvent, weights, rv_cov: _Resolvent, weights_cov):
    r"""Mean logits (K, K) ``[class, output]`` and fresh-noise covariance (K, K), one round.

    The covariance ``sigma^2 Yc g_t(G) G g_t(G) Yc^T`` is a *single* spectral function:
    ``x g_t(x)^2 = x^{2t+1}/(x + kappa)^{2t+2} = g_{2t+1}(x)``, so it is
    ``sigma^2 sum_j omega_{2t+1}(z_j) E[Yc Q(z_j) Yc^T]`` on a contour built for round ``2t+1``
    (``rv_cov``, ``weights_cov``): no double sum, and the same relative precision as the means
    (a double sum of ``omega_t`` would lose it once ``g_t`` spans many orders of magnitude over the
    spectrum).
    """
    model = rv.model
    mean = np.einsum("m,mij,kj->ki", weights, rv.mcal, rv.mu)
    if model.noise_var == 0.0:
        return mean.real, np.zeros((model.n_classes, model.n_classes))
    cov = model.noise_var * np.einsum("m,mij->ij", weights_cov, rv_cov.ncal).real
    return mean.real, 0.5 * (cov + cov.T)


class FiniteResolutionError(ValueError):
    """The finite-p theory's contour sums cannot resolve a covariance at these parameters.

    Found at very small ``lam`` (``<= 1e-8``) or ``N/p`` (``<= 1e-6``), issue 21: the double
    contour sums lose the covariance's small eigenvalues to round-off. A ``ValueError``: the
    parameters lie outside what the theory computes, so every entry point reports one line.
    """


class FinitePrecisionError(FiniteResolutionError):
    """A covariance came out indefinite beyond round-off: the contour rule's resolution is spent
    (a :class:`FiniteResolutionError`: one line from every entry point).

    The contour sums of :func:`contour_weights` carry an absolute round-off that grows like
    ``eps q^(t+1)`` with the round, while the class-level outputs and covariances shrink like the
    class eigen-weights' ``(t+1)``-th power; with many rounds at large ``K`` (whose global spike
    sets the contour's scale) a round's covariance can fall below that round-off.
    """


def clean_covariance(cov):
    r"""Remove round-off from covariances (..., K, K) of outputs or logits.

    Deviations and logits sum to zero over the classes (``1^T Yc = 0``), so ``1`` is an exact null
    vector: project it out with ``P = I - 11^T/K`` (decisions depend on differences only), then
    clip eigenvalues that are negative at the round-off level of the contour sums. A covariance
    is a double contour sum, so its round-off is the square of the single sums' (relative
    ``<= 1e-7``, :func:`contour_weights`) times the dynamic range of the terms; directions below
    ``1e-3`` of the largest eigenvalue that come out negative are set to 0 (they are below the
    resolution of the rule; the orthant rule then treats them as deterministic), anything more
    negative raises :class:`FiniteResolutionError` (a ``ValueError``).
    """
    k = cov.shape[-1]
    proj = np.eye(k) - 1.0 / k
    c = proj @ cov @ proj
    c = 0.5 * (c + np.swapaxes(c, -1, -2))
    ev, vec = np.linalg.eigh(c)
    top = np.max(np.abs(ev), axis=-1, keepdims=True)
    if np.any(ev < -1e-3 * top - 1e-300):
        raise FinitePrecisionError(
            "the finite-p theory cannot resolve these parameters: its output covariance is not "
            f"positive semidefinite beyond round-off (eigenvalues down to {ev.min():.3g}, largest "
            f"{np.max(ev):.3g}; docs/theory.md §11.2): use fewer rounds, a larger lam or N/p, or "
            "the block limit p = inf"
        )
    ev = np.clip(ev, 0.0, None)
    return (vec * ev[..., None, :]) @ np.swapaxes(vec, -1, -2)


def predict_finite(
    model: MixtureModel, counts, lam, rounds, *, abs_tol=ORTHANT_TOL, symmetry: str = "auto"
):
    r"""Finite-``p`` deterministic-equivalent prediction of the linearised SD rounds.

    Parameters
    ----------
    model : MixtureModel
        ``K, n, p, c, d``; ``p = inf`` gives the block limit (then it equals
        :func:`theory.groups.predict_linear`).
    counts : array_like of int, shape (K, K)
        ``C[k, l]`` points of true class ``k`` with given label ``l`` (rows sum to ``n``).
    lam : float
        ``lam > 0``.
    rounds : int
        Last round ``R >= 0``.
    abs_tol : float
        Target of the orthant quadrature.
    symmetry : {'auto', 'none'}
        ``'auto'``: if ``counts`` is invariant under a transitive group of class relabellings
        (:func:`theory.class_symmetry.class_symmetry`: equal diagonal and equal off-diagonal
        entries, or circulant), compute one group per orbit and one class
        (:mod:`theory.finite_symmetric`, ``O(m^2 K^2)`` per round instead of ``O(m^2 K^4)``;
        the same prediction to round-off). ``'none'``: compute every group.

    Notes
    -----
    The prediction is for the *linearised* dynamics (Assumption L, docs §2) on the mixture's
    random Gram matrix; the assumptions of the deterministic equivalents are named in docs §11.
    """
    cnt = check_counts(counts, model.block())
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    abs_tol = check_positive(abs_tol, "abs_tol")
    if symmetry not in ("auto", "none"):
        raise ValueError(f"symmetry must be 'auto' or 'none', got {symmetry!r}")
    sym = class_symmetry(cnt) if symmetry == "auto" else None
    with single_thread_blas():  # K x K and m x m algebra: threads only add overhead (theory.blas)
        if sym is not None:
            from theory.finite_symmetric import predict_finite_symmetric

            return predict_finite_symmetric(model, cnt, lam, r, abs_tol, sym, _FIRST_POINTS)
        return _predict_finite(model, cnt, lam, r, abs_tol)


def _predict_finite(model, cnt, lam, r, abs_tol):
    k = model.n_classes
    rv, weights = _resolvent(model, cnt, lam, r)
    rv_cov, weights_cov = _resolvent(model, cnt, lam, 2 * r + 1, light=True)
    g_means = np.full((r + 1, k, k, k), np.nan)
    g_covs = np.full((r + 1, k, k, k, k), np.nan)
    g_acc = np.full((r + 1, k, k), np.nan)
    p_means = np.empty((r + 1, k, k))
    p_covs = np.empty((r + 1, k, k, k))
    train = np.empty((r + 1, 3))
    pop = np.empty(r + 1)
    qerr = 0.0
    w = cnt.astype(float)
    clean = np.eye(k, dtype=bool)
    kk_all, ll_all = np.nonzero(cnt > 0)
    # Groups are processed in chunks of bounded memory (four (G, m, K, K) work arrays).
    chunk = max(1, _CHUNK_NUMBERS // (4 * rv.z.size * k * k))
    for t in range(r + 1):
        glob = _global_covariance(rv, weights[t] * rv.z * rv.s)
        for start in range(0, kk_all.size, chunk):
            kk, ll = kk_all[start : start + chunk], ll_all[start : start + chunk]
            mean, cov = _training_moments(rv, weights[t], kk, ll, rv.identity)
            cov = clean_covariance(cov + glob[kk])
            res = win_probability(mean, cov, kk, abs_tol=abs_tol, first_points=_FIRST_POINTS)
            g_means[t, kk, ll], g_covs[t, kk, ll], g_acc[t, kk, ll] = mean, cov, res.prob
            qerr = max(qerr, float(np.max(res.err)))
        acc = np.nan_to_num(g_acc[t])

        def frac(mask, acc=acc):
            tot = w[mask].sum()
            return float((acc * w)[mask].sum() / tot) if tot > 0 else math.nan

        train[t] = frac(np.ones_like(clean)), frac(clean), frac(~clean)
        pm, pc = _population_moments(rv, weights[t], rv_cov, weights_cov[2 * t + 1])
        pc = clean_covariance(pc[None] + _global_covariance(rv, weights[t]))
        p_means[t], p_covs[t] = pm, pc
        pres = win_probability(pm, pc, np.arange(k), abs_tol=abs_tol, first_points=_FIRST_POINTS)
        pop[t] = float(np.mean(pres.prob))
        qerr = max(qerr, float(np.max(pres.err)))
    return FinitePrediction(
        train_acc=train[:, 0],
        train_acc_clean=train[:, 1],
        train_acc_mislabeled=train[:, 2],
        population_acc=pop,
        group_means=g_means,
        group_covs=g_covs,
        group_acc=g_acc,
        population_means=p_means,
        population_covs=p_covs,
        quadrature_err=qerr,
        bulk_weights=bulk_eigen_weights(model, lam, r),
        counts=cnt,
        lam=float(lam),
        model=model,
    )


#: Largest number of rounds for which the command lines evaluate the finite-p theory by default.
#: Beyond about 50 rounds the covariance contour (built for round ``2t + 1``) switches to the
#: circle around the spectrum and grows from ~200 to ~3000 points (K = 3, n = 20, p = 400,
#: lam = 1e-3, measured: 0.3 s at R = 30, 3-9 s at R = 50, over 3 minutes and 6.6 GB at
#: R = 100), so its cost is no longer predictable from :func:`finite_resource_estimate`
#: (issue 21).
FINITE_MAX_ROUNDS = 40


def finite_resource_estimate(n_classes: int, rounds: int, counts=None) -> tuple[int, float]:
    """``(bytes, flops)`` of :func:`predict_finite` for ``K`` classes and ``R`` rounds.

    Without ``counts`` (or for counts without a class symmetry) the general path, worst case:
    ``m <= R + 147`` contour points (:func:`contour_weights`; ``m ~ R + 26`` in most regimes, the
    estimate takes ``R + 40``). Memory: the chunked group work arrays (``_CHUNK_NUMBERS``), the
    ``(m, m, K, K)`` kernels and the stored moments ``(R + 1) K^5``. Time: per round
    ``~8 m^2 K^4`` for the group fluctuations (all ``K^2`` groups non-empty) plus the orthant
    quadrature, ``~2 10^4 K^2`` per group.

    With ``counts`` that have a class symmetry (:func:`theory.class_symmetry.class_symmetry`)
    the orbit path of :mod:`theory.finite_symmetric`
    (:func:`theory.finite_symmetric.symmetric_cost`, ``O(m^2 K^2)`` per round), with
    ``m = R + 80`` (``R + 66`` measured at ``K = 100``, ``lam = 1e-3``, ``p = 2N``).
    """
    k = check_int(n_classes, "n_classes", 2)
    r = check_int(rounds, "rounds", 0)
    sym = None
    if counts is not None:
        cnt = np.asarray(counts)
        if cnt.shape != (k, k):
            raise ValueError(f"counts must have shape (K, K) = ({k}, {k}), got {cnt.shape}")
        sym = class_symmetry(cnt)
    if sym is not None:
        from theory.finite_symmetric import symmetric_cost

        numbers, flops = symmetric_cost(k, r, len(sym.group_reps), r + 80, 2 * r + 81)
        return 8 * numbers, flops
    m = r + 40
    stored = (r + 1) * (k**5 + 2 * k**4 + k**3)
    numbers = min(_CHUNK_NUMBERS, 4 * k**4 * m) + 3 * m * m * k * k + stored
    flops = (r + 1) * (8.0 * m * m * k**4 + 2e4 * k**4)
    return 8 * numbers, flops


@dataclass(frozen=True)
class PopulationRounds:
    """When self-distillation helps the population at finite ``p`` (:func:`population_rounds`).

    Attributes
    ----------
    best_round : int
        The round ``t`` in ``0..R`` of largest predicted population accuracy (the first one).
    best_accuracy : float
    gain : float
        ``best_accuracy - accuracy of the teacher`` (round 0): SD's generalisation gain.
    first_round_above : int or None
        The smallest ``t`` with population accuracy ``>= 1 - delta`` (``None``: not within R).
    delta : float
    """

    best_round: int
    best_accuracy: float
    gain: float
    first_round_above: int | None
    delta: float


def population_rounds(pred: FinitePrediction, delta: float = 0.01) -> PopulationRounds:
    r"""Conditions on the rounds at finite ``p``: the best round and the first ``>= 1 - delta``.

    These are read off the deterministic prediction (rounds ``0..R``): at finite ``p`` the
    population accuracy is not a monotone function of ``t`` in general (it rises while the rounds
    remove the memorised bulk component, and may fall once the global-histogram part dominates,
    docs §6.4 and §11.8), so no closed form is claimed. Ties in accuracy go to the earlier round.
    """
    delta = check_positive(delta, "delta")
    if delta >= 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    acc = np.asarray(pred.population_acc, dtype=float)
    best = int(np.argmax(acc))
    above = np.flatnonzero(acc >= 1.0 - delta)
    return PopulationRounds(
        best_round=best,
        best_accuracy=float(acc[best]),
        gain=float(acc[best] - acc[0]),
        first_round_above=int(above[0]) if above.size else None,
        delta=float(delta),
    )


def finite_phase_diagram(n_classes, per_class, c, d, counts, lam, ratios, rounds):
    """Population and mislabeled-point accuracy over ``(N/p, t)`` (the finite-``p`` phase diagram).

    Parameters
    ----------
    ratios : sequence of float
        ``N/p`` values; ``0`` means the block limit ``p = inf``. ``p = round(N/ratio)`` must be
        ``> K``.

    Returns
    -------
    dict
        ``ratios`` (P,), ``dims`` (P,) (``inf`` for ratio 0), ``population_acc`` and
        ``train_acc_mislabeled`` of shape (P, R + 1).
    """
    k = check_int(n_classes, "n_classes", 2)
    n = check_int(per_class, "per_class", 1)
    big_n = k * n
    ratios = np.asarray(ratios, dtype=float)
    if ratios.ndim != 1 or ratios.size == 0 or np.any(~np.isfinite(ratios)) or np.any(ratios < 0):
        raise ValueError("ratios must be a non-empty 1-D array of finite values N/p >= 0")
    dims, pop, mis = [], [], []
    for ratio in ratios:
        dim = math.inf if ratio == 0 else max(k, int(round(big_n / ratio)))
        pred = predict_finite(MixtureModel(k, n, dim, c, d), counts, lam, rounds)
        dims.append(float(dim))
        pop.append(pred.population_acc)
        mis.append(pred.train_acc_mislabeled)
    return {
        "ratios": ratios,
        "dims": np.array(dims),
        "population_acc": np.array(pop),
        "train_acc_mislabeled": np.array(mis),
    }
