"""Tests for simulations.noise: samplers hit their target transition matrices."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.features import GaussianMixture
from simulations.noise import (
    class_mean_groups,
    empirical_transition,
    noisy_labels,
    reference_class_similarity,
    reference_superclass_groups,
    sample_noisy_labels,
)
from theory.noise import exact_counts, transition_matrix

#: z-score for per-entry binomial tolerances; with <= 36 entries per test P(false fail) < 1e-5.
Z = 5.0


@pytest.mark.parametrize("kind", ["sym", "pair", "asym"])
def test_random_sampler_vs_transition_within_binomial_error(kind):
    k, n, eta = 4, 5000, 0.35
    t = transition_matrix(kind, k, eta)
    y = np.repeat(np.arange(k), n)
    z = sample_noisy_labels(y, t, np.random.default_rng(2), mode="random")
    counts = empirical_transition(y, z, k)
    # C[k, l] ~ Binomial(n, T[k, l]); zero-probability entries must be exactly zero.
    sd = np.sqrt(n * t * (1 - t))
    assert np.all(np.abs(counts - n * t) <= Z * sd + 1e-12)
    assert np.all(counts[t == 0] == 0)


def test_random_sampler_superclass_never_leaves_group():
    groups = [[0, 3], [1, 2, 4], [5]]
    t = transition_matrix("superclass", 6, 0.5, groups=groups)
    y = np.repeat(np.arange(6), 2000)
    z = noisy_labels(y, 6, "superclass", 0.5, 9, groups=groups)
    counts = empirical_transition(y, z, 6)
    assert np.all(counts[t == 0] == 0)
    assert np.all(z[y == 5] == 5)
    sd = np.sqrt(2000 * t * (1 - t))
    assert np.all(np.abs(counts - 2000 * t) <= Z * sd + 1e-12)


@pytest.mark.parametrize("kind", ["sym", "pair", "asym"])
@pytest.mark.parametrize("n", [7, 10, 33])
def test_exact_count_sampler_vs_exact_counts(kind, n):
    k = 4
    t = transition_matrix(kind, k, 0.3)
    y = np.repeat(np.arange(k), n)
    z = sample_noisy_labels(y, t, 4, mode="exact-count")
    np.testing.assert_array_equal(empirical_transition(y, z, k), exact_counts(t, n))


def test_exact_count_sampler_assignment_is_uniformly_random():
    # Which of the n class-0 samples is flipped: each one with probability C[0,1]/n = 3/10.
    k, n, trials = 2, 10, 3000
    t = transition_matrix("sym", k, 0.3)
    y = np.repeat(np.arange(k), n)
    rng = np.random.default_rng(0)
    hits = np.zeros(n)
    for _ in range(trials):
        hits += sample_noisy_labels(y, t, rng, mode="exact-count")[:n] == 1
    p = 0.3
    assert np.all(np.abs(hits - trials * p) <= Z * np.sqrt(trials * p * (1 - p)))


def test_exact_count_unequal_class_sizes_and_order_invariance():
    t = transition_matrix("sym", 3, 0.5)
    y = np.array([2, 0, 0, 1, 2, 2, 0, 0, 1, 2])
    z = sample_noisy_labels(y, t, 1, mode="exact-count")
    c = empirical_transition(y, z, 3)
    for cls in range(3):
        np.testing.assert_array_equal(c[cls], exact_counts(t, int((y == cls).sum()))[cls])


def test_samplers_seeded_determinism():
    y = np.repeat(np.arange(3), 20)
    t = transition_matrix("sym", 3, 0.4)
    for mode in ("random", "exact-count"):
        a = sample_noisy_labels(y, t, np.random.default_rng(5), mode=mode)
        b = sample_noisy_labels(y, t, np.random.default_rng(5), mode=mode)
        e = sample_noisy_labels(y, t, np.random.default_rng(6), mode=mode)
        np.testing.assert_array_equal(a, b)
        assert np.any(a != e)


def test_sampler_bad_input():
    t = transition_matrix("sym", 3, 0.4)
    with pytest.raises(ValueError, match="mode"):
        sample_noisy_labels([0, 1], t, 0, mode="exact")
    with pytest.raises(ValueError, match="true_labels"):
        sample_noisy_labels([0, 3], t, 0)
    with pytest.raises(ValueError, match="rng"):
        sample_noisy_labels([0, 1], t, None)
    with pytest.raises(ValueError, match="sum to 1"):
        sample_noisy_labels([0, 1], np.ones((3, 3)), 0)


def test_class_mean_groups_recovers_planted_superclasses():
    # Planted structure: classes {0, 2, 4} share one direction, {1, 3} another.
    p = 40
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2, p))
    means = np.array([base[0], base[1], base[0], base[1], base[0]])
    means = means + 0.1 * rng.standard_normal(means.shape)
    y = np.repeat(np.arange(5), 30)
    x = means[y] + 0.3 * rng.standard_normal((y.size, p))
    groups = class_mean_groups(x, y, 5, 2)
    assert groups == [[0, 2, 4], [1, 3]]
    # Groups are directly usable by the superclass transition matrix.
    t = transition_matrix("superclass", 5, 0.2, groups=groups)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)
    assert class_mean_groups(x, y, 5, 5) == [[0], [1], [2], [3], [4]]


def test_class_mean_groups_on_mixture_and_errors():
    mix = GaussianMixture.create(4, 20, 0.5, 0.1)
    draw = mix.sample(10, 0)
    groups = class_mean_groups(draw.features, draw.labels, 4, 2, method="complete")
    assert sorted(sum(groups, [])) == [0, 1, 2, 3] and len(groups) == 2
    with pytest.raises(ValueError, match="n_groups"):
        class_mean_groups(draw.features, draw.labels, 4, 5)
    with pytest.raises(ValueError, match="method"):
        class_mean_groups(draw.features, draw.labels, 4, 2, method="ward")
    with pytest.raises(ValueError, match="empty"):
        class_mean_groups(draw.features[:10], draw.labels[:10], 4, 2)


def _planted(seed=3, spread=0.3):
    """Five classes: {0, 2, 4} share one mean direction, {1, 3} another (plus an offset)."""
    p = 40
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((2, p))
    means = np.array([base[0], base[1], base[0], base[1], base[0]])
    means = means + 0.1 * rng.standard_normal(means.shape) + 2.0
    y = np.repeat(np.arange(5), 12)
    return means[y] + spread * rng.standard_normal((y.size, p)), y


def test_reference_class_similarity_vs_pairwise_cosines():
    # The reference code's ft_map['mean'] from its N x N cosine matrix (self-pairs excluded on
    # the diagonal blocks), against the class-sum formula.
    x, y = _planted()
    z = x - x.mean(axis=0)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    cos = z @ z.T
    want = np.zeros((5, 5))
    for k in range(5):
        for m in range(5):
            block = cos[np.ix_(y == k, y == m)]
            if k == m:
                block = block[~np.eye(block.shape[0], dtype=bool)]
            want[k, m] = block.mean()
    np.testing.assert_allclose(reference_class_similarity(x, y, 5), want, rtol=0, atol=1e-13)


def test_reference_superclass_groups_vs_reference_code_steps():
    from scipy.cluster.hierarchy import fcluster, linkage

    x, y = _planted()
    groups = reference_superclass_groups(x, y, 5)
    assert groups == [[0, 2, 4], [1, 3]]  # the planted structure
    # The reference code's own steps on the same similarity map (util.get_confusable_class).
    dist = 1 - reference_class_similarity(x, y, 5)
    tree = linkage(dist, method="complete")
    labels = fcluster(tree, np.max(tree[:, 2]) * 0.8, criterion="distance")
    clusters = {}
    for i, lab in enumerate(labels):
        clusters.setdefault(lab, []).append(i)
    assert sorted(clusters.values()) == groups
    # Directly usable by the superclass transition matrix (singletons keep their labels).
    t = transition_matrix("superclass", 5, 0.4, groups=groups)
    np.testing.assert_allclose(t.sum(axis=1), 1.0)


def test_reference_superclass_groups_errors():
    x, y = _planted()
    with pytest.raises(ValueError, match="two samples"):
        reference_superclass_groups(x[:13], y[:13], 2)
    with pytest.raises(ValueError, match="cut"):
        reference_superclass_groups(x, y, 5, cut=1.5)
