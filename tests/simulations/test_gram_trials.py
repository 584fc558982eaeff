"""Kernel-form Monte Carlo trials: the mixture Gram sampler and the trial runner."""

import numpy as np
import pytest

from simulations.features import mixture_gram
from simulations.gram_trials import (
    MixtureTrial,
    parallel_map,
    run_mc,
    run_mixture_trial,
    trial_seeds,
)


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("dim", [40, 7])
def test_mixture_gram_mean_rows_jointly_exact(dim):
    """``<mu_k, x_i>``: same stream as without them, joint PSD realisability, exact moments.

    ``[x_i; mu_k]`` are vectors, so the Gram matrix of training points and means, built from
    ``gram``, ``mean_rows`` and the mean Gram ``(c - d) I + d 11^T``, must be PSD. Moments:
    ``E<mu_k, x_i> = c`` if ``y_i = k`` else ``d``; ``Var = sigma^2 ||mu_k||^2 = c (1 - c)/p``.
    """
    k, c, d = 3, 0.4, 0.1
    labels = np.array([0, 0, 1, 2])
    gram, rows = mixture_gram(k, dim, c, d, labels, 5, with_mean_rows=True)
    np.testing.assert_array_equal(gram, mixture_gram(k, dim, c, d, labels, 5))
    big = np.block([[gram, rows.T], [rows, (c - d) * np.eye(k) + d]])
    assert np.linalg.eigvalsh(big).min() >= -1e-12
    rng = np.random.default_rng(8)
    m = 6000
    draws = np.array(
        [mixture_gram(k, dim, c, d, labels, rng, with_mean_rows=True)[1] for _ in range(m)]
    )
    expected = np.where(np.arange(k)[:, None] == labels[None, :], c, d)
    var = c * (1 - c) / dim
    assert np.all(np.abs(draws.mean(0) - expected) <= 5 * np.sqrt(var / m))
    # Sample variance of Gaussian entries: relative sd sqrt(2/m); allow 5 of those.
    assert np.all(np.abs(draws.var(0) / var - 1) <= 5 * np.sqrt(2 / m))


@pytest.mark.slow
def test_run_mixture_trial_exact_vs_sampled_population_accuracy():
    """Kernel-form trials: exact conditional ``pop_acc`` vs ``pop_acc_sampled``, same probes.

    ``T`` trials with ``m`` fresh points per class each: given the probes, the mean over trials
    of ``pop_acc_sampled - pop_acc`` has mean 0 and sd ``<= sqrt(mean_t a_t (1 - a_t) / (K m T))``
    (per trial as in the pipeline test; trials independent); tolerance 4 sd plus the mean
    quadrature error estimate. (The sampler draws test points jointly with the Gram matrix, so
    ``m`` stays small: memory grows like ``(K m)^2``.)
    """
    k, m, trials = 4, 300, 10
    transition = tuple(map(tuple, 0.6 * np.eye(k) + 0.1))
    spec = MixtureTrial(k, 10, 30, 0.4, 0.1, 1e-3, 2, transition, pll=True, n_test=m)
    res = run_mc(spec, trials, 3)
    exact = np.column_stack([res["pop_acc"], res["pll_pop_acc"]])  # (T, rounds + 1)
    sampled = np.column_stack([res["pop_acc_sampled"], res["pll_pop_acc_sampled"]])
    err = np.column_stack([res["pop_acc_err"], res["pll_pop_acc_err"]])
    assert np.all((exact > 0.3) & (exact < 0.99))  # a non-trivial regime
    sd = np.sqrt(np.mean(exact * (1 - exact), axis=0) / (k * m * trials))
    diff = np.abs(sampled.mean(axis=0) - exact.mean(axis=0))
    assert np.all(diff <= 4 * sd + err.mean(axis=0)), (diff, sd)


def test_exact_pop_off_gives_nan_and_leaves_the_rest_unchanged():
    transition = tuple(map(tuple, 0.7 * np.eye(3) + 0.1))
    on = MixtureTrial(3, 5, 20, 0.4, 0.1, 1e-3, 1, transition, pll=True, n_test=5)
    off = MixtureTrial(3, 5, 20, 0.4, 0.1, 1e-3, 1, transition, pll=True, n_test=5, exact_pop=False)
    # Fresh SeedSequence objects: spawn() advances a SeedSequence, so one object cannot be reused.
    a = run_mixture_trial((on, trial_seeds(2, 1)[0]))
    b = run_mixture_trial((off, trial_seeds(2, 1)[0]))
    for key in ("pop_acc", "pop_acc_err", "pll_pop_acc", "pll_pop_acc_err"):
        assert np.all(np.isnan(b[key])) and not np.any(np.isnan(a[key]))
    for key in ("train_acc", "pop_acc_sampled", "pll_pop_acc_sampled", "counts"):
        np.testing.assert_array_equal(a[key], b[key])


@pytest.mark.slow
def test_run_mc_many_is_the_same_in_any_pool_and_equals_run_mc_per_spec():
    # Regression: the specs shared SeedSequence objects, whose spawn counters advance when a trial
    # spawns its streams; in a serial run the second spec then drew other features than with
    # workers (pickled copies) or alone.
    from simulations.gram_trials import run_mc_many
    from theory.noise import transition_matrix

    tr = tuple(map(tuple, transition_matrix("sym", 3, 0.4)))
    specs = [MixtureTrial(3, 5, p, 0.4, 0.1, 1e-2, 1, tr, n_test=3) for p in (8, 30)]
    serial, pooled = run_mc_many(specs, 3, 4, 1), run_mc_many(specs, 3, 4, 2)
    for spec, a, b in zip(specs, serial, pooled, strict=True):
        alone = run_mc(spec, 3, 4, 1)
        for key in ("train_acc", "pop_acc", "pop_acc_sampled"):
            np.testing.assert_array_equal(a[key], alone[key])
            np.testing.assert_array_equal(b[key], alone[key])
