"""Smoke test of figures/pll_conditions.py (tiny preset) and its N x N checks failing loudly."""

import dataclasses

import numpy as np
import pytest

from figures import pll_conditions as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_csv_reads_back, assert_outputs


@pytest.mark.slow
def test_pll_conditions_tiny_preset_writes_png_pdf_csv(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path)]) == 0
    rows = assert_outputs(tmp_path, fig.NAME)
    p = fig.PRESETS["tiny"]
    n_main = len(p["kinds"]) * len(p["etas"]) * len(p["lams"]) * len(fig.LOSSES)
    n_clean = len(p["ds"]) * len(p["lams"]) * len(fig.LOSSES)
    assert len(rows) == n_main + n_clean + len(p["qs"]) * len(p["lams"])
    nxn = assert_csv_reads_back(tmp_path / f"{fig.NAME}_nxn.csv")
    assert len(nxn) == len(p["nxn"])
    # Pair noise: the two-hot student ties at every cell with noise (Proposition 15.3).
    pair_ce = [r for r in rows if r["panel"] == "pair" and r["loss"] == "ce" and float(r["eta"])]
    assert pair_ce and all(int(r["ties"]) == 3 * p["per_class"] for r in pair_ce)


def test_pll_conditions_nxn_check_fails_on_wrong_group_student(monkeypatch):
    # A group student that is not a stationary point of the N x N objective must stop the figure.
    real = fig.flow_student

    def shifted(*args, **kw):
        fs = real(*args, **kw)
        dev = fs.prediction.deviations.copy()
        dev[0, 0, 0, :] += np.array([0.05, -0.05, 0.0])
        return dataclasses.replace(
            fs, prediction=dataclasses.replace(fs.prediction, deviations=dev)
        )

    monkeypatch.setattr(fig, "flow_student", shifted)
    with pytest.raises(AgreementError, match="not an N x N stationary point"):
        fig._nxn_check(fig.PRESETS["tiny"], fig.PRESETS["tiny"]["nxn"][0])


def test_outcome_categories():
    assert fig._outcome(1.0, 1.0, 0) == 0
    assert fig._outcome(1.0, 0.5, 0) == 1
    assert fig._outcome(0.5, 1.0, 0) == 2
    assert fig._outcome(0.5, 0.5, 0) == 3
    assert fig._outcome(0.0, 0.0, 4) == 4
