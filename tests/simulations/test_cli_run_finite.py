"""``python -m simulations run --dim P``: the finite-p theory (theory.finite) beside the simulation.

Expected values come straight from :func:`theory.finite.predict_finite` on the count matrices the
trials realise, so a wiring mistake (wrong p, wrong counts, wrong averaging, stale cache) shows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import simulations.cli_run as cli_run
import theory.finite
from simulations.cli_run import main
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from tests.cli import run
from theory.finite import MixtureModel, predict_finite
from theory.finite_exact import predict_finite_exact

FIELDS = {
    "train_acc": "train_acc",
    "train_acc_clean": "train_acc_clean",
    "train_acc_mislabeled": "train_acc_mislabeled",
    "pop_acc": "population_acc",
}
POINT = ["-K", "3", "-n", "8", "--dim", "30", "--eta", "0.4", "--lam", "1e-2", "--rounds", "2"]


def _json(capsys, argv):
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_finite_column_equals_the_theory_on_the_exact_counts(capsys):
    doc = _json(capsys, [*POINT, "--trials", "2"])
    cfg = TrialConfig.from_dict(doc["config"])
    counts = run_trial(cfg, trial_seed(0, 0)).counts  # exact counts: the same for every seed
    mix = MixtureModel(3, 8, 30, cfg.c, cfg.d)
    pred = predict_finite(mix, counts, 1e-2, 2)
    exact = predict_finite_exact(mix, counts, 1e-2, 2, points=cli_run.FINITE_EXACT_POINTS)
    assert [r["round"] for r in doc["rounds"]] == [0, 1, 2]
    for entry in doc["rounds"]:
        assert set(entry["theory"]) == {"exact", "linear", "finite", "finite_exact"}
        for metric, field in FIELDS.items():
            assert entry["theory"]["finite"][metric] == getattr(pred, field)[entry["round"]]
            got = entry["theory"]["finite_exact"][metric]
            assert got == pytest.approx(getattr(exact, field)[entry["round"]], abs=1e-15)
    # The linearised column is flagged exactly when it is more than 0.03 from the exact one.
    gap = max(np.nanmax(np.abs(getattr(pred, f) - getattr(exact, f))) for f in FIELDS.values())
    flagged = [note for note in doc["notes"] if note.startswith("f-lin")]
    assert len(flagged) == (1 if gap > 0.03 else 0) and len(doc["notes"]) == len(flagged)


@pytest.mark.slow
def test_linearised_column_refused_where_its_random_matrix_part_fails(capsys):
    doc = _json(
        capsys, [*POINT[:4], "--dim", "12", "--eta", "0.4", "--lam", "1e-4", "--trials", "1"]
    )
    assert all("finite" not in entry["theory"] for entry in doc["rounds"])
    assert all("finite_exact" in entry["theory"] for entry in doc["rounds"])
    assert any("random-matrix part fails" in note for note in doc["notes"])


def test_finite_exact_is_skipped_with_a_note_when_it_would_take_too_long(capsys, monkeypatch):
    monkeypatch.setattr(cli_run, "FINITE_EXACT_SECONDS", 1e-9)
    doc = _json(capsys, [*POINT, "--seeds", "1"])
    assert all("finite_exact" not in entry["theory"] for entry in doc["rounds"])
    assert any("finite-exact theory skipped" in note for note in doc["notes"])


@pytest.mark.slow
def test_random_counts_average_one_evaluation_per_distinct_matrix(capsys, monkeypatch):
    calls = []
    real = theory.finite.predict_finite

    def counting(model, counts, lam, rounds, **kw):
        calls.append(np.asarray(counts).tobytes())
        return real(model, counts, lam, rounds, **kw)

    monkeypatch.setattr(theory.finite, "predict_finite", counting)
    doc = _json(capsys, [*POINT, "--sampling", "random", "--trials", "4", "--seed", "3"])
    cfg = TrialConfig.from_dict(doc["config"])
    counts = [run_trial(cfg, trial_seed(3, i)).counts for i in range(4)]
    distinct = {c.tobytes() for c in counts}
    assert len(calls) == len(set(calls)) == len(distinct) > 1  # cached, and the seeds differ
    model = MixtureModel(3, 8, 30, cfg.c, cfg.d)
    preds = {key: real(model, c, 1e-2, 2) for c in counts for key in [c.tobytes()]}
    for entry in doc["rounds"]:
        t = entry["round"]
        for metric, field in FIELDS.items():
            values = [getattr(preds[c.tobytes()], field)[t] for c in counts]  # per trial
            expected = float(np.nanmean(values))
            assert entry["theory"]["finite"][metric] == pytest.approx(expected, abs=1e-15)


@pytest.mark.parametrize(
    "extra, note",
    [
        (["--method", "pll-ce"], "finite-p theory not available for the PLL student"),
        (["--temperature", "2"], "theory not available"),
        (["--features", "exact-block"], None),  # the block limit itself: no finite column
    ],
)
def test_no_finite_column_where_the_theory_does_not_apply(capsys, extra, note):
    doc = _json(capsys, [*POINT, *extra])
    assert all("finite" not in entry["theory"] for entry in doc["rounds"])
    if note is None:
        assert doc["notes"] == []
    else:
        assert any(note in n for n in doc["notes"])


def test_large_k_is_skipped_with_a_note(capsys, monkeypatch):
    monkeypatch.setattr(cli_run, "FINITE_MAX_CLASSES", 2)
    doc = _json(capsys, POINT)
    assert all("finite" not in entry["theory"] for entry in doc["rounds"])
    assert any("finite-p theory skipped: K = 3 > 2" in n for n in doc["notes"])


@pytest.mark.slow
def test_cli_prints_the_finite_column_in_a_subprocess():
    proc = run("simulations", "run", *POINT, "--trials", "2")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "f-lin: linearised finite-p theory at p=30" in proc.stdout
    assert "f-exact: exact finite-ratio theory of the trained probes" in proc.stdout
    head = next(line for line in lines if line.lstrip().startswith("round"))
    assert head.split()[-4:] == ["exact", "linear", "f-exact", "f-lin"]
    row = next(line for line in lines if line.split()[:2] == ["2", "pop_acc"])
    assert len(row.split()) == 8 and all(0 <= float(x) <= 1 for x in row.split()[4:])
