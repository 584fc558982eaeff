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
of the classes, by one of two rules (:data:`theory.names.SUPERCLASS_RULES`):

``'reference'`` (:func:`reference_superclass_groups`)
    The public reference code's rule (``util.get_confusable_class`` with the class-similarity map
    of ``feature_correlation_map.compute_classwise_feature_correlation``): features centred with
    their mean and L2-normalised; ``M[k, l]`` = mean cosine similarity over pairs of samples of
    classes ``k`` and ``l`` (distinct samples on the diagonal); complete linkage on the rows of
    ``1 - M``; cut at ``0.8`` times the largest merge height. The number of groups follows from
    the data.
``'correlation'`` (:func:`class_mean_groups`)
    Distance ``1 - corr(mean_k, mean_l)`` between class means (a metric-like dissimilarity in
    ``[0, 2]``, symmetric with an exactly zero diagonal, passed as a validated condensed vector),
    average linkage, cut into a given number of groups.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.cluster.hierarchy import ClusterWarning, fcluster, linkage
from scipy.spatial.distance import squareform

from simulations.features import as_generator
from theory.noise import check_transition, exact_counts, transition_matrix
from theory.validation import check_finite_matrix, check_int, check_labels

__all__ = [
    "SAMPLING_MODES",
    "class_mean_groups",
    "empirical_transition",
    "noisy_labels",
    "reference_class_similarity",
    "reference_superclass_groups",
    "sample_noisy_labels",
]

#: The reference code's cut: ``fcluster(Z, REFERENCE_CUT * max(Z[:, 2]), criterion='distance')``.
REFERENCE_CUT = 0.8

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


def reference_class_similarity(features, labels, n_classes) -> np.ndarray:
    r"""Mean pairwise cosine similarity between the samples of every pair of classes, (K, K).

    The reference code's ``ft_map['mean']``: features centred with their mean over all rows and
    L2-normalised (``x_i``), then

    .. math::  M_{kl} = \frac{1}{n_k n_l} \sum_{i \in k, j \in l} x_i^\top x_j, \qquad
               M_{kk} = \frac{1}{n_k (n_k - 1)} \sum_{i \ne j \in k} x_i^\top x_j .

    Computed from class sums, ``M_kl = s_k . s_l / (n_k n_l)`` and
    ``M_kk = (|s_k|^2 - sum_i |x_i|^2) / (n_k (n_k - 1))`` with ``s_k = sum_{i in k} x_i``, never
    from the N x N similarity matrix the reference code forms. Every class needs two samples.
    """
    k = check_int(n_classes, "n_classes", 2)
    x = check_finite_matrix(features, "features")
    y = check_labels(labels, k)
    if y.size != x.shape[0]:
        raise ValueError(f"labels has {y.size} entries but features has {x.shape[0]} rows")
    counts = np.bincount(y, minlength=k)
    if np.any(counts < 2):
        raise ValueError(
            "every class needs at least two samples for its within-class similarity; too few: "
            f"{np.flatnonzero(counts < 2).tolist()}"
        )
    z = x - x.mean(axis=0)
    norms = np.linalg.norm(z, axis=1)
    # F.normalize(eps=1e-12): a zero row stays zero (and then has similarity 0 with everything)
    z /= np.maximum(norms, 1e-12)[:, None]
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, y, z)
    sq = np.bincount(y, weights=np.einsum("ij,ij->i", z, z), minlength=k)
    sim = (sums @ sums.T) / np.outer(counts, counts)
    within = (np.einsum("ij,ij->i", sums, sums) - sq) / (counts * (counts - 1.0))
    np.fill_diagonal(sim, within)
    return sim


def reference_superclass_groups(
    features, labels, n_classes, *, cut: float = REFERENCE_CUT
) -> list[list[int]]:
    """Superclass groups by the public reference code's rule (module docstring).

    ``Z = linkage(1 - M, method='complete')`` with ``M`` from :func:`reference_class_similarity`,
    then ``fcluster(Z, cut * max(Z[:, 2]), criterion='distance')``. As in the reference code the
    K x K matrix ``1 - M`` is passed to ``linkage`` as it is, which treats its rows as K
    observations and clusters them by Euclidean distance (a square matrix is not read as a
    distance matrix); so two classes are close when their similarity profiles to *all* classes
    are close.

    Returns
    -------
    list of lists of int
        A partition of ``range(K)``, groups sorted by their smallest member. Singleton groups are
        possible: :func:`theory.noise.transition_matrix` keeps their labels (the reference code's
        transition row would not sum to one there).
    """
    if not (np.isfinite(cut) and 0.0 < cut <= 1.0):
        raise ValueError(f"cut must lie in (0, 1], got {cut!r}")
    dissimilarity = 1.0 - reference_class_similarity(features, labels, n_classes)
    with warnings.catch_warnings():
        # scipy warns when an observation matrix looks like a square distance matrix; reading it
        # as observations is exactly what the reference code does (docstring).
        warnings.simplefilter("ignore", ClusterWarning)
        tree = linkage(dissimilarity, method="complete")
    assign = fcluster(tree, cut * float(np.max(tree[:, 2])), criterion="distance")
    groups = [sorted(np.flatnonzero(assign == a).tolist()) for a in np.unique(assign)]
    return sorted(groups, key=lambda grp: grp[0])
