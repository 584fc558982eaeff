import numpy as np
import pytest

from figures import sd_vs_pll as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs, corrupted


@pytest.mark.slow
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


def test_tie_ranges_are_thin_and_side_by_side():
    # At the plurality boundary every round's population theory is a whole-class tie (range
    # 0..1): the ranges must stay thin and apart, not merge into one bar that hides panel (b).
    from matplotlib.collections import LineCollection

    data = fig.compute("tiny", 0)
    e = 1  # pretend every model ties at the second noise rate
    for m in fig.METRICS:
        data["theory"][m][e, :] = 0.0
        data["upper"][m][e, :] = 1.0
    figure = fig.plot(data)
    ax = figure.axes[1]
    ranges = [  # the dotted LineCollections (error bars of the simulation are solid)
        c
        for c in ax.collections
        if isinstance(c, LineCollection) and c.get_linestyle()[0][1] is not None
    ]
    xs = [seg[0][0] for c in ranges for seg in c.get_segments()]
    n_models = fig.PRESETS["tiny"]["rounds"] + 2
    assert len(ranges) >= n_models
    assert all(max(c.get_linewidths()) <= 1.5 for c in ranges)
    half_step = 0.5 * float(np.min(np.diff(data["etas"])))  # models are dodged within it
    at_e = [x for x in xs if abs(x - data["etas"][e]) < half_step]
    assert len(at_e) == n_models and len(set(np.round(at_e, 6))) == n_models
