"""Tests for simulations.pipelines: trial configs, seeds, rows and metrics of one trial."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.distill import self_distill
from simulations.features import GaussianMixture, exact_block_features, exact_block_kernel_rows
from simulations.pipelines import PLL_LOSSES, TrialConfig, run_trial, trial_seed
from simulations.pll_losses import train_pll_student
from tests.simulations.reference_gce import predict_proba, train_pll_gce
from theory.metrics import accuracy
from theory.noise import exact_counts, transition_matrix
from theory.partial_labels import top2_indices
from theory.population import mixture_population_accuracy

SMALL = {"n_classes": 3, "per_class": 6, "dim": 40, "n_test": 20, "rounds": 2}


@pytest.mark.parametrize(
    "params, match",
    [
        ({"method": "kd"}, "method"),
        ({"features": "real"}, "features"),
        ({"noise": "uniform"}, "noise"),
        ({"sampling": "exact"}, "sampling"),
        ({"eta": 1.2}, "eta"),
        ({"lam": 0.0}, "lam"),
        ({"d": 0.55, "per_class": 2}, "d must be <= c"),
        ({"dim": 2}, "dim"),
        ({"q": 1.5}, "q"),
        ({"noise": "superclass"}, "groups"),
        ({"noise": "superclass", "groups": [[0, 1]]}, "cover"),
        ({"groups": [[0, 1], [2]]}, "superclass"),
        ({"noise": "superclass", "n_groups": 2, "features": "exact-block"}, "mixture"),
        ({"features": "exact-block", "c": 0.2, "d": 0.25, "per_class": 5}, "class means"),
        ({"rounds": -1}, "rounds"),
        ({"n_test": 0}, "n_test"),
        ({"temperature": -1.0}, "temperature"),
    ],
)
def test_trial_config_rejects_bad_params(params, match):
    with pytest.raises(ValueError, match=match):
        TrialConfig(**params)


def test_trial_config_normalisation_key_and_round_trip():
    a = TrialConfig(method="pll-ce", rounds=5)
    assert a.rounds == 1  # PLL trains one student; rounds is normalised so keys dedupe
    assert a.key() == TrialConfig(method="pll-ce", rounds=2).key()
    b = TrialConfig(features="exact-block", dim=123)
    assert b.dim == 0 and b.key() == TrialConfig(features="exact-block", dim=7).key()
    assert TrialConfig(eta=0.2).key() != TrialConfig(eta=0.3).key()
    g = TrialConfig(noise="superclass", groups=[[0, 2], [1]])
    assert g.groups == ((0, 2), (1,))
    assert TrialConfig.from_dict(g.to_dict()) == g
    assert TrialConfig.from_dict(g.to_dict()).key() == g.key()
    with pytest.raises(ValueError, match="unknown trial parameter"):
        TrialConfig.from_dict({"etaa": 0.1})


def test_trial_seed_is_spawned_child():
    children = np.random.SeedSequence(11).spawn(4)
    for i, child in enumerate(children):
        np.testing.assert_array_equal(trial_seed(11, i).generate_state(4), child.generate_state(4))


@pytest.mark.parametrize("features", ["mixture", "exact-block"])
def test_sd_rows_vs_direct_recomputation(features):
    cfg = TrialConfig(**SMALL, eta=0.34, features=features, noise="sym", sampling="exact-count")
    res = run_trial(cfg, 3)
    assert [r["round"] for r in res.rows] == [0, 1, 2]
    np.testing.assert_array_equal(res.counts, exact_counts(transition_matrix("sym", 3, 0.34), 6))
    y, z = res.true_labels, res.noisy_labels
    clean = y == z
    # Recompute everything from the documented seed streams (features, noise, test).
    feat_ss, _, test_ss = np.random.SeedSequence(3).spawn(3)
    if features == "mixture":
        rng = np.random.default_rng(feat_ss)
        mix = GaussianMixture.create(3, 40, cfg.c, cfg.d, rng=rng)
        x = mix.sample(6, rng).features
        test = mix.sample(20, np.random.default_rng(test_ss))
        kw, test_y = {"features": test.features}, test.labels
        noise_var = (1 - cfg.c) / 40
    else:
        x = exact_block_features(3, 6, cfg.c, cfg.d)
        test_y = np.arange(3)
        kw = {"kernel_rows": exact_block_kernel_rows(3, 6, cfg.c, cfg.d, test_y)}
    sd = self_distill(z, 3, cfg.lam, 2, features=x)
    np.testing.assert_allclose(res.outputs, sd.outputs, atol=1e-12)
    top2 = top2_indices(sd.outputs[0])
    for t, row in enumerate(res.rows):
        assert row["train_acc"] == accuracy(sd.outputs[t], y)
        assert row["train_acc_clean"] == accuracy(sd.outputs[t][:, clean], y[clean])
        assert row["train_acc_mislabeled"] == accuracy(sd.outputs[t][:, ~clean], y[~clean])
        assert row["pop_acc_sampled"] == accuracy(sd.predict(t, **kw), test_y)
        if features == "mixture":
            exact = mixture_population_accuracy(sd.solutions[t].weights, mix.means, noise_var)
            assert row["pop_acc"] == exact.accuracy and row["pop_acc_err"] == exact.err
        else:  # the deterministic kernel-row evaluation is the exact value
            assert row["pop_acc"] == row["pop_acc_sampled"] and row["pop_acc_err"] == 0.0
        assert row["top2_coverage"] == np.mean((top2[0] == y) | (top2[1] == y))
        assert row["converged"] and row["residual"] <= row["target"]
        assert row["n_mislabeled"] == int((~clean).sum())


def test_no_noise_mislabeled_accuracy_is_nan():
    res = run_trial(TrialConfig(**SMALL, eta=0.0), 0)
    assert all(np.isnan(r["train_acc_mislabeled"]) for r in res.rows)
    assert all(r["n_mislabeled"] == 0 for r in res.rows)


def test_temperature_is_passed_to_distillation():
    base = {**SMALL, "eta": 0.34, "features": "exact-block"}
    hot = run_trial(TrialConfig(**base, temperature=2.0), 1)
    cold = run_trial(TrialConfig(**base), 1)
    np.testing.assert_array_equal(hot.outputs[0], cold.outputs[0])  # teacher unchanged
    assert not np.allclose(hot.outputs[1], cold.outputs[1])
    x = exact_block_features(3, 6, 0.5, 0.1)
    direct = self_distill(hot.noisy_labels, 3, 1e-3, 2, features=x, temperature=2.0)
    np.testing.assert_allclose(hot.outputs, direct.outputs, atol=1e-12)


@pytest.mark.parametrize("method", ["pll-ce", "pll-candidate", "pll-gce", "pll-gce-ref"])
def test_pll_rows(method):
    res = run_trial(TrialConfig(**SMALL, eta=0.34, method=method), 2)
    assert [r["round"] for r in res.rows] == [0, 1]
    assert all(r["method"] == method for r in res.rows)
    assert res.rows[1]["converged"] and res.rows[1]["residual"] <= res.rows[1]["target"]
    expected = "global minimum" if method == "pll-ce" else "local minimum"
    assert res.rows[1]["stationary_point"] == expected
    for row in res.rows:
        for m in ("train_acc", "pop_acc", "pop_acc_sampled", "top2_coverage"):
            assert 0.0 <= row[m] <= 1.0


@pytest.mark.parametrize("method", ["sd", "pll-ce", "pll-gce"])
def test_exact_population_accuracy_vs_sampled_points_in_pipeline(method):
    """``pop_acc`` (exact conditional) vs ``pop_acc_sampled`` (fresh points) of the same probe.

    With ``m`` fresh points per class and per-class accuracies ``a_k``, the sampled mean has
    variance ``sum_k a_k (1 - a_k) / (K^2 m) <= a (1 - a) / (K m)`` (Jensen, ``a`` the mean);
    tolerance: 4 of those standard deviations plus the quadrature error estimate.
    """
    k, m = 4, 4000
    cfg = TrialConfig(n_classes=k, per_class=10, dim=30, eta=0.4, rounds=3, n_test=m, method=method)
    res = run_trial(cfg, 12)
    for row in res.rows:
        a = row["pop_acc"]
        tol = 4 * np.sqrt(a * (1 - a) / (k * m)) + row["pop_acc_err"]
        assert abs(row["pop_acc"] - row["pop_acc_sampled"]) <= tol, row
        assert 0 <= row["pop_acc_err"] <= 1e-4


@pytest.mark.parametrize("method", ["pll-ce", "pll-candidate", "pll-gce", "pll-gce-ref"])
def test_pll_student_rows_vs_direct_solve(method):
    """The trial's student is train_pll_student on the trial's teacher, on exact-block features
    whose fresh points are evaluated through kernel rows."""
    k, n = 3, 5
    cfg = TrialConfig(n_classes=k, per_class=n, features="exact-block", method=method, eta=0.4)
    res = run_trial(cfg, 3)
    x = exact_block_features(k, n, cfg.c, cfg.d)
    teacher = self_distill(res.noisy_labels, k, cfg.lam, 0, features=x).solutions[0]
    student = train_pll_student(teacher, cfg.lam, loss=PLL_LOSSES[method], q=cfg.q)
    np.testing.assert_allclose(res.outputs[1], student.outputs, atol=1e-12)
    rows = exact_block_kernel_rows(k, n, cfg.c, cfg.d, np.arange(k))
    assert res.rows[1]["pop_acc"] == accuracy(student.predict(kernel_rows=rows), np.arange(k))


def test_pll_gce_ref_vs_lbfgs_reference_implementation():
    """Two implementations of the reference GCE from the same teacher: the certified Newton solve
    and tests/simulations/reference_gce.py (L-BFGS-B to a max-abs gradient of 1e-9). Both are
    stationary points of the same objective in one basin;
    |P - P'| <= 0.5 max||x|| (|g| + |g'|) / mu_min (+ slack 2x)."""
    cfg = TrialConfig(**SMALL, eta=0.34, method="pll-gce-ref")
    res = run_trial(cfg, 4)
    # run_trial's feature stream: the first of three children of the seed (module docstring).
    mix_rng = np.random.default_rng(np.random.SeedSequence(4).spawn(3)[0])
    mixture = GaussianMixture.create(3, cfg.dim, cfg.c, cfg.d, rng=mix_rng)
    x = mixture.sample(cfg.per_class, mix_rng).features
    teacher = self_distill(res.noisy_labels, 3, cfg.lam, 0, features=x).solutions[0]
    student = train_pll_student(teacher, cfg.lam, loss="gce-reference", q=cfg.q)
    np.testing.assert_allclose(res.outputs[1], student.outputs, atol=1e-12)
    ref = train_pll_gce(
        x, top2_indices(teacher.outputs), cfg.lam, init_weights=teacher.weights, q=cfg.q, tol=1e-9
    )
    assert ref.report.converged
    cert = student.certificate
    xmax = float(np.max(np.linalg.norm(x, axis=1)))
    g_ref = ref.report.gradient_norm * np.sqrt(ref.weights.size)  # max-abs -> Frobenius bound
    tol = 2 * 0.5 * xmax * (cert.gradient_norm + g_ref) / cert.min_hessian_eigenvalue
    np.testing.assert_allclose(student.outputs, predict_proba(ref.weights, x), atol=tol)


def test_superclass_clustered_groups_confine_flips():
    cfg = TrialConfig(**{**SMALL, "n_classes": 4}, noise="superclass", n_groups=2, eta=0.5)
    res = run_trial(cfg, 5)
    assert sorted(sum(res.groups, [])) == [0, 1, 2, 3] and len(res.groups) == 2
    t = transition_matrix("superclass", 4, 0.5, groups=res.groups)
    assert np.all(res.counts[t == 0] == 0)
    np.testing.assert_array_equal(res.counts, exact_counts(t, 6))


def test_run_trial_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        run_trial(TrialConfig(**SMALL), -1)
    with pytest.raises(ValueError, match="TrialConfig"):
        run_trial({"eta": 0.1}, 0)
