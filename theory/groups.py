r"""Group-level predictions for the block feature model: linearised and exact, round by round.

Model (``docs/theory.md``, Sections 3-4): ``K`` classes of ``n`` points, ``N = K n``, Gram matrix
``G = (1-c) I + (c-d) B + d 11^T``. Label noise is a count matrix ``C`` (K, K): ``C[k, l]``
points of true class ``k`` carry the given label ``l`` (rows sum to ``n``). The probe objective is
invariant under permutations of the points of one *group* ``(k, l)`` and the optimum is unique, so
every point of a group has the same output; all predictions reduce to ``K^2`` groups, at a cost
independent of ``n``.

Array conventions
-----------------
* Group arrays have shape (K, K, K) indexed ``[true class k, given label l, output class]``.
  Groups with ``C[k, l] = 0`` contain no point; their entries are ``NaN`` (there is no output to
  report, and inventing one would change the training set).
* Round ``t = 0`` is the teacher trained on the one-hot given labels; round ``t >= 1`` is trained on
  the round ``t-1`` outputs (group level).
* Population point of class ``k``: a fresh point whose kernel row is ``c`` on class-``k`` training
  points and ``d`` on all others (the infinite-dimensional limit of a Gaussian mixture). Population
  accuracy is the fraction of classes whose population point is classified correctly.
* Outputs are stored as deviations ``P - 1/K`` computed without cancellation (from the logits via
  ``expm1``, :func:`theory.losses.softmax_deviation`; the linearised forms are deviations by
  construction), and targets are carried between rounds as deviations. A prediction whose outputs
  are all within 1e-20 of ``1/K`` keeps its gaps (``docs/theory.md``, Section 13).
* Accuracies use :func:`theory.metrics.correct_and_tied` on the deviations: the true class must
  win by more than ``TIE_RTOL`` times the spread of the round's scores; ties count as errors and
  are counted in ``ties`` (training points) and ``population_ties`` (classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from theory.blas import single_thread_blas
from theory.gram import block_gram, check_block_params
from theory.group_descent import descent_memory_bytes
from theory.group_engine import (
    GroupCoupling,
    engine_memory_bytes,
    force_to_logits_inverse,
    minimise_objective,
    newton_solve,
)
from theory.losses import CrossEntropy, softmax, softmax_deviation
from theory.metrics import correct_and_tied
from theory.validation import check_int, check_positive

__all__ = [
    "BlockModel",
    "GroupConvergenceError",
    "GroupPrediction",
    "GroupSolution",
    "check_counts",
    "group_accuracies",
    "linear_accuracy_grid",
    "linear_group_outputs",
    "linear_population_outputs",
    "one_hot_group_targets",
    "population_accuracy",
    "newton_build_flops",
    "prediction_memory_bytes",
    "predict_exact",
    "predict_linear",
    "solve_groups",
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


def population_accuracy(population_outputs) -> tuple[float, int]:
    """Population accuracy and number of tied classes from (K, K) ``[class, output class]``.

    Accepts outputs, deviations or logits (the tie rule is shift invariant).
    """
    p = np.asarray(population_outputs, dtype=float)
    correct, tied = correct_and_tied(p.T, np.arange(p.shape[0]))
    return float(np.mean(correct)), int(tied.sum())


# --------------------------------------------------------------------------------------------
# linearised predictions


def one_hot_group_targets(n_classes: int) -> np.ndarray:
    """Group targets of the teacher: ``targets[k, l] = e_l``, shape (K, K, K)."""
    eye = np.eye(n_classes)
    return np.broadcast_to(eye[None, :, :], (n_classes,) * 3).copy()


def one_hot_deviations(n_classes: int) -> np.ndarray:
    """``e_l - 1/K`` for every group, shape (K, K, K)."""
    k = n_classes
    return np.broadcast_to(np.eye(k) - 1.0 / k, (k, k, k)).copy()


def _group_sums(values, counts):
    """Class sums ``S_k = sum_l C[k, l] v[k, l]`` (K, K) and the global sum (K,).

    Empty groups are skipped (their entries may be NaN). One batched matrix-vector product.
    """
    v = np.asarray(values, dtype=float)
    if np.isnan(v).any():
        v = np.where(counts[:, :, None] > 0, v, 0.0)
    s_class = np.matmul(counts.astype(float)[:, None, :], v)[:, 0, :]
    return s_class, s_class.sum(axis=0)


def _apply_filter(model: BlockModel, counts, centred, weights):
    r"""Apply ``w_1 Pi_1 + w_2 Pi_2 + w_3 Pi_3`` (spectral projectors of G) to group-symmetric rows.

    For a point of group (k, l) with centred target ``v_(k,l)``:
    ``w_3 v_(k,l) + (w_2 - w_3) S_k / n + (w_1 - w_2) S / N`` with ``S_k, S`` the class and global
    count-weighted sums (``Pi_3 = I - B/n``, ``Pi_2 = B/n - 11^T/N``, ``Pi_1 = 11^T/N``).
    Centred inputs give centred (deviation) outputs: no ``1/K`` is ever added and subtracted.
    """
    w1, w2, w3 = weights
    s_class, s_all = _group_sums(centred, counts)
    out = (
        w3 * centred
        + (w2 - w3) * s_class[:, None, :] / model.per_class
        + (w1 - w2) * s_all[None, None, :] / model.n_samples
    )
    return np.where(counts[:, :, None] > 0, out, np.nan)


def linear_group_deviations(model: BlockModel, counts, target_deviations, lam, power=1):
    r"""Linearised deviations ``(T - 1/K) A^power`` for group-symmetric target deviations.

    Same as :func:`linear_group_outputs` minus ``1/K``, computed without adding ``1/K``.
    """
    cnt = check_counts(counts, model)
    weights = model.filter_ratios(lam) ** check_int(power, "power", 0)
    return _apply_filter(model, cnt, np.asarray(target_deviations, dtype=float), weights)


def linear_group_outputs(model: BlockModel, counts, targets, lam, power: int = 1) -> np.ndarray:
    r"""Linearised outputs ``1/K + (T - 1/K) A^power`` for group-symmetric targets.

    ``A = G (G + K lam N I)^(-1)`` has eigenvalues ``a_j = mu_j / (mu_j + K lam N)``;
    ``power = t+1`` gives round ``t`` from the round-0 targets, ``power = 1`` one round from any
    targets.

    Parameters
    ----------
    targets : array_like, shape (K, K, K)
        ``targets[k, l]`` on the simplex for every non-empty group.

    Returns
    -------
    ndarray, shape (K, K, K)
        ``NaN`` on empty groups.
    """
    centred = np.asarray(targets, dtype=float) - 1.0 / model.n_classes
    return 1.0 / model.n_classes + linear_group_deviations(model, counts, centred, lam, power)


def _population_logits(model: BlockModel, counts, centred_targets, lam, a) -> np.ndarray:
    r"""Population logits ``z_k = (T - P) k_k / (lam N)`` of a linearised student, shape (K, K).

    With ``T - P = T_hat (I - A)`` and the population kernel row ``k_k = m 1 + (c - d) (1_k - 1/K)``
    (``m = d + (c - d)/K``; it has no ``Pi_3`` component):
    ``z_k = [(1 - a_1) m H + (1 - a_2) (c - d) (H_k - H / K)] / (lam N)``,
    ``H_k = sum_l C[k,l] t_hat_(k,l)``, ``H = sum_k H_k``.
    """
    s_class, s_all = _group_sums(centred_targets, counts)
    k = model.n_classes
    mean_row = model.d + (model.c - model.d) / k
    lam_n = lam * model.n_samples
    return (
        (1.0 - a[0]) * mean_row * s_all[None, :]
        + (1.0 - a[1]) * (model.c - model.d) * (s_class - s_all[None, :] / k)
    ) / lam_n


def linear_population_deviations(model: BlockModel, counts, target_deviations, lam):
    """Linearised population deviations ``z / K`` (K, K) of a student trained on the targets."""
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    centred = np.asarray(target_deviations, dtype=float)
    z = _population_logits(model, cnt, centred, lam, model.filter_ratios(lam))
    return z / model.n_classes


def linear_population_outputs(model: BlockModel, counts, targets, lam) -> np.ndarray:
    """Linearised population outputs ``1/K + z/K`` of a student trained (once) on ``targets``.

    Returns shape (K, K) ``[class, output class]``; see :func:`_population_logits` for ``z``.
    """
    centred = np.asarray(targets, dtype=float) - 1.0 / model.n_classes
    return 1.0 / model.n_classes + linear_population_deviations(model, counts, centred, lam)


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


def _histogram_deviations(model: BlockModel, cnt):
    """``e_l - 1/K`` (K, K), ``h_k - 1/K`` (K, K), ``h - 1/K`` (K,) and ``h_k - h`` (K, K).

    Histogram deviations are formed from exact integer numerators (``(K C[k] - n) / (K n)``,
    ``(K H - N) / (K N)``, ``(K C[k] - H) / N``), so a balanced histogram gives an exactly zero
    global part; an O(eps) spurious global part would otherwise grow like ``(a_1/a_2)^t``
    relative to the class part and decide the late rounds.
    """
    k, n, big_n = model.n_classes, model.per_class, model.n_samples
    hist = cnt.sum(axis=0)
    own = np.eye(k) - 1.0 / k
    cls = (k * cnt - n) / (k * n)
    glob = (k * hist - big_n) / (k * big_n)
    cls_glob = (k * cnt - hist[None, :]) / big_n
    return own, cls, glob, cls_glob


def _log_weights(a, power):
    """``log a_j^power`` and the log of their maximum (``a_j = 0`` gives ``-inf``)."""
    with np.errstate(divide="ignore"):
        logw = power * np.log(a)
    return logw, float(np.max(logw))


def predict_linear(model: BlockModel, counts, lam, rounds) -> GroupPrediction:
    r"""Linearised (label-averaging) predictions for rounds ``0..R``.

    Round ``t`` (Proposition 3.3): ``p_(k,l) - 1/K = w_3 (e_l - 1/K) + (w_2 - w_3)(h_k - 1/K) +
    (w_1 - w_2)(h - 1/K)`` with ``w_j = a_j^(t+1)``, ``h_k = C[k,:]/n`` (class label histogram)
    and ``h = 1^T C / N`` (global label histogram). The round-``t`` student is trained on the round
    ``t-1`` linearised outputs; its population logits are

    ``z_k = [(1 - a_1) m N a_1^t (h - 1/K) + (1 - a_2) (c - d) n a_2^t (h_k - h)] / (lam N)``,

    ``m = d + (c - d)/K`` (the closed form of :func:`linear_population_outputs` for these
    targets), population deviations ``z / K``. Every round is evaluated in closed form (no
    round-by-round iteration, whose round-off the ``a_1^t`` direction would amplify), as
    deviations from ``1/K``; decisions use the deviations divided by ``max_j a_j^(t+1)`` (or
    ``max(a_1^t, a_2^t)``), so gaps never underflow.

    Parameters
    ----------
    model : BlockModel
    counts : array_like of int, shape (K, K)
    lam : float
        ``lam > 0``.
    rounds : int
        ``R >= 0``.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    k = model.n_classes
    a = model.filter_ratios(lam)
    own, cls, glob, cls_glob = _histogram_deviations(model, cnt)
    empty = cnt == 0
    has_empty = bool(empty.any())
    mbar = model.d + (model.c - model.d) / k
    lam_n = lam * model.n_samples
    pop_coef = np.array(
        [(1 - a[0]) * mbar * model.n_samples, (1 - a[1]) * (model.c - model.d) * model.per_class]
    ) / (lam_n * k)
    dev = np.empty((r + 1, k, k, k))
    score = np.empty((k, k, k))
    pop = np.empty((r + 1, k, k))
    rows, pops = [], []
    for t in range(r + 1):
        logw, top = _log_weights(a, t + 1)
        w = np.exp(logw - top)  # a_j^(t+1) / max_j a_j^(t+1)
        class_part = (w[1] - w[2]) * cls + (w[0] - w[1]) * glob[None, :]  # (K, K)
        np.add(w[2] * own[None, :, :], class_part[:, None, :], out=score)
        if has_empty:
            score[empty] = np.nan
        rows.append(group_accuracies(score, cnt))
        np.multiply(score, np.exp(top), out=dev[t])
        logp, ptop = _log_weights(a[:2], t)
        wp = np.exp(logp - ptop)
        pop_score = pop_coef[0] * wp[0] * glob[None, :] + pop_coef[1] * wp[1] * cls_glob
        pops.append(population_accuracy(pop_score))
        pop[t] = pop_score * np.exp(ptop)
    return assemble_prediction(model, cnt, lam, dev, pop, "linear", rows=rows, pops=pops)


