r"""Public entry point: exact (cross-entropy) self-distillation on the Gaussian mixture at finite p.

:func:`predict_finite_exact` returns, for rounds ``0..R``, the training accuracy (all, clean,
mislabeled points), the population accuracy, the law of the training logits per group (true class,
given label) and the order parameters, from the state equations of
:mod:`theory.finite_exact.state` (docs/theory.md §16).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.blas import single_thread_blas
from theory.finite import MixtureModel
from theory.finite_exact.quadrature import gauss_points
from theory.finite_exact.state import (
    MAX_ITER,
    STATE_TOL,
    StateProblem,
    solve_state,
)
from theory.finite_exact.symmetry import class_symmetry
from theory.groups import check_counts
from theory.orthant import win_probability
from theory.validation import check_int, check_positive

__all__ = [
    "DEFAULT_POINTS",
    "FiniteExactPrediction",
    "exact_resource_estimate",
    "predict_finite_exact",
]

#: Lattice points per shift (8 shifts, antithetic: M = 16 x 64 = 1024 samples per group).
#: Measured: 4x more points moves the population accuracy by < 1e-3 and the training accuracy by
#: ~3e-3 (the reported ``train_quadrature_err``), below the Monte Carlo errors it is compared to
#: (docs §16.6-16.7); ``points`` raises it.
DEFAULT_POINTS = 64
N_SHIFTS = 8
#: Error estimate = ERR_FACTOR standard errors of the mean over the shifts (as theory.orthant).
ERR_FACTOR = 3.0
#: Orthant quadrature target of the population accuracy.
ORTHANT_TOL = 1e-4
#: Cost model of one pass over a group's points, in seconds per point (measured on the 2-core
#: development machine, single-threaded BLAS: 4.0 / 14 / 45 us at K = 3 / 10 / 20; batched
#: K x K LAPACK calls are overhead-bound below K ~ 30, hence the K^2 term).
_SECONDS_PER_POINT = (4e-6, 1e-7, 1e-9)  # a + b K^2 + c K^3
#: Typical passes per round (measured 9-15 fixed-point iterations plus one final pass).
_TYPICAL_PASSES = 14


@dataclass(frozen=True)
class FiniteExactPrediction:
    """Exact finite-ratio prediction of self-distillation, rounds ``0..R``.

    Attributes
    ----------
    train_acc, train_acc_clean, train_acc_mislabeled, population_acc : ndarray, shape (R + 1,)
        Expected accuracies w.r.t. the true labels (``NaN`` for an empty subset).
    group_acc : ndarray, shape (R + 1, K, K)
        ``[t, k, l]``: probability that a point of true class ``k`` and label ``l`` is classified
        correctly at round ``t`` (``NaN`` for empty groups).
    group_logit_means, group_logit_covs : ndarray, shapes (R + 1, K, K, K), (R + 1, K, K, K, K)
        Mean and covariance of the training logits of each group (the law of the logits is the
        image of the Gaussian cavity field under the prox, not Gaussian itself).
    group_output_means : ndarray, shape (R + 1, K, K, K)
        Mean of ``softmax(z) - 1/K`` per group (compare :class:`theory.finite.FinitePrediction`).
    population_means, population_covs : ndarray, shapes (R + 1, K, K), (R + 1, K, K, K)
        A fresh class-``k`` point's logits are exactly ``N(b_k, Sigma_tt)`` given the training
        set; over training sets (with ``fluctuations``) the class-mean covariance is added.
    train_quadrature_err : ndarray, shape (R + 1,)
        ``ERR_FACTOR`` standard errors of the training accuracy over the lattice shifts.
    population_quadrature_err : ndarray, shape (R + 1,)
        Error estimate of the orthant probabilities.
    iterations : ndarray of int, shape (R + 1,)
        Fixed-point iterations per round.
    residuals : ndarray, shape (R + 1,)
        Final relative change / class-sum residual of each round (``<= tol`` when converged).
    converged : bool
    v, q, b : ndarray
        Order parameters: response ``V`` (R + 1, R + 1, K, K), bulk covariance ``Q``
        ((R + 1) K, (R + 1) K), class means of the cavity field ``b`` (R + 1, K, K) with
        ``b[t][:, k] = b_{k, t}``.
    symmetry : str
        ``'cyclic'`` (class 0's groups integrated, the rest by symmetry) or ``'none'``.
    points : int
        Cavity-field samples per group.
    counts : ndarray, shape (K, K)
    lam : float
    model : MixtureModel
    """

    train_acc: np.ndarray
    train_acc_clean: np.ndarray
    train_acc_mislabeled: np.ndarray
    population_acc: np.ndarray
    group_acc: np.ndarray
    group_logit_means: np.ndarray
    group_logit_covs: np.ndarray
    group_output_means: np.ndarray
    population_means: np.ndarray
    population_covs: np.ndarray
    train_quadrature_err: np.ndarray
    population_quadrature_err: np.ndarray
    iterations: np.ndarray
    residuals: np.ndarray
    converged: bool
    v: np.ndarray
    q: np.ndarray
    b: np.ndarray
    symmetry: str
    points: int
    counts: np.ndarray
    lam: float
    model: MixtureModel


#: Smallest relative gap ``(c - d) / c`` of the class means' Gram matrix: below it ``Gamma`` is
#: singular to working precision (condition number ``c / (c - d)`` beyond 1e8).
_MIN_MEAN_GAP = 1e-8


def _check(model, counts, lam, rounds, points, student="sd"):
    if not isinstance(model, MixtureModel):
        raise ValueError("model must be a theory.finite.MixtureModel")
    cnt = check_counts(counts, model.block())
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    pts = check_int(points, "points", 16)
    k = model.n_classes
    if student not in ("sd", "pll"):
        raise ValueError(f"student must be 'sd' or 'pll', got {student!r}")
    if student == "pll":
        if k < 3:
            raise ValueError(
                "student='pll' needs n_classes >= 3: with K = 2 the top-2 candidates are every "
                "class and the two-hot target carries no information"
            )
        if r != 1:
            raise ValueError(f"student='pll' trains one student: rounds must be 1, got {r}")
    if not model.infinite and model.dim <= k:
        raise ValueError(
            f"dim must exceed n_classes={k} for the exact finite-ratio theory (its bulk has "
            f"p - K dimensions), got dim={model.dim}"
        )
    if model.c >= 1:
        raise ValueError(
            f"c must be < 1 (the noise variance 1 - c must be positive), got {model.c}"
        )
    if not model.infinite and model.d > 0 and model.c - model.d <= _MIN_MEAN_GAP * model.c:
        # Gamma = (c - d) I + d 1 1^T is then singular: the K class means coincide (one mean
        # direction, not K), which the cavity decomposition into K mean directions and a p - K
        # bulk assumes away (it divides by Gamma's spectrum, docs §16.5).
        raise ValueError(
            f"the exact finite-ratio theory needs c > d (distinct class means), got c={model.c}, "
            f"d={model.d}: at c = d every class has the same mean, the population accuracy is "
            "chance (1/K) and the linearised finite-p theory (theory.finite.predict_finite) or "
            "the Monte Carlo cover the training accuracies"
        )
    return cnt, lam, r, pts


def exact_resource_estimate(model, counts, rounds, *, points=DEFAULT_POINTS) -> dict:
    """Memory (bytes) and time (seconds, typical) of :func:`predict_finite_exact`, up front.

    ``M = 2 N_SHIFTS points`` samples for each integrated group (``G`` groups: class 0's nonzero
    groups for a circulant count matrix, all nonzero groups otherwise). Storage is the logits and
    gradients of every round, ``2 (R+1) G M K`` doubles, the noise ``(R+1) M K`` and the point
    set ``M (R+1)(K-1)``, plus 32 MB of work arrays. Time is ``_TYPICAL_PASSES (R+1) G M``
    point-passes at the measured cost per point: the scaling is linear in the rounds and in
    ``G`` (at most ``K`` circulant, ``K^2`` otherwise) and ``~K^2`` to ``K^3`` per point.
    """
    cnt = np.asarray(counts, dtype=np.int64)
    k = cnt.shape[0]
    r1 = int(rounds) + 1
    sym = class_symmetry(cnt)
    groups = int(np.count_nonzero(cnt[sym.simulated]))
    m = 1 if model.infinite else 2 * N_SHIFTS * int(points)
    dim = r1 * (k - 1)
    # Logits, gradients and noise of every round (float64); the cross-round tangents
    # d psi_s/d h_r (r <= s, float32) and d z/d h of two rounds.
    tangents = 4.0 * groups * m * k * k * (r1 * (r1 + 1) / 2 + 2 * r1)
    nbytes = 8.0 * (2 * r1 * groups * m * k + r1 * m * k + m * dim) + tangents + 8 * 2**22
    a, b, c = _SECONDS_PER_POINT
    # Per pass of round t: the prox and Jacobian (a + b K^2 + c K^3) and t (t + 1)/2 tangent
    # products of K^3 (summed over the rounds: ~(R+1)^3/6).
    per_point = r1 * (a + b * k**2 + c * k**3) + 2 * c * k**3 * r1**3 / 6
    seconds = _TYPICAL_PASSES * groups * m * per_point
    return {
        "bytes": nbytes,
        "seconds": seconds,
        "groups": groups,
        "symmetry": sym.kind,
        "points": m,
    }


def predict_finite_exact(
    model: MixtureModel,
    counts,
    lam,
    rounds,
    *,
    points: int = DEFAULT_POINTS,
    tol: float = STATE_TOL,
    max_iter: int = MAX_ITER,
    use_symmetry: bool = True,
    fluctuations: bool = True,
    student: str = "sd",
    progress=None,
) -> FiniteExactPrediction:
    r"""Exact finite-ratio prediction of cross-entropy self-distillation, rounds ``0..R``.

    Parameters
    ----------
    model : MixtureModel
        ``K, n, p, c, d``; ``p = inf`` is the block limit (then the prediction is the block
        model's exact group fixed point, docs §4).
    counts : array_like of int, shape (K, K)
        ``C[k, l]`` points of true class ``k`` with given label ``l`` (rows sum to ``n``).
    lam : float
        ``lam > 0`` (the toolkit's scaling: mean cross-entropy plus ``(lam/2) ||W||^2``).
    rounds : int
        Last round ``R >= 0``.
    points : int
        Lattice points per shift and group (``M = 16 points`` cavity samples per group).
    tol, max_iter
        Stopping rule of each round's fixed point.
    use_symmetry : bool
        Integrate only class 0's groups when the count matrix is circulant (exact; ``False``
        for tests of the reduction).
    fluctuations : bool
        Include the ``O(1/n)`` terms (self-response through the class means, class-mean
        fluctuations over training sets; docs §16.5). ``False``: the leading-order equations.
    student : {'sd', 'pll'}
        ``'sd'``: rounds ``1..R`` distil on the previous round's outputs. ``'pll'``: one student
        (``rounds = 1``) on the teacher's top-2 candidates with weight 1/2 each, trained with
        cross-entropy (the theory's PLL student, docs §7; ``K >= 3``). The candidate-set losses
        are not covered: their per-point problem is not convex (docs §16.8).
    progress : callable, optional
        Called with the round index after each round.

    Notes
    -----
    Assumptions (docs §16.5): the replica-symmetric / cavity description of the stationarity
    system (exact for convex losses in the proportional limit ``N, p -> inf``, ``N/p`` and
    ``lam N`` fixed); ``O(K/N)`` terms dropped (the mean directions' own response and the
    training set's fluctuation of the class sums).
    """
    cnt, lam, r, pts_per_shift = _check(model, counts, lam, rounds, points, student)
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    k = model.n_classes
    prob = StateProblem(cnt, lam, r, model.c, model.d, model.dim, student)
    # The top-2 tie rule (smaller class index) is not equivariant under relabelling; exact ties
    # only occur in the block limit (a continuous cavity law has none), so there the PLL student
    # integrates every class.
    sym = class_symmetry(cnt, allow=use_symmetry and not (student == "pll" and model.infinite))
    with single_thread_blas():
        if model.infinite:
            pts = gauss_points(0, 1)
        else:
            pts = gauss_points((r + 1) * (k - 1), pts_per_shift, N_SHIFTS)
        state, rounds_out = solve_state(
            prob, sym, pts, tol=tol, max_iter=max_iter, progress=progress, fluctuations=fluctuations
        )
        return _assemble(prob, sym, pts, state, rounds_out, cnt, lam, model)


def _assemble(prob, sym, pts, state, rounds_out, cnt, lam, model):
    k = prob.n_classes
    r1 = prob.rounds + 1
    w = cnt.astype(float)
    clean = np.eye(k, dtype=bool)
    train = np.full((r1, 3), np.nan)
    pop = np.empty(r1)
    pop_err = np.zeros(r1)
    t_err = np.zeros(r1)
    p_means = np.empty((r1, k, k))
    p_covs = np.empty((r1, k, k, k))
    gamma_pinv = np.linalg.pinv(prob.gamma)
    for t, ro in enumerate(rounds_out):
        acc = np.nan_to_num(ro.group_correct)
        for j, mask in enumerate((np.ones((k, k), bool), clean, ~clean)):
            tot = w[mask].sum()
            if tot > 0:
                train[t, j] = float((acc * w)[mask].sum() / tot)
        if pts.n_shifts > 1:
            per_shift = np.einsum("kl,kls->s", w, np.nan_to_num(ro.group_correct_shift)) / w.sum()
            t_err[t] = ERR_FACTOR * float(np.std(per_shift, ddof=1)) / math.sqrt(pts.n_shifts)
        bt = state.b[t]
        blk = slice(t * k, (t + 1) * k)
        cov = state.q[blk, blk] + prob.sigma2 * bt @ gamma_pinv @ bt.T
        cov = 0.5 * (cov + cov.T)
        p_means[t] = bt.T
        classes = [0] if sym.kind == "cyclic" else range(k)
        probs, errs = [], []
        for cls in range(k):
            # A fresh point's logits given the training set are N(b_k, Sigma_tt); over training
            # sets b_k moves by the Gaussian db_k: add its covariance.
            p_covs[t, cls] = cov + state.ceta[cls][blk, blk]
        # The win probability depends on logit differences only: its covariance is taken on
        # the zero-sum subspace, where it is PSD to round-off. (Along 1 it carries round-off
        # of the common-mode terms: at p = 1e9 an eigenvalue of -1e-15 beside variances of 1e-8,
        # which the orthant's PSD check refused.)
        proj = np.eye(k) - 1.0 / k
        for cls in classes:
            diff_cov = proj @ p_covs[t, cls] @ proj
            diff_cov = 0.5 * (diff_cov + diff_cov.T)
            res = win_probability(bt[:, cls], diff_cov, cls, abs_tol=ORTHANT_TOL)
            probs.append(res.prob)
            errs.append(res.err)
        pop[t] = float(np.mean(probs))
        pop_err[t] = float(np.max(errs))
    return FiniteExactPrediction(
        train_acc=train[:, 0],
        train_acc_clean=train[:, 1],
        train_acc_mislabeled=train[:, 2],
        population_acc=pop,
        group_acc=np.stack([ro.group_correct for ro in rounds_out]),
        group_logit_means=np.stack([ro.group_logit_mean for ro in rounds_out]),
        group_logit_covs=np.stack([ro.group_logit_cov for ro in rounds_out]),
        group_output_means=np.stack([ro.group_output_mean for ro in rounds_out]),
        population_means=p_means,
        population_covs=p_covs,
        train_quadrature_err=t_err,
        population_quadrature_err=pop_err,
        iterations=np.array([ro.iterations for ro in rounds_out]),
        residuals=np.array([ro.residual for ro in rounds_out]),
        converged=True,
        v=state.v,
        q=state.q,
        b=state.b,
        symmetry=sym.kind,
        points=pts.size,
        counts=cnt,
        lam=lam,
        model=model,
    )
