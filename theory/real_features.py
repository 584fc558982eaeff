r"""The label-averaging theory evaluated on a user's own (real) features.

Three views, from most to least faithful to the real features:

1. **Gram spectrum** of ``G = X X^T`` (thin SVD of ``X``, never an N x N matrix when ``p < N``;
   :func:`theory.averaging.gram_spectrum`), and the label-averaging filter it implies: eigenvector
   ``u_j`` keeps weight ``(mu_j / (mu_j + K lam N))^(t+1)`` in round ``t``.
2. **Linearised label averaging on the real Gram matrix**:
   ``P^(t) = 1/K + (Y - 1/K) A^(t+1)``, ``A = G (G + K lam N I)^(-1)``
   (:func:`theory.averaging.linearised_deviations`), scored against the true labels round by round.
3. **Block model fitted to the features**: the average intra-class and inter-class inner products
   (``c``, ``d``), divided by the mean squared norm ``s = mean_i ||x_i||^2`` so that the model's
   diagonal is 1, and the group-level predictions of :mod:`theory.groups`, :mod:`theory.conditions`
   and :mod:`theory.pll` on that model. This is where the user sees whether the two-parameter block
   model describes their features.

Estimating (c, d) without an N x N matrix
-----------------------------------------
With class sums ``s_k = sum_{i in k} x_i`` and ``S = sum_k s_k``,

.. math::

    \sum_{i \ne j,\, y_i = y_j = k} \langle x_i, x_j\rangle = \lVert s_k\rVert^2 - \sum_{i \in k}
    \lVert x_i\rVert^2, \qquad
    \sum_{y_i \ne y_j} \langle x_i, x_j\rangle = \lVert S\rVert^2 - \sum_k \lVert s_k\rVert^2,

so ``c = [sum_k (||s_k||^2 - sum_{i in k} ||x_i||^2)] / [s sum_k n_k (n_k - 1)]`` and
``d = [||S||^2 - sum_k ||s_k||^2] / [s (N^2 - sum_k n_k^2)]``: O(N p) time, O(K p) memory.

Approximations for the block model (named, not hidden)
-----------------------------------------------------
* **Scale.** ``G ~ s G_block``; since ``P = softmax((T - P) G / (lam N))`` depends on ``G / lam``,
  the block model is evaluated at ``lam_block = lam / s`` (``s = 1`` for L2-normalised features).
* **Unequal class sizes.** The block model has ``n`` points in every class; we use
  ``n = round(N / K)`` (the mean class size, at least 2) and rescale each row of the empirical
  count matrix ``C[k, l] = #{true k, noisy l}`` to ``n`` with
  :func:`theory.noise.exact_counts` applied to the empirical transition ``C[k, :] / n_k``
  (largest-remainder rounding).
* **PSD clamp.** Centred features have ``sum_i x_i ~ 0``, which puts the fitted ``(c, d)`` near the
  boundary ``mu_1 = 1 - c + n c + (K - 1) n d = 0`` of the PSD region; after the rounding above
  it can fall just outside. Then ``d`` is raised to the boundary (``d_clamped = True``), which only
  changes the ``mu_1`` (all-ones) direction — a direction that carries no class information.
  ``c`` is clipped to ``<= 1`` likewise (``c_clipped``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.averaging import GramSpectrum, gram_spectrum, linearised_deviations
from theory.conditions import min_rounds_linear
from theory.groups import BlockModel, GroupConvergenceError, predict_exact, predict_linear
from theory.metrics import accuracy
from theory.noise import exact_counts
from theory.pll import pll_condition, predict_pll
from theory.validation import check_finite_matrix, check_int, check_labels, check_positive, one_hot

__all__ = [
    "BlockFit",
    "ClassCorrelations",
    "RealFeatureTheory",
    "block_fit",
    "block_predictions",
    "class_correlations",
    "feature_spectrum",
    "filter_summary",
    "linearised_accuracy",
    "real_feature_theory",
    "rescaled_counts",
]


def _check_xy(features, labels, n_classes):
    x = check_finite_matrix(features, "features")
    k = check_int(n_classes, "n_classes", 2)
    y = check_labels(labels, k)
    if y.size != x.shape[0]:
        raise ValueError(f"labels has {y.size} entries but features has {x.shape[0]} rows")
    return x, y, k


def feature_spectrum(features) -> GramSpectrum:
    """Nonzero spectrum of ``G = X X^T`` by a thin SVD of ``X`` (N, p); O(N p min(N, p))."""
    return gram_spectrum(features=features)


def filter_summary(eigenvalues, n_classes, lam, n_samples, rounds, top=None) -> dict:
    """Label-averaging filter of a spectrum: how many directions survive each round.

    Returns a dict with ``threshold = K lam N`` (the eigenvalue whose weight is 1/2 in round 0),
    ``kept_round0`` (number of ``mu_j >= K lam N``), ``top_eigenvalues`` (the ``top`` largest,
    default ``2K``) and ``top_weights`` ``(R+1, top)`` of ``(mu_j / (mu_j + K lam N))^(t+1)``.
    """
    mu = np.asarray(eigenvalues, dtype=float)
    k = check_int(n_classes, "n_classes", 2)
    lam = check_positive(lam, "lam")
    n = check_int(n_samples, "n_samples", 1)
    r = check_int(rounds, "rounds", 0)
    m = min(mu.size, 2 * k if top is None else check_int(top, "top", 1))
    thr = k * lam * n
    ratio = mu[:m] / (mu[:m] + thr)
    return {
        "threshold": float(thr),
        "kept_round0": int(np.sum(mu >= thr)),
        "rank": int(mu.size),
        "top_eigenvalues": mu[:m].tolist(),
        "top_weights": (ratio[None, :] ** np.arange(1, r + 2)[:, None]).tolist(),
    }


def linearised_accuracy(
    features, noisy_labels, true_labels, n_classes, lam, rounds, *, spectrum=None
) -> np.ndarray:
    """Per-round training accuracy (vs the true labels) of linearised label averaging.

    ``P^(t) = 1/K + (Y - 1/K) A^(t+1)`` with ``Y`` the one-hot noisy labels and ``A`` from the
    real Gram matrix ``X X^T`` (thin SVD; no N x N matrix). Ties count as errors.

    Returns
    -------
    ndarray, shape (R + 1,)
    """
    x, noisy, k = _check_xy(features, noisy_labels, n_classes)
    true = check_labels(true_labels, k, "true_labels")
    if true.shape != noisy.shape:
        raise ValueError("true_labels and noisy_labels must have the same shape")
    # Decided on deviations P - 1/K (no cancellation): scale-free, see theory.metrics.
    out = linearised_deviations(
        one_hot(noisy, k),
        lam,
        rounds,
        features=None if spectrum is not None else x,
        spectrum=spectrum,
    )
    return np.array([accuracy(o, true) for o in out])


@dataclass(frozen=True)
class ClassCorrelations:
    """Average inner products by class relation (module docstring).

    Attributes
    ----------
    c, d : float
        Mean intra-class (``i != j``) and inter-class inner product divided by ``scale``.
    scale : float
        Mean squared norm ``s = mean_i ||x_i||^2``.
    class_counts : ndarray of int, shape (K,)
    """

    c: float
    d: float
    scale: float
    class_counts: np.ndarray


def class_correlations(features, labels, n_classes) -> ClassCorrelations:
    """Estimate ``(c, d)`` from class sums in O(N p) time and O(K p) memory (module docstring).

    Requires at least one class with 2 samples (for ``c``) and ``K >= 2`` non-empty classes
    (for ``d``); raises ``ValueError`` otherwise or for all-zero features.
    """
    x, y, k = _check_xy(features, labels, n_classes)
    counts = np.bincount(y, minlength=k)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, y, x)
    sq = np.einsum("ij,ij->i", x, x)
    scale = float(np.mean(sq))
    if scale <= 0:
        raise ValueError("features are all zero; correlations are undefined")
    diag_by_class = np.bincount(y, weights=sq, minlength=k)
    class_sq = np.einsum("kj,kj->k", sums, sums)
    total = sums.sum(axis=0)
    within_pairs = float(np.sum(counts * (counts - 1)))
    across_pairs = float(y.size**2 - np.sum(counts**2))
    if within_pairs == 0:
        raise ValueError("every class has a single sample; intra-class correlation c is undefined")
    if across_pairs == 0:
        raise ValueError("labels contain a single class; inter-class correlation d is undefined")
    c = float(np.sum(class_sq - diag_by_class)) / within_pairs / scale
    d = float(total @ total - np.sum(class_sq)) / across_pairs / scale
    return ClassCorrelations(c=c, d=d, scale=scale, class_counts=counts)


@dataclass(frozen=True)
class BlockFit:
    """Block model fitted to real features (approximations in the module docstring).

    Attributes
    ----------
    model : BlockModel
        ``K`` classes of ``per_class = round(N / K)`` points with the (clamped) ``c``, ``d``.
    correlations : ClassCorrelations
        The raw estimates.
    c_clipped, d_clamped : bool
        Whether ``c`` was clipped to 1 / ``d`` raised to the PSD boundary.
    """

    model: BlockModel
    correlations: ClassCorrelations
    c_clipped: bool
    d_clamped: bool

    @property
    def scale(self) -> float:
        return self.correlations.scale

    def block_lam(self, lam) -> float:
        """``lam / s``: the block model's regularisation equivalent to ``lam`` on the features."""
        return check_positive(lam, "lam") / self.scale


