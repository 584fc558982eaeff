r"""Probability that one coordinate of a Gaussian vector is the largest (a Gaussian orthant).

For ``z ~ N(m, S)`` in ``R^K`` (``S`` PSD, possibly singular) and a class ``k``,

.. math::  P_{\rm win} = P\big(z_k > z_j \ \forall j \ne k\big) = P\big(D > 0\big), \qquad
           D = L z \sim N(L m, L S L^T),

where ``L`` (``(K-1) x K``) has rows ``e_k - e_j``: an orthant probability of the ``K - 1``
differences. This is the exact population accuracy of class ``k`` for a linear probe on a Gaussian
mixture (:mod:`theory.population`).

Reduction (all deterministic)
-----------------------------
1. *Square root.* ``D = mu + B w`` with ``w ~ N(0, I)`` and ``B B^T = L S L^T``: ``B = L F`` if a
   factor ``S = F F^T`` is given (then identical rows of ``F`` give exactly zero rows of ``B``),
   otherwise ``B = U diag(sqrt(lambda))`` from an eigendecomposition of ``L S L^T`` with the
   eigenvalues at the round-off floor (``<= 16 K eps max(diag S, lambda_max)``) dropped, so that a
   singular covariance keeps its exact rank. A dropped part of row ``i`` (standard deviation
   ``e_i``) is accounted for by the flip bound of step 3 (``_FLIP e_i / ||B_i|| + _FLIP_TAIL``).
2. *Deterministic rows.* A difference whose standard deviation ``||B_i||`` is at the round-off
   floor (``s_floor``, :func:`theory.orthant_reduction.reduce_batch`) is treated as the
   constant ``mu_i``. Tie rule (as in :mod:`theory.metrics`: a tie is an error and is reported):
   ``|mu_i| <= TIE_RTOL * ptp(m)`` (relative to the spread of the means; exact ties when all
   means coincide) is a tie, ``mu_i`` above it a sure win of that comparison, below it a sure
   loss. If the true standard deviation were as large as the floor, the indicator would be wrong
   with probability at most ``2 Phi(-|mu_i| / (sqrt(2) s_floor))``, which is added to the error.
3. *Rank and ordering.* The random rows are orthogonalised one by one (modified Gram-Schmidt with
   re-orthogonalisation, i.e. a pivoted Cholesky factorisation computed from ``B``, not from the
   covariance, so rank decisions are made at the ``eps`` level of ``B``): at each step the pivot
   is the row with the smallest conditional probability ``Phi((mu_i + E[...]) / s_i)`` given the
   truncated means of the variables already chosen (the Gibson-Glasbey-Elston / Genz-Bretz
   variable ordering, which concentrates the variation in the first variables). This gives
   ``D_i = mu_i + sum_{j <= a(i)} C_ij w_j`` with ``C_{i a(i)} != 0``: row ``i`` is attached to
   variable ``a(i)`` (its last nonzero column); rows that become dependent (relative residual
   ``<= DEP_RTOL``) are attached where that happens and their dropped residual ``n_i`` adds the
   rigorous flip bound ``P(|X| <= |Y|) <= 6.63 n_i / ||C_i|| + 1.1e-16`` to the error
   (``X ~ N(., ||C_i||^2)``, ``Y ~ N(0, n_i^2)``, split at ``|Y| = 8.3 n_i``: the density of ``X``
   is at most ``1/(sqrt(2 pi) ||C_i||)``). The rank ``r`` is the number of pivots.
4. *Separation of variables* (Genz 1992). With ``lo_j, hi_j`` the intersection of the intervals for
   ``w_j`` that the rows attached to ``j`` impose given ``w_1..w_{j-1}``,

   .. math::  P = \int_{[0,1]^{r-1}} \prod_{j=1}^{r} \big(\Phi(hi_j) - \Phi(lo_j)\big)\, du,
              \qquad w_j = \Phi^{-1}\big(\Phi(lo_j) + u_j (\Phi(hi_j) - \Phi(lo_j))\big).

Evaluation
----------
* ``r = 0``: indicator; ``r = 1``: ``Phi(hi) - Phi(lo)``, exact; ``r = 2`` with two rows (e.g.
  ``K = 3``, full rank): the bivariate normal CDF by Owen's ``T`` function,
  ``Phi_2(h, k; rho) = (Phi(h) + Phi(k))/2 - T(h, a_h) - T(k, a_k) - beta`` (Owen 1956), exact to
  ``~1e-15`` (``scipy.special.owens_t``). Their error is reported as 0 (plus the bounds of steps
  2-3).
* Otherwise a deterministic quasi-Monte Carlo rule on the ``r - 1`` dimensional integral: the
  Kronecker (Richtmyer) sequence ``x_n = frac(n alpha + Delta_q)``, ``alpha_i = sqrt(prime_i)``,
  periodised by the tent transform ``u = |2x - 1|`` (as in Genz's QSIMVN), for ``N_SHIFTS``
  fixed shifts ``Delta_q`` hashed from their indices (SplitMix64 finaliser: deterministic, but
  spread like random shifts, which the error estimate relies on; a regular Weyl sequence of
  shifts gave estimates up to ~3x too small). The estimate is the mean over shifts and the
  error estimate is
  ``ERR_FACTOR`` standard errors of that mean (spread of the per-shift estimates). The number of
  points per shift doubles (the sequence is nested, so nothing is recomputed) until the error
  estimate is ``<= abs_tol`` or ``max_points`` evaluations are spent.

  The QMC error estimate is a **standard-error-type estimate** over deterministic shifts, not a
  rigorous bound: the shifts are not random, so no probability statement strictly applies; with
  ``ERR_FACTOR = 3`` and ``N_SHIFTS = 12`` it corresponds to a ~99% Student-t interval had the
  shifts been random (``t_{0.995, 11} = 3.1``). Its calibration is tested
  (``test_error_estimate_is_met_at_default_tolerance``) and measured in ``benchmarks/orthant.py``.
  The round-off terms of steps 2-3 *are* rigorous bounds (under the stated floors) and are added.

Layout (issue 23): steps 1-3 are :mod:`theory.orthant_reduction` (:func:`reduce_batch`, with the
tie and dependence tolerances ``TIE_RTOL``, ``DEP_RTOL``); the closed forms, the quadrature of
step 4 and :func:`win_probability` are here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.special import ndtr, ndtri, owens_t

from theory.lattice import kronecker_generator
from theory.orthant_reduction import DEP_RTOL as DEP_RTOL  # re-exported (public constant)
from theory.orthant_reduction import TIE_RTOL, Reduced, reduce_batch
from theory.validation import check_int, check_positive

__all__ = [
    "DEFAULT_ABS_TOL",
    "DEFAULT_MAX_POINTS",
    "ERR_FACTOR",
    "N_SHIFTS",
    "TIE_RTOL",
    "WinProbability",
    "bvn_upper",
    "win_probability",
]

#: Default absolute error target of the quadrature.
DEFAULT_ABS_TOL = 1e-4
#: Default cap on integrand evaluations per probability (all shifts together) for rank <= 9
#: (K <= 10); the cost of one evaluation grows like rank^2, so for larger ranks the default cap is
#: ``DEFAULT_MAX_POINTS * (9 / rank)^2`` (same work; the error estimate says what it achieved).
DEFAULT_MAX_POINTS = 2**21
#: Number of deterministic shifts of the Kronecker rule; the error estimate uses their spread.
N_SHIFTS = 12
#: Error estimate = ERR_FACTOR x (standard error of the mean over the shifts).
ERR_FACTOR = 3.0
#: First number of points per shift (doubles until the tolerance is met).
_FIRST_POINTS = 128
#: Clip of the standard normal variables generated by the inverse CDF (Phi(-38) ~ 1e-316).
_W_CLIP = 38.0
#: Target number of float64 entries per working array of the quadrature (memory per chunk).
_CHUNK_ENTRIES = 2**20


class WinProbability(NamedTuple):
    """Result of :func:`win_probability` (floats, or arrays of shape (B,) for a batch).

    Attributes
    ----------
    prob : float or ndarray
        ``P(z_k > z_j for all j != k)`` (strict win; ties count as losses).
    err : float or ndarray
        Error estimate of ``prob`` (module docstring: QMC standard-error-type estimate plus
        rigorous round-off terms; 0 up to those terms for the closed forms).
    tie_prob : float or ndarray
        Probability of a tie with a best other class (nonzero only when a difference is
        deterministic and within the tie tolerance).
    """

    prob: float | np.ndarray
    err: float | np.ndarray
    tie_prob: float | np.ndarray


# ---------------------------------------------------------------------------------------------
# closed forms


def bvn_upper(h, k, rho, sqrt_one_minus_rho2=None):
    r"""``P(X > -h, Y > -k) = Phi_2(h, k; rho)`` for standard bivariate normal ``(X, Y)``.

    Owen (1956): for ``h, k != 0``,
    ``Phi_2(h, k; rho) = (Phi(h) + Phi(k))/2 - T(h, a_h) - T(k, a_k) - beta`` with
    ``a_h = (k - rho h)/(h s)``, ``a_k = (h - rho k)/(k s)``, ``s = sqrt(1 - rho^2)``,
    ``beta = 0`` if ``h k > 0`` or (``h k = 0`` and ``h + k >= 0``), else ``1/2``; for ``h = 0``
    the limit ``Phi(k)/2 - T(k, -rho/s)`` (and symmetrically), ``1/4 + arcsin(rho)/(2 pi)`` at
    ``h = k = 0``. Requires ``|rho| < 1``; ``sqrt_one_minus_rho2`` may be passed when it is known
    more accurately than ``sqrt(1 - rho^2)`` (near ``|rho| = 1``).

    Parameters
    ----------
    h, k, rho : array_like (broadcast)

    Returns
    -------
    ndarray
        Clipped to ``[0, 1]``.
    """
    h, k, rho = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (h, k, rho)))
    s = (
        np.sqrt(np.maximum(1.0 - rho * rho, 0.0))
        if sqrt_one_minus_rho2 is None
        else np.broadcast_to(np.asarray(sqrt_one_minus_rho2, dtype=float), h.shape)
    )
    out = np.empty(h.shape)
    both = (h != 0) & (k != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a_h = (k - rho * h) / (h * s)
        a_k = (h - rho * k) / (k * s)
    beta = np.where((h * k > 0) | ((h * k == 0) & (h + k >= 0)), 0.0, 0.5)
    out[both] = (
        0.5 * (ndtr(h[both]) + ndtr(k[both]))
        - owens_t(h[both], a_h[both])
        - owens_t(k[both], a_k[both])
        - beta[both]
    )
    with np.errstate(divide="ignore"):
        r_over_s = rho / s
    h0 = (h == 0) & (k != 0)
    out[h0] = 0.5 * ndtr(k[h0]) - owens_t(k[h0], -r_over_s[h0])
    k0 = (k == 0) & (h != 0)
    out[k0] = 0.5 * ndtr(h[k0]) - owens_t(h[k0], -r_over_s[k0])
    hk0 = (h == 0) & (k == 0)
    out[hk0] = 0.25 + np.arctan2(rho[hk0], s[hk0]) / (2 * math.pi)
    return np.clip(out, 0.0, 1.0)


def _interval_mass(lo, hi):
    """``Phi(hi) - Phi(lo)`` without cancellation in the upper tail (0 where ``hi <= lo``)."""
    upper = lo > 0
    mass = np.where(upper, ndtr(-lo) - ndtr(-hi), ndtr(hi) - ndtr(lo))
    return np.where(hi > lo, np.maximum(mass, 0.0), 0.0)


# ---------------------------------------------------------------------------------------------
# quadrature


def _kronecker_params(dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Generator ``alpha`` (dim,) and the N_SHIFTS fixed shifts (N_SHIFTS, dim).

    The shifts are hashed from their indices (:func:`theory.lattice.hash_uniform`), i.e. they
    behave like the random shifts of a randomly shifted lattice rule, for which the spread of the
    per-shift estimates is a sound error estimate.
    """
    return kronecker_generator(dim, N_SHIFTS)


