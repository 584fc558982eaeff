import numpy as np
import pytest

from figures import label_averaging as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs


@pytest.mark.slow
def test_label_averaging_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path)]) == 0
    rows = assert_outputs(tmp_path, fig.NAME)
    p = fig.PRESETS["tiny"]
    assert len(rows) == (p["rounds"] + 1) * p["n_classes"] * p["per_class"]


def test_label_averaging_mislabeled_points_pulled_to_class_average():
    data = fig.compute("tiny", 0)
    mis = data["noisy"] != data["y"]
    pe = data["p_true_exact"]
    # Mislabeled points start below 1/K (they memorise a wrong label) and rise over the rounds.
    assert np.all(pe[0, mis] < 1 / 3) and np.all(pe[-1, mis] > pe[0, mis])


def test_label_averaging_check_fails_on_wrong_closed_form(monkeypatch):
    real = fig.linearised_outputs
    monkeypatch.setattr(fig, "linearised_outputs", lambda *a, **k: real(*a, **k) + 1e-6)
    with pytest.raises(AgreementError, match="closed form vs group-level linearisation"):
        fig.compute("tiny", 0)


def test_label_averaging_legend_hides_nothing():
    import matplotlib.pyplot as plt

    figure = fig.plot(fig.compute("tiny", 0))
    figure.canvas.draw()
    r = figure.canvas.get_renderer()
    assert figure.axes[2].get_legend() is None  # not inside the panel with the 1/K line
    (legend,) = figure.legends
    box = legend.get_window_extent(r)
    assert not any(box.overlaps(ax.get_window_extent(r)) for ax in figure.axes)
    assert "1/K (uniform)" in [t.get_text() for t in figure.axes[2].texts]  # labelled at its line
    plt.close(figure)
