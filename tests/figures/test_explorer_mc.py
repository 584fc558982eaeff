"""figures.explorer_mc: the explorer's background Monte Carlo is ``simulate`` of its specs."""

from __future__ import annotations

import numpy as np

from figures.explorer_mc import MonteCarloRun
from simulations.monte_carlo import simulate
from simulations.sweep import mean_ci
from theory.spec import METRICS

POINT = dict(n_classes=3, per_class=6, dim=30, eta=0.3, lam=1e-2, rounds=2, trials=3, seed=4)


def test_monte_carlo_run_vs_simulate():
    run = MonteCarloRun(POINT)
    summary = run.run()
    sd = simulate(run.specs["sd"], 3, seed=4, keep_trials=True).samples
    pll = simulate(run.specs["pll-ce"], 3, seed=4, keep_trials=True).samples
    train, pop = METRICS.index("train_acc"), METRICS.index("pop_acc")
    for t in range(3):  # the same trials and the same statistics: identical floats
        assert summary.sd_train_mean[t] == mean_ci(list(sd[:, t, train]))[0]
        assert summary.sd_pop_mean[t] == mean_ci(list(sd[:, t, pop]))[0]
    assert (summary.pll_pop_mean, summary.pll_pop_ci) == mean_ci(list(pll[:, 1, pop]))[:2]
    # both methods share each trial's features and labels: the same teacher's decisions
    np.testing.assert_array_equal(pll[:, 0, :pop], sd[:, 0, :pop])
    assert summary.errors == () and summary.trials_done == 3


def test_monte_carlo_run_one_step_is_one_trial():
    # step i is trial i of the full run (simulate's first_trial), whatever ran before
    run = MonteCarloRun(POINT)
    run.step()
    run.step()
    alone = simulate(run.specs["sd"], 1, seed=4, first_trial=1, keep_trials=True).samples[0]
    both = simulate(run.specs["sd"], 2, seed=4, keep_trials=True).samples
    np.testing.assert_array_equal(alone, both[1])
    train = METRICS.index("train_acc")
    summary = run.summary()
    assert summary.trials_done == 2
    assert list(summary.sd_train_mean) == [mean_ci(list(both[:, t, train]))[0] for t in range(3)]
