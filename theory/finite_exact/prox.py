r"""The K-dimensional proximal step of cross-entropy, batched over cavity-field samples.

For a symmetric positive definite ``V`` (K, K) and a point ``a`` in ``R^K``, the training logit of
the exact theory solves

.. math::  z + V\,\mathrm{softmax}(z) = a,

the stationarity condition of the strictly convex

.. math::  \phi(z) = \tfrac12 (z - a)^T V^{-1} (z - a) + \operatorname{lse}(z),

i.e. ``z = prox`` of ``lse`` in the metric ``V^{-1}``. (With the target ``tau`` folded into ``a``
-- ``a = h + V tau`` -- it is the proximal operator of ``CE(tau, softmax(.))``; docs §16.)
Solved by Newton's method on ``phi`` with a backtracking (Armijo) line search, per sample:
the Newton direction is ``dz = -(I + V H)^{-1} F`` with ``F = z + V s - a`` and
``H = diag(s) - s s^T`` the softmax Jacobian, since ``grad phi = V^{-1} F`` and
``hess phi = V^{-1} + H``. ``phi`` is strictly convex with a Lipschitz gradient, so this converges
from any start (quadratically near the solution).
"""

from __future__ import annotations

import numpy as np

from theory.losses import softmax_deviation

__all__ = [
    "ProxNotConverged",
    "ce_prox",
    "newton_matrix",
    "softmax",
    "softmax_jacobian",
    "sum_h_times",
]

#: Stop when ``max |F| <= PROX_TOL * spread + 32 eps (max|a| + max|z| + max|V| max|x|)`` per row
#: (``F = z + V x - a``, ``x`` the outputs or their deviations), with ``spread = ptp(a) + ptp(z)``
#: the row's logit differences (what softmax sees; ``ptp`` is max - min): ~1e4 eps relative to
#: them, far below any accuracy the theory resolves. Relative to the differences, not to
#: ``1 + max|a|``: at large ``lam`` a late round's logits differ by ~1e-14 or less (they shrink by
#: ~``mu/(K lam N)`` per round) and an absolute 1e-12 left them unresolved (chance accuracies at
#: ``lam = 100``). The second term is ``F``'s own round-off.
PROX_TOL = 1e-12
_EPS = float(np.finfo(float).eps)
_MAX_ITER = 200
_MAX_HALVINGS = 60


class ProxNotConverged(RuntimeError):
    """The Newton iteration did not reach ``PROX_TOL`` (never expected: ``phi`` is convex)."""


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum (no overflow)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_jacobian(s: np.ndarray) -> np.ndarray:
    """``H = diag(s) - s s^T`` for every row of ``s`` (B, K) -> (B, K, K)."""
    h = -s[:, :, None] * s[:, None, :]
    idx = np.arange(s.shape[1])
    h[:, idx, idx] += s
    return h


