"""simulations.monte_carlo.simulate: the Monte Carlo behind theory.spec's interface."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from simulations.gram_trials import MixtureTrial, run_mc, run_mc_many
from simulations.linear_trials import LinearTrial, run_linear_trial
from simulations.monte_carlo import EXACT_ROW_FIELDS, simulate, simulate_many
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from theory.noise import exact_counts, transition_matrix
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


@pytest.mark.slow  # 0.7-1.1 s: 8 trials and the finite-ratio fixed point
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


# -- kernel backend: the figures' Monte Carlo (simulations.gram_trials) behind simulate ---------

KERNEL = dict(n_classes=3, per_class=10, c=0.4, d=0.1, lam=1e-3, rounds=2, eta=0.3, dim=30)


def _mixture_trial(spec, **kw):
    tr = tuple(map(tuple, spec.transition_matrix()))
    return MixtureTrial(3, 10, spec.dim, 0.4, 0.1, 1e-3, spec.rounds, tr, **kw)


def test_simulate_kernel_vs_run_mc():
    spec = Spec(**KERNEL)
    res = simulate(spec, 3, seed=4, backend="kernel", n_test=5, pll=True, keep_trials=True)
    direct = run_mc(_mixture_trial(spec, pll=True, n_test=5), 3, 4)
    assert res.source == "kernel_monte_carlo" and res.samples.shape == (3, 3, len(METRICS))
    for j, m in enumerate(METRICS):  # the same trials: identical floats
        np.testing.assert_array_equal(res.samples[:, :, j], direct[m])
        np.testing.assert_array_equal(res.pll.samples[:, 0, j], direct[m][:, 0])
        np.testing.assert_array_equal(res.pll.samples[:, 1, j], direct[f"pll_{m}"])
    for key in ("pop_acc_sampled", "pop_acc_err"):
        np.testing.assert_array_equal(res.trial_data[key], direct[key])
        np.testing.assert_array_equal(res.pll.trial_data[key][:, 1], direct[f"pll_{key}"])
    np.testing.assert_array_equal(res.trial_data["max_residual"], direct["max_residual"])
    np.testing.assert_array_equal(res.counts, direct["counts"])
    np.testing.assert_array_equal(res.pll.counts, res.counts)
    assert res.pll.spec.method == "pll-ce" and res.pll.values.shape == (2, len(METRICS))
    mean = np.column_stack([direct[m].mean(axis=0) for m in METRICS])
    np.testing.assert_array_equal(res.values, mean)
    assert res.extra["max_residual"] == direct["max_residual"].max()


def test_simulate_kernel_pll_method_vs_pll_companion():
    # method='pll-ce' alone (rounds 0 and the student) is the companion of an SD run: the same
    # seeds give the same features, labels and teacher, whatever the SD rounds.
    spec = Spec(**KERNEL)
    sd = simulate(spec, 2, seed=1, backend="kernel", n_test=3, pll=True)
    alone = simulate(Spec(**{**KERNEL, "method": "pll-ce"}), 2, seed=1, backend="kernel", n_test=3)
    np.testing.assert_array_equal(alone.values, sd.pll.values)
    assert alone.pll is None and alone.samples is None  # keep_trials off: no per-trial arrays


def test_simulate_many_kernel_vs_run_mc_many():
    tr = transition_matrix("sym", 3, 0.3)
    specs = [Spec(**{**KERNEL, "dim": p, "rounds": 1}) for p in (8, 30)]
    got = simulate_many(
        specs, 3, seed=4, backend="kernel", n_test=3, exact_pop=False, keep_trials=True
    )
    ref = run_mc_many([_mixture_trial(s, n_test=3, exact_pop=False) for s in specs], 3, 4)
    assert len(got) == 2
    for res, direct in zip(got, ref, strict=True):
        for j, m in enumerate(METRICS):
            np.testing.assert_array_equal(res.samples[:, :, j], direct[m])
        assert np.isnan(res.value("pop_acc")).all()  # exact_pop=False: not computed
    # common random numbers: trial i of both specs drew the same labels
    np.testing.assert_array_equal(got[0].counts, got[1].counts)
    assert (got[0].counts == exact_counts(tr, 10)).all()


def test_simulate_kernel_transition_matrix_vs_run_mc():
    # an arbitrary row-stochastic matrix, not one of the named noise models
    tr = ((0.7, 0.2, 0.1), (0.0, 0.9, 0.1), (0.25, 0.25, 0.5))
    spec = Spec(**{**KERNEL, "transition": tr})
    res = simulate(spec, 2, seed=2, backend="kernel", n_test=3, keep_trials=True)
    direct = run_mc(_mixture_trial(spec, n_test=3), 2, 2)
    np.testing.assert_array_equal(res.samples[:, :, 0], direct["train_acc"])
    assert (res.counts == spec.count_matrix()).all() and res.notes == ()


def test_simulate_keep_trials_exact_and_linearised():
    spec = Spec(**FINITE)
    ex = simulate(spec, 2, seed=5, keep_trials=True)
    np.testing.assert_allclose(ex.samples.mean(axis=0), ex.values, atol=1e-15)
    assert ex.counts.shape == (2, 3, 3) and ex.trial_data["max_residual_ratio"].shape == (2,)
    lin = simulate(spec, 2, seed=5, backend="linearised", keep_trials=True)
    assert lin.trial_data["pop_acc_err"].shape == (2, 3)


@pytest.mark.parametrize(
    "spec, kwargs, match",
    [
        (Spec(**{**FINITE, "dim": float("inf")}), dict(backend="kernel"), "dim must be finite"),
        (Spec(**{**FINITE, "method": "pll-gce"}), dict(backend="kernel"), "trains methods"),
        (Spec(**FINITE), dict(pll=True), "needs backend='kernel'"),
        (Spec(**{**FINITE, "method": "pll-ce"}), dict(backend="kernel", pll=True), "method='sd'"),
        (Spec(**FINITE), dict(backend="kernel", n_test=0), "n_test"),
        (
            Spec(**{**FINITE, "transition": ((1, 0, 0), (0, 1, 0), (0, 0, 1))}),
            {},
            "spec.transition is set",
        ),
    ],
)
def test_simulate_kernel_rejects_bad_input(spec, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(spec, 2, **kwargs)


def test_simulate_many_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        simulate_many([], 2)
    with pytest.raises(ValueError, match="theory.spec.Spec"):
        simulate_many([Spec(**FINITE), "spec"], 2)


# -- what `simulations run` needs: random sampling, superclass noise, temperature, progress ----


def _direct_rows(cfg, seed, trials):
    return [run_trial(cfg, trial_seed(seed, i)) for i in range(trials)]


@pytest.mark.parametrize(
    "spec_kw, cfg_kw",
    [
        (dict(sampling="random"), dict(sampling="random")),
        (
            dict(noise="superclass", groups=((0, 2), (1,)), eta=0.4),
            dict(noise="superclass", groups=((0, 2), (1,)), eta=0.4),
        ),
        (dict(noise="superclass", n_groups=2), dict(noise="superclass", n_groups=2)),
    ],
)
def test_simulate_exact_sampling_and_superclass_vs_run_trial(spec_kw, cfg_kw):
    spec = Spec(**{**FINITE, **spec_kw})
    res = simulate(spec, 2, seed=7, keep_trials=True, n_test=10)
    base = dict(n_classes=3, per_class=20, dim=60, c=0.4, d=0.1, eta=0.3, lam=1e-2, rounds=2)
    cfg = TrialConfig(**{**base, **cfg_kw, "n_test": 10})
    direct = _direct_rows(cfg, 7, 2)
    for i, trial in enumerate(direct):
        rows = np.array([[r[m] for m in METRICS] for r in trial.rows])
        np.testing.assert_array_equal(res.samples[i], rows)
        np.testing.assert_array_equal(res.counts[i], trial.counts)
        assert res.trial_data["groups"][i] == trial.groups
        for key in EXACT_ROW_FIELDS:  # every row field, with its type (ints, bools, strings)
            direct_values = [r[key] for r in trial.rows]
            np.testing.assert_array_equal(res.trial_data[key][i], direct_values)
            assert list(map(type, res.trial_data[key][i].tolist())) == list(
                map(type, direct_values)
            )
    assert res.trial_data["converged"].all() and res.notes == ()  # no fixed matrix: no note


def test_simulate_kernel_random_sampling_vs_run_mc():
    spec = Spec(**{**KERNEL, "sampling": "random"})
    res = simulate(spec, 3, seed=2, backend="kernel", n_test=3, keep_trials=True)
    direct = run_mc(_mixture_trial(spec, sampling="random", n_test=3), 3, 2)
    np.testing.assert_array_equal(res.samples[:, :, 0], direct["train_acc"])
    np.testing.assert_array_equal(res.counts, direct["counts"])


def test_simulate_temperature_vs_run_trial():
    spec = Spec(**FINITE)
    res = simulate(spec, 1, seed=3, temperature=2.0, keep_trials=True)
    cfg = TrialConfig(
        n_classes=3, per_class=20, dim=60, c=0.4, d=0.1, eta=0.3, lam=1e-2, rounds=2,
        temperature=2.0,
    )  # fmt: skip
    rows = np.array([[r[m] for m in METRICS] for r in run_trial(cfg, trial_seed(3, 0)).rows])
    np.testing.assert_array_equal(res.samples[0], rows)
    assert not np.array_equal(rows, simulate(spec, 1, seed=3, keep_trials=True).samples[0])


def test_simulate_progress_wraps_the_trials():
    seen = []

    def progress(items):
        for i in items:
            seen.append(i)
            yield i

    spec = Spec(**FINITE)
    res = simulate(spec, 2, seed=5, progress=progress, workers=2)
    np.testing.assert_array_equal(res.values, simulate(spec, 2, seed=5).values)
    assert seen == [0, 1]


@pytest.mark.parametrize(
    "spec, kwargs, match",
    [
        (
            Spec(**{**FINITE, "noise": "superclass", "n_groups": 2}),
            dict(backend="kernel"),
            "n_groups .* needs backend='exact'",
        ),
        (Spec(**FINITE), dict(backend="linearised", temperature=2.0), "temperature"),
        (Spec(**FINITE), dict(temperature=1e9), "temperature must lie in"),
        (Spec(**FINITE), dict(exact_pop=False), "exact_pop=False .* needs backend='kernel'"),
    ],
)
def test_simulate_rejects_what_its_backend_cannot_sample(spec, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(spec, 2, **kwargs)


def test_simulate_first_trial_continues_a_run():
    spec = Spec(**FINITE)
    whole = simulate(spec, 3, seed=2, keep_trials=True).samples
    rest = simulate(spec, 2, seed=2, first_trial=1, keep_trials=True).samples
    np.testing.assert_array_equal(rest, whole[1:])
    with pytest.raises(ValueError, match="first_trial"):
        simulate(spec, 1, first_trial=-1)


def test_simulate_exact_pll_shares_the_sd_teacher():
    # fresh seed objects per spec: a PLL run's teacher is the SD run's round 0 (same features
    # and labels, so the same training decisions; the two pipelines solve it separately, each
    # certified to a 1e-9 residual, so pop_acc agrees to that order, not to the last bit)
    sd = simulate(Spec(**FINITE), 2, seed=6, keep_trials=True)
    pll = simulate(Spec(**{**FINITE, "method": "pll-ce"}), 2, seed=6, keep_trials=True)
    np.testing.assert_array_equal(pll.counts, sd.counts)
    pop = METRICS.index("pop_acc")
    np.testing.assert_array_equal(pll.samples[:, 0, :pop], sd.samples[:, 0, :pop])
    np.testing.assert_allclose(pll.samples[:, 0, pop], sd.samples[:, 0, pop], rtol=0, atol=1e-8)


def test_simulate_random_sampling_vs_theory_per_realised_counts():
    # block limit, random labels: each trial has its own count matrix, and the exact theory of
    # that matrix is the trial's accuracies exactly (as in test_simulate_block_limit_vs_...)
    spec = Spec(n_classes=3, per_class=8, c=0.4, d=0.1, lam=1e-2, rounds=2, eta=0.3)
    spec = dataclasses.replace(spec, sampling="random")
    mc = simulate(spec, 3, seed=2, keep_trials=True)
    assert len({c.tobytes() for c in mc.counts}) > 1  # the draws differ
    for sample, counts in zip(mc.samples, mc.counts, strict=True):
        given = dataclasses.replace(spec, counts=tuple(map(tuple, counts.tolist())))
        np.testing.assert_array_equal(sample, predict(given).values)


@pytest.mark.parametrize("backend", ["linearised", "kernel"])
def test_simulate_gram_backends_cost_does_not_grow_with_dim(backend):
    # the Gram matrix is sampled directly (Bartlett): p = 1e8 costs what p = 1e3 does, so the
    # memory and time limits do not refuse it (a limit of 0.1 GB and 60 s; N' <= 60 points)
    spec = Spec(**{**KERNEL, "dim": 10**8, "rounds": 1})
    res = simulate(spec, 1, backend=backend, n_test=3, max_memory=0.1, max_seconds=60)
    assert res.values.shape == (2, len(METRICS))


@pytest.mark.parametrize("k, noise, eta", [(2, "sym", 0.5), (4, "pair", 0.5), (3, "sym", 0.3)])
def test_exact_block_ties_vs_theory(k, noise, eta):
    """Exact-block features (p = inf): at 50/50 label histograms the mislabeled points and the
    population points tie *exactly*, and the certified solve leaves their gaps at its own error
    (~1e-12), which the relative tie rule read as decisions (population accuracy 0.25 / 0.5 /
    0.75 over trials against the theory's 0). Gaps within the certificate's logit error bound
    are ties; a case without ties (sym 0.3) is unchanged."""
    spec = Spec(n_classes=k, per_class=10, c=0.4, d=0.1, lam=1e-2, rounds=2, noise=noise, eta=eta)
    mc = simulate(spec, trials=3, seed=0)
    theory = predict(spec)
    # Fractions of points (sums of 1/N) against the theory's group weights: round-off apart.
    assert np.allclose(mc.values, theory.values, rtol=0, atol=1e-12), (mc.values, theory.values)
