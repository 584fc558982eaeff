r"""Steps 1-3 of :mod:`theory.orthant`: a batch of win probabilities reduced to ``P(mu + C w > 0)``.

For each item (mean ``m``, covariance ``S`` or factor ``F``, true class ``k``) the ``K - 1``
differences ``D = L z`` are written ``D_i = mu_i + sum_{j <= a(i)} C_ij w_j``, ``w ~ N(0, I_r)``:
a square root of ``L S L^T`` (step 1), deterministic rows decided with the tie rule (step 2), and a
pivoted Gram-Schmidt with the Genz-Bretz variable ordering that attaches every random row to its
last variable (step 3). Every round-off decision adds a rigorous bound to ``err``. The derivation
and the floors are in the docstring of :mod:`theory.orthant`, whose quadrature (step 4) consumes
:class:`Reduced`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import log_ndtr, ndtr

__all__ = ["DEP_RTOL", "TIE_RTOL", "Reduced", "reduce_batch"]

#: Ties: a deterministic difference with ``|gap| <= TIE_RTOL * ptp(mean)`` is a tie (an error),
#: the relative analogue of ``theory.metrics.TIE_ATOL`` for O(1) scores.
TIE_RTOL = 1e-9
#: Relative residual below which a row is treated as linearly dependent on the pivots chosen so
#: far. Round-off of the re-orthogonalised Gram-Schmidt step is ~ K eps; 1e-9 leaves margin, and
#: the error it can cause is bounded and reported (docstring of theory.orthant, step 3).
DEP_RTOL = 1e-9

_EPS = np.finfo(float).eps
#: P(sign(X + Y) != sign(X)) <= P(|X| <= t) + P(|Y| > t) <= 2 t phi(0) / sd(X) + 2 Phi(-t / sd(Y));
#: with t = 8.3 sd(Y): _FLIP * sd(Y) / sd(X) + _FLIP_TAIL.
_FLIP = 2.0 * 8.3 / math.sqrt(2.0 * math.pi)
_FLIP_TAIL = float(2.0 * ndtr(-8.3))


def _truncated_mean(lo):
    """``E[w | w > lo]`` for standard normal ``w``: ``phi(lo) / Phi(-lo)``, stable in the tails."""
    return np.exp(-0.5 * lo * lo - log_ndtr(-lo)) / math.sqrt(2 * math.pi)


class Reduced(NamedTuple):
    """Reduced problems of a batch: ``P(mu + C w > 0)`` over the random rows (module docstring)."""

    mu: np.ndarray  # (B, R) means of the differences
    coef: np.ndarray  # (B, R, r_max) coefficients, zero after each row's attached column
    attach: np.ndarray  # (B, R) attached variable; -1 for deterministic rows
    rank: np.ndarray  # (B,)
    det_state: np.ndarray  # (B,) 1: deterministic rows all win, 0: some tie (none lose), -1: lose
    err: np.ndarray  # (B,) rigorous round-off bounds (steps 1-3)


def _difference_roots(mean, cov, factor, true_class):
    """``mu = L m`` (B, R), roots ``B`` (B, R, q) of ``L S L^T``, sd floors (B,), dropped sds."""
    bsz, k = mean.shape
    items = np.arange(bsz)
    others = np.array([np.delete(np.arange(k), t) for t in true_class])  # (B, R)
    mu = mean[items, true_class][:, None] - mean[items[:, None], others]
    if factor is not None:
        b = factor[items, true_class][:, None, :] - factor[items[:, None], others]
        if b.shape[2] > b.shape[1]:
            # Only B B^T matters: reduce q to R columns (B = R0^T Q^T); Householder maps an exactly
            # zero row of B to an exactly zero row.
            b = np.swapaxes(np.linalg.qr(np.swapaxes(b, 1, 2), mode="r"), 1, 2)
        # Each entry of F_k - F_j carries round-off <= eps (|F_k| + |F_j|).
        floor = 4.0 * _EPS * np.max(np.linalg.norm(factor, axis=2), axis=1)
        return mu, b, floor, np.zeros(mu.shape)
    skk = cov[items, true_class, true_class]
    skj = cov[items[:, None], true_class[:, None], others]
    sjk = cov[items[:, None], others, true_class[:, None]]
    sjj = cov[items[:, None, None], others[:, :, None], others[:, None, :]]
    sd = skk[:, None, None] - skj[:, None, :] - sjk[:, :, None] + sjj
    sd = 0.5 * (sd + np.swapaxes(sd, 1, 2))
    lam, vec = np.linalg.eigh(sd)
    # L S L^T entries carry round-off ~ 4 eps max(diag S), and eigh adds ~ K eps ||.||: a variance
    # (or eigenvalue) at that level is indistinguishable from 0. Eigenvalues below the floor are
    # dropped so that a singular covariance keeps its exact rank; the dropped part of row i has
    # standard deviation e_i = sqrt(sum_l U_il^2 |lambda_l|), returned for the error bound.
    diag_max = np.max(np.diagonal(cov, axis1=1, axis2=2), axis=1)
    var_floor = 16.0 * k * _EPS * np.maximum(np.maximum(diag_max, lam[:, -1]), 0.0)
    drop = lam <= var_floor[:, None]
    b = vec * np.sqrt(np.where(drop, 0.0, lam))[:, None, :]  # dropped columns are zero
    dropped_sd = np.sqrt(np.einsum("brl,bl->br", vec**2, np.where(drop, np.abs(lam), 0.0)))
    return mu, b, np.sqrt(var_floor), dropped_sd


def reduce_batch(mean, cov, factor, true_class) -> Reduced:
    """Steps 1-3 of the module docstring for a batch (B items, R = K - 1 rows each)."""
    mu, b, floor, dropped_sd = _difference_roots(mean, cov, factor, true_class)
    bsz, n_rows, q_dim = b.shape
    items = np.arange(bsz)
    tie_tol = TIE_RTOL * np.ptp(mean, axis=1)[:, None]
    norms = np.linalg.norm(b, axis=2)
    det = norms <= floor[:, None]
    # Dropped eigen-directions (cov input): flip bound for each random row (step 1).
    lost = ~det & (dropped_sd > 0)
    safe = np.where(lost, norms, 1.0)
    err = np.sum(np.where(lost, _FLIP * dropped_sd / safe + _FLIP_TAIL, 0.0), axis=1)
    # Deterministic rows (step 2); true sd <= sqrt(2) floor (row norm, dropped part each <= floor).
    det_state = np.where(
        np.any(det & (mu < -tie_tol), axis=1),
        -1,
        np.where(np.any(det & (np.abs(mu) <= tie_tol), axis=1), 0, 1),
    )
    decided = det & (np.abs(mu) > tie_tol) & (floor[:, None] > 0)
    with np.errstate(divide="ignore", invalid="ignore"):  # floor 0: not used (decided is False)
        flip = 2.0 * ndtr(-np.abs(mu) / (math.sqrt(2.0) * floor[:, None]))
    err = err + np.sum(np.where(decided, flip, 0.0), axis=1)
    # Pivoted Gram-Schmidt with the Genz-Bretz ordering (step 3). attach: -2 deterministic,
    # -1 not yet attached, j >= 0 attached to variable j.
    width = min(n_rows, q_dim)
    attach = np.where(det, -2, -1)
    res = np.where(det[:, :, None], 0.0, b)
    coef = np.zeros((bsz, n_rows, width))
    basis = np.zeros((bsz, width, q_dim))
    offset = np.zeros((bsz, n_rows))  # sum_j C_ij E[w_j | chosen pivots], for the ordering
    rank = np.zeros(bsz, dtype=np.int64)
    thresh = DEP_RTOL * norms
    for j in range(width):
        free = attach == -1
        res_norm = np.linalg.norm(res, axis=2)
        cand = free & (res_norm > thresh)
        act = cand.any(axis=1)
        if not act.any():
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            score = np.where(cand, (mu + offset) / res_norm, np.inf)
        piv = np.argmin(score, axis=1)  # smallest Phi((mu + offset)/s): most constraining first
        pn = np.where(act, res_norm[items, piv], 1.0)
        q = np.where(act[:, None], res[items, piv] / pn[:, None], 0.0)
        if j:  # re-orthogonalise against the basis (CGS2): q stays orthonormal to working precision
            q -= np.einsum("bjq,bj->bq", basis[:, :j], np.einsum("bjq,bq->bj", basis[:, :j], q))
        qn = np.linalg.norm(q, axis=1)
        q /= np.where(qn > 0, qn, 1.0)[:, None]
        basis[:, j] = q
        col = np.where(free, np.einsum("brq,bq->br", res, q), 0.0)
        coef[:, :, j] = col
        res -= col[:, :, None] * q[:, None, :]
        attach[items[act], piv[act]] = j
        rank += act
        cp = np.where(act, col[items, piv], 1.0)
        lo = -(mu[items, piv] + offset[items, piv]) / cp
        offset += col * np.where(act & (cp > 0), _truncated_mean(lo), 0.0)[:, None]
        res_norm = np.linalg.norm(res, axis=2)
        newly = (attach == -1) & (res_norm <= thresh) & act[:, None]
        if newly.any():
            kept = np.linalg.norm(coef[:, :, : j + 1], axis=2)
            bound = _FLIP * res_norm / np.where(newly, kept, 1.0) + _FLIP_TAIL
            err = err + np.sum(np.where(newly, bound, 0.0), axis=1)
            attach[newly] = j
        res[attach != -1] = 0.0
    # Rows left unattached had residuals at the round-off level from the start of some step;
    # attach them to their last nonzero column (the loop only exits this way in that case).
    for i, r in np.argwhere(attach == -1):
        nz = np.flatnonzero(np.abs(coef[i, r, : rank[i]]) > 0)
        if nz.size == 0:  # pragma: no cover - excluded by the deterministic-row test above
            raise RuntimeError("internal error: random row with no coefficient")
        attach[i, r] = nz[-1]
        coef[i, r, nz[-1] + 1 :] = 0.0
        kept = np.linalg.norm(coef[i, r, : nz[-1] + 1])
        err[i] += _FLIP * np.linalg.norm(res[i, r]) / kept + _FLIP_TAIL
    attach[attach == -2] = -1
    r_max = int(rank.max(initial=0))
    return Reduced(mu, coef[:, :, :r_max], attach, rank, det_state, err)