def block_fit(features, labels, n_classes) -> BlockFit:
    """Fit ``BlockModel(K, round(N/K), c, d)`` to features with labels (module docstring)."""
    corr = class_correlations(features, labels, n_classes)
    k = corr.class_counts.size
    n = max(2, int(round(corr.class_counts.sum() / k)))
    c, d = corr.c, corr.d
    c_clipped = c > 1.0
    c = min(c, 1.0)
    # mu_1 = 1 - c + n c + (K - 1) n d >= 0 and mu_2 = 1 - c + n (c - d) >= 0.
    d_low = -(1.0 - c + n * c) / ((k - 1) * n)
    d_high = (1.0 - c + n * c) / n
    d_clamped = not (d_low < d < d_high)
    if d_clamped:
        # Move just inside the boundary (relative 1e-9) so that round-off cannot make mu < 0.
        span = d_high - d_low
        d = min(max(d, d_low + 1e-9 * span), d_high - 1e-9 * span)
    return BlockFit(BlockModel(k, n, c, d), corr, bool(c_clipped), bool(d_clamped))


def rescaled_counts(true_labels, noisy_labels, n_classes, per_class) -> np.ndarray:
    """Count matrix with rows rescaled to ``per_class`` (block-model approximation).

    ``C[k, l] = exact_counts(E, per_class)[k, l]`` with the empirical transition
    ``E[k, l] = #{true k, noisy l} / n_k``. Every class must occur in ``true_labels``.
    """
    k = check_int(n_classes, "n_classes", 2)
    y = check_labels(true_labels, k, "true_labels")
    z = check_labels(noisy_labels, k, "noisy_labels")
    if y.shape != z.shape:
        raise ValueError("true_labels and noisy_labels must have the same shape")
    raw = np.bincount(y * k + z, minlength=k * k).reshape(k, k).astype(float)
    n_k = raw.sum(axis=1)
    if np.any(n_k == 0):
        raise ValueError(f"classes {np.flatnonzero(n_k == 0).tolist()} have no samples")
    return exact_counts(raw / n_k[:, None], per_class)


