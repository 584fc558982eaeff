"""Kernel-form Monte Carlo trials: the mixture Gram sampler and the trial runner."""

import numpy as np
import pytest

from simulations.features import mixture_gram
from simulations.gram_trials import MixtureTrial, parallel_map, run_mixture_trial, trial_seeds


@pytest.mark.parametrize("dim", [40, 7])  # Bartlett path (p - K >= N') and explicit path
def test_mixture_gram_moments_vs_exact_formulas(dim):
    """E and Var of Gram entries of x = mu_y + z, z ~ N(0, (1-c)/p I_p), against closed forms.

    Off-diagonal: Var = sigma^2 (|mu_a|^2 + |mu_b|^2) + p sigma^4 = (2c(1-c) + (1-c)^2)/p;
    diagonal: Var = 4 sigma^2 c + 2 p sigma^4 = (4c(1-c) + 2(1-c)^2)/p.
    """
    k, c, d = 3, 0.4, 0.1
    labels = np.array([0, 0, 1, 2])
    rng = np.random.default_rng(3)
    m = 6000
    draws = np.array([mixture_gram(k, dim, c, d, labels, rng) for _ in range(m)])
    expected = np.where(labels[:, None] == labels[None, :], c, d)
    np.fill_diagonal(expected, 1.0)
    var_off = (2 * c * (1 - c) + (1 - c) ** 2) / dim
    var_diag = (4 * c * (1 - c) + 2 * (1 - c) ** 2) / dim
    var = np.full((4, 4), var_off)
    np.fill_diagonal(var, var_diag)
    # Mean: 5 standard errors. Variance: relative sd of a sample variance is
    # sqrt((kurtosis - 1)/m) <= sqrt(8/m) for these chi-square-like entries; allow 5 of those.
    assert np.all(np.abs(draws.mean(0) - expected) <= 5 * np.sqrt(var / m))
    assert np.all(np.abs(draws.var(0) / var - 1) <= 5 * np.sqrt(8 / m))


def test_mixture_gram_rejects_bad_input():
    with pytest.raises(ValueError, match="labels"):
        mixture_gram(3, 10, 0.4, 0.1, np.array([0, 3]), 0)
    with pytest.raises(ValueError, match="dim"):
        mixture_gram(3, 2, 0.4, 0.1, np.array([0, 1]), 0)


def test_parallel_map_matches_serial():
    spec = MixtureTrial(3, 4, 10**6, 0.4, 0.1, 1e-2, 1, tuple(map(tuple, np.eye(3))), n_test=2)
    jobs = [(spec, s) for s in trial_seeds(0, 3)]
    serial = parallel_map(run_mixture_trial, jobs, 1)
    parallel = parallel_map(run_mixture_trial, jobs, 2)
    for a, b in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(a["train_acc"], b["train_acc"])
        np.testing.assert_array_equal(a["counts"], b["counts"])
