r"""The candidate-set losses of the PLL student: values, gradients and Hessian actions.

Per sample ``i`` with candidate set ``S_i = {a_i, b_i}``: ``'ce'`` (two-hot cross-entropy),
``'candidate'`` (``-log s_i``), ``'gce'`` (``(1 - s_i^q)/q``) and ``'gce-reference'`` (the
reference code's per-candidate GCE); gradients and Hessians in the table of the package docstring
(:mod:`simulations.pll_losses`). Also the argument checks of the PLL student.

The same losses (but ``'gce-reference'``) exist in :mod:`theory.losses` for the group engine,
by other formulas: rows (M, K) of logits, the force ``-grad`` formed from softmax deviations
(for near-uniform group-level vectors) and Hessians as a diagonal plus low rank; here columns
(K, N) from log-probabilities, dense per-sample Hessians for the second-order test. They agree to
round-off (``test_candidate_set_loss_vs_theory_losses``) but not bit for bit, so neither is
expressed through the other: the students' results and figures would change in their last digits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulations.solver import log_softmax
from theory.names import DEFAULT_Q
from theory.names import LOSSES as NAMED_LOSSES
from theory.validation import check_finite_matrix, check_positive

__all__ = [
    "LOSSES",
    "CandidateSetLoss",
    "LossState",
    "candidate_set_loss",
    "check_candidates",
    "check_loss",
    "check_q",
]


#: Candidate-set losses (module docstring; :data:`theory.names.LOSSES`). ``'gce-reference'`` is
#: the reference code's form. ``DEFAULT_Q`` (the reference code's ``q``) is the registry's.
LOSSES = NAMED_LOSSES


_TINY = np.finfo(float).tiny


def check_loss(loss) -> str:
    """Return ``loss`` if it is one of :data:`LOSSES`, else raise ``ValueError``."""
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    return loss


def check_q(q) -> float:
    """GCE exponent ``q in (0, 1]``."""
    q = check_positive(q, "q")
    if q > 1:
        raise ValueError(f"q must lie in (0, 1] (GCE exponent), got {q!r}")
    return q


def check_candidates(candidates, n_samples: int, n_classes: int) -> np.ndarray:
    """Validate candidate sets: integer array of shape (2, N), entries in ``[0, K)``, distinct.

    Returns
    -------
    ndarray of int64, shape (2, N)
    """
    cand = np.asarray(candidates)
    if cand.ndim != 2 or cand.shape != (2, n_samples):
        raise ValueError(
            f"candidates must have shape (2, N) = (2, {n_samples}), got shape {cand.shape}"
        )
    if not np.issubdtype(cand.dtype, np.integer):
        if not (np.all(np.isfinite(cand)) and np.all(np.mod(cand, 1) == 0)):
            raise ValueError("candidates must be integer class indices")
    cand = cand.astype(np.int64)
    if cand.min() < 0 or cand.max() >= n_classes:
        raise ValueError(
            f"candidates must lie in [0, {n_classes}) (n_classes={n_classes}), "
            f"got range [{cand.min()}, {cand.max()}]"
        )
    same = np.flatnonzero(cand[0] == cand[1])
    if same.size:
        raise ValueError(
            f"candidates must be two distinct classes per sample; sample {int(same[0])} has "
            f"{int(cand[0, same[0]])} twice"
        )
    return cand


@dataclass(frozen=True)
class LossState:
    """Per-sample quantities at one set of logits (all arrays (K, N) or (N,))."""

    probs: np.ndarray
    values: np.ndarray  # ell_i, (N,)
    grad: np.ndarray  # Gamma, (K, N)
    weight: np.ndarray  # w_i of the PSD part w_i D_p, (N,)
    restricted: np.ndarray | None  # r, (K, N) (candidate, gce)
    coef: np.ndarray | None  # s^q (gce) or p_a^q / 2 per candidate (gce-reference, (2, N))


def _dv(v, y):
    """``D_v y = v * (y - <v, y>)`` column-wise for (K, M) arrays."""
    return v * (y - np.sum(v * y, axis=0, keepdims=True))


class CandidateSetLoss:
    """Values, gradients and Hessian actions of one candidate-set loss (module docstring table)."""

    def __init__(self, name: str, cand: np.ndarray, q: float, n_classes: int):
        self.name, self.cand, self.q, self.k = name, cand, q, n_classes
        n = cand.shape[1]
        self.cols = np.arange(n)
        self.mask = np.zeros((n_classes, n), dtype=bool)
        self.mask[cand[0], self.cols] = True
        self.mask[cand[1], self.cols] = True

    def state(self, logp: np.ndarray) -> LossState:
        probs = np.exp(logp)
        probs[probs < _TINY] = 0.0  # keep subnormals out of BLAS (see simulations.solver)
        la, lb = logp[self.cand[0], self.cols], logp[self.cand[1], self.cols]
        n = self.cols.size
        if self.name == "ce":
            tau = 0.5 * self.mask
            return LossState(probs, -0.5 * (la + lb), probs - tau, np.ones(n), None, None)
        if self.name == "gce-reference":
            pq = np.exp(self.q * np.stack([la, lb]))  # p_a^q, (2, N)
            # (1 - p^q)/q = -expm1(q log p)/q: accurate for small q log p (no cancellation).
            values = -0.5 * (np.expm1(self.q * la) + np.expm1(self.q * lb)) / self.q
            grad = 0.5 * pq.sum(axis=0) * probs
            grad[self.cand[0], self.cols] -= 0.5 * pq[0]
            grad[self.cand[1], self.cols] -= 0.5 * pq[1]
            return LossState(probs, values, grad, 0.5 * pq.sum(axis=0), None, 0.5 * pq)
        log_s = np.logaddexp(la, lb)  # log of the candidate mass s
        # r = p 1_S / s, formed in logs; off the candidates log r = -inf (no overflow in exp).
        restricted = np.exp(np.where(self.mask, logp - log_s, -np.inf))
        if self.name == "candidate":
            return LossState(probs, -log_s, probs - restricted, np.ones(n), restricted, None)
        sq = np.exp(self.q * log_s)  # s^q
        values = -np.expm1(self.q * log_s) / self.q
        return LossState(probs, values, sq * (probs - restricted), sq, restricted, sq)

    def hvp(self, st: LossState, y: np.ndarray) -> np.ndarray:
        """``H_i y_i`` for every column of ``y`` (K, N)."""
        p = st.probs
        if self.name == "ce":
            return _dv(p, y)
        if self.name == "gce-reference":
            out = st.weight * _dv(p, y)
            for j in range(2):
                u = p.copy()
                u[self.cand[j], self.cols] -= 1.0  # p - e_a
                out -= (self.q * st.coef[j] * np.sum(u * y, axis=0)) * u
            return out
        base = _dv(p, y) - _dv(st.restricted, y)
        if self.name == "candidate":
            return base
        u = p - st.restricted
        return st.coef * (base - self.q * np.sum(u * y, axis=0) * u)

    def hessians(self, st: LossState, idx=slice(None)) -> np.ndarray:
        """Dense per-sample Hessians of the samples ``idx``, shape (M, K, K)."""
        p = st.probs[:, idx].T  # (M, K)
        cand, cols = self.cand[:, idx], np.arange(p.shape[0])
        eye = np.eye(self.k)

        def d(v):
            return v[:, :, None] * eye - v[:, :, None] * v[:, None, :]

        if self.name == "ce":
            return d(p)
        if self.name == "gce-reference":
            out = st.weight[idx, None, None] * d(p)
            for j in range(2):
                u = p.copy()
                u[cols, cand[j]] -= 1.0
                out -= (self.q * st.coef[j, idx])[:, None, None] * u[:, :, None] * u[:, None, :]
            return out
        r = st.restricted[:, idx].T
        base = d(p) - d(r)
        if self.name == "candidate":
            return base
        u = p - r
        return st.coef[idx, None, None] * (base - self.q * u[:, :, None] * u[:, None, :])

    def curvature_floor(self, st: LossState) -> np.ndarray:
        """``c_i <= 0`` with ``H_i >= c_i I`` (module docstring), shape (N,)."""
        if self.name == "ce":
            return np.zeros(self.cols.size)
        if self.name == "gce-reference":
            out = np.zeros(self.cols.size)
            for j in range(2):
                u = st.probs.copy()
                u[self.cand[j], self.cols] -= 1.0
                out -= self.q * st.coef[j] * np.sum(u * u, axis=0)
            return out
        r = st.restricted
        ra, rb = r[self.cand[0], self.cols], r[self.cand[1], self.cols]
        if self.name == "candidate":
            return -2.0 * ra * rb
        u = st.probs - r
        return -st.coef * (2.0 * ra * rb + self.q * np.sum(u * u, axis=0))


def candidate_set_loss(logits, candidates, *, loss="gce", q=DEFAULT_Q):
    """Per-sample loss values and logit gradients of a candidate-set loss (module docstring).

    Parameters
    ----------
    logits : array_like, shape (K, N)
    candidates : array_like of int, shape (2, N)
    loss : {'ce', 'candidate', 'gce', 'gce-reference'}
    q : float
        GCE exponent in ``(0, 1]`` (``'gce'``, ``'gce-reference'``).

    Returns
    -------
    values : ndarray, shape (N,)
        ``ell(z_i; S_i)``.
    gradient : ndarray, shape (K, N)
        ``Gamma``, column ``i`` is ``d ell / d z_i``.
    """
    z = check_finite_matrix(logits, "logits")
    loss = check_loss(loss)
    q = check_q(q)
    cand = check_candidates(candidates, z.shape[1], z.shape[0])
    st = CandidateSetLoss(loss, cand, q, z.shape[0]).state(log_softmax(z))
    return st.values, st.grad
