"""``python -m simulations run --method pll-candidate|pll-gce|pll-gce-ref``: the group theory
(:func:`theory.spec.predict`) beside the simulation where it covers the loss, a note otherwise."""

from __future__ import annotations

import json

import numpy as np
import pytest

import theory.pll
from simulations.cli_run import main
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from theory.spec import METRICS, Spec, predict

ARGV = ["-n", "6", "--eta", "0.34", "--features", "exact-block", "--json", "--q", "0.5"]


_REAL = theory.pll.predict_pll
LOSS = {"pll-candidate": "candidate", "pll-gce": "gce", "pll-gce-ref": "gce-reference"}


@pytest.mark.parametrize("method", ["pll-candidate", "pll-gce"])
def test_pll_theory_columns_vs_predict(capsys, method):
    # the student's theory columns are theory.spec.predict on the realised count matrix
    assert main([*ARGV, "--method", method]) == 0
    doc = json.loads(capsys.readouterr().out)
    cfg = TrialConfig.from_dict(doc["config"])
    counts = run_trial(cfg, trial_seed(0, 0)).counts
    spec = Spec(
        n_classes=cfg.n_classes, per_class=cfg.per_class, c=cfg.c, d=cfg.d, lam=cfg.lam,
        counts=tuple(map(tuple, counts.tolist())), method=method, q=cfg.q,
    )  # fmt: skip
    for source in ("exact", "linear"):
        column = doc["rounds"][1]["theory"].get(source)
        try:
            expected = predict(spec, source).values[1]
        except ValueError as exc:  # the linearised non-convex student can be undefined
            assert column is None and any(str(exc) in n for n in doc["notes"])
            continue
        assert [column[m] for m in METRICS] == [None if np.isnan(x) else x for x in expected]


def test_reference_gce_has_no_theory_and_says_so(monkeypatch, capsys):
    calls = []

    def recording(*args, **kw):
        calls.append(kw.get("loss"))
        return _REAL(*args, **kw)

    monkeypatch.setattr(theory.pll, "predict_pll", recording)
    assert main([*ARGV, "--method", "pll-gce-ref"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "gce-reference" not in calls  # not asked: the group theory has no such loss
    assert doc["notes"] == [
        f"{source} theory for loss gce-reference not available: loss must be one of "
        "('ce', 'candidate', 'gce'), got 'gce-reference'"
        for source in ("exact", "linear")
    ]
    assert set(doc["rounds"][1]["theory"]) == set()  # no student theory invented
    assert set(doc["rounds"][0]["theory"]) == {"exact", "linear"}  # the teacher has one
    assert doc["rounds"][1]["simulation"]["train_acc"]["n"] == 1
    assert doc["all_certified"]


@pytest.mark.parametrize("method", ["pll-candidate", "pll-gce"])
def test_loss_aware_theory_is_called_with_loss_and_q(monkeypatch, capsys, method):
    calls = []

    def loss_aware(model, counts, lam, *, method="linear", loss="ce", q=0.7, **kw):
        calls.append((method, loss, q))
        return _REAL(model, counts, lam, method=method)  # stand-in values for the plumbing

    monkeypatch.setattr(theory.pll, "predict_pll", loss_aware)
    assert main([*ARGV, "--method", method]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert sorted(calls) == sorted([("exact", LOSS[method], 0.5), ("linear", LOSS[method], 0.5)])
    assert set(doc["rounds"][1]["theory"]) == {"exact", "linear"}
    assert doc["notes"] == []


def test_theory_rejecting_a_loss_becomes_a_note(monkeypatch, capsys):
    def knows_two(model, counts, lam, *, method="linear", loss="ce", q=0.7, **kw):
        if loss not in ("ce", "candidate"):
            raise ValueError(f"loss must be 'ce' or 'candidate', got {loss!r}")
        return _REAL(model, counts, lam, method=method)

    monkeypatch.setattr(theory.pll, "predict_pll", knows_two)
    assert main([*ARGV, "--method", "pll-gce"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["notes"] == [
        f"{source} theory for loss gce not available: loss must be 'ce' or 'candidate', got 'gce'"
        for source in ("exact", "linear")
    ]


@pytest.mark.parametrize("method", ["pll-candidate", "pll-gce"])
def test_exact_theory_vs_simulation_past_a_saddle(capsys, method):
    # Issue 20's example: the group engine stops at a 100% saddle; the theory column must show
    # the local minimum training reaches (the N x N student on exact block features: 50%), and
    # a note must flag the saddle.
    argv = ["-K", "4", "-n", "10", "--c", "0.4", "--d", "0.1", "--eta", "0.3", "--noise", "pair"]
    argv += ["--lam", "4.64e-3", "--features", "exact-block", "--sampling", "exact-count"]
    assert main([*argv, "--method", method, "--trials", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    student = doc["rounds"][1]
    for metric in ("train_acc", "pop_acc"):
        assert student["theory"]["exact"][metric] == student["simulation"][metric]["mean"]
    assert student["simulation"]["train_acc"]["mean"] == 0.5
    loss = method.removeprefix("pll-")
    (note,) = [n for n in doc["notes"] if "saddle" in n]
    assert note.startswith(f"exact theory for loss {loss}: the group engine stopped at a saddle")
    assert "train 1.000" in note and "local minimum reached from it (train 0.500" in note