def linear_accuracy_grid(model: BlockModel, counts, lam, rounds) -> tuple[np.ndarray, np.ndarray]:
    r"""Linearised training and population accuracies for a stack of count matrices.

    The numbers of ``predict_linear(model, counts[e], lam, rounds).train_acc`` and
    ``.population_acc`` for every ``e``, computed with the same floating-point operations (the
    scores of Proposition 3.3 rescaled by ``max_j a_j^(t+1)``, the tie rule of
    :func:`theory.metrics.correct_and_tied` with the spread over the non-empty groups, exact
    integer sums of the counts) but vectorised over the stack: one pass per round instead of
    one :func:`predict_linear` per count matrix (the explorer's ``(eta, t)`` phase diagram).
    Tested equal to :func:`predict_linear`.

    Parameters
    ----------
    model : BlockModel
    counts : array_like of int, shape (E, K, K)
    lam : float
        ``lam > 0``.
    rounds : int
        ``R >= 0``.

    Returns
    -------
    train_acc, population_acc : ndarray, shape (E, R + 1)
        Accuracies w.r.t. the true labels (training: over all non-empty groups).
    """
    from theory.metrics import TIE_RTOL

    arr = np.asarray(counts)
    if arr.ndim != 3:
        raise ValueError(f"counts must have shape (E, K, K), got {arr.shape}")
    cnt = np.stack([check_counts(c, model) for c in arr]) if arr.shape[0] else arr
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    k, n, big_n = model.n_classes, model.per_class, model.n_samples
    e = cnt.shape[0]
    train = np.empty((e, r + 1))
    pop = np.empty((e, r + 1))
    if e == 0:
        return train, pop
    a = model.filter_ratios(lam)
    # _histogram_deviations, stacked: own (K, K), cls (E, K, K), glob (E, K), cls_glob (E, K, K)
    hist = cnt.sum(axis=1)
    own = np.eye(k) - 1.0 / k
    cls = (k * cnt - n) / (k * n)
    glob = (k * hist - big_n) / (k * big_n)
    cls_glob = (k * cnt - hist[:, None, :]) / big_n
    mbar = model.d + (model.c - model.d) / k
    lam_n = lam * big_n
    pop_coef = np.array(
        [(1 - a[0]) * mbar * big_n, (1 - a[1]) * (model.c - model.d) * model.per_class]
    ) / (lam_n * k)
    nonempty = cnt > 0  # (E, K, K); empty groups take no part in the spread or the accuracy
    total = cnt.sum(axis=(1, 2))
    idx = np.arange(k)
    score = np.empty((e, k, k, k))  # [e, true class k, label l, output]
    for t in range(r + 1):
        logw, top = _log_weights(a, t + 1)
        w = np.exp(logw - top)  # as in predict_linear: a_j^(t+1) / max_j a_j^(t+1)
        class_part = (w[1] - w[2]) * cls + (w[0] - w[1]) * glob[:, None, :]  # (E, K, K)
        np.add(w[2] * own[None, None, :, :], class_part[:, :, None, :], out=score)
        train[:, t] = _stack_train_accuracy(score, nonempty, cnt, total, idx, TIE_RTOL)
        logp, ptop = _log_weights(a[:2], t)
        wp = np.exp(logp - ptop)
        pop_score = pop_coef[0] * wp[0] * glob[:, None, :] + pop_coef[1] * wp[1] * cls_glob
        pop[:, t] = _stack_population_accuracy(pop_score, idx, TIE_RTOL)
    return train, pop


