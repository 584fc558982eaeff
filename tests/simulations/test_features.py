"""Tests for simulations.features: Gaussian mixture, exact-block and perturbed block features."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.features import (
    GaussianMixture,
    as_generator,
    check_mixture_params,
    class_means,
    exact_block_features,
    exact_block_kernel_rows,
    perturbed_block_gram,
)
from theory.gram import block_gram


@pytest.mark.parametrize("k, c, d", [(2, 0.5, 0.1), (3, 0.4, -0.2), (5, 0.9, 0.9), (4, 0.0, 0.0)])
@pytest.mark.parametrize("rotate", [False, True])
def test_class_means_gram_vs_block_definition(k, c, d, rotate):
    means = class_means(k, 3 * k, c, d, rng=np.random.default_rng(1) if rotate else None)
    expected = np.full((k, k), d)
    np.fill_diagonal(expected, c)
    np.testing.assert_allclose(means @ means.T, expected, atol=1e-14)


def test_class_means_boundary_c_plus_k_minus_1_d_zero():
    k, c = 4, 0.6
    means = class_means(k, k, c, -c / (k - 1))
    np.testing.assert_allclose(means.sum(axis=0), 0.0, atol=1e-14)  # means sum to zero


@pytest.mark.parametrize(
    "args, match",
    [
        ((3, 5, 1.2, 0.0), "c must lie"),
        ((3, 5, -0.1, -0.2), "c must lie"),
        ((3, 5, 0.3, 0.4), "d must be <= c"),
        ((3, 5, 0.3, -0.2), "c \\+ \\(K-1\\) d"),
        ((3, 2, 0.3, 0.1), "dim"),
        ((1, 5, 0.3, 0.1), "n_classes"),
        ((3, 5, float("nan"), 0.1), "finite"),
    ],
)
def test_mixture_params_errors(args, match):
    with pytest.raises(ValueError, match=match):
        check_mixture_params(*args)
    with pytest.raises(ValueError, match=match):
        GaussianMixture.create(*args)


def test_mixture_gram_vs_block_gram_within_sampling_error():
    k, n, p, c, d = 3, 4, 6000, 0.6, 0.2
    mix = GaussianMixture.create(k, p, c, d)
    draw = mix.sample(n, np.random.default_rng(7))
    assert draw.features.shape == (k * n, p)
    np.testing.assert_array_equal(draw.labels, np.repeat(np.arange(k), n))
    g = draw.features @ draw.features.T
    # Entry <x_i, x_j> = mu.mu + mu_i.z_j + mu_j.z_i + z_i.z_j (+ ||z||^2 on the diagonal):
    # variance <= (4 c (1-c) + 2 (1-c)^2) / p. 6 sd over N(N+1)/2 = 78 entries: P(fail) < 1e-7.
    sd = np.sqrt((4 * c * (1 - c) + 2 * (1 - c) ** 2) / p)
    assert np.max(np.abs(g - mix.expected_gram(n))) < 6 * sd
    np.testing.assert_array_equal(mix.expected_gram(n), block_gram(k, n, c, d))


def test_mixture_class_means_and_noise_variance_within_sampling_error():
    k, n, p, c, d = 2, 400, 50, 0.5, -0.1
    mix = GaussianMixture.create(k, p, c, d, rng=3)
    draw = mix.sample(n, 11)
    for cls in range(k):
        xs = draw.features[draw.labels == cls]
        # Each coordinate mean has sd sqrt((1-c)/p/n); 5 sd over k p coordinates.
        err = np.abs(xs.mean(axis=0) - mix.means[cls])
        assert err.max() < 5 * np.sqrt((1 - c) / p / n) * 1.0 + 1e-12
        # Total noise variance: sum of p*n squared N(0, (1-c)/p) -> relative sd sqrt(2/(p n)).
        tot = np.mean(np.sum((xs - mix.means[cls]) ** 2, axis=1))
        assert abs(tot - (1 - c)) < 5 * (1 - c) * np.sqrt(2 / (p * n))


def test_mixture_same_seed_identical_different_seed_different():
    mix = GaussianMixture.create(3, 10, 0.5, 0.1)
    a = mix.sample(5, np.random.default_rng(0)).features
    b = mix.sample(5, np.random.default_rng(0)).features
    e = mix.sample(5, np.random.default_rng(1)).features
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, e)


@pytest.mark.parametrize(
    "k, n, c, d", [(3, 4, 0.5, 0.1), (2, 5, 0.2, 0.25), (4, 3, 0.7, -0.2), (3, 2, -0.1, -0.15)]
)
def test_exact_block_features_vs_block_gram(k, n, c, d):
    x = exact_block_features(k, n, c, d)
    np.testing.assert_allclose(x @ x.T, block_gram(k, n, c, d), atol=1e-13)


def test_exact_block_kernel_rows_are_fresh_point_limits():
    k, n, c, d = 3, 4, 0.5, 0.1
    rows = exact_block_kernel_rows(k, n, c, d, np.array([0, 2]))
    x = exact_block_features(k, n, c, d)
    # A fresh class-k point [mu_k, sqrt(1-c) e_new] has zero weight on training directions.
    fresh = np.zeros((2, x.shape[1]))
    fresh[:, :k] = x[[0, 2 * n], :k]
    np.testing.assert_allclose(rows, fresh @ x.T, atol=1e-14)
    with pytest.raises(ValueError, match="test_labels"):
        exact_block_kernel_rows(k, n, c, d, np.array([3]))
    with pytest.raises(ValueError, match="class means"):
        exact_block_kernel_rows(2, 5, 0.2, 0.25, np.array([0]))


def test_perturbed_block_gram_is_valid_gram():
    k, n, c, d = 3, 10, 0.5, 0.1
    pert = perturbed_block_gram(k, n, c, d, 0.3, np.random.default_rng(5))
    g = pert.gram
    np.testing.assert_array_equal(g, g.T)
    assert np.linalg.eigvalsh(g).min() > -1e-12
    np.testing.assert_allclose(np.diag(g), 1.0, atol=1e-13)
    np.testing.assert_allclose(g, pert.features @ pert.features.T, atol=1e-15)
    assert pert.c_eff == pytest.approx(0.35) and pert.d_eff == pytest.approx(0.07)
    # Perturbation s <z_i, z_j> (i < j) has mean 0, sd s / sqrt(m) and the entries are pairwise
    # uncorrelated, so their mean has sd s / sqrt(m * #pairs): assert within 5 sd.
    off = g - 0.7 * block_gram(k, n, c, d)
    iu = np.triu_indices(k * n, 1)
    assert abs(off[iu].mean()) < 5 * 0.3 / np.sqrt(k * n * iu[0].size)
    assert off[iu].std() > 0  # it is a genuine perturbation
    exact = perturbed_block_gram(k, n, c, d, 0.0, 0).gram
    np.testing.assert_allclose(exact, block_gram(k, n, c, d), atol=1e-13)


def test_perturbed_block_gram_bad_strength():
    with pytest.raises(ValueError, match="strength"):
        perturbed_block_gram(3, 4, 0.5, 0.1, 1.5, 0)


def test_as_generator_rejects_none():
    with pytest.raises(ValueError, match="rng"):
        as_generator(None)
    assert isinstance(as_generator(np.random.SeedSequence(1)), np.random.Generator)
