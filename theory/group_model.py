r"""Types of the block feature model's group-level theory: the model, its results, accuracies.

:class:`BlockModel` (``K`` classes of ``n`` points, ``G = (1-c) I + (c-d) B + d 11^T``),
:func:`check_counts` (the count matrix ``C``, shape (K, K)), the results
:class:`GroupPrediction` (rounds ``0..R``) and :class:`GroupSolution` (one exact round),
:func:`assemble_prediction` and the accuracies of group scores (:func:`group_accuracies`,
:func:`population_accuracy`), shared by the linearised (:mod:`theory.group_linear`) and exact
(:mod:`theory.groups`) predictions and by :mod:`theory.pll`. The array conventions are those of
:mod:`theory.groups`; every public name here is importable from :mod:`theory.groups` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from theory.gram import block_gram, check_block_params
from theory.group_descent import descent_memory_bytes
from theory.group_engine import engine_memory_bytes
from theory.losses import softmax
from theory.metrics import correct_and_tied
from theory.validation import check_positive

__all__ = [
    "GROUP_TOL",
    "BlockModel",
    "GroupConvergenceError",
    "GroupPrediction",
    "GroupSolution",
    "assemble_prediction",
    "check_counts",
    "group_accuracies",
    "newton_build_flops",
    "population_accuracy",
    "prediction_memory_bytes",
]


class GroupConvergenceError(RuntimeError):
    """The group-level Newton iteration did not reach the requested residual."""


#: Default certified residual of the exact group solves, relative to the targets' deviation from
#: uniform (``max|T - 1/K|``, at most 1): see :func:`solve_groups`.
GROUP_TOL = 1e-12


@dataclass(frozen=True)
class BlockModel:
    """Block Gram model: ``n_classes`` classes of ``per_class`` points, correlations ``c``, ``d``.

    Validated with :func:`theory.gram.check_block_params` (``K >= 2``, ``n >= 1``, ``c <= 1``,
    positive semidefinite ``G``).
    """

    n_classes: int
    per_class: int
    c: float
    d: float

    def __post_init__(self):
        k, n, c, d = check_block_params(self.n_classes, self.per_class, self.c, self.d)
        object.__setattr__(self, "n_classes", k)
        object.__setattr__(self, "per_class", n)
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "d", d)

    @property
    def n_samples(self) -> int:
        """``N = K n``."""
        return self.n_classes * self.per_class

    @property
    def eigenvalues(self) -> np.ndarray:
        """``(mu_1, mu_2, mu_3)``: ones vector, class contrasts, within-class contrasts."""
        k, n, c, d = self.n_classes, self.per_class, self.c, self.d
        mu3 = 1.0 - c
        mu2 = mu3 + n * (c - d)
        return np.array([mu2 + k * n * d, mu2, mu3])

    @property
    def multiplicities(self) -> tuple[int, int, int]:
        """``(1, K - 1, N - K)``."""
        return 1, self.n_classes - 1, self.n_samples - self.n_classes

    def filter_ratios(self, lam) -> np.ndarray:
        """One-round label-averaging ratios ``a_j = mu_j / (mu_j + K lam N)``, shape (3,)."""
        lam = check_positive(lam, "lam")
        mu = self.eigenvalues
        return mu / (mu + self.n_classes * lam * self.n_samples)

    def gram(self) -> np.ndarray:
        """Explicit (N, N) Gram matrix (for checks against full solvers; O(N^2) memory)."""
        return block_gram(self.n_classes, self.per_class, self.c, self.d)

    def population_kernel_rows(self) -> np.ndarray:
        """Kernel rows (K, N) of the K population points (``c`` on own class, ``d`` elsewhere)."""
        cls = np.repeat(np.arange(self.n_classes), self.per_class)
        return np.where(np.arange(self.n_classes)[:, None] == cls[None, :], self.c, self.d)


def check_counts(counts, model: BlockModel) -> np.ndarray:
    """Validate a count matrix: (K, K) non-negative integers, every row summing to ``per_class``."""
    arr = np.asarray(counts)
    k, n = model.n_classes, model.per_class
    if arr.shape != (k, k):
        raise ValueError(f"counts must have shape (K, K) = ({k}, {k}), got {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError("counts must be a matrix of non-negative integers")
    if not np.all(np.isfinite(arr)) or not np.all(np.equal(np.mod(arr, 1), 0)):
        raise ValueError("counts must be a matrix of non-negative integers")
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError(f"counts must be non-negative, got minimum {arr.min()}")
    rows = arr.sum(axis=1)
    if np.any(rows != n):
        bad = int(np.flatnonzero(rows != n)[0])
        raise ValueError(
            f"counts rows must sum to per_class={n} (points per class); "
            f"row {bad} sums to {rows[bad]}"
        )
    return arr


@dataclass(frozen=True)
class GroupPrediction:
    """Round-by-round group-level prediction (linearised or exact).

    Attributes
    ----------
    deviations : ndarray, shape (R + 1, K, K, K)
        ``deviations[t, k, l] = p - 1/K``: the round-``t`` output of every training point of true
        class ``k`` with given label ``l``, as a deviation from uniform computed without
        cancellation; ``NaN`` for empty groups (``C[k, l] = 0``).
    train_acc, train_acc_clean, train_acc_mislabeled : ndarray, shape (R + 1,)
        Training accuracy w.r.t. the TRUE labels over all points, over points whose given label is
        correct, and over mislabeled points. ``NaN`` if the subset is empty (e.g. no mislabeled
        points), since an accuracy over no points is undefined.
    population_acc : ndarray, shape (R + 1,)
        Fraction of classes whose population point is classified correctly.
    ties : ndarray of int, shape (R + 1,)
        Number of training POINTS (not groups) whose true class is tied with another class
        (:func:`theory.metrics.correct_and_tied`, relative tolerance); counted as errors.
    method : str
        ``'linear'`` or ``'exact'``.
    population_deviations : ndarray, shape (R + 1, K, K)
        ``[round, class k, output class]``: outputs minus ``1/K`` at the class-``k`` population
        point.
    population_ties : ndarray of int, shape (R + 1,)
        Number of classes whose population point is tied (counted as errors).
    counts : ndarray of int, shape (K, K)
    lam : float
    residuals : ndarray, shape (R + 1,) or None
        Exact method only: max-abs fixed-point residual of the outputs per round.
    candidate_ties : int or None
        PLL only: number of training points whose teacher top-2 selection involved a score tie
        (resolved towards the smaller class index).
    converged : ndarray of bool, shape (R + 1,) or None
        Exact method only: round ``t`` is certified (``residuals[t] <= residual_targets[t]``) and
        so are all earlier rounds (a round trained on an uncertified target is not certified).
    residual_targets : ndarray, shape (R + 1,) or None
        Exact method only: the certified tolerance ``max(tol * scale, floor)`` of each round.
    loss : str
        Training loss of the reported rows: ``'ce'`` (self-distillation rounds, two-hot PLL
        student), ``'candidate'`` or ``'gce'`` (PLL students, :mod:`theory.losses`).
    second_order : tuple or None
        Non-convex PLL students (exact): ``theory.group_descent.second_order`` at the reported
        point (``theory.group_engine.newton_inertia``, or dense matrices where its reduction does
        not apply), ``(negative eigenvalues of I + L H, groups with a negative within-group
        direction)``; ``(0, 0)`` certifies a strict local minimum. ``None`` if not computed or not
        applicable.
    descent : theory.group_descent.Descent or None
        Non-convex PLL students (exact): how the reported point was reached from the engine's
        stationary point -- the saddles left on the way (``descent.saddles``, with their
        accuracies in ``label``), both sides of each, and ``descent.status``. If no local
        minimum was reached (``status`` starts with ``'saddle'``), the accuracies of this
        prediction are ``NaN``: a saddle is not what training reaches, and its accuracies are
        only in ``descent.end.label``.
    teacher : GroupSolution or None
        :func:`predict_exact` only: the round-0 solution (so PLL students can reuse it, see
        ``theory.pll.predict_pll(teacher=...)``).
    """

    deviations: np.ndarray
    train_acc: np.ndarray
    train_acc_clean: np.ndarray
    train_acc_mislabeled: np.ndarray
    population_acc: np.ndarray
    ties: np.ndarray
    method: str
    population_deviations: np.ndarray
    population_ties: np.ndarray
    counts: np.ndarray
    lam: float
    residuals: np.ndarray | None = None
    candidate_ties: int | None = None
    converged: np.ndarray | None = None
    residual_targets: np.ndarray | None = None
    loss: str = "ce"
    second_order: tuple | None = None
    teacher: GroupSolution | None = field(default=None, repr=False, compare=False)
    descent: object = field(default=None, repr=False, compare=False)

    @property
    def rounds(self) -> int:
        """Last round ``R``."""
        return self.deviations.shape[0] - 1

    @cached_property
    def outputs(self) -> np.ndarray:
        """Outputs ``1/K + deviations``, shape (R + 1, K, K, K) (``NaN`` on empty groups).

        For display and comparisons with O(1) tolerances; decisions use :attr:`deviations`
        (``1/K + delta`` rounds away every ``|delta| < 1e-17 / K``).
        """
        return 1.0 / self.counts.shape[0] + self.deviations

    @cached_property
    def population_outputs(self) -> np.ndarray:
        """Population outputs ``1/K + population_deviations``, shape (R + 1, K, K)."""
        return 1.0 / self.counts.shape[0] + self.population_deviations

    @property
    def local_minimum(self) -> bool | None:
        """Non-convex students: ``second_order == (0, 0)`` (a strict local minimum of the ``N x N``
        objective); ``None`` where no second-order test was made (convex losses: the unique
        minimum)."""
        return None if self.second_order is None else self.second_order == (0, 0)

    @property
    def all_converged(self) -> bool:
        """True unless an exact round is uncertified."""
        return self.converged is None or bool(np.all(self.converged))


def prediction_memory_bytes(
    model: BlockModel, counts, rounds, *, rank: int = 1, escape: bool = False
) -> int:
    """Estimated peak memory (bytes) of one :func:`predict_exact` run (or ``predict_linear``).

    Stored results: ``(R + 1)`` arrays of shape (K, K, K) (deviations) and population arrays;
    working memory of one solve: the structured Newton step and its preconditioner
    (:func:`theory.group_engine.engine_memory_bytes`) plus six (K, K, K) solution arrays. The
    cached :attr:`GroupPrediction.outputs` (another ``(R + 1) K^3`` floats) is not included.
    ``escape=True`` (a non-convex PLL student is solved) adds the escape from a saddle point
    (:func:`theory.group_descent.descent_memory_bytes`).
    """
    cnt = np.asarray(counts)
    k = model.n_classes
    g = int(np.count_nonzero(cnt > 0))
    stored = 8 * (int(rounds) + 1) * (k**3 + k**2)
    extra = descent_memory_bytes(k, g) if escape else 0
    return stored + engine_memory_bytes(k, g, rank) + 8 * 6 * k**3 + extra


def newton_build_flops(model: BlockModel, counts, *, rank: int = 1) -> float:
    """Floating-point operations of one structured inverse build (the ``O(r K^4)`` part).

    ``2 r K^2 G`` for the class matrices ``Q_k`` (``G`` non-empty groups), about ``2 K^4`` for the
    batched inverses of ``E_k`` and ``2 K^4`` for ``sum_k E_k^-1 Q_k``.
    """
    k = model.n_classes
    g = int(np.count_nonzero(np.asarray(counts) > 0))
    return float(2 * rank * k * k * g + 4 * k**4)


# --------------------------------------------------------------------------------------------
# accuracies


def group_accuracies(outputs, counts):
    """Training accuracies of one round from group scores.

    Parameters
    ----------
    outputs : array_like, shape (K, K, K)
        Group scores: deviations ``p - 1/K`` (preferred: no lost digits), outputs or logits;
        empty groups are ignored. The tie rule is shift invariant and relative to the spread of
        the scores of all non-empty groups (:func:`theory.metrics.correct_and_tied`).
    counts : array_like of int, shape (K, K)

    Returns
    -------
    acc, acc_clean, acc_mislabeled : float
        Accuracies w.r.t. the true labels (NaN for an empty subset).
    ties : int
        Number of tied training points.
    """
    out = np.asarray(outputs, dtype=float)
    cnt = np.asarray(counts)
    kk, ll = np.nonzero(cnt > 0)
    correct, tied = correct_and_tied(out[kk, ll].T, kk)
    w = cnt[kk, ll]
    clean = kk == ll

    def frac(mask):
        tot = w[mask].sum()
        return float(w[mask & correct].sum() / tot) if tot > 0 else float("nan")

    return frac(np.ones_like(clean)), frac(clean), frac(~clean), int(w[tied].sum())


def population_accuracy(population_outputs, floor: float = 0.0) -> tuple[float, int]:
    """Population accuracy and number of tied classes from (K, K) ``[class, output class]``.

    Accepts outputs, deviations or logits (the tie rule is shift invariant). ``floor``: gaps up
    to twice this absolute round-off bound of the scores are ties too (the relative rule alone
    cannot tell an exact tie when every score is round-off,
    :meth:`theory.group_engine.GroupCoupling.population_logit_error`).
    """
    p = np.asarray(population_outputs, dtype=float)
    correct, tied = correct_and_tied(p.T, np.arange(p.shape[0]), tie_atol=2.0 * floor)
    return float(np.mean(correct)), int(tied.sum())


def assemble_prediction(model, cnt, lam, deviations, pop, method, *, rows=None, pops=None, **extra):
    """The prediction, with accuracies computed from the deviations unless given.

    ``rows`` / ``pops``: per-round results of :func:`group_accuracies` /
    :func:`population_accuracy` computed by the caller from rescaled scores (decisions are scale
    invariant, and a rescaled round cannot underflow).
    """
    rows = [group_accuracies(o, cnt) for o in deviations] if rows is None else rows
    pops = [population_accuracy(p) for p in pop] if pops is None else pops
    return GroupPrediction(
        deviations=deviations,
        train_acc=np.array([r[0] for r in rows]),
        train_acc_clean=np.array([r[1] for r in rows]),
        train_acc_mislabeled=np.array([r[2] for r in rows]),
        population_acc=np.array([p[0] for p in pops]),
        ties=np.array([r[3] for r in rows], dtype=np.int64),
        method=method,
        population_deviations=pop,
        population_ties=np.array([p[1] for p in pops], dtype=np.int64),
        counts=cnt,
        lam=float(lam),
        **extra,
    )


# --------------------------------------------------------------------------------------------
# exact group-level fixed point


@dataclass(frozen=True)
class GroupSolution:
    """Exact group-level solution of one training round.

    Attributes
    ----------
    logits, deviations : ndarray, shape (K, K, K)
        ``z`` and ``softmax(z) - 1/K`` (without cancellation); ``NaN`` on empty groups.
    outputs : ndarray, shape (K, K, K)
        ``softmax(z)`` (computed on first access).
    residual : float
        ``max |p - softmax(z(T - p))|`` over non-empty groups (the full N x N fixed-point residual,
        since all points of a group are identical), evaluated on deviations.
    iterations : int
    population_logits : ndarray, shape (K, K)
        ``[c S_k + d (S - S_k)] / (lam N)`` with ``r = T - p`` (the loss force in general).
    population_deviations : ndarray, shape (K, K)
    converged : bool
        ``residual <= target``.
    target : float
        Certified tolerance ``max(tol * scale, floor)`` (:func:`theory.group_engine.newton_solve`).
    fallback_steps : int
        Newton steps that used the convexified Hessian (non-convex losses only).
    population_floor : float
        Round-off bound of ``population_logits``
        (:meth:`theory.group_engine.GroupCoupling.population_logit_error`): population decisions
        count gaps below twice it as ties.
    """

    logits: np.ndarray
    residual: float
    iterations: int
    population_logits: np.ndarray
    deviations: np.ndarray
    population_deviations: np.ndarray
    converged: bool
    target: float
    fallback_steps: int = 0
    system: object = field(default=None, repr=False, compare=False)
    population_floor: float = 0.0

    @cached_property
    def outputs(self) -> np.ndarray:
        """``softmax(logits)`` per group, shape (K, K, K) (``NaN`` on empty groups)."""
        with np.errstate(invalid="ignore"):
            return softmax(self.logits)
