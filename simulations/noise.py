"""Sampling noisy labels from a transition matrix, and finding superclass groups.

Two sampling modes for true labels ``y`` and a row-stochastic ``T`` (``theory.noise``):

``'random'``
    Each noisy label is drawn independently, ``P(noisy_i = l) = T[y_i, l]`` (inverse-CDF sampling
    with one uniform per sample).
``'exact-count'``
    For every class ``k`` with ``n_k`` samples, exactly ``C[k, l]`` of them get label ``l`` where
    ``C = theory.noise.exact_counts(T, n_k)`` (largest-remainder rounding, ties to the smaller
    label); *which* samples get which label is a uniformly random permutation. This is the count
    matrix the group-level theory is evaluated on.

Superclass groups can be given, or found by agglomerative clustering (``scipy.cluster.hierarchy``)
of class means with distance ``1 - corr(mean_k, mean_l)`` (a metric-like dissimilarity in
``[0, 2]``, symmetric with an exactly zero diagonal, passed as a validated condensed vector).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from simulations.features import as_generator
from theory.noise import check_transition, exact_counts, transition_matrix
from theory.validation import check_finite_matrix, check_int, check_labels

__all__ = [
    "SAMPLING_MODES",
    "class_mean_groups",
    "empirical_transition",
    "noisy_labels",
    "sample_noisy_labels",
]

SAMPLING_MODES = ("random", "exact-count")


def sample_noisy_labels(true_labels, transition, rng, *, mode: str = "random") -> np.ndarray:
    """Draw noisy labels for ``true_labels`` (N,) from ``transition`` (K, K).

    Parameters
    ----------
    true_labels : array_like of int, shape (N,)
    transition : array_like, shape (K, K)
        Row-stochastic; ``T[k, l] = P(noisy = l | true = k)``.
    rng : Generator, SeedSequence or int
    mode : {'random', 'exact-count'}
        See module docstring.

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    t = check_transition(transition)
    k = t.shape[0]
    y = check_labels(true_labels, k, "true_labels")
    if mode not in SAMPLING_MODES:
        raise ValueError(f"mode must be one of {SAMPLING_MODES}, got {mode!r}")
    gen = as_generator(rng)
    if mode == "random":
        cdf = np.cumsum(t, axis=1)
        cdf[:, -1] = 1.0  # guard against round-off leaving the last bin short
        u = gen.random(y.size)
        # First label whose cumulative probability exceeds u (zero-probability labels never win).
        return (u[:, None] >= cdf[y]).sum(axis=1).astype(np.int64)
    noisy = np.empty_like(y)
    for cls in range(k):
        idx = np.flatnonzero(y == cls)
        if idx.size == 0:
            continue
        counts = exact_counts(t, idx.size)[cls]
        noisy[idx] = gen.permutation(np.repeat(np.arange(k), counts))
    return noisy


def noisy_labels(
    true_labels, n_classes, kind: str, eta, rng, *, mode: str = "random", groups=None
) -> np.ndarray:
    """Noisy labels from the named family ``theory.noise.transition_matrix(kind, ...)``."""
    t = transition_matrix(kind, n_classes, eta, groups=groups)
    return sample_noisy_labels(true_labels, t, rng, mode=mode)


def empirical_transition(true_labels, noisy, n_classes) -> np.ndarray:
    """Count matrix ``C[k, l] = #{i : y_i = k, noisy_i = l}`` of shape (K, K), int64."""
    k = check_int(n_classes, "n_classes", 2)
    y = check_labels(true_labels, k, "true_labels")
    z = check_labels(noisy, k, "noisy")
    if y.shape != z.shape:
        raise ValueError(
            f"true_labels and noisy must have the same shape, got {y.shape}, {z.shape}"
        )
    return np.bincount(y * k + z, minlength=k * k).reshape(k, k).astype(np.int64)


def class_mean_groups(
    features, labels, n_classes, n_groups, *, method: str = "average"
) -> list[list[int]]:
    """Superclass groups from hierarchical clustering of class-mean correlations.

    Parameters
    ----------
    features : array_like, shape (N, p)
    labels : array_like of int, shape (N,)
        Labels used to form class means (every class must occur).
    n_classes : int
    n_groups : int
        Number of groups, ``1 <= n_groups <= K`` (``fcluster`` criterion ``'maxclust'``).
    method : str
        ``scipy.cluster.hierarchy.linkage`` method for a precomputed distance: 'average',
        'complete', 'single' or 'weighted'.

    Returns
    -------
    list of lists of int
        A partition of ``range(K)``; groups sorted by their smallest member.

    Notes
    -----
    Distance ``D[k, l] = 1 - corr(m_k, m_l)`` with Pearson correlation across the ``p`` feature
    coordinates, clipped to ``[0, 2]``, symmetrised and with the diagonal set to 0 so that
    ``squareform(..., checks=True)`` accepts it as a condensed distance.
    """
    k = check_int(n_classes, "n_classes", 2)
    x = check_finite_matrix(features, "features")
    y = check_labels(labels, k)
    if y.size != x.shape[0]:
        raise ValueError(f"labels has {y.size} entries but features has {x.shape[0]} rows")
    g = check_int(n_groups, "n_groups", 1)
    if g > k:
        raise ValueError(f"n_groups must lie in [1, n_classes={k}], got {g}")
    if method not in ("average", "complete", "single", "weighted"):
        raise ValueError(
            f"method must be 'average', 'complete', 'single' or 'weighted', got {method!r}"
        )
    counts = np.bincount(y, minlength=k)
    if np.any(counts == 0):
        raise ValueError(
            f"every class needs a sample to form its mean; empty: {np.flatnonzero(counts == 0)}"
        )
    means = np.zeros((k, x.shape[1]))
    np.add.at(means, y, x)
    means /= counts[:, None]
    centred = means - means.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    if np.any(norms <= 1e-12 * max(1.0, float(np.abs(means).max()))):
        raise ValueError(
            "a class mean is constant across coordinates; its correlation is undefined"
        )
    unit = centred / norms[:, None]
    dist = np.clip(1.0 - unit @ unit.T, 0.0, 2.0)
    dist = 0.5 * (dist + dist.T)
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=True), method=method)
    assign = fcluster(tree, t=g, criterion="maxclust")
    groups = [sorted(np.flatnonzero(assign == a).tolist()) for a in np.unique(assign)]
    return sorted(groups, key=lambda grp: grp[0])
