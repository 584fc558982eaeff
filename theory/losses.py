r"""Per-sample losses of the logits, in the form the group-level engine needs.

A linear probe trained on a per-sample loss ``l_i(z)`` of its logits ``z = W x_i`` with
``(lam/2) ||W||^2`` is stationary iff ``W = sum_i (-grad l_i(z_i)) x_i^T / (lam N)``, i.e. iff the
training logits solve

.. math::  z_i = \frac{1}{\lambda N} \sum_j G_{ij}\, f_j(z_j), \qquad f(z) = -\nabla l(z),

(``docs/theory.md``, Section 12). Every loss here supplies, vectorised over ``M`` rows of logits
``z`` (shape (M, K)):

* ``force(z, dev=None)``: the *force* ``f(z) = -grad l(z)``, shape (M, K) (``dev``: the
  precomputed ``softmax_deviation(z)``, to avoid evaluating it twice);
* ``hessian(z)``: the Hessian ``H(z) = grad^2 l(z)`` as ``diag(h) + sum_j w_j u_j u_j^T`` with
  ``h >= 0`` (M, K), ``U = [u_j]`` of shape (r, M, K) and ``w`` of shape (r, M), ``r <= 3``
  (row ``m`` of the Hessian uses ``U[:, m]`` and ``w[:, m]``); ``hessian(z, convex=True)`` drops the
  negative-curvature terms of the non-convex losses, leaving a positive semidefinite matrix;
* ``force0()`` / ``hessian0()``: the same at ``z = 0`` (linearisation about the uniform output);
* ``value(z)``: the loss itself, shape (M,) (used by tests and diagnostics);
* ``force_magnitude(z)``: elementwise sum of the magnitudes of the terms the force is formed from
  (its round-off is ``~ eps`` times this; used for the certificate's floor).

Losses (``S = {a, b}`` the candidate set of a row, ``s`` its indicator, ``p = softmax(z)``,
``pi = s . p``, ``pt = softmax restricted to S`` (``pt_a = sigma(z_a - z_b)``), ``v = e_a - e_b``):

* ``ce``: loss ``-sum_j t_j log p_j``; force ``t - p``; Hessian ``diag(p) - p p^T``.
* ``candidate``: loss ``-log pi``; force ``pt - p``; Hessian
  ``diag(p) - p p^T - pt_a pt_b v v^T``.
* ``gce``: loss ``(1 - pi^q) / q``; force ``pi^q (pt - p)``; Hessian
  ``pi^q [diag(p) - p p^T - pt_a pt_b v v^T - q d d^T]``,

with ``d = pt - p`` (``J(pt) = pt_a pt_b v v^T`` because ``pt`` lives on two classes). ``ce`` with
two-hot targets ``t = s / 2`` is the PLL student of :mod:`theory.pll`; ``ce`` is convex, the other
two are not. ``gce`` is the generalised cross-entropy of the candidate-set probability (issue 13),
NOT the per-candidate form of the public reference code (``'gce-reference'`` of
:mod:`simulations.pll_losses`, and ``tests/simulations/reference_gce.py``); ``q -> 0`` gives
``candidate``.

Numerics. Outputs are handled as deviations ``delta = p - 1/K``, computed without cancellation
(:func:`softmax_deviation`), and targets are passed as deviations ``t - 1/K``: a problem whose
outputs are all within 1e-20 of ``1/K`` keeps its relative accuracy (``docs/theory.md``,
Section 13).
"""

from __future__ import annotations

import numpy as np

from theory.names import DEFAULT_Q, THEORY_LOSSES

__all__ = [
    "LOSSES",
    "Candidate",
    "CrossEntropy",
    "GeneralisedCE",
    "make_loss",
    "softmax",
    "softmax_deviation",
]

#: Loss names accepted by :func:`make_loss` (and ``theory.pll.predict_pll(loss=...)``): the
#: registry's :data:`theory.names.THEORY_LOSSES`.
LOSSES = THEORY_LOSSES