class _Step(NamedTuple):
    """Rows attached to one variable, padded to ``A`` per item (padding has ``coef_j = 0``)."""

    mu: np.ndarray  # (G, A)
    prev: np.ndarray  # (G, A, j) coefficients on the earlier variables
    coef: np.ndarray  # (G, A) coefficient on this variable (1 on padding, masked out)
    pos: np.ndarray  # (G, A) bool: lower bound on w_j
    neg: np.ndarray  # (G, A) bool: upper bound on w_j


def _steps(mu, coef, attach, rank) -> list[_Step]:
    """Per-variable row data for :func:`_sov_integrand` (``mu`` (G, R), ``coef`` (G, R, r))."""
    g = mu.shape[0]
    steps = []
    for j in range(rank):
        mask = attach == j
        width = int(mask.sum(axis=1).max())
        # Padded gather: attached rows first in each item (stable sort on "not attached").
        order = np.argsort(~mask, axis=1, kind="stable")[:, :width]
        valid = np.take_along_axis(mask, order, axis=1)
        rows = np.arange(g)[:, None]
        c = np.where(valid, coef[rows, order, j], 0.0)
        steps.append(
            _Step(
                mu=np.where(valid, mu[rows, order], 0.0),
                prev=np.where(valid[:, :, None], coef[rows, order, :j], 0.0),
                coef=np.where(valid, c, 1.0),
                pos=valid & (c > 0),
                neg=valid & (c < 0),
            )
        )
    return steps