def _stack_train_accuracy(score, nonempty, cnt, total, idx, rtol):
    """:func:`group_accuracies`' overall accuracy for each (K, K, K) score block of a stack."""
    spread = np.where(nonempty, score.max(axis=3) - score.min(axis=3), -np.inf)
    tol = rtol * spread.reshape(spread.shape[0], -1).max(axis=1)  # (E,)
    own = np.moveaxis(score[:, idx, :, idx], 0, 1)  # (E, K, K): score of the true class k
    other = score.copy()
    other[:, idx, :, idx] = -np.inf
    gap = own - other.max(axis=3)
    correct = (gap > tol[:, None, None]) & nonempty
    return np.where(correct, cnt, 0).sum(axis=(1, 2)) / total


def _stack_population_accuracy(pop_score, idx, rtol):
    """:func:`population_accuracy` for each (K, K) ``[class, output]`` block of a stack."""
    spread = (pop_score.max(axis=2) - pop_score.min(axis=2)).max(axis=1)
    own = pop_score[:, idx, idx]
    other = pop_score.copy()
    other[:, idx, idx] = -np.inf
    gap = own - other.max(axis=2)
    return np.mean(gap > (rtol * spread)[:, None], axis=1)


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

    @cached_property
    def outputs(self) -> np.ndarray:
        """``softmax(logits)`` per group, shape (K, K, K) (``NaN`` on empty groups)."""
        with np.errstate(invalid="ignore"):
            return softmax(self.logits)


