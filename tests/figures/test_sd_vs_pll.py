import pytest

from figures import sd_vs_pll as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs, corrupted


def test_sd_vs_pll_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path), "--workers", "1"]) == 0
    assert_outputs(tmp_path, fig.NAME)


def test_sd_vs_pll_check_fails_on_wrong_theory(monkeypatch):
    real = fig.predict_exact
    monkeypatch.setattr(fig, "predict_exact", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="disagree beyond Monte Carlo error"):
        fig.compute("tiny", 0)


def test_sd_vs_pll_tie_dependent_pll_theory_is_flagged_not_hidden():
    # eta = 0: every wrong class scores equally for a clean point, so the theory's PLL student
    # rests on its tie rule (whole-class ties, accuracy 1/K) while the simulation breaks ties per
    # point and reaches 100%: flagged as tie-dependent and reported as a disagreement.
    data = fig.compute("tiny", 0)
    assert data["etas"][0] == 0.0 and data["tied"][0] and data["tie_disagree"][0]
    assert data["theory"]["train_acc"][0, -1] == pytest.approx(1 / 3)
