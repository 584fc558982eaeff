"""``python -m simulations run --method pll-candidate|pll-gce|pll-gce-ref``: theory beside the
simulation when the build's group theory knows the loss, a note otherwise."""

from __future__ import annotations

import json

import pytest

import theory.pll
from simulations.cli_run import main

ARGV = ["-n", "6", "--eta", "0.34", "--features", "exact-block", "--json", "--q", "0.5"]


def _ce_only(model, counts, lam, *, method="linear", tol=1e-12):
    """A predict_pll without the loss argument (a build before the loss-aware theory)."""
    return _REAL(model, counts, lam, method=method)


_REAL = theory.pll.predict_pll


@pytest.mark.parametrize("method", ["pll-candidate", "pll-gce", "pll-gce-ref"])
def test_note_when_theory_lacks_the_loss(monkeypatch, capsys, method):
    monkeypatch.setattr(theory.pll, "predict_pll", _ce_only)
    assert main([*ARGV, "--method", method]) == 0
    doc = json.loads(capsys.readouterr().out)
    loss = {"pll-candidate": "candidate", "pll-gce": "gce", "pll-gce-ref": "gce-reference"}[method]
    assert doc["notes"] == [f"theory for loss {loss} not available in this build"]
    assert set(doc["rounds"][1]["theory"]) == set()  # no student theory invented
    assert doc["rounds"][1]["simulation"]["train_acc"]["n"] == 1
    assert doc["all_certified"]


@pytest.mark.parametrize("method", ["pll-candidate", "pll-gce", "pll-gce-ref"])
def test_loss_aware_theory_is_called_with_loss_and_q(monkeypatch, capsys, method):
    calls = []

    def loss_aware(model, counts, lam, *, method="linear", loss="ce", q=0.7, tol=1e-12):
        calls.append((method, loss, q))
        return _REAL(model, counts, lam, method=method)  # stand-in values for the plumbing

    monkeypatch.setattr(theory.pll, "predict_pll", loss_aware)
    assert main([*ARGV, "--method", method]) == 0
    doc = json.loads(capsys.readouterr().out)
    loss = {"pll-candidate": "candidate", "pll-gce": "gce", "pll-gce-ref": "gce-reference"}[method]
    q = 0.5 if loss != "candidate" else 0.7  # q is passed only to the GCE losses
    assert sorted(calls) == sorted([("exact", loss, q), ("linear", loss, q)])
    assert set(doc["rounds"][1]["theory"]) == {"exact", "linear"}
    assert doc["notes"] == []


def test_theory_rejecting_a_loss_becomes_a_note(monkeypatch, capsys):
    def knows_two(model, counts, lam, *, method="linear", loss="ce", q=0.7, tol=1e-12):
        if loss not in ("ce", "candidate", "gce"):
            raise ValueError(f"loss must be 'ce', 'candidate' or 'gce', got {loss!r}")
        return _REAL(model, counts, lam, method=method)

    monkeypatch.setattr(theory.pll, "predict_pll", knows_two)
    assert main([*ARGV, "--method", "pll-gce-ref"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["notes"]) == 2 and all("gce-reference" in n for n in doc["notes"])


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
