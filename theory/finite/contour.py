"""The contour rule: spectral functions of the Gram matrix as sums over its resolvent (docs §11.2).

:func:`contour_weights` gives the points ``z_j`` and weights of a trapezoid rule on a circle in
the Mobius coordinate ``u = z/(z - kappa)``, for ``f_t(G)`` and ``g_t(G) = G^t (G + kappa)^{-t-1}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.validation import check_int, check_positive


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