def newton_matrix(v: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``I + V H`` for every row of ``s`` (B, K), ``H = diag(s) - s s^T``, without forming ``H``:
    ``I + V diag(s) - (V s) s^T`` (elementwise, no batched matrix products)."""
    k = s.shape[1]
    out = v[None, :, :] * s[:, None, :]
    out -= (s @ v.T)[:, :, None] * s[:, None, :]
    idx = np.arange(k)
    out[:, idx, idx] += 1.0
    return out


def sum_h_times(s: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """``sum_b H_b M_b`` for ``H_b = diag(s_b) - s_b s_b^T`` without forming ``H``: the sum of
    ``s_b[:, None] * M_b`` minus ``s^T (s_b^T M_b)``."""
    first = (s[:, :, None] * mats).sum(axis=0)
    proj = np.einsum("bi,bij->bj", s, mats)
    return first - s.T @ proj


def _lse(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1)
    return m + np.log(np.exp(z - m[:, None]).sum(axis=1))


def ce_prox(
    a: np.ndarray, v: np.ndarray, z0: np.ndarray | None = None, deviations: bool = False
) -> np.ndarray:
    """Solve ``z + V softmax(z) = a`` for every row of ``a``.

    Parameters
    ----------
    a : ndarray, shape (B, K)
    v : ndarray, shape (K, K)
        Symmetric positive definite.
    z0 : ndarray, shape (B, K), optional
        Starting point (a previous solution: warm start). Default ``a - V softmax(a)``.
    deviations : bool
        Solve ``z + V (softmax(z) - 1/K) = a`` instead, with the deviations formed from the
        logits (:func:`theory.losses.softmax_deviation`): the same ``z`` as the plain form with
        ``a + V 1/K``. For ``V 1 = v 1`` that is a common shift ``v/K`` of every logit, which
        softmax ignores but which, once added, rounds away logit differences below ``eps v/K``
        (late rounds at large ``lam``); this form never adds it.

    Returns
    -------
    ndarray, shape (B, K)

    Raises
    ------
    ProxNotConverged
        If some row has not converged after ``_MAX_ITER`` Newton steps (stopping rule:
        :data:`PROX_TOL`).
    """
    v_inv = np.linalg.inv(v)
    v_inv = 0.5 * (v_inv + v_inv.T)
    k = a.shape[1]
    if deviations:
        # The line search's objective needs the plain form's a (its round-off there only
        # affects the step length); the residual F, which decides convergence, does not.
        a_phi = a + v.sum(axis=1) / k
    else:
        a_phi = a
    v_max = float(np.abs(v).max())

    def residual(zz, aa, s):
        """``F`` and its stopping threshold per row (:data:`PROX_TOL`); ``s = softmax(zz)``."""
        x = softmax_deviation(zz) if deviations else s
        f = zz + x @ v.T - aa
        # F's own round-off: its three terms' magnitudes.
        mag = np.abs(aa).max(axis=1) + np.abs(zz).max(axis=1) + v_max * np.abs(x).max(axis=1)
        return f, PROX_TOL * (np.ptp(aa, axis=1) + np.ptp(zz, axis=1)) + 32.0 * _EPS * mag

    z = (a_phi - softmax(a_phi) @ v.T) if z0 is None else z0.copy()

    def phi(zz, aa):
        d = zz - aa
        return 0.5 * ((d @ v_inv) * d).sum(axis=1) + _lse(zz)

    active = np.arange(a.shape[0])
    for _ in range(_MAX_ITER):
        za, aa = z[active], a[active]
        s = softmax(za)
        f, scale = residual(za, aa, s)
        todo = np.abs(f).max(axis=1) > scale
        if not todo.any():
            return z
        active, za, s, f = active[todo], za[todo], s[todo], f[todo]
        aa = a_phi[active]
        jac = newton_matrix(v, s)
        dz = -np.linalg.solve(jac, f[:, :, None])[:, :, 0]
        p0 = phi(za, aa)
        slope = ((f @ v_inv) * dz).sum(axis=1)  # grad phi . dz < 0
        step = np.ones(za.shape[0])
        trial = za + dz
        # Where the predicted decrease is below phi's own round-off, phi cannot rank the points
        # and the full Newton step is taken (the residual F, not phi, then measures progress).
        flat = np.abs(slope) <= 1e-12 * (1.0 + np.abs(p0))
        for _ in range(_MAX_HALVINGS):
            ok = flat | (phi(trial, aa) <= p0 + 1e-4 * step * slope + 1e-15 * np.abs(p0))
            if ok.all():
                break
            step = np.where(ok, step, 0.5 * step)
            trial = za + step[:, None] * dz
        z[active] = trial
    za = z[active]
    f, scale = residual(za, a[active], softmax(za))
    if np.any(np.abs(f).max(axis=1) > scale):
        raise ProxNotConverged(
            f"cross-entropy prox did not converge in {_MAX_ITER} Newton steps "
            f"(max residual {np.abs(f).max():.3g})"
        )
    return z
