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
* Accuracies use :func:`theory.metrics.correct_and_tied`: the true class must win by more than
  ``TIE_ATOL``; ties count as errors and are counted in ``ties`` (training points) and
  ``population_ties`` (classes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.blas import single_thread_blas
from theory.gram import block_gram, check_block_params
from theory.metrics import correct_and_tied
from theory.validation import check_int, check_positive

__all__ = [
    "BlockModel",
    "GroupConvergenceError",
    "GroupPrediction",
    "GroupSolution",
    "check_counts",
    "group_accuracies",
    "linear_group_outputs",
    "linear_population_outputs",
    "one_hot_group_targets",
    "population_accuracy",
    "predict_exact",
    "predict_linear",
    "solve_groups",
]


class GroupConvergenceError(RuntimeError):
    """The group-level Newton iteration did not reach the requested residual."""


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
    outputs : ndarray, shape (R + 1, K, K, K)
        ``outputs[t, k, l]`` is the round-``t`` output (a probability vector) of every training
        point of true class ``k`` with given label ``l``; ``NaN`` for empty groups
        (``C[k, l] = 0``).
    train_acc, train_acc_clean, train_acc_mislabeled : ndarray, shape (R + 1,)
        Training accuracy w.r.t. the TRUE labels over all points, over points whose given label is
        correct, and over mislabeled points. ``NaN`` if the subset is empty (e.g. no mislabeled
        points), since an accuracy over no points is undefined.
    population_acc : ndarray, shape (R + 1,)
        Fraction of classes whose population point is classified correctly.
    ties : ndarray of int, shape (R + 1,)
        Number of training POINTS (not groups) whose true class is tied within ``TIE_ATOL`` with
        another class; they are counted as errors.
    method : str
        ``'linear'`` or ``'exact'``.
    population_outputs : ndarray, shape (R + 1, K, K)
        ``[round, class k, output class]``: outputs at the class-``k`` population point.
    population_ties : ndarray of int, shape (R + 1,)
        Number of classes whose population point is tied (counted as errors).
    counts : ndarray of int, shape (K, K)
    lam : float
    residuals : ndarray, shape (R + 1,) or None
        Exact method only: certified max-abs fixed-point residual of the outputs per round.
    candidate_ties : int or None
        PLL only: number of training points whose teacher top-2 selection involved a score tie
        within ``TIE_ATOL`` (resolved towards the smaller class index).
    """

    outputs: np.ndarray
    train_acc: np.ndarray
    train_acc_clean: np.ndarray
    train_acc_mislabeled: np.ndarray
    population_acc: np.ndarray
    ties: np.ndarray
    method: str
    population_outputs: np.ndarray
    population_ties: np.ndarray
    counts: np.ndarray
    lam: float
    residuals: np.ndarray | None = None
    candidate_ties: int | None = None

    @property
    def rounds(self) -> int:
        """Last round ``R``."""
        return self.outputs.shape[0] - 1


# --------------------------------------------------------------------------------------------
# accuracies


def group_accuracies(outputs, counts):
    """Training accuracies of one round from group outputs.

    Parameters
    ----------
    outputs : array_like, shape (K, K, K)
        Group outputs (or scores); empty groups are ignored.
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
    """Population accuracy and number of tied classes from (K, K) ``[class, output class]``."""
    p = np.asarray(population_outputs, dtype=float)
    correct, tied = correct_and_tied(p.T, np.arange(p.shape[0]))
    return float(np.mean(correct)), int(tied.sum())


# --------------------------------------------------------------------------------------------
# linearised predictions


def one_hot_group_targets(n_classes: int) -> np.ndarray:
    """Group targets of the teacher: ``targets[k, l] = e_l``, shape (K, K, K)."""
    eye = np.eye(n_classes)
    return np.broadcast_to(eye[None, :, :], (n_classes,) * 3).copy()


def _group_sums(values, counts):
    """Class sums ``S_k = sum_l C[k, l] v[k, l]`` (K, K) and the global sum (K,).

    Empty groups are skipped (their entries may be NaN).
    """
    w = counts[:, :, None].astype(float)
    v = np.where(w > 0, values, 0.0)
    s_class = (w * v).sum(axis=1)
    return s_class, s_class.sum(axis=0)


def _apply_filter(model: BlockModel, counts, centred, weights):
    r"""Apply ``w_1 Pi_1 + w_2 Pi_2 + w_3 Pi_3`` (spectral projectors of G) to group-symmetric rows.

    For a point of group (k, l) with centred target ``v_(k,l)``:
    ``w_3 v_(k,l) + (w_2 - w_3) S_k / n + (w_1 - w_2) S / N`` with ``S_k, S`` the class and global
    count-weighted sums (``Pi_3 = I - B/n``, ``Pi_2 = B/n - 11^T/N``, ``Pi_1 = 11^T/N``).
    """
    w1, w2, w3 = weights
    s_class, s_all = _group_sums(centred, counts)
    out = (
        w3 * centred
        + (w2 - w3) * s_class[:, None, :] / model.per_class
        + (w1 - w2) * s_all[None, None, :] / model.n_samples
    )
    return np.where(counts[:, :, None] > 0, out, np.nan)


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
    cnt = check_counts(counts, model)
    weights = model.filter_ratios(lam) ** check_int(power, "power", 0)
    centred = np.asarray(targets, dtype=float) - 1.0 / model.n_classes
    return 1.0 / model.n_classes + _apply_filter(model, cnt, centred, weights)


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


def linear_population_outputs(model: BlockModel, counts, targets, lam) -> np.ndarray:
    """Linearised population outputs ``1/K + z/K`` of a student trained (once) on ``targets``.

    Returns shape (K, K) ``[class, output class]``; see :func:`_population_logits` for ``z``.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    centred = np.asarray(targets, dtype=float) - 1.0 / model.n_classes
    z = _population_logits(model, cnt, centred, lam, model.filter_ratios(lam))
    return 1.0 / model.n_classes + z / model.n_classes


def _assemble(model, cnt, lam, outputs, pop, method, residuals=None, candidate_ties=None):
    rows = [group_accuracies(o, cnt) for o in outputs]
    pops = [population_accuracy(p) for p in pop]
    return GroupPrediction(
        outputs=outputs,
        train_acc=np.array([r[0] for r in rows]),
        train_acc_clean=np.array([r[1] for r in rows]),
        train_acc_mislabeled=np.array([r[2] for r in rows]),
        population_acc=np.array([p[0] for p in pops]),
        ties=np.array([r[3] for r in rows], dtype=np.int64),
        method=method,
        population_outputs=pop,
        population_ties=np.array([p[1] for p in pops], dtype=np.int64),
        counts=cnt,
        lam=float(lam),
        residuals=residuals,
        candidate_ties=candidate_ties,
    )


def predict_linear(model: BlockModel, counts, lam, rounds) -> GroupPrediction:
    r"""Linearised (label-averaging) predictions for rounds ``0..R``.

    Round ``t``: ``p_(k,l) = 1/K + w_3 (e_l - 1/K) + (w_2 - w_3)(h_k - 1/K) + (w_1 - w_2)(h - 1/K)``
    with ``w_j = a_j^(t+1)``, ``h_k = C[k,:]/n`` (class label histogram) and ``h = 1^T C / N``
    (global label histogram).
    The round-``t`` student is trained on the round ``t-1`` linearised outputs; its population
    logits follow :func:`linear_population_outputs`.

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
    targets = one_hot_group_targets(k)
    outputs = np.empty((r + 1, k, k, k))
    pop = np.empty((r + 1, k, k))
    for t in range(r + 1):
        centred = targets - 1.0 / k
        outputs[t] = 1.0 / k + _apply_filter(model, cnt, centred, a)
        pop[t] = 1.0 / k + _population_logits(model, cnt, centred, lam, a) / k
        targets = outputs[t]
    return _assemble(model, cnt, lam, outputs, pop, "linear")


# --------------------------------------------------------------------------------------------
# exact group-level fixed point


@dataclass(frozen=True)
class GroupSolution:
    """Exact group-level solution of one training round.

    Attributes
    ----------
    outputs, logits : ndarray, shape (K, K, K)
        ``NaN`` on empty groups.
    residual : float
        ``max |p - softmax(z(T - p))|`` over non-empty groups (the full N x N fixed-point residual,
        since all points of a group are identical).
    iterations : int
    population_logits : ndarray, shape (K, K)
        ``[c S_k + d (S - S_k)] / (lam N)`` with ``r = T - p``.
    """

    outputs: np.ndarray
    logits: np.ndarray
    residual: float
    iterations: int
    population_logits: np.ndarray


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)  # log-sum-exp shift: no overflow
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class _GroupSystem:
    r"""``F(z) = z - L (T - softmax(z))`` over the non-empty groups, with its Newton solve.

    ``(L r)_(k,l) = [(1-c) r_(k,l) + (c-d) S_k + d S] / (lam N)``.
    """

    def __init__(self, model: BlockModel, cnt, lam):
        self.k = model.n_classes
        self.kk, self.ll = np.nonzero(cnt > 0)
        self.w = cnt[self.kk, self.ll].astype(float)
        lam_n = lam * model.n_samples
        self.a = (1.0 - model.c) / lam_n
        self.g_class = (model.c - model.d) / lam_n
        self.g_all = model.d / lam_n
        self.c, self.d, self.lam_n = model.c, model.d, lam_n

    def class_sums(self, v):
        s = np.zeros((self.k, v.shape[-1]))
        np.add.at(s, self.kk, self.w[:, None] * v)
        return s

    def apply_l(self, r):
        s = self.class_sums(r)
        return self.a * r + self.g_class * s[self.kk] + self.g_all * s.sum(axis=0)[None, :]

    def residual(self, z, targets):
        p = _softmax(z)
        return z - self.apply_l(targets - p), p

    def newton_step(self, z, f):
        r"""Solve ``(I + L D) delta = -f`` exactly via the class-level reduction (docs Section 4.2).

        ``B_g = I + a J_g = diag(1 + a p) - a p p^T`` is inverted in closed form (Sherman-Morrison:
        ``B^-1 = diag(1/(1 + a p)) + s u u^T``, ``u = p/(1 + a p)``, ``s = a / (1 - a p.u)``, and
        ``a p.u < sum p = 1``), so the only dense solve is the K^2 x K^2 class-level system.
        """
        k = self.k
        # Probabilities below 1e-200 change the Jacobian by < 1e-200 relative to I; flushing them
        # avoids subnormal floats, which slow arithmetic down by orders of magnitude.
        p = _softmax(z)
        p = np.where(p < 1e-200, 0.0, p)
        dinv = 1.0 / (1.0 + self.a * p)
        u = p * dinv
        s = self.a / (1.0 - self.a * np.sum(p * u, axis=1))

        def binv(x):
            return dinv * x + (s * np.sum(u * x, axis=1))[:, None] * u

        binv_f = binv(-f)
        jb_f = p * binv_f - p * np.sum(p * binv_f, axis=1, keepdims=True)  # J B^-1 (-F)
        # J B^-1 = diag(u) + [s (p*u) - (1 + s p.u) p] u^T
        coef = s[:, None] * p * u - (1.0 + s * np.sum(p * u, axis=1))[:, None] * p
        jb = coef[:, :, None] * u[:, None, :]
        jb[:, np.arange(k), np.arange(k)] += u
        q = np.zeros((k, k))  # Q-weighted class sums
        np.add.at(q, self.kk, self.w[:, None] * jb_f)
        qm = np.zeros((k, k, k))
        np.add.at(qm, self.kk, self.w[:, None, None] * jb)
        # m_k = g_class s_k + g_all s, s_k = q_k - Q_k m_k  =>  linear system in m (K^2 unknowns).
        mat = np.zeros((k, k, k, k))
        idx = np.arange(k)
        mat[idx, :, idx, :] = np.eye(k)[None] + self.g_class * qm
        mat += self.g_all * qm[None, :, :, :].transpose(0, 2, 1, 3)
        rhs = self.g_class * q + self.g_all * q.sum(axis=0)[None, :]
        m = np.linalg.solve(mat.reshape(k * k, k * k), rhs.reshape(-1)).reshape(k, k)
        return binv_f - binv(m[self.kk])


def solve_groups(
    model: BlockModel, counts, targets, lam, *, init_logits=None, tol=1e-12, max_iter=100
) -> GroupSolution:
    r"""Exact group fixed point ``p = softmax(z)``.

    ``z_(k,l) = [(1-c) r_(k,l) + c S_k + d (S - S_k)] / (lam N)`` with ``r = T - p``,
    ``S_k = sum_l C[k,l] r_(k,l)``, ``S = sum_k S_k``.

    Damped Newton on ``F(z) = z - L(T - softmax(z))`` (unknowns: K logits per non-empty group).
    The Jacobian ``I + L D`` (``D`` block-diagonal softmax Jacobians) has eigenvalues ``>= 1``, so
    the step is well defined; it is computed exactly with a K^2 x K^2 class-level linear system.
    Backtracking on ``||F||_inf`` guards against overshooting at small ``lam``.

    Parameters
    ----------
    targets : array_like, shape (K, K, K)
        Group targets on the simplex (entries of empty groups are ignored).
    tol : float
        Required residual ``max |p - softmax(z(T - p))|``. The effective target is
        ``max(tol, 64 eps (1 + max|z|))``: below that the residual is not computable in float64.

    Raises
    ------
    GroupConvergenceError
        If the residual target is not reached within ``max_iter`` iterations.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter", 1)
    k = model.n_classes
    sys_ = _GroupSystem(model, cnt, lam)
    tgt = np.asarray(targets, dtype=float)[sys_.kk, sys_.ll]
    if init_logits is None:
        z = np.zeros_like(tgt)
    else:
        z = np.asarray(init_logits, dtype=float)[sys_.kk, sys_.ll].copy()
        if not np.all(np.isfinite(z)):
            z = np.zeros_like(tgt)
    with single_thread_blas():  # small K^2 x K^2 solves (theory.blas)
        z, p, res, it = _newton(sys_, z, tgt, tol, max_iter)
    if res > max(tol, 64 * np.finfo(float).eps * (1.0 + np.abs(z).max())):
        raise GroupConvergenceError(
            f"group-level Newton did not converge in {max_iter} iterations: residual {res:.3g} > "
            f"{tol:g} (K={k}, n={model.per_class}, c={model.c}, d={model.d}, lam={lam})"
        )
    outputs = np.full((k, k, k), np.nan)
    logits = np.full((k, k, k), np.nan)
    outputs[sys_.kk, sys_.ll] = p
    logits[sys_.kk, sys_.ll] = z
    s = sys_.class_sums(tgt - p)
    pop_logits = (model.c * s + model.d * (s.sum(axis=0)[None, :] - s)) / sys_.lam_n
    return GroupSolution(outputs, logits, res, it, pop_logits)


def _newton(sys_, z, tgt, tol, max_iter):
    """Damped Newton iterations; returns ``(z, p, residual, iterations)``."""
    f, p = sys_.residual(z, tgt)
    norm = np.abs(f).max()
    it = 0
    res = np.inf
    while it < max_iter:
        it += 1
        step = sys_.newton_step(z, f)
        alpha = 1.0
        while True:
            z_new = z + alpha * step
            f_new, p_new = sys_.residual(z_new, tgt)
            norm_new = np.abs(f_new).max()
            if norm_new <= (1 - 1e-4 * alpha) * norm or alpha < 1e-10:
                break
            alpha *= 0.5
        z, f, p, norm = z_new, f_new, p_new, norm_new
        res = float(np.abs(p - _softmax(sys_.apply_l(tgt - p))).max())
        target = max(tol, 64 * np.finfo(float).eps * (1.0 + np.abs(z).max()))
        if res <= target:
            break
    return z, p, res, it


def predict_exact(model: BlockModel, counts, lam, rounds, tol=1e-12) -> GroupPrediction:
    """Exact (non-linearised) group-level predictions for rounds ``0..R``.

    Round ``t`` solves :func:`solve_groups` with the round ``t-1`` outputs as targets (one-hot
    labels for ``t = 0``); population outputs are ``softmax(z)`` with the exact population logits
    ``z = (T - P) k(x) / (lam N)``.
    """
    cnt = check_counts(counts, model)
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    k = model.n_classes
    targets = one_hot_group_targets(k)
    outputs = np.empty((r + 1, k, k, k))
    pop = np.empty((r + 1, k, k))
    residuals = np.empty(r + 1)
    init = None
    for t in range(r + 1):
        sol = solve_groups(model, cnt, targets, lam, init_logits=init, tol=tol)
        outputs[t], pop[t], residuals[t] = (
            sol.outputs,
            _softmax(sol.population_logits),
            sol.residual,
        )
        targets, init = sol.outputs, sol.logits
    return _assemble(model, cnt, lam, outputs, pop, "exact", residuals=residuals)