def softmax(z) -> np.ndarray:
    """Row-wise softmax of (M, K) logits with the log-sum-exp shift (no overflow)."""
    z = np.asarray(z, dtype=float)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_deviation(z) -> np.ndarray:
    r"""``softmax(z) - 1/K`` row-wise, without cancellation.

    ``delta_j = expm1(z_j - m) / K`` with ``m = log(mean_j exp z_j)`` evaluated as
    ``zmax + log1p(mean_j expm1(z_j - zmax))``. Both ``expm1`` and ``log1p`` keep their relative
    accuracy for small arguments, so for logits of size ``eps_z`` the deviations are accurate to a
    few ulps *relative to* ``eps_z`` (the naive ``softmax(z) - 1/K`` loses everything once
    ``eps_z < 1e-16``). Shape (M, K).

    Notes
    -----
    :func:`simulations.softmax.softmax_deviation` computes the same quantity by another
    algorithm (``(expm1(w) - mean expm1(w)) / sum e^w`` near uniform, ``P - mean(P)`` above a
    logit spread of 1e-3), for the solver's (N, K) arrays along any axis together with ``P``.
    The two agree to ~1e-14 relative but not bit for bit (about half the entries differ in the
    last bits), so neither is expressed through the other: every certified result and figure
    would change in its last digits (issue 23). ``theory`` cannot import ``simulations``; this
    one, for the group engine's K-vectors, stays here.
    """
    z = np.asarray(z, dtype=float)
    k = z.shape[-1]
    zmax = z.max(axis=-1, keepdims=True)
    m = zmax + np.log1p(np.mean(np.expm1(z - zmax), axis=-1, keepdims=True))
    return np.expm1(z - m) / k


def _pair_parts(z, cand):
    """``x = z_a - z_b``, ``pt_a pt_b`` and ``tanh(x/2)`` for candidate pairs (M, 2)."""
    rows = np.arange(z.shape[0])
    x = z[rows, cand[:, 0]] - z[rows, cand[:, 1]]
    e = np.exp(-np.abs(x))
    return x, e / (1.0 + e) ** 2, np.tanh(0.5 * x)


def _log_pi(z, cand):
    """``log pi = logsumexp(z_S) - logsumexp(z)`` (M,), stable for any logits."""
    rows = np.arange(z.shape[0])
    za, zb = z[rows, cand[:, 0]], z[rows, cand[:, 1]]
    top = np.maximum(za, zb)
    lse_s = top + np.log1p(np.exp(-np.abs(za - zb)))
    zmax = z.max(axis=-1)
    lse = zmax + np.log(np.exp(z - zmax[:, None]).sum(axis=-1))
    return np.minimum(lse_s - lse, 0.0)


class _CandidateBase:
    """Common pieces of the candidate-set losses: candidates (M, 2) and their indicator."""

    convex = False

    def __init__(self, candidates, n_classes: int):
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.ndim != 2 or cand.shape[1] != 2:
            raise ValueError(f"candidates must have shape (M, 2), got {cand.shape}")
        if cand.size and (cand.min() < 0 or cand.max() >= n_classes):
            raise ValueError(f"candidates must lie in [0, {n_classes})")
        if np.any(cand[:, 0] == cand[:, 1]):
            raise ValueError("the two candidates of a row must differ")
        self.k = int(n_classes)
        self.cand = cand
        rows = np.arange(cand.shape[0])
        self._rows = rows
        half = np.zeros((cand.shape[0], self.k))
        half[rows, cand[:, 0]] = 0.5
        half[rows, cand[:, 1]] = 0.5
        self.target_deviation = half - 1.0 / self.k  # s/2 - 1/K
        v = np.zeros((cand.shape[0], self.k))
        v[rows, cand[:, 0]] = 1.0
        v[rows, cand[:, 1]] = -1.0
        self.v = v

    def force_magnitude(self, z, dev=None):
        z = np.asarray(z, dtype=float)
        dev = softmax_deviation(z) if dev is None else dev
        scale = np.exp(self.q * _log_pi(z, self.cand))[:, None] if hasattr(self, "q") else 1.0
        return scale * (0.5 + np.abs(self.target_deviation) + np.abs(dev))

    def _pt_minus_p(self, z, dev=None):
        """``pt - p = (pt - s/2) + (s/2 - 1/K) - delta`` (no cancellation), and ``pt_a pt_b``."""
        _, papb, th = _pair_parts(z, self.cand)
        out = self.target_deviation - (softmax_deviation(z) if dev is None else dev)
        out[self._rows, self.cand[:, 0]] += 0.5 * th
        out[self._rows, self.cand[:, 1]] -= 0.5 * th
        return out, papb


class CrossEntropy:
    r"""Cross-entropy on soft targets ``t`` given as deviations ``t - 1/K`` (M, K).

    Force ``t - p = (t - 1/K) - delta``; Hessian ``diag(p) - p p^T`` (``r = 1``). Convex.
    """

    convex = True
    name = "ce"

    def __init__(self, target_deviation):
        self.target_deviation = np.asarray(target_deviation, dtype=float)
        self.k = self.target_deviation.shape[-1]

    def force(self, z, dev=None):
        dev = softmax_deviation(z) if dev is None else dev
        return self.target_deviation - dev

    def force_magnitude(self, z, dev=None):
        dev = softmax_deviation(z) if dev is None else dev
        return np.abs(self.target_deviation) + np.abs(dev)

    def hessian(self, z, convex: bool = False):
        p = softmax(z)
        return p, p[None], -np.ones((1, p.shape[0]))

    def force0(self):
        return self.target_deviation.copy()

    def hessian0(self):
        m = self.target_deviation.shape[0]
        p = np.full((m, self.k), 1.0 / self.k)
        return p, p[None], -np.ones((1, m))

    def value(self, z):
        z = np.asarray(z, dtype=float)
        zmax = z.max(axis=-1, keepdims=True)
        logp = z - zmax - np.log(np.exp(z - zmax).sum(axis=-1, keepdims=True))
        return -np.sum((self.target_deviation + 1.0 / self.k) * logp, axis=-1)


