"""Finite-p theory (theory/finite/) against Monte Carlo on freshly sampled mixture features.

(a) Linearised dynamics: the closed form applied to each sampled Gram matrix
(:mod:`simulations.linear_trials`) against the deterministic-equivalent prediction. Tolerance, as
issue 10 states it: every value within ``max(3 SE, 0.03)``, SE the standard error of the mean over
trials. The theory is evaluated on each trial's realised count matrix and averaged (exactly the
prediction for exact counts; for random labels the theory is conditional on the counts).
(b) The exact solver against the same (linearised) theory: close where the linearisation holds
(larger lam), off where softmax saturates (small lam) -- kept as a strict xfail that says so.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulations.distill import self_distill
from simulations.features import mixture_gram
from simulations.linear_trials import LinearTrial, run_linear_trials
from simulations.noise import sample_noisy_labels
from theory.finite import MixtureModel, predict_finite
from theory.metrics import correct_and_tied
from theory.noise import transition_matrix

KEYS = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "pop_acc")
THEORY = {"pop_acc": "population_acc"}


def _theory_mean(k, n, p, c, d, lam, rounds, counts_per_trial):
    """Theory averaged over the trials' count matrices (one evaluation per distinct matrix)."""
    model = MixtureModel(k, n, p, c, d)
    cache, rows = {}, []
    for counts in counts_per_trial:
        key = counts.tobytes()
        if key not in cache:
            pred = predict_finite(model, counts, lam, rounds)
            cache[key] = np.column_stack([getattr(pred, THEORY.get(m, m)) for m in KEYS])
        rows.append(cache[key])
    return np.nanmean(np.stack(rows), axis=0)


CASES = [
    # K, N, p/N, noise, eta, sampling
    (2, 100, 0.5, "sym", 0.3, "exact-count"),
    (3, 150, 1.0, "sym", 0.5, "exact-count"),
    (4, 100, 2.0, "asym", 0.4, "random"),
    (5, 100, 4.0, "sym", 0.5, "random"),
    (10, 100, 0.5, "sym", 0.5, "exact-count"),
    (10, 200, 20.0, "sym", 0.5, "exact-count"),
]


@pytest.mark.slow
@pytest.mark.parametrize("k, big_n, ratio, noise, eta, sampling", CASES)
def test_finite_theory_vs_linearised_monte_carlo(k, big_n, ratio, noise, eta, sampling):
    n, p = big_n // k, int(ratio * big_n)
    c, d, lam, rounds, trials = 0.4, 0.1, 1e-3, 3, 16
    spec = LinearTrial(
        k, n, p, c, d, lam, rounds, tuple(map(tuple, transition_matrix(noise, k, eta))), sampling
    )
    mc = run_linear_trials(spec, trials, base_seed=11)
    sim = np.column_stack([mc[m] for m in KEYS]).reshape(trials, len(KEYS), rounds + 1)
    sim = sim.transpose(0, 2, 1)  # (trials, rounds, metrics)
    mean = np.nanmean(sim, axis=0)
    se = np.nanstd(sim, axis=0, ddof=1) / np.sqrt(np.sum(~np.isnan(sim), axis=0))
    theory = _theory_mean(k, n, p, c, d, lam, rounds, mc["counts"])
    tol = np.maximum(3 * se, 0.03)
    bad = np.abs(mean - theory) > tol
    assert not bad.any(), (
        f"K={k} N={big_n} p={p}: simulation\n{mean.round(3)}\ntheory\n{theory.round(3)}\n"
        f"tolerance\n{tol.round(3)}"
    )


def _exact_runs(lam, rounds=2, trials=12, k=3, n=30, p=90, c=0.4, d=0.1):
    """Exact SD on sampled mixtures: per-trial training accuracies and group mean deviations."""
    acc, devs = [], []
    t_matrix = transition_matrix("sym", k, 0.4)
    y = np.repeat(np.arange(k), n)
    for seed in np.random.SeedSequence(5).spawn(trials):
        f_ss, l_ss = seed.spawn(2)
        gram = mixture_gram(k, p, c, d, y, np.random.default_rng(f_ss))
        noisy = sample_noisy_labels(y, t_matrix, np.random.default_rng(l_ss), mode="exact-count")
        counts = np.bincount(y * k + noisy, minlength=k * k).reshape(k, k)
        sd = self_distill(noisy, k, lam, rounds, gram=gram)
        acc.append(
            [correct_and_tied(sd.solutions[t].logits, y)[0].mean() for t in range(rounds + 1)]
        )
        g = np.full((rounds + 1, k, k, k), np.nan)
        for kk in range(k):
            for ll in range(k):
                sel = (y == kk) & (noisy == ll)
                if sel.any():
                    g[:, kk, ll] = (sd.outputs[:, :, sel] - 1.0 / k).mean(axis=2)
        devs.append(g)
    pred = predict_finite(MixtureModel(k, n, p, c, d), counts, lam, rounds)  # exact counts: fixed
    return np.array(acc), np.array(devs), pred, counts


@pytest.mark.slow
@pytest.mark.parametrize("lam", [3e-2, 1e-3])
def test_exact_solver_accuracy_vs_finite_theory(lam):
    """Training accuracy of exact SD vs the linearised finite-p theory, max(3 SE, 0.03)."""
    acc, _, pred, _ = _exact_runs(lam)
    se = acc.std(axis=0, ddof=1) / np.sqrt(acc.shape[0])
    assert np.all(np.abs(acc.mean(axis=0) - pred.train_acc) <= np.maximum(3 * se, 0.03))


def _output_gap(lam):
    """Largest |exact group-mean deviation - theory| and its size in standard errors."""
    _, devs, pred, counts = _exact_runs(lam)
    kk, ll = np.nonzero(counts)
    sim = devs[:, :, kk, ll]
    gap = np.abs(sim.mean(axis=0) - pred.group_means[:, kk, ll])
    se = sim.std(axis=0, ddof=1) / np.sqrt(sim.shape[0])
    return gap.max(), (gap / se).max()


@pytest.mark.slow
def test_linearisation_error_of_exact_outputs_grows_as_lam_shrinks():
    """Where the theory holds and where saturation breaks it (docs §11.9): the exact probe's mean
    outputs move away from the linearised prediction as lam shrinks (measured 0.005 at lam = 0.1,
    0.06 at lam = 1e-4 on the same samples)."""
    big, _ = _output_gap(1e-4)
    small, _ = _output_gap(1e-1)
    assert big > 5 * small


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="small lam: the exact probe's softmax saturates (Assumption L fails, docs §2, §8, "
    "§11.9), so its mean outputs per group differ from the linearised finite-p prediction by "
    "~20 Monte Carlo standard errors at lam = 1e-4 even where the accuracies still agree",
)
def test_exact_solver_outputs_vs_finite_theory_small_lam():
    _, z = _output_gap(1e-4)
    assert z <= 4
