"""simulations.monte_carlo.simulate: the Monte Carlo behind theory.spec's interface."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.linear_trials import LinearTrial, run_linear_trial
from simulations.monte_carlo import simulate
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from theory.noise import transition_matrix
from theory.spec import METRICS, Spec, predict

FINITE = dict(n_classes=3, per_class=20, c=0.4, d=0.1, lam=1e-2, rounds=2, eta=0.3, dim=60)


def test_simulate_exact_vs_direct_trials():
    spec = Spec(**FINITE)
    res = simulate(spec, 3, seed=5)
    cfg = TrialConfig(
        n_classes=3, per_class=20, dim=60, c=0.4, d=0.1, eta=0.3, lam=1e-2, rounds=2,
        noise="sym", sampling="exact-count",
    )  # fmt: skip
    rows = np.array(
        [[[r[m] for m in METRICS] for r in run_trial(cfg, trial_seed(5, i)).rows] for i in range(3)]
    )
    np.testing.assert_allclose(res.values, rows.mean(axis=0), rtol=0, atol=1e-15)
    np.testing.assert_allclose(res.se, rows.std(axis=0, ddof=1) / np.sqrt(3), atol=1e-15)
    assert res.trials == 3 and res.source == "monte_carlo" and res.notes == ()
    assert res.extra["max_residual_ratio"] <= 1.0  # every solve certified
    assert np.all(res.ci95 >= res.se)  # t quantile (2 dof) > 1


def test_simulate_linearised_vs_direct_trials():
    spec = Spec(**FINITE)
    res = simulate(spec, 2, seed=3, backend="linearised")
    trial = LinearTrial(
        3, 20, 60, 0.4, 0.1, 1e-2, 2, tuple(map(tuple, transition_matrix("sym", 3, 0.3)))
    )
    direct = [run_linear_trial(trial, trial_seed(3, i)) for i in range(2)]
    mean = np.mean([np.column_stack([d[m] for m in METRICS]) for d in direct], axis=0)
    np.testing.assert_allclose(res.values, mean, atol=1e-15)
    assert res.source == "linearised_monte_carlo"


def test_simulate_workers_do_not_change_results():
    spec = Spec(**FINITE)
    one = simulate(spec, 2, seed=1)
    two = simulate(spec, 2, seed=1, workers=2)
    np.testing.assert_array_equal(one.values, two.values)


def test_simulate_block_limit_vs_exact_theory():
    # exact-block features with exact-count labels: each trial realises the theory's groups, so
    # accuracies agree exactly (both decide from logits; group outputs agree to ~1e-9).
    spec = Spec(n_classes=3, per_class=10, c=0.4, d=0.1, lam=1e-2, rounds=3, eta=0.3)
    mc = simulate(spec, 2)
    np.testing.assert_array_equal(mc.values, predict(spec).values)


def test_simulate_pll_block_limit_vs_theory():
    spec = Spec(n_classes=3, per_class=10, c=0.4, d=0.1, lam=1e-2, eta=0.3, method="pll-gce")
    mc = simulate(spec, 1)
    np.testing.assert_array_equal(mc.values, predict(spec).values)
    assert np.all(np.isnan(mc.se))  # one trial: no standard error, never a fake 0


def test_simulate_finite_exact_theory_within_monte_carlo_error():
    # the issue-20 criterion (docs/theory.md §16.7): |theory - MC| <= max(3 SE, 0.03)
    spec = Spec(**FINITE)
    mc = simulate(spec, 8, seed=11)
    th = predict(spec)
    tol = np.maximum(3 * np.nan_to_num(mc.se, nan=0.0), 0.03)
    ok = np.isnan(mc.values) | (np.abs(th.values - mc.values) <= tol)
    assert ok.all(), f"theory\n{th.values}\nMC\n{mc.values}\nSE\n{mc.se}"


@pytest.mark.parametrize(
    "spec, kwargs, match",
    [
        (Spec(**FINITE), dict(backend="gpu"), "backend must be one of"),
        (Spec(**FINITE), dict(trials=0), "trials"),
        (Spec(**FINITE), dict(seed=-1), "seed"),
        (Spec(**{**FINITE, "method": "pll-ce"}), dict(backend="linearised"), "SD at a finite"),
        (Spec(**{**FINITE, "dim": float("inf")}), dict(backend="linearised"), "SD at a finite"),
        (
            Spec(**{**FINITE, "counts": ((14, 6, 0), (0, 14, 6), (6, 0, 14))}),
            {},
            "spec.counts is set",
        ),
    ],
)
def test_simulate_rejects_bad_input(spec, kwargs, match):
    kwargs = {"trials": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate(spec, **kwargs)


def test_simulate_refuses_up_front_what_would_not_finish_or_fit():
    spec = Spec(**FINITE)
    # a billion trials: refused from the estimate before any seed or job is made
    with pytest.raises(ValueError, match=r"would take about .* above the limit of 60 min"):
        simulate(spec, 10**9)
    with pytest.raises(ValueError, match="needs about .* GB of memory but the limit"):
        simulate(spec, 2, max_memory=1e-6)
    with pytest.raises(ValueError, match="max_seconds must be a positive number"):
        simulate(spec, 2, max_seconds=-1)
    with pytest.raises(ValueError, match="max_memory must be a positive number of GB"):
        simulate(spec, 2, max_memory=float("nan"))
