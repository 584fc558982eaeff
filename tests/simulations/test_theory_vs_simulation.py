"""Theory vs simulation: exact-block features reproduce the group theory; large p approaches it.

Tolerances
----------
* Exact-block: every solve is certified to a fixed-point residual <= 1e-9 (simulation) and
  1e-12 (group theory); the outputs' sensitivity to the residual is O(1) here (lam N >= 0.018,
  logits O(10)), so 1e-6 has > 100x margin.
* Large p (p = 20 N, exact-count noise): Gram entries deviate from the block model by
  O(1/sqrt(p)) ~ 0.04; the configurations below have every theory margin (gap between the true
  class and the best other class, over groups and rounds) >= 0.2, so training predicates agree
  exactly. Population accuracy is compared with the p -> inf prediction through the 95% Student
  t interval over seeds.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulations.distill import self_distill, train_pll
from simulations.features import exact_block_features, exact_block_kernel_rows
from simulations.pipelines import TrialConfig, run_trial
from simulations.sweep import mean_ci
from theory.groups import BlockModel, predict_exact
from theory.pll import predict_pll

ACC = ("train_acc", "train_acc_clean", "train_acc_mislabeled")
EXACT_CASES = [
    dict(n_classes=3, per_class=6, c=0.5, d=0.1, noise="sym", eta=0.34, lam=1e-3, rounds=3),
    dict(n_classes=4, per_class=5, c=0.6, d=0.0, noise="pair", eta=0.4, lam=3e-3, rounds=3),
    dict(n_classes=3, per_class=5, c=0.4, d=-0.1, noise="asym", eta=0.2, lam=1e-2, rounds=2),
    dict(
        n_classes=5,
        per_class=4,
        c=0.6,
        d=0.2,
        noise="superclass",
        groups=[[0, 1], [2, 3], [4]],
        eta=0.5,
        lam=1e-3,
        rounds=2,
    ),
]


def _same(a, b):
    return a == b or (np.isnan(a) and np.isnan(b))


@pytest.mark.parametrize("case", EXACT_CASES)
def test_exact_block_simulation_vs_exact_group_theory(case):
    cfg = TrialConfig(**case, features="exact-block", sampling="exact-count")
    res = run_trial(cfg, 0)
    model = BlockModel(cfg.n_classes, cfg.per_class, cfg.c, cfg.d)
    pred = predict_exact(model, res.counts, cfg.lam, cfg.rounds)
    y, z = res.true_labels, res.noisy_labels
    for t, row in enumerate(res.rows):
        # every point of group (true k, given l) has the group's output
        np.testing.assert_allclose(res.outputs[t], pred.outputs[t][y, z].T, atol=1e-6, rtol=0)
        for m in ACC:
            assert _same(row[m], getattr(pred, m)[t]), (t, m)
        assert row["pop_acc"] == pred.population_acc[t]
    # population outputs at the fresh exact-block points
    x = exact_block_features(cfg.n_classes, cfg.per_class, cfg.c, cfg.d)
    rows = exact_block_kernel_rows(
        cfg.n_classes, cfg.per_class, cfg.c, cfg.d, np.arange(cfg.n_classes)
    )
    sd = self_distill(z, cfg.n_classes, cfg.lam, cfg.rounds, features=x)
    for t in range(cfg.rounds + 1):
        np.testing.assert_allclose(
            sd.predict(t, kernel_rows=rows).T, pred.population_outputs[t], atol=1e-6, rtol=0
        )


PLL_CASES = [
    dict(n_classes=3, per_class=7, c=0.5, d=0.1, noise="sym", eta=0.4, lam=1e-3),
    dict(n_classes=4, per_class=9, c=0.5, d=0.1, noise="asym", eta=0.4, lam=1e-2),
    dict(n_classes=3, per_class=5, c=0.5, d=0.1, noise="asym", eta=0.3, lam=1e-2),
]


def _pll_vs_theory(case, seed=1):
    cfg = TrialConfig(**case, features="exact-block", method="pll-ce")
    res = run_trial(cfg, seed)
    model = BlockModel(cfg.n_classes, cfg.per_class, cfg.c, cfg.d)
    pred = predict_pll(model, res.counts, cfg.lam, method="exact")
    return cfg, res, pred


@pytest.mark.parametrize("case", PLL_CASES)
def test_exact_block_pll_student_vs_group_theory(case):
    cfg, res, pred = _pll_vs_theory(case)
    # Cases without near-tied teacher candidates; the tied case has its own test below.
    assert pred.candidate_ties == 0
    y, z = res.true_labels, res.noisy_labels
    np.testing.assert_allclose(res.outputs[1], pred.outputs[0][y, z].T, atol=1e-6, rtol=0)
    for m in ACC:
        assert _same(res.rows[1][m], getattr(pred, m)[0]), m
    assert res.rows[1]["pop_acc"] == pred.population_acc[0]
    # population outputs of the student at the fresh points
    x = exact_block_features(cfg.n_classes, cfg.per_class, cfg.c, cfg.d)
    teacher = self_distill(z, cfg.n_classes, cfg.lam, 0, features=x).solutions[0]
    student = train_pll(teacher, cfg.lam)
    rows = exact_block_kernel_rows(
        cfg.n_classes, cfg.per_class, cfg.c, cfg.d, np.arange(cfg.n_classes)
    )
    np.testing.assert_allclose(
        student.predict(kernel_rows=rows).T, pred.population_outputs[0], atol=1e-6, rtol=0
    )


def test_exact_block_pll_with_candidate_ties_vs_group_theory():
    # Two non-own classes have exactly equal teacher outputs (symmetric noise, K = 3); the shared
    # tolerant tie rule (theory.partial_labels) makes theory and simulation pick the same pair.
    case = dict(n_classes=3, per_class=6, c=0.5, d=0.1, noise="sym", eta=0.34, lam=1e-3)
    cfg, res, pred = _pll_vs_theory(case)
    assert pred.candidate_ties > 0
    y, z = res.true_labels, res.noisy_labels
    np.testing.assert_allclose(res.outputs[1], pred.outputs[0][y, z].T, atol=1e-6, rtol=0)


LARGE_P = [
    # SD fixes the mislabeled points after one round (train acc 0.8 -> 1).
    dict(n_classes=3, per_class=10, c=0.7, d=0.1, noise="sym", eta=0.2, lam=3e-3, rounds=3),
    # SD keeps the teacher's predicates (train acc 0.75 every round).
    dict(n_classes=4, per_class=8, c=0.5, d=0.1, noise="asym", eta=0.3, lam=1e-3, rounds=3),
]
SEEDS = 12


def _large_p_runs(case, mult=20, seeds=SEEDS, n_test=50):
    n = case["n_classes"] * case["per_class"]
    cfg = TrialConfig(**case, dim=mult * n, sampling="exact-count", n_test=n_test)
    model = BlockModel(cfg.n_classes, cfg.per_class, cfg.c, cfg.d)
    out = []
    for s in range(seeds):
        res = run_trial(cfg, s)
        out.append((res, predict_exact(model, res.counts, cfg.lam, cfg.rounds)))
    return cfg, out


@pytest.mark.slow
@pytest.mark.parametrize("case", LARGE_P)
def test_large_p_training_predicates_and_population_vs_theory(case):
    cfg, runs = _large_p_runs(case)
    pred = runs[0][1]  # exact-count noise: the same count matrix, hence prediction, every seed
    for res, p in runs:
        np.testing.assert_array_equal(res.counts, runs[0][0].counts)
        for t, row in enumerate(res.rows):
            for m in ACC:
                assert _same(row[m], getattr(p, m)[t]), (t, m)
    for t in range(cfg.rounds + 1):
        mean, half, m = mean_ci([res.rows[t]["pop_acc"] for res, _ in runs])
        assert m == SEEDS
        assert abs(mean - pred.population_acc[t]) <= half, (t, mean, half)


PAIR = dict(n_classes=3, per_class=10, c=0.5, d=0.0, noise="pair", eta=0.6, lam=1e-3, rounds=1)


@pytest.mark.slow
def test_pair_flip_majority_wrong_training_matches_and_population_converges_in_p():
    # eta = 0.6 pair flips: every class is labelled mostly as the next class; the p -> inf
    # population accuracy is 0. Training predicates match at p = 20 N; the population error
    # (fraction of fresh points still classified correctly) shrinks as p grows.
    cfg, runs = _large_p_runs(PAIR, seeds=6)
    for res, p in runs:
        for t, row in enumerate(res.rows):
            for m in ACC:
                assert _same(row[m], getattr(p, m)[t])
    assert runs[0][1].population_acc[0] == 0.0
    pop20 = np.mean([res.rows[0]["pop_acc"] for res, _ in runs])
    _, runs80 = _large_p_runs(PAIR, mult=80, seeds=6)
    pop80 = np.mean([res.rows[0]["pop_acc"] for res, _ in runs80])
    assert pop80 < pop20 / 4


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="p = 20 N is not yet the p -> inf regime for this population margin: fresh points' "
    "kernel rows fluctuate by O(1/sqrt(p)) around (c, d), and with the small population margin "
    "of majority-wrong pair noise ~6% of fresh points remain correct (exact conditional "
    "accuracy; theory: 0%). The error shrinks with p (see the test above; ~0.2% at 80 N, "
    "3e-9 at 320 N).",
)
def test_pair_flip_population_within_ci_at_20n():
    cfg, runs = _large_p_runs(PAIR, seeds=6)
    mean, half, _ = mean_ci([res.rows[0]["pop_acc"] for res, _ in runs])
    assert abs(mean - runs[0][1].population_acc[0]) <= half


def test_same_seed_identical_different_seed_different():
    cfg = TrialConfig(n_classes=3, per_class=8, dim=100, eta=0.3, sampling="random", rounds=1)
    a, b, e = run_trial(cfg, 4), run_trial(cfg, 4), run_trial(cfg, 5)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.noisy_labels, b.noisy_labels)
    assert a.rows == b.rows
    assert not np.allclose(a.outputs, e.outputs)
    assert np.any(a.noisy_labels != e.noisy_labels)


def test_cli_run_json_reports_theory_alongside(capsys):
    import json

    from simulations.cli_run import main

    argv = [
        "-K",
        "3",
        "-n",
        "6",
        "--features",
        "exact-block",
        "--eta",
        "0.34",
        "--rounds",
        "2",
        "--trials",
        "2",
        "--json",
    ]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["all_certified"] and [r["round"] for r in doc["rounds"]] == [0, 1, 2]
    for entry in doc["rounds"]:
        for m in ("train_acc", "train_acc_clean", "pop_acc"):
            assert entry["simulation"][m]["mean"] == entry["theory"]["exact"][m]
        assert set(entry["theory"]) == {"exact", "linear"}
    # PLL: round 1 carries the PLL theory; GCE and temperature != 1 say why theory is missing.
    assert (
        main(
            ["-n", "7", "--eta", "0.4", "--features", "exact-block", "--method", "pll-ce", "--json"]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["rounds"][1]["theory"]["exact"]["train_acc"] == 1.0
    assert doc["rounds"][1]["simulation"]["train_acc"]["mean"] == 1.0
    assert main(["-n", "5", "-p", "20", "--temperature", "2", "--rounds", "1"]) == 0
    assert "theory not available" in capsys.readouterr().out
    assert main(["--eta", "1.5"]) == 2
    assert "eta" in capsys.readouterr().err
    assert main(["--groups", "[[0,1]", "--noise", "superclass"]) == 2
