"""Exact conditional population accuracy on the Gaussian mixture (theory.population)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulations.distill import self_distill
from simulations.features import GaussianMixture
from theory.metrics import correct_and_tied
from theory.population import (
    mixture_population_accuracy,
    mixture_population_accuracy_kernel,
    population_accuracy_from_moments,
)


def _trained(k, n, p, c, d, eta, seed, rounds=2):
    """A mixture, its training draw and SD probes trained exactly on noisy labels."""
    rng = np.random.default_rng(seed)
    mix = GaussianMixture.create(k, p, c, d, rng=rng)
    draw = mix.sample(n, rng)
    noisy = draw.labels.copy()
    flip = rng.random(noisy.size) < eta
    noisy[flip] = rng.integers(0, k, int(flip.sum()))
    sd = self_distill(noisy, k, 1e-3, rounds, features=draw.features)
    return mix, draw, sd, rng


@pytest.mark.slow
@pytest.mark.parametrize("k, p, eta", [(2, 20, 0.3), (3, 30, 0.4), (4, 50, 0.5), (6, 40, 0.3)])
def test_population_accuracy_vs_sampled_test_points(k, p, eta):
    """Exact conditional accuracy vs the accuracy on M fresh points of the same mixture.

    Tolerance: 4 binomial standard errors of the sampled mean (classes have equal counts, so the
    per-class variances add: sd = sqrt(sum_k a_k (1 - a_k) / M_k) / K) plus the quadrature error.
    """
    c, d = 0.4, 0.1
    mix, draw, sd, rng = _trained(k, 25, p, c, d, eta, seed=k)
    per_class = 20_000
    test = mix.sample(per_class, rng)
    for sol in sd.solutions:
        exact = mixture_population_accuracy(sol.weights, mix.means, (1 - c) / p)
        correct, _ = correct_and_tied(sol.weights @ test.features.T, test.labels)
        sampled = correct.mean()
        var = np.sum(exact.per_class * (1 - exact.per_class)) / per_class / k**2
        assert abs(exact.accuracy - sampled) <= 4 * math.sqrt(var) + exact.err, (
            exact.accuracy,
            sampled,
        )
        by_class = correct.reshape(k, per_class).mean(axis=1)
        se = np.sqrt(exact.per_class * (1 - exact.per_class) / per_class)
        assert np.all(np.abs(exact.per_class - by_class) <= 4.5 * se + exact.per_class_err + 1e-12)


def test_kernel_forms_match_primal():
    k, p, c = 4, 30, 0.4
    mix, draw, sd, _ = _trained(k, 10, p, c, 0.1, 0.4, seed=3)
    x = draw.features
    gram = x @ x.T
    rows = mix.means @ x.T
    s2 = (1 - c) / p
    for sol in sd.solutions:
        primal = mixture_population_accuracy(sol.weights, mix.means, s2)
        via_factor = mixture_population_accuracy_kernel(sol.dual, rows, None, s2, gram_factor=x)
        via_gram = mixture_population_accuracy_kernel(sol.dual, rows, gram, s2)
        via_call = mixture_population_accuracy_kernel(sol.dual, rows, lambda v: gram @ v, s2)
        np.testing.assert_allclose(via_factor.per_class, primal.per_class, atol=1e-9)
        tol = primal.per_class_err + via_gram.per_class_err + 1e-12
        assert np.all(np.abs(via_gram.per_class - primal.per_class) <= tol)
        np.testing.assert_array_equal(via_call.per_class, via_gram.per_class)


def test_zero_noise_is_the_argmax_of_the_mean_logits():
    """noise_var = 0: every point of class k has the logits W mu_k; ties count as errors."""
    rng = np.random.default_rng(4)
    w, means = rng.standard_normal((5, 8)), rng.standard_normal((5, 8))
    res = mixture_population_accuracy(w, means, 0.0)
    correct, tied = correct_and_tied((means @ w.T).T, np.arange(5))
    np.testing.assert_array_equal(res.per_class, correct.astype(float))
    assert res.err == 0.0 and res.ties == 0.0
    # A probe with two identical rows for classes 0 and 1 ties them exactly at every point.
    w[1] = w[0]
    res = mixture_population_accuracy(w, means, 0.3)
    assert res.per_class[0] == 0.0 and res.per_class[1] == 0.0
    assert res.per_class_ties[0] + res.per_class_ties[1] > 0.0


def test_from_moments_per_class_covariance():
    rng = np.random.default_rng(6)
    mean = rng.standard_normal((4, 4))
    covs = []
    for _ in range(4):
        a = rng.standard_normal((4, 4))
        covs.append(a @ a.T)
    covs = np.array(covs)
    res = population_accuracy_from_moments(mean, covs)
    for kk in range(4):
        one = population_accuracy_from_moments(mean, covs[kk])
        assert res.per_class[kk] == pytest.approx(one.per_class[kk], abs=1e-12)
    assert res.accuracy == pytest.approx(res.per_class.mean())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: mixture_population_accuracy(np.ones((3, 4)), np.ones((3, 5)), 0.1), "means"),
        (lambda: mixture_population_accuracy(np.ones((3, 4)), np.ones((3, 4)), -0.1), "noise_var"),
        (lambda: mixture_population_accuracy(np.ones((1, 4)), np.ones((1, 4)), 0.1), "weights"),
        (
            lambda: mixture_population_accuracy_kernel(np.ones((3, 5)), np.ones((3, 4)), np.eye(5)),
            "mean_rows",
        ),
        (
            lambda: mixture_population_accuracy_kernel(np.ones((3, 5)), np.ones((3, 5)), np.eye(4)),
            "gram",
        ),
        (lambda: mixture_population_accuracy_kernel(np.ones((3, 5)), np.ones((3, 5))), "exactly"),
        (
            lambda: mixture_population_accuracy_kernel(
                np.ones((3, 5)), np.ones((3, 5)), lambda v: v[:2]
            ),
            "gram",
        ),
        (
            lambda: mixture_population_accuracy_kernel(
                np.ones((3, 5)), np.ones((3, 5)), None, 0.1, gram_factor=np.ones((4, 2))
            ),
            "gram_factor",
        ),
        (lambda: population_accuracy_from_moments(np.ones((3, 4)), np.eye(4)), "mean_logits"),
        (lambda: population_accuracy_from_moments(np.eye(3), np.eye(4)), "cov_logits"),
        (lambda: population_accuracy_from_moments(np.eye(3)), "exactly one"),
        (lambda: population_accuracy_from_moments(np.eye(3), np.eye(3), abs_tol=-1), "abs_tol"),
    ],
)
def test_bad_input_names_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()
