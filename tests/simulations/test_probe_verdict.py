"""The probe's verdict: validation-only selection, test gain with its CI, theory-fit warning."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from simulations.cli_probe import main as probe_main
from simulations.probe_verdict import FIT_TOLERANCE, probe_verdict


def _stat(mean, std=None, n=1):
    return {"mean": mean, "std": std, "n": n}


def _entry(method, rnd, val, test, gain, lam=1e-3, train=0.9, n=3, gain_std=0.01):
    return {
        "lam": lam,
        "method": method,
        "round": rnd,
        "train_acc": _stat(train, 0.0, n),
        "val_acc": _stat(val, 0.0, n),
        "test_acc": _stat(test, 0.0, n),
        "gain": _stat(gain, gain_std, n),
        "all_converged": True,
    }


def _summary(theory_pred=None, measured=0.9):
    per_config = [
        _entry("sd", 0, 0.60, 0.80, 0.0, train=measured, gain_std=0.0),
        _entry("sd", 1, 0.70, 0.81, 0.01),  # best on validation
        _entry("sd", 2, 0.65, 0.95, 0.15),  # best on test: must not be chosen
        _entry("pll-ce", 1, 0.55, 0.90, 0.10),
    ]
    theory = []
    if theory_pred is not None:
        theory.append(
            {
                "lam": 1e-3,
                "block_exact_train_acc": {"mean": [theory_pred, 1.0, 1.0], "std": None, "n": 3},
                "linearised_train_acc": {"mean": [0.91, 0.92, 0.93], "std": None, "n": 3},
                "min_rounds": {"mean": 1.0, "std": 0.0, "n": 3},
            }
        )
    return {"per_config": per_config, "selected": [], "theory": theory}


def test_verdict_selects_on_validation_and_reports_the_test_gain_ci():
    v = probe_verdict(_summary(), {"theory": False})
    assert (v["method"], v["round"], v["selected_on"]) == ("sd", 1, "validation")
    half = stats.t.ppf(0.975, 2) * 0.01 / math.sqrt(3)  # Student-t over 3 trials
    assert v["test_gain"]["mean"] == 0.01
    assert v["test_gain"]["ci95"] == pytest.approx(half, rel=1e-12)
    assert v["text"].startswith("verdict: SD round 1 (lam=0.001) is best on validation")
    assert f"{0.01 - half:+.3f} to {0.01 + half:+.3f}" in v["text"]
    assert v["warning"] is None and v["theory_fit"] is None


def test_verdict_warns_with_the_numbers_when_the_block_model_does_not_fit():
    v = probe_verdict(_summary(theory_pred=0.694, measured=0.932), {"theory": True})
    fit = v["theory_fit"]
    assert fit["fits"] is False and fit["tolerance"] == FIT_TOLERANCE
    assert fit["predicted_train_acc_round0"] == 0.694
    assert fit["measured_train_acc_round0"] == 0.932
    assert "does NOT fit" in v["text"]
    for piece in ("0.694", "0.932", "min rounds to 100%: 1", "0.910"):
        assert piece in v["warning"]


def test_verdict_says_the_theory_fits_within_tolerance():
    v = probe_verdict(_summary(theory_pred=0.9 - FIT_TOLERANCE / 2, measured=0.9), {})
    assert v["theory_fit"]["fits"] is True and v["warning"] is None
    assert "the block model fits these features" in v["text"]


def test_verdict_when_the_teacher_wins_names_the_runner_up():
    summ = _summary()
    summ["per_config"][0]["val_acc"]["mean"] = 0.99
    v = probe_verdict(summ, {"theory": False})
    assert v["text"].startswith("verdict: no distillation: the teacher")
    assert "runner-up SD round 1" in v["text"]


@pytest.mark.slow
def test_cli_verdict_is_the_first_line_and_the_table_is_aligned(capsys):
    # Bundled digits: the block model predicts ~0.69 training accuracy at round 0 where the
    # teacher reaches ~0.93 (issue 22): the verdict must say so.
    argv = ["--trials", "2", "--rounds", "2", "--quiet"]
    assert probe_main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("verdict: ") and "test gain" in out[0]
    assert out[1].startswith("warning: the block model does not fit these features")
    head = next(i for i, line in enumerate(out) if line.startswith("method "))
    assert "test gain" in out[head]
    table = out[head : head + 6]  # header, teacher, 2 SD rounds, 2 PLL students
    assert len({len(line) for line in table}) == 1, table  # every row lines up
    assert probe_main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert next(iter(doc)) == "verdict" and doc["verdict"]["text"] == out[0]
    assert doc["verdict"]["theory_fit"]["fits"] is False
    assert np.isclose(doc["verdict"]["theory_fit"]["predicted_train_acc_round0"], 0.694, atol=0.02)