def _softmax(z):
    return softmax(z)


def pad_groups(coupling, rows):
    """Per-group rows (G, K) of the non-empty groups as a (K, K, K) array, NaN on empty groups.

    ``coupling`` (:class:`theory.group_engine.GroupCoupling`) lists the non-empty groups
    ``(kk, ll)`` in the order of ``rows``.
    """
    k = coupling.k
    out = np.full((k, k, k), np.nan)
    out[coupling.kk, coupling.ll] = rows
    return out


def solve_loss_groups(
    model: BlockModel,
    counts,
    loss,
    lam,
    *,
    init_logits=None,
    init_force=None,
    tol=GROUP_TOL,
    max_iter=100,
    system=None,
) -> GroupSolution:
    r"""Exact group fixed point ``z = L f(z)`` of any per-sample loss (:mod:`theory.losses`).

    ``loss`` acts on the rows of the non-empty groups in ``np.nonzero(counts > 0)`` order.
    Convex losses (cross-entropy): damped Newton on ``F(z) = z - L f(z)`` from ``init_logits``
    (:func:`theory.group_engine.newton_solve`). Non-convex losses: descent on the training
    objective in the representer coefficients ``r`` (``z = L r``) from ``init_force`` (or the ``r``
    reproducing ``init_logits``), Newton steps where they descend
    (:func:`theory.group_engine.minimise_objective`): the result is a stationary point reached
    from that start -- for the PLL students the teacher, as in the reference code.

    Returns the best iterate with its certificate; never raises on non-convergence (see
    ``converged``). ``system`` (a :class:`theory.group_engine.NewtonSystem` for the same model,
    counts and ``lam``) lets consecutive solves share a preconditioner.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    coupling = system.coupling if system is not None else GroupCoupling(model, cnt, lam)
    k = model.n_classes
    z0 = np.zeros((coupling.n_groups, k))
    if init_logits is not None:
        init = np.asarray(init_logits, dtype=float)[coupling.kk, coupling.ll]
        if np.all(np.isfinite(init)):
            z0 = init.copy()
    with single_thread_blas():  # see theory.blas: small batched solves
        res = None
        if loss.convex:
            res = newton_solve(coupling, loss, z0, tol=tol, max_iter=max_iter, system=system)
        if res is None or not res.converged:
            # Non-convex losses, and the rare convex solve whose max|F| backtracking crawls
            # (far start at tiny lam): descent on the objective itself, globally convergent for
            # convex losses.
            if init_force is not None:
                r0 = np.asarray(init_force, dtype=float)[coupling.kk, coupling.ll]
            elif coupling.a > 0:
                r0 = force_to_logits_inverse(coupling, z0)
            else:
                r0 = np.zeros_like(z0)
            alt = minimise_objective(
                coupling, loss, r0, tol=tol, max_iter=2 * max_iter, system=system
            )
            if res is None or alt.converged or alt.residual < res.residual:
                res = alt
        if loss.convex and not res.converged and np.any(z0 != 0):
            # A convex loss has one minimiser whatever the start: from a saturated start (e.g. the
            # teacher's logits at lam <= 1e-8, where damped Newton moves the saturated logits by
            # O(1) per step) restart from zero logits, the start of every teacher solve.
            alt = newton_solve(coupling, loss, np.zeros_like(z0), tol=tol, max_iter=max_iter)
            if alt.converged or alt.residual < res.residual:
                res = alt
    pop_logits = coupling.population_logits(loss.force(res.z))
    return GroupSolution(
        logits=pad_groups(coupling, res.z),
        residual=res.residual,
        iterations=res.iterations,
        population_logits=pop_logits,
        deviations=pad_groups(coupling, softmax_deviation(res.z)),
        population_deviations=softmax_deviation(pop_logits),
        converged=res.converged,
        target=res.target,
        fallback_steps=res.fallback_steps,
        system=res.system,
    )


def convergence_error(sol, model, lam, what="group-level Newton"):
    """The :class:`GroupConvergenceError` for an unconverged group-level solve ``sol``.

    Shared by the group solvers here and in :mod:`theory.pll`, so that every such error names
    the iterations, the residual against its target and the model the same way.
    """
    return GroupConvergenceError(
        f"{what} did not converge in {sol.iterations} iterations: residual {sol.residual:.3g} > "
        f"target {sol.target:.3g} (K={model.n_classes}, n={model.per_class}, c={model.c}, "
        f"d={model.d}, lam={lam})"
    )


def solve_groups(
    model: BlockModel,
    counts,
    targets,
    lam,
    *,
    target_deviations=None,
    init_logits=None,
    init_force=None,
    tol=GROUP_TOL,
    max_iter=100,
    raise_on_failure: bool = True,
    system=None,
) -> GroupSolution:
    r"""Exact group fixed point ``p = softmax(z)`` of cross-entropy on soft targets.

    ``z_(k,l) = [(1-c) r_(k,l) + c S_k + d (S - S_k)] / (lam N)`` with ``r = T - p``,
    ``S_k = sum_l C[k,l] r_(k,l)``, ``S = sum_k S_k``.

    Damped Newton on ``F(z) = z - L(T - softmax(z))`` (unknowns: K logits per non-empty group),
    each step solved exactly by the structured elimination of :mod:`theory.group_engine`
    (``O(K^4)`` time, ``O(K^3)`` memory). ``r = (T - 1/K) - (p - 1/K)`` is formed from deviations,
    so targets within 1e-20 of uniform lose nothing.

    Parameters
    ----------
    targets : array_like, shape (K, K, K) or None
        Group targets on the simplex (entries of empty groups are ignored).
    target_deviations : array_like, shape (K, K, K), optional
        ``targets - 1/K`` instead of ``targets`` (exactly one of the two); carries the targets
        of later rounds without cancellation.
    tol : float
        Required residual relative to the targets' size: the certificate is
        ``max|p - softmax(z(T - p))| <= max(tol * max|T - 1/K|, floor)``, with the round-off floor
        ``64 eps (max|p - 1/K| + max|z| + max(|L| |T - p|))`` below which the residual is not
        computable in float64 (``docs/theory.md``, Section 13).
    raise_on_failure : bool
        Raise :class:`GroupConvergenceError` if the certificate is not reached (default);
        otherwise return the best iterate with ``converged=False``.
    """
    cnt = check_counts(counts, model)
    k = model.n_classes
    if (targets is None) == (target_deviations is None):
        raise ValueError("pass exactly one of targets or target_deviations")
    if target_deviations is None:
        target_deviations = np.asarray(targets, dtype=float) - 1.0 / k
    kk, ll = np.nonzero(cnt > 0)
    loss = CrossEntropy(np.asarray(target_deviations, dtype=float)[kk, ll])
    sol = solve_loss_groups(
        model,
        cnt,
        loss,
        lam,
        init_logits=init_logits,
        init_force=init_force,
        tol=tol,
        max_iter=max_iter,
        system=system,
    )
    if raise_on_failure and not sol.converged:
        raise convergence_error(sol, model, lam)
    return sol


def predict_exact(
    model: BlockModel,
    counts,
    lam,
    rounds,
    tol=GROUP_TOL,
    *,
    allow_unconverged: bool = False,
    progress=None,
) -> GroupPrediction:
    """Exact (non-linearised) group-level predictions for rounds ``0..R``.

    Round ``t`` solves :func:`solve_groups` with the round ``t-1`` output deviations as targets
    (one-hot labels for ``t = 0``), warm-started from its logits; population outputs are
    ``softmax(z)`` with the exact population logits ``z = (T - P) k(x) / (lam N)``.

    Parameters
    ----------
    allow_unconverged : bool
        ``False`` (default): raise :class:`GroupConvergenceError` at the first uncertified round.
        ``True``: report every round; ``converged``, ``residuals`` and ``residual_targets`` say
        which rounds are certified (a partial result, e.g. at ``lam <= 1e-7``).
    progress : callable, optional
        Called as ``progress(t, solution)`` after every round (for long runs; no I/O here).
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    k = model.n_classes
    target_dev = one_hot_deviations(k)
    dev = np.empty((r + 1, k, k, k))
    pop = np.empty((r + 1, k, k))
    residuals = np.empty(r + 1)
    targets_ = np.empty(r + 1)
    converged = np.zeros(r + 1, dtype=bool)
    init = init_force = system = None
    ok = True
    for t in range(r + 1):
        sol = solve_groups(
            model,
            cnt,
            None,
            lam,
            target_deviations=target_dev,
            init_logits=init,
            init_force=init_force,
            tol=tol,
            raise_on_failure=not allow_unconverged,
            system=system,  # consecutive rounds share the Newton preconditioner
        )
        system = sol.system
        dev[t], pop[t] = sol.deviations, sol.population_deviations
        residuals[t], targets_[t] = sol.residual, sol.target
        ok = ok and sol.converged
        converged[t] = ok
        # The next round starts from this round's solution: logits z and force T - p (L f = z).
        init_force = target_dev - sol.deviations
        target_dev, init = sol.deviations, sol.logits
        if t == 0:
            teacher = sol  # keeps its Newton system: the PLL students reuse its preconditioner
        if progress is not None:
            progress(t, sol)
    return assemble_prediction(
        model,
        cnt,
        lam,
        dev,
        pop,
        "exact",
        residuals=residuals,
        converged=converged,
        residual_targets=targets_,
        teacher=teacher,
    )
