r"""Softmax without cancellation near the uniform distribution.

When every output is close to ``1/K`` (large ``lam``, or late self-distillation rounds) the
information sits in the deviations ``D = P - 1/K``, which can be far below ``eps / K``: computing
``P`` and then subtracting ``1/K`` loses it completely. These helpers compute the deviations, and
the changes of the cross-entropy objective, directly from the logits, with relative accuracy
set by the logits' own spread rather than by ``1/K``.

With ``w = z - max_k z_k`` (so ``w <= 0``) and ``u = expm1(w)``:

.. math::

    p_k = \frac{e^{w_k}}{\sum_j e^{w_j}}, \qquad
    p_k - \frac1K = \frac{u_k - \bar u}{\sum_j e^{w_j}},

where ``u_k - \bar u`` is a difference of numbers of the size of the logit spread (no ``1/K`` is
ever subtracted). The objective changes use ``phi(w) = e^w - 1 - w`` and
``psi(a) = log(1 + a) - a``, both evaluated by short Taylor series near 0 (module functions
:func:`expm1_minus_identity`, :func:`log1p_minus_identity`).

All functions work along the last axis (one row per sample), the solver's internal layout.
"""

from __future__ import annotations

import numpy as np

#: Below this size, ``e^w - 1 - w`` and ``log(1 + a) - a`` use their series (module docstring).
_SERIES_BELOW = 1e-3
#: Logit spread below which the deviations use ``expm1``: above it ``e^w - mean(e^w)`` has relative
#: error ``eps / (spread / 2) < 5e-13`` and saves a transcendental per entry.
_NEAR_UNIFORM = 1e-3

__all__ = [
    "expm1_minus_identity",
    "log1p_minus_identity",
    "log_softmax",
    "softmax_deviation",
    "softmax_with_deviation",
]


def expm1_minus_identity(w) -> np.ndarray:
    """``phi(w) = e^w - 1 - w`` with relative error below ~1e-12.

    Taylor series (terms up to ``w^6``; the first omitted term is < ``2 |w|^5 / 7!`` < 1e-18
    relative) for ``|w| < 1e-3``; the direct formula elsewhere, whose relative error
    ``~ 2 eps / |w|`` is then below 5e-13. Overflows (to ``inf``) only where ``e^w`` does.
    """
    w = np.asarray(w, dtype=float)
    small = np.abs(w) < _SERIES_BELOW
    n_small = int(np.count_nonzero(small))
    if n_small == w.size:
        return _phi_series(w)
    with np.errstate(over="ignore"):
        out = np.expm1(w)
    out -= w
    if n_small:
        out[small] = _phi_series(w[small])
    return out


def _phi_series(w: np.ndarray) -> np.ndarray:
    return w * w * (0.5 + w * (1 / 6 + w * (1 / 24 + w * (1 / 120 + w / 720))))


def log1p_minus_identity(a) -> np.ndarray:
    """``psi(a) = log(1 + a) - a`` for ``a > -1`` with relative error below ~1e-12 (series with
    terms up to ``a^6`` for ``|a| < 1e-3``, the direct formula elsewhere)."""
    a = np.asarray(a, dtype=float)
    small = np.abs(a) < 1e-3
    as_ = np.where(small, a, 0.0)
    series = -as_ * as_ * (0.5 - as_ * (1 / 3 - as_ * (0.25 - as_ * (0.2 - as_ / 6))))
    return np.where(small, series, np.log1p(a) - a)


def log_softmax(logits, axis: int = -1) -> np.ndarray:
    """Log-softmax along ``axis`` via log-sum-exp (no overflow for ``|z| ~ 1e300``)."""
    z = np.asarray(logits, dtype=float)
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_with_deviation(logits, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    r"""Softmax ``P`` and its deviation ``D = P - 1/K`` from uniform, both from the logits.

    With ``w = z - max z``: for slices whose logit spread ``max w - min w`` is below ``1e-3``,
    ``D_k = (expm1(w_k) - mean expm1(w)) / sum_k e^{w_k}`` (module docstring); above,
    ``D = P - mean(P)``, whose rounding (~eps / K) is below 1e-12 of the deviations there. So the
    relative accuracy of ``D`` is that of the logit differences: a spread of ``1e-300`` still gives
    deviations with ~15 correct digits, where ``softmax(z) - 1/K`` would give 0. Probabilities
    below the smallest normal double are set to 0 (they differ by < 3e-308; subnormals slow BLAS
    down).

    Parameters
    ----------
    logits : array_like, shape (..., K, ...)
    axis : int
        The class axis (default: last).

    Returns
    -------
    probs, deviations : ndarray, same shape as ``logits``

    Notes
    -----
    :func:`theory.losses.softmax_deviation` (the group engine's, rows of (M, K)) computes
    ``D`` as ``expm1(z - m) / K`` with ``m = log mean e^z``: equally accurate (the two agree to
    ~1e-14 relative) but not bit-identical, and it does not give ``P``. This one is kept for
    the solver: one pass gives ``P`` and ``D`` along any axis, and the branch on the spread
    saves a transcendental per entry in the float64 kernels. Replacing either by the other would
    change every certified result and figure in its last digits (issue 23).
    """
    z = np.asarray(logits, dtype=float)
    k = z.shape[axis]
    zmax = z.max(axis=axis, keepdims=True)
    near = zmax - z.min(axis=axis, keepdims=True) < _NEAR_UNIFORM
    n_near = int(np.count_nonzero(near))
    w = z - zmax
    if n_near == near.size:  # every slice near uniform: expm1 only
        u = np.expm1(w, out=w)
        denom = k + u.sum(axis=axis, keepdims=True)
        dev = u - u.mean(axis=axis, keepdims=True)
        dev /= denom
        u += 1.0
        u /= denom
        return u, dev
    if n_near:
        u = np.expm1(w)
    e = np.exp(w, out=w)
    e /= e.sum(axis=axis, keepdims=True)
    if n_near:
        denom = k + u.sum(axis=axis, keepdims=True)
        u -= u.mean(axis=axis, keepdims=True)
        u /= denom
        dev = np.where(near, u, e - e.mean(axis=axis, keepdims=True))
    else:
        # Spread >= 1e-3: P - mean(P) errs by ~eps / K against deviations >= ~spread / (4 K),
        # i.e. < 4 eps / spread < 1e-12 relative, with one pass fewer than (e - mean e) / S.
        dev = e - e.mean(axis=axis, keepdims=True)
    if e.min() < np.finfo(float).tiny:
        e[e < np.finfo(float).tiny] = 0.0
    return e, dev


def softmax_deviation(logits, axis: int = -1) -> np.ndarray:
    """``softmax(z) - 1/K`` along ``axis`` without cancellation (:func:`softmax_with_deviation`)."""
    return softmax_with_deviation(logits, axis)[1]
