"""Tests of the real-features experiment (simulations/probe.py) and its CLI (small and fast)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from simulations.cli_probe import main as probe_main
from simulations.datasets import load_digits_dataset, validate_dataset
from simulations.probe import (
    ProbeConfig,
    _select,
    run_probe,
    stratified_split,
    superclass_groups,
    top2_coverage,
    write_results,
)


@pytest.fixture(scope="module")
def small_digits():
    """Digits classes 0..3, 60 samples each (240 x 64): a real-feature problem solved in ~0.1 s."""
    ds = load_digits_dataset()
    idx = np.concatenate([np.flatnonzero(ds.labels == k)[:60] for k in range(4)])
    return validate_dataset(ds.features[idx], ds.labels[idx], name="digits-small")


@pytest.fixture(scope="module")
def small_result(small_digits):
    cfg = ProbeConfig(noise="sym", eta=0.3, rounds=2, trials=2, lams=(1e-3, 1e-2), seed=5)
    return run_probe(small_digits, cfg, progress=None)


def test_stratified_split_is_disjoint_stratified_and_seeded():
    y = np.repeat(np.arange(3), [20, 40, 10])
    s1 = stratified_split(y, 3, 0.2, 0.3, np.random.default_rng(1))
    s2 = stratified_split(y, 3, 0.2, 0.3, np.random.default_rng(1))
    allidx = np.concatenate([s1["train_idx"], s1["val_idx"], s1["test_idx"]])
    np.testing.assert_array_equal(np.sort(allidx), np.arange(y.size))
    for key in s1:
        np.testing.assert_array_equal(s1[key], s2[key])
    np.testing.assert_array_equal(np.bincount(y[s1["test_idx"]]), [6, 12, 3])
    np.testing.assert_array_equal(np.bincount(y[s1["val_idx"]]), [4, 8, 2])
    # a tiny class keeps at least one training sample
    s3 = stratified_split(np.array([0, 0, 1, 1, 1, 1, 1, 1]), 2, 0.4, 0.5, np.random.default_rng(0))
    assert np.any(np.array([0, 0, 1, 1, 1, 1, 1, 1])[s3["train_idx"]] == 0)


def test_top2_coverage_known_answer():
    scores = np.array([[0.5, 0.1, 0.2], [0.3, 0.2, 0.7], [0.2, 0.7, 0.1]])
    assert top2_coverage(scores, [1, 0, 2]) == pytest.approx(1 / 3)


def test_selection_uses_validation_not_test():
    rows = [
        {"method": "sd", "round": 0, "lam": 1.0, "val_acc": 0.5, "test_acc": 0.9},
        {"method": "sd", "round": 1, "lam": 1.0, "val_acc": 0.7, "test_acc": 0.1},
        {"method": "pll-ce", "round": 1, "lam": 1.0, "val_acc": 0.6, "test_acc": 0.95},
        {"method": "pll-gce-ref", "round": 1, "lam": 1.0, "val_acc": 0.7, "test_acc": 0.99},
    ]
    sel = {s["family"]: s for s in _select(rows, 0)}
    assert sel["sd"]["round"] == 1 and sel["sd"]["test_acc"] == 0.1
    assert sel["teacher"]["test_acc"] == 0.9
    assert sel["best"]["method"] == "sd"  # tie in val acc goes to the earlier row, not best test


@pytest.mark.slow
def test_run_probe_structure_and_consistency(small_result):
    r = small_result
    # 2 trials x 2 lams x (3 SD rows + 2 PLL rows)
    assert len(r.rows) == 2 * 2 * 5
    assert all(0.0 <= row["test_acc"] <= 1.0 for row in r.rows)
    assert all(row["converged"] for row in r.rows)
    # measured noise rate ~ eta = 0.3 on ~126 training points per trial (binomial sd ~ 0.04)
    rates = [row["noise_rate_train"] for row in r.rows]
    assert all(0.1 < v < 0.5 for v in rates)
    sel = [s for s in r.selections if s["family"] == "sd"]
    for s in sel:
        cands = [row for row in r.rows if row["trial"] == s["trial"] and row["method"] == "sd"]
        assert s["val_acc"] == max(c["val_acc"] for c in cands)
    entry = next(e for e in r.summary["per_config"] if e["method"] == "sd" and e["round"] == 0)
    assert entry["gain"]["mean"] == 0.0
    assert entry["test_acc"]["n"] == 2
    th = r.summary["theory"][0]
    assert len(th["linearised_train_acc"]["mean"]) == 3


@pytest.mark.slow
def test_run_probe_is_reproducible(small_digits):
    cfg = ProbeConfig(noise="asym", eta=0.2, rounds=1, trials=1, lams=(1e-2,), seed=3, theory=False)
    a = run_probe(small_digits, cfg, progress=None)
    b = run_probe(small_digits, cfg, progress=None)
    assert [x["test_acc"] for x in a.rows] == [x["test_acc"] for x in b.rows]


def test_eta_zero_keeps_labels_and_superclass_groups_partition(small_digits):
    groups = superclass_groups(small_digits, 2)
    assert sorted(sum(groups, [])) == [0, 1, 2, 3]
    cfg = ProbeConfig(
        noise="superclass", eta=0.0, rounds=1, trials=1, lams=(1e-2,), theory=False, n_groups=2
    )
    r = run_probe(small_digits, cfg, progress=None)
    assert r.groups == groups
    assert all(row["noise_rate_train"] == 0.0 for row in r.rows)


@pytest.mark.slow
def test_predefined_split_is_used(small_digits):
    y = small_digits.labels
    rng = np.random.default_rng(0)
    perm = rng.permutation(y.size)
    splits = {"train_idx": perm[:150], "val_idx": perm[150:190], "test_idx": perm[190:]}
    ds = validate_dataset(small_digits.features, y, splits=splits)
    cfg = ProbeConfig(rounds=1, trials=2, lams=(1e-2,), theory=False, eta=0.0)
    r = run_probe(ds, cfg, progress=None)
    # eta = 0 and a fixed split: both trials are identical
    t0 = [x["test_acc"] for x in r.rows if x["trial"] == 0]
    t1 = [x["test_acc"] for x in r.rows if x["trial"] == 1]
    assert t0 == t1


def test_config_validation():
    with pytest.raises(ValueError, match="noise"):
        ProbeConfig(noise="bogus").validated()
    with pytest.raises(ValueError, match="eta"):
        ProbeConfig(eta=1.5).validated()
    with pytest.raises(ValueError, match="rounds"):
        ProbeConfig(rounds=-1).validated()
    with pytest.raises(ValueError, match="n_groups applies"):
        ProbeConfig(superclass_rule="reference", n_groups=3).validated()
    with pytest.raises(ValueError, match="superclass_rule"):
        ProbeConfig(superclass_rule="ward").validated()
    with pytest.raises(ValueError, match="preprocess"):
        ProbeConfig(preprocess="zscore").validated()
    # resolved defaults: the reference rule unless a group count is given; booleans read as names
    assert ProbeConfig().validated().superclass_rule == "reference"
    assert ProbeConfig(n_groups=3).validated().superclass_rule == "correlation"
    assert ProbeConfig(preprocess=False).validated().preprocess == "raw"
    with pytest.raises(ValueError, match="lam"):
        ProbeConfig(lams=(0.0,)).validated()
    with pytest.raises(ValueError, match="val_fraction"):
        ProbeConfig(val_fraction=0.6, test_fraction=0.5).validated()


@pytest.mark.slow
def test_write_results(small_result, tmp_path):
    paths = write_results(small_result, tmp_path)
    data = json.loads(open(paths["json"]).read())
    assert data["config"]["lams"] == [1e-3, 1e-2]
    with open(paths["csv"]) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(small_result.summary["per_config"]) + 5
    assert rows[-1]["method"] == "selected:best"


def test_cli_json_and_errors(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.standard_normal((3, 5))[y] + 0.5 * rng.standard_normal((60, 5))
    path = tmp_path / "f.csv"
    path.write_text(
        "\n".join(",".join(map(str, row)) + f",{lab}" for row, lab in zip(x, y, strict=True))
    )
    rc = probe_main(
        [
            "--features",
            str(path),
            "--noise",
            "sym",
            "--eta",
            "0.2",
            "--rounds",
            "2",
            "--trials",
            "1",
            "--lam",
            "1e-2",
            "--json",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["dataset"]["n_classes"] == 3
    assert (tmp_path / "o" / "probe.csv").exists()
    rc = probe_main(["--features", str(path), "--eta", "2"])
    assert rc == 2
    assert "eta" in capsys.readouterr().err
    rc = probe_main(["--features", str(path), "--rounds", "1", "--trials", "1", "--lam", "1e-2"])
    assert rc == 0
    assert "selected on VALIDATION" in capsys.readouterr().out


def _features_csv(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.standard_normal((3, 5))[y] + 0.5 * rng.standard_normal((60, 5))
    path = tmp_path / "f.csv"
    path.write_text(
        "\n".join(",".join(map(str, row)) + f",{lab}" for row, lab in zip(x, y, strict=True))
    )
    return path


@pytest.mark.slow
def test_cli_probe_bad_out_negative_lam_and_memory_refused_before_work(tmp_path):
    from tests.cli import assert_one_line_error, run_many

    feats = _features_csv(tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = ["simulations", "probe", "--features", feats, "--trials", "1", "--rounds", "1"]
    procs = run_many(
        [
            [*base, "--out", a_file],
            [*base, "--out", a_file / "sub"],  # cannot create a directory inside a file
            [*base, "--lam", "1e-2", "-1e-3"],
            [*base, "--max-memory", "1e-6"],
            # A repeated lam was run twice and counted as two trials: a CI from one trial.
            [*base, "--lam", "1e-4", "1e-4"],
        ]
    )
    assert_one_line_error(procs[0], "--out", "is a file")
    assert_one_line_error(procs[1], "--out", "not writable")
    assert_one_line_error(procs[2], "lam", "-0.001")
    assert_one_line_error(procs[3], "needs about", "GB", "--max-memory")
    assert_one_line_error(procs[4], "lam values must be distinct")


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs POSIX resource limits")
def test_cli_probe_prints_results_when_writing_fails(tmp_path):
    # The output directory passes the up-front check, but every file write beyond 64 bytes then
    # fails (RLIMIT_FSIZE, as on a full disk): the results must still reach stdout.
    import resource
    import signal
    import subprocess
    import sys

    from tests.cli import ROOT, cli_env

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail with EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    feats = _features_csv(tmp_path)
    argv = ["--features", feats, "--trials", "1", "--rounds", "1", "--lam", "1e-2", "--no-theory"]
    proc = subprocess.run(
        [sys.executable, "-m", "simulations", "probe", *map(str, argv), "--out", tmp_path / "o"],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit_file_size,
    )
    # One error line and exit status 2 (issue 21); no partial or temporary file is left.
    assert proc.returncode == 2, proc.stderr
    assert "cannot write" in proc.stderr and "probe.json" in proc.stderr
    assert "printing the results instead" in proc.stderr and "Traceback" not in proc.stderr
    assert "selected on VALIDATION" in proc.stdout  # the results were printed anyway
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == []
