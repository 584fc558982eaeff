"""Smoke tests of figures/real_gain.py under Agg with the tiny preset."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from figures import real_gain
from simulations.datasets import load_digits_dataset
from tests.figures._helpers import assert_outputs


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_real_gain_tiny_preset_writes_png_pdf_csv(tmp_path):
    assert real_gain.main(["--out", str(tmp_path), "--preset", "tiny", "--seed", "1"]) == 0
    assert_outputs(tmp_path, real_gain.NAME)  # PNG, PDF, CSV; every numeric cell reads back
    rows = _rows(tmp_path / "real_gain.csv")
    preset = real_gain.PRESETS["tiny"]
    n_series = preset["rounds"] + len(preset["pll_losses"])
    assert len(rows) == len(preset["noises"]) * len(preset["etas"]) * n_series
    assert {r["method"] for r in rows} == {"sd", "pll-ce", "pll-gce-ref"}
    assert {r["selection"] for r in rows} == {"none"}
    for r in rows:
        gain, test, teacher = (
            float(r[k]) for k in ("gain_mean", "test_acc_mean", "teacher_test_acc_mean")
        )
        assert abs(gain - (test - teacher)) < 1e-12  # gain is the paired difference of means
        assert r["all_certified"] == "true"
        assert int(r["verified_minima"]) == int(r["n_trials"])


@pytest.mark.slow
def test_real_gain_user_features_and_test_selection_switch(tmp_path):
    """A user's .npz (here a digits subset) and the labelled reference-reproduction switch."""
    ds = load_digits_dataset()
    idx = np.concatenate([np.flatnonzero(ds.labels == k)[:25] for k in range(4)])
    path = tmp_path / "feats.npz"
    np.savez(path, features=ds.features[idx], labels=ds.labels[idx])
    argv = ["--out", str(tmp_path), "--preset", "tiny", "--features", str(path), "--lam", "1e-3"]
    assert real_gain.main([*argv, "--selection", "test", "--pll-losses", "gce"]) == 0
    rows = _rows(tmp_path / "real_gain.csv")
    assert {r["regime"] for r in rows} == {"base", "selected"}
    selected = [r for r in rows if r["regime"] == "selected"]
    assert {r["selection"] for r in selected} == {"test"}
    assert {r["method"] for r in rows} == {"sd", "pll-gce"}
    base = [r for r in rows if r["regime"] == "base"]
    assert all(float(r["lam"]) == 1e-3 for r in base)


def test_real_gain_bad_input_exits_2(tmp_path, capsys):
    out = ["--out", str(tmp_path), "--preset", "tiny"]
    assert real_gain.main([*out, "--lam", "-1"]) == 2
    assert real_gain.main([*out, "--pll-losses", "mse"]) == 2
    assert real_gain.main([*out, "--features", str(tmp_path / "missing.npz")]) == 2
    err = capsys.readouterr().err
    assert "error: --lam" in err and "error: --pll-losses" in err and "not found" in err


def test_real_gain_max_memory_is_the_option_its_refusal_names(tmp_path, capsys):
    """The load refusal says 'pass --max-memory GB to override': the option exists and works."""
    path = tmp_path / "f.npz"
    np.savez(path, features=np.random.default_rng(0).random((200, 8)), labels=np.arange(200) % 4)
    argv = ["--out", str(tmp_path), "--preset", "tiny", "--features", str(path)]
    assert real_gain.main([*argv, "--max-memory", "1e-7"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --max-memory GB to override" in err
    assert real_gain.main([*argv, "--max-memory", "-1"]) == 2
    assert "max-memory" in capsys.readouterr().err
