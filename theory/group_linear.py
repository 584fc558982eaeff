r"""Linearised (label-averaging) group-level predictions of the block feature model.

Proposition 3.3 (``docs/theory.md``, Sections 3-4): one round multiplies the centred targets by
``A = G (G + K lam N I)^(-1)``, whose eigenvalues ``a_j = mu_j / (mu_j + K lam N)`` act on the
three spectral components (ones vector, class contrasts, within-class contrasts). On
group-symmetric targets every round is a closed form in the class and global label histograms:
:func:`predict_linear` (rounds ``0..R`` of one count matrix), :func:`linear_accuracy_grid` (its
accuracies for a stack of count matrices), and the one-round maps :func:`linear_group_outputs`,
:func:`linear_population_outputs` used by the PLL students (:mod:`theory.pll`). Array conventions
are those of :mod:`theory.groups`, which re-exports every public name here.
"""

from __future__ import annotations

import numpy as np

from theory.group_model import (
    BlockModel,
    GroupPrediction,
    assemble_prediction,
    check_counts,
    group_accuracies,
    population_accuracy,
)
from theory.validation import check_int, check_positive

__all__ = [
    "linear_accuracy_grid",
    "linear_group_deviations",
    "linear_group_outputs",
    "linear_population_deviations",
    "linear_population_outputs",
    "one_hot_deviations",
    "one_hot_group_targets",
    "predict_linear",
]


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