def _sov_integrand(u, steps):
    """Integrand values (G, n) at uniforms ``u`` (n, r - 1) for a group of G items (module doc)."""
    g = steps[0].mu.shape[0]
    n = u.shape[0]
    rank = len(steps)
    f = np.ones((g, n))
    w = np.empty((g, rank, n))
    for j, st in enumerate(steps):
        # Bound on w_j from each attached row: (-mu_i - sum_{l<j} C_il w_l) / C_ij.
        s = np.matmul(st.prev, w[:, :j, :]) if j else 0.0
        bound = (-st.mu[:, :, None] - s) / st.coef[:, :, None]
        lo = np.max(np.where(st.pos[:, :, None], bound, -np.inf), axis=1)
        need_w = j < rank - 1
        if not st.neg.any():  # common case: only lower bounds, Phi(inf) - Phi(lo) = Phi(-lo)
            tail = ndtr(-lo)
            f *= tail
            if need_w:
                w[:, j, :] = -ndtri((1.0 - u[:, j]) * tail)
        else:
            hi = np.min(np.where(st.neg[:, :, None], bound, np.inf), axis=1)
            mass = _interval_mass(lo, hi)
            f *= mass
            if need_w:
                uj = u[:, j]
                with np.errstate(invalid="ignore"):
                    t_up = ndtr(-lo) - uj * (ndtr(-lo) - ndtr(-hi))
                    t_lo = ndtr(lo) + uj * mass
                    w[:, j, :] = np.where(lo > 0, -ndtri(t_up), ndtri(t_lo))
        if need_w:
            wj = w[:, j, :]
            np.clip(wj, -_W_CLIP, _W_CLIP, out=wj)  # also maps +-inf from ndtri(0 or 1)
            wj[np.isnan(wj)] = 0.0  # empty interval: f is already 0 there
    return f


