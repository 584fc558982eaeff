import numpy as np
import pytest

from figures import FIGURES
from figures import sd_generalization as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs, corrupted


def test_sd_generalization_smoke(tmp_path):
    assert fig.NAME in FIGURES
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path), "--workers", "1"]) == 0
    rows = assert_outputs(tmp_path, fig.NAME)
    assert {int(r["dim"]) for r in rows} == {12, 24, 96}  # p = N/2, N, 4N with N = 24


def test_sd_generalization_checks_every_round_dimension_and_panel():
    data = fig.compute("tiny", 0)
    p = fig.PRESETS["tiny"]
    assert data["check"]["n_comparisons"] == len(fig.METRICS) * len(p["ratios"]) * (p["rounds"] + 1)
    assert data["lin"]["pop_acc"].shape == (p["trials_linear"], 3, p["rounds"] + 1)
    assert np.all(data["limit"]["pop_acc"] == 1.0)  # the block limit: plurality holds


def test_sd_generalization_check_fails_on_wrong_theory(monkeypatch):
    real = fig.predict_finite
    monkeypatch.setattr(fig, "predict_finite", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="linearised simulation vs finite-p theory"):
        fig.compute("tiny", 0)