class Candidate(_CandidateBase):
    r"""Candidate log-likelihood ``-log sum_{j in S} p_j``; force ``pt - p``.

    Hessian ``diag(p) - p p^T - pt_a pt_b v v^T`` (``r = 2``); the last term is the negative
    curvature that makes the loss non-convex (dropped by ``convex=True``).
    """

    name = "candidate"

    def force(self, z, dev=None):
        return self._pt_minus_p(np.asarray(z, dtype=float), dev)[0]

    def hessian(self, z, convex: bool = False):
        z = np.asarray(z, dtype=float)
        p = softmax(z)
        _, papb, _ = _pair_parts(z, self.cand)
        u = np.stack([p, self.v])
        w = np.stack([-np.ones_like(papb), np.zeros_like(papb) if convex else -papb])
        return p, u, w

    def force0(self):
        return self.target_deviation.copy()

    def hessian0(self):
        m = self.cand.shape[0]
        p = np.full((m, self.k), 1.0 / self.k)
        u = np.stack([p, self.v])
        w = np.tile([[-1.0], [-0.25]], (1, m))
        return p, u, w

    def value(self, z):
        return -_log_pi(np.asarray(z, dtype=float), self.cand)


class GeneralisedCE(_CandidateBase):
    r"""Generalised cross-entropy of the candidate set, ``(1 - pi^q) / q``, ``q in (0, 1]``.

    Force ``pi^q (pt - p)``; Hessian ``pi^q [diag(p) - p p^T - pt_a pt_b v v^T - q d d^T]`` with
    ``d = pt - p`` (``r = 3``; ``convex=True`` keeps ``pi^q (diag(p) - p p^T)``).
    """

    name = "gce"

    def __init__(self, candidates, n_classes: int, q: float = DEFAULT_Q):
        super().__init__(candidates, n_classes)
        q = float(q)
        if not (np.isfinite(q) and 0.0 < q <= 1.0):
            raise ValueError(f"q (GCE exponent) must lie in (0, 1], got {q}")
        self.q = q

    def _piq(self, z):
        return np.exp(self.q * _log_pi(z, self.cand))

    def force(self, z, dev=None):
        z = np.asarray(z, dtype=float)
        d, _ = self._pt_minus_p(z, dev)
        return self._piq(z)[:, None] * d

    def hessian(self, z, convex: bool = False):
        z = np.asarray(z, dtype=float)
        p = softmax(z)
        d, papb = self._pt_minus_p(z)
        piq = self._piq(z)
        u = np.stack([p, self.v, d])
        zero = np.zeros_like(piq)
        w = np.stack([-piq, zero if convex else -piq * papb, zero if convex else -self.q * piq])
        return piq[:, None] * p, u, w

    def force0(self):
        return (2.0 / self.k) ** self.q * self.target_deviation

    def hessian0(self):
        m = self.cand.shape[0]
        piq = (2.0 / self.k) ** self.q
        p = np.full((m, self.k), 1.0 / self.k)
        u = np.stack([p, self.v, self.target_deviation])
        w = piq * np.tile([[-1.0], [-0.25], [-self.q]], (1, m))
        return piq * p, u, w

    def value(self, z):
        return -np.expm1(self.q * _log_pi(np.asarray(z, dtype=float), self.cand)) / self.q


def make_loss(name: str, n_classes: int, *, candidates=None, target_deviation=None, q=DEFAULT_Q):
    """Build a loss by name (:data:`LOSSES`): ``ce`` needs ``target_deviation``, the others
    ``candidates`` (and ``gce`` its exponent ``q``)."""
    if name == "ce":
        if target_deviation is None:
            raise ValueError("loss 'ce' needs target_deviation (targets minus 1/K)")
        return CrossEntropy(target_deviation)
    if candidates is None and name in ("candidate", "gce"):
        raise ValueError(f"loss {name!r} needs candidates (M, 2)")
    if name == "candidate":
        return Candidate(candidates, n_classes)
    if name == "gce":
        return GeneralisedCE(candidates, n_classes, q)
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")