def _lattice(mu, coef, attach, rank, abs_tol, max_points, first_points=_FIRST_POINTS):
    """QMC estimates and error estimates for G items of one rank >= 2 (module docstring)."""
    count, n_rows = mu.shape
    coef = coef[:, :, :rank]
    dim = max(rank - 1, 1)
    cap = max_points
    if cap is None:
        cap = max(4 * N_SHIFTS * _FIRST_POINTS, int(DEFAULT_MAX_POINTS * min(1.0, (9 / rank) ** 2)))
    alpha, shifts = _kronecker_params(dim)
    sums = np.zeros((count, N_SHIFTS))
    done = 0  # points per shift evaluated so far
    est = np.zeros(count)
    err = np.full(count, np.inf)
    active = np.arange(count)
    n_target = first_points
    while active.size:
        steps = _steps(mu[active], coef[active], attach[active], rank)
        idx = np.arange(done + 1, n_target + 1, dtype=float)
        # Largest working arrays: (G, r, chunk * N_SHIFTS); >= 16 points keeps loop overhead low.
        chunk = max(16, _CHUNK_ENTRIES // (active.size * max(rank, n_rows) * N_SHIFTS))
        for start in range(0, idx.size, chunk):
            base = np.outer(idx[start : start + chunk], alpha) % 1.0
            x = (base[None, :, :] + shifts[:, None, :]) % 1.0  # (shift, point, dim)
            u = np.abs(2.0 * x - 1.0).reshape(-1, dim)  # tent transform (periodisation)
            f = _sov_integrand(u, steps)
            sums[active] += f.reshape(active.size, N_SHIFTS, -1).sum(axis=2)
        done = n_target
        per_shift = sums[active] / done
        est[active] = per_shift.mean(axis=1)
        err[active] = ERR_FACTOR * per_shift.std(axis=1, ddof=1) / math.sqrt(N_SHIFTS)
        if 2 * n_target * N_SHIFTS > cap:
            break
        active = active[err[active] > abs_tol]
        n_target *= 2
    return np.clip(est, 0.0, 1.0), err


def _random_part(red: Reduced, abs_tol, max_points, method, first_points=_FIRST_POINTS):
    """``P(mu + C w > 0)`` over the random rows and its error, for every item of the batch."""
    bsz = red.mu.shape[0]
    items = np.arange(bsz)
    prob = np.ones(bsz)
    err = np.zeros(bsz)
    todo = (red.det_state >= 0) & (red.rank > 0)
    # Rank 1: an interval for w_1.
    one = todo & (red.rank == 1)
    if one.any():
        c = red.coef[one][:, :, 0]
        on = red.attach[one] == 0
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -red.mu[one] / np.where(on, c, 1.0)
        lo = np.max(np.where(on & (c > 0), bound, -np.inf), axis=1)
        hi = np.min(np.where(on & (c < 0), bound, np.inf), axis=1)
        prob[one] = _interval_mass(lo, hi)
    # Rank 2 with two rows: the bivariate normal CDF (Owen's T).
    two = todo & (red.rank == 2) & (np.sum(red.attach >= 0, axis=1) == 2) & (method == "auto")
    if two.any():
        idx = items[two]
        first = np.argmax(red.attach[two] == 0, axis=1)
        second = np.argmax(red.attach[two] == 1, axis=1)
        c11 = red.coef[idx, first, 0]
        c21, c22 = red.coef[idx, second, 0], red.coef[idx, second, 1]
        s1, s2 = np.abs(c11), np.hypot(c21, c22)
        rho = np.sign(c11) * c21 / s2
        h, k = red.mu[idx, first] / s1, red.mu[idx, second] / s2
        prob[two] = bvn_upper(h, k, rho, np.abs(c22) / s2)
    quad = todo & ~one & ~two
    for rank in np.unique(red.rank[quad]):
        idx = items[quad & (red.rank == rank)]
        p, e = _lattice(
            red.mu[idx],
            red.coef[idx],
            red.attach[idx],
            int(rank),
            abs_tol,
            max_points,
            first_points,
        )
        prob[idx] = p
        err[idx] = e
    return prob, err


# ---------------------------------------------------------------------------------------------
# public


def _validate(mean, cov, true_class, cov_factor):
    m = np.asarray(mean, dtype=float)
    single = m.ndim == 1
    if m.ndim not in (1, 2) or m.shape[-1] < 2 or m.size == 0:
        raise ValueError(f"mean must have shape (K,) or (B, K) with K >= 2, got {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError("mean contains NaN or inf entries")
    m = np.atleast_2d(m)
    batch, k = m.shape
    tc = np.asarray(true_class)
    if tc.ndim > 1 or not (
        np.issubdtype(tc.dtype, np.integer) and not np.issubdtype(tc.dtype, np.bool_)
    ):
        raise ValueError(
            f"true_class must be an integer or a (B,) integer array, got {true_class!r}"
        )
    tc = np.broadcast_to(tc, (batch,)) if tc.ndim == 0 else tc
    if tc.shape != (batch,):
        raise ValueError(f"true_class must have shape ({batch},), got {tc.shape}")
    if tc.min() < 0 or tc.max() >= k:
        raise ValueError(f"true_class must lie in [0, K={k}), got range [{tc.min()}, {tc.max()}]")
    if (cov is None) == (cov_factor is None):
        raise ValueError("pass exactly one of cov (K, K) and cov_factor (K, q)")
    if cov is not None:
        s = np.asarray(cov, dtype=float)
        shared = s.ndim == 2
        if s.shape not in ((k, k), (batch, k, k)):
            raise ValueError(
                f"cov must have shape ({k}, {k}) or ({batch}, {k}, {k}), got {s.shape}"
            )
        if not np.all(np.isfinite(s)):
            raise ValueError("cov contains NaN or inf entries")
        s = s[None] if shared else s  # a shared matrix is validated once
        s_t = np.swapaxes(s, 1, 2)
        scale = np.max(np.abs(s), axis=(1, 2))
        if np.any(np.max(np.abs(s - s_t), axis=(1, 2)) > 1e-10 * scale):
            raise ValueError("cov must be symmetric (max|S - S^T| <= 1e-10 max|S|)")
        s = 0.5 * (s + s_t)
        eig = np.linalg.eigvalsh(s)
        if np.any(eig[:, 0] < -1e-8 * np.max(np.abs(eig), axis=1)):
            raise ValueError(
                "cov must be positive semidefinite (smallest eigenvalue >= -1e-8 x largest)"
            )
        if shared:
            s = np.broadcast_to(s, (batch, k, k))
        return m, s, None, tc.astype(np.int64), single
    f = np.asarray(cov_factor, dtype=float)
    if f.ndim == 2:
        f = np.broadcast_to(f, (batch, *f.shape))
    if f.ndim != 3 or f.shape[:2] != (batch, k) or f.shape[2] == 0:
        raise ValueError(f"cov_factor must have shape ({k}, q) or ({batch}, {k}, q), got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("cov_factor contains NaN or inf entries")
    return m, None, f, tc.astype(np.int64), single


def win_probability(
    mean,
    cov=None,
    true_class=0,
    *,
    cov_factor=None,
    abs_tol: float = DEFAULT_ABS_TOL,
    max_points: int | None = None,
    method: str = "auto",
    first_points: int = _FIRST_POINTS,
) -> WinProbability:
    r"""``P(z[k] > z[j] for all j != k)`` for ``z ~ N(mean, cov)``, with an error estimate.

    Parameters
    ----------
    mean : array_like, shape (K,) or (B, K)
        Means; a 2-D array is a batch of ``B`` problems.
    cov : array_like, shape (K, K) or (B, K, K), optional
        Symmetric PSD covariance (singular allowed), shared by the batch if 2-D.
    true_class : int or array_like of int, shape (B,)
        The class ``k`` that must win (one per batch item, or shared).
    cov_factor : array_like, shape (K, q) or (B, K, q), optional
        ``F`` with ``cov = F F^T`` instead of ``cov`` (exactly one of the two). More accurate for
        singular covariances: identical rows of ``F`` give exactly deterministic differences.
    abs_tol : float
        Target of the QMC error estimate (default ``1e-4``).
    max_points : int, optional
        Cap on integrand evaluations per problem (all shifts together); if reached, the returned
        ``err`` may exceed ``abs_tol`` (it is always reported). Default: ``DEFAULT_MAX_POINTS``
        for rank <= 9, scaled by ``(9 / rank)^2`` above (constant work).
    method : {'auto', 'lattice'}
        ``'lattice'`` uses the QMC rule also where the bivariate closed form applies (for tests).
    first_points : int
        Points per shift of the first QMC pass (default 128; they double until ``abs_tol`` is
        met). A loose ``abs_tol`` with few first points saves time on large batches.

    Returns
    -------
    WinProbability
        ``(prob, err, tie_prob)``; floats for 1-D ``mean``, arrays of shape (B,) otherwise.
        ``err`` is a standard-error-type estimate (module docstring), not a rigorous bound,
        for ranks >= 3 (or 2 with more than two rows); see the module docstring for the rest.
    """
    tol = check_positive(abs_tol, "abs_tol")
    cap = (
        None
        if max_points is None
        else check_int(max_points, "max_points", N_SHIFTS * _FIRST_POINTS)
    )
    if method not in ("auto", "lattice"):
        raise ValueError(f"method must be 'auto' or 'lattice', got {method!r}")
    m, s, f, tc, single = _validate(mean, cov, true_class, cov_factor)
    red = reduce_batch(m, s, f, tc)
    first = check_int(first_points, "first_points", 2)
    rand, err = _random_part(red, tol, cap, method, first)
    prob = np.where(red.det_state == 1, rand, 0.0)
    tie = np.where(red.det_state == 0, rand, 0.0)
    err = np.where(red.det_state < 0, red.err, red.err + err)
    if single:
        return WinProbability(float(prob[0]), float(err[0]), float(tie[0]))
    return WinProbability(prob, err, tie)