@dataclass(frozen=True)
class RealFeatureTheory:
    """All theory-on-real-features numbers for one (features, labels, noise, lam) setting.

    Attributes
    ----------
    spectrum : dict
        :func:`filter_summary` of the real Gram spectrum.
    linearised_train_acc : ndarray, shape (R + 1,)
        Linearised label averaging on the real Gram matrix.
    fit : BlockFit
    counts : ndarray, shape (K, K)
        Rescaled count matrix used by the block model.
    block_linear_train_acc, block_exact_train_acc : ndarray, shape (R + 1,)
        Block-model training accuracy per round (linearised / exact group solve; the latter NaN if
        the group solve did not converge).
    block_population_acc : ndarray, shape (R + 1,)
        Exact block-model accuracy at the class population points.
    min_rounds : int or None
        Block model's minimum number of rounds for full label correction (linearised), None if
        no number of rounds suffices.
    pll : dict
        Block model's PLL prediction (see :func:`block_predictions`).
    """

    spectrum: dict
    linearised_train_acc: np.ndarray
    fit: BlockFit
    counts: np.ndarray
    block_linear_train_acc: np.ndarray
    block_exact_train_acc: np.ndarray
    block_population_acc: np.ndarray
    min_rounds: int | None
    pll: dict
    lam: float

    def to_dict(self) -> dict:
        """JSON-friendly flat view (lists and floats; NaN becomes None)."""
        m = self.fit.model
        out = {
            "c": m.c,
            "d": m.d,
            "c_raw": self.fit.correlations.c,
            "d_raw": self.fit.correlations.d,
            "scale": self.fit.scale,
            "per_class": m.per_class,
            "d_clamped": self.fit.d_clamped,
            "block_lam": self.fit.block_lam(self.lam),
            "block_eigenvalues": (m.eigenvalues * self.fit.scale).tolist(),
            "real_top_eigenvalues": self.spectrum["top_eigenvalues"],
            "kept_round0": self.spectrum["kept_round0"],
            "threshold": self.spectrum["threshold"],
            "rank": self.spectrum["rank"],
            "linearised_train_acc": self.linearised_train_acc.tolist(),
            "block_linear_train_acc": self.block_linear_train_acc.tolist(),
            "block_exact_train_acc": self.block_exact_train_acc.tolist(),
            "block_population_acc": self.block_population_acc.tolist(),
            "min_rounds": self.min_rounds,
            **{f"pll_{key}": val for key, val in self.pll.items()},
        }
        return {key: _nan_to_none(val) for key, val in out.items()}


