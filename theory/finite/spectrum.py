"""Spectrum of the mixture's Gram matrix: Marchenko-Pastur bulk and class spikes (docs §11.3).

The bulk's Stieltjes transform :func:`bulk_stieltjes`, its Haar fluctuation kernel
:func:`bulk_variance_kernel` and density :func:`bulk_density`; the class spikes
(:func:`finite_spectrum`), the top of the spectrum that the contour rule must enclose
(:func:`spectrum_top`, cached per model) and the bulk's average label-averaging weight
(:func:`bulk_eigen_weights`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from theory.finite.contour import contour_weights
from theory.finite.model import MixtureModel
from theory.validation import check_int, check_positive

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
