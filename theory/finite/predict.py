"""The finite-``p`` prediction of the linearised SD rounds (:func:`predict_finite`, docs §11).

Group moments (:mod:`theory.finite.moments`) turned into accuracies by the orthant rule
(:mod:`theory.orthant`), round by round, in a :class:`FinitePrediction`; counts with a class
symmetry take the orbit path of :mod:`theory.finite_symmetric`. And the cost of a prediction
(:func:`finite_resource_estimate`, :data:`FINITE_MAX_ROUNDS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.blas import single_thread_blas
from theory.class_symmetry import class_symmetry
from theory.finite.model import MixtureModel
from theory.finite.moments import (
    clean_covariance,
    global_covariance,
    population_moments,
    resolvent,
    training_moments,
)
from theory.finite.spectrum import bulk_eigen_weights
from theory.groups import check_counts
from theory.orthant import win_probability
from theory.validation import check_int, check_positive

#: Quadrature target of the orthant probabilities. The deterministic equivalents' own error at
#: N ~ 100 is ~1e-2 in accuracy (docs §11.9), so a 2e-3 quadrature error estimate is invisible; it
#: is reported in ``FinitePrediction.quadrature_err``.
ORTHANT_TOL = 2e-3
#: First QMC pass of the orthant rule (points per shift); doubled until ``ORTHANT_TOL`` is met.
_FIRST_POINTS = 32
#: Numbers per chunk of groups in the training moments (2^24 doubles = 128 MB).
_CHUNK_NUMBERS = 2**24


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
    if not isinstance(model, MixtureModel):
        raise ValueError(f"model must be a theory.finite.MixtureModel, got {type(model).__name__}")
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
    rv, weights = resolvent(model, cnt, lam, r)
    rv_cov, weights_cov = resolvent(model, cnt, lam, 2 * r + 1, light=True)
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
        glob = global_covariance(rv, weights[t] * rv.z * rv.s)
        for start in range(0, kk_all.size, chunk):
            kk, ll = kk_all[start : start + chunk], ll_all[start : start + chunk]
            mean, cov = training_moments(rv, weights[t], kk, ll, rv.identity)
            cov = clean_covariance(cov + glob[kk])
            res = win_probability(mean, cov, kk, abs_tol=abs_tol, first_points=_FIRST_POINTS)
            g_means[t, kk, ll], g_covs[t, kk, ll], g_acc[t, kk, ll] = mean, cov, res.prob
            qerr = max(qerr, float(np.max(res.err)))
        acc = np.nan_to_num(g_acc[t])

        def frac(mask, acc=acc):
            tot = w[mask].sum()
            return float((acc * w)[mask].sum() / tot) if tot > 0 else math.nan

        train[t] = frac(np.ones_like(clean)), frac(clean), frac(~clean)
        pm, pc = population_moments(rv, weights[t], rv_cov, weights_cov[2 * t + 1])
        pc = clean_covariance(pc[None] + global_covariance(rv, weights[t]))
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