def _nan_to_none(value):
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def block_predictions(fit: BlockFit, counts, lam, rounds) -> dict:
    """Block-model predictions at ``lam_block = lam / s``: per-round accuracies, rounds, PLL.

    Returns
    -------
    dict
        ``linear`` / ``exact``: :class:`theory.groups.GroupPrediction` of rounds ``0..R`` (``exact``
        is None if the group Newton solve fails); ``min_rounds``:
        :func:`theory.conditions.min_rounds_linear` (None if no round reaches 100%); ``pll``: dict
        with the linearised and exact PLL student's training accuracy, its population accuracy,
        the PLL condition (:func:`theory.pll.pll_condition`: ``holds``, ``margin``,
        ``sufficient``) and the block teacher's top-2 coverage of the true class.
    """
    cnt = np.asarray(counts)
    lam_b = fit.block_lam(lam)
    lin = predict_linear(fit.model, cnt, lam_b, rounds)
    try:
        exact = predict_exact(fit.model, cnt, lam_b, rounds)
    except GroupConvergenceError:
        exact = None
    min_r = min_rounds_linear(fit.model, cnt, lam_b)
    cond = pll_condition(fit.model, cnt, lam_b)
    pll_lin = predict_pll(fit.model, cnt, lam_b, method="linear")
    try:
        pll_exact = predict_pll(fit.model, cnt, lam_b, method="exact")
    except GroupConvergenceError:
        pll_exact = None
    kk, ll = np.nonzero(cnt > 0)
    top2 = cond.teacher_top2[kk, ll]
    covered = (top2[:, 0] == kk) | (top2[:, 1] == kk)
    pll = {
        "linear_train_acc": float(pll_lin.train_acc[0]),
        "exact_train_acc": None if pll_exact is None else float(pll_exact.train_acc[0]),
        "exact_population_acc": None if pll_exact is None else float(pll_exact.population_acc[0]),
        "condition_holds": bool(cond.holds),
        "condition_margin": float(cond.margin),
        "sufficient": bool(cond.sufficient),
        "teacher_coverage": float(np.sum(cnt[kk, ll] * covered) / cnt.sum()),
    }
    return {"linear": lin, "exact": exact, "min_rounds": min_r, "pll": pll}


def real_feature_theory(
    features, true_labels, noisy_labels, n_classes, lam, rounds
) -> RealFeatureTheory:
    """Everything in the module docstring for one training set.

    Parameters
    ----------
    features : array_like, shape (N, p)
        Training features (preprocessed as they are fed to the probe).
    true_labels, noisy_labels : array_like of int, shape (N,)
        Clean labels (define the classes of the block model and score accuracy) and the labels the
        teacher is trained on.
    n_classes : int
    lam : float
        The probe's regularisation.
    rounds : int
        ``R >= 0``.
    """
    x, y, k = _check_xy(features, true_labels, n_classes)
    lam = check_positive(lam, "lam")
    r = check_int(rounds, "rounds", 0)
    spectrum = feature_spectrum(x)
    lin_acc = linearised_accuracy(x, noisy_labels, y, k, lam, r, spectrum=spectrum)
    fit = block_fit(x, y, k)
    counts = rescaled_counts(y, noisy_labels, k, fit.model.per_class)
    pred = block_predictions(fit, counts, lam, r)
    nan = np.full(r + 1, np.nan)
    return RealFeatureTheory(
        spectrum=filter_summary(spectrum.eigenvalues, k, lam, x.shape[0], r),
        linearised_train_acc=lin_acc,
        fit=fit,
        counts=counts,
        block_linear_train_acc=pred["linear"].train_acc,
        block_exact_train_acc=nan if pred["exact"] is None else pred["exact"].train_acc,
        block_population_acc=nan if pred["exact"] is None else pred["exact"].population_acc,
        min_rounds=pred["min_rounds"],
        pll=pred["pll"],
        lam=lam,
    )
