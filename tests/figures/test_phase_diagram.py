import pytest

from figures import phase_diagram as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs, corrupted


@pytest.mark.slow
def test_phase_diagram_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path), "--workers", "1"]) == 0
    assert_outputs(tmp_path, fig.NAME)


def test_phase_diagram_check_fails_on_wrong_theory(monkeypatch):
    real = fig.predict_exact
    monkeypatch.setattr(fig, "predict_exact", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="disagree beyond Monte Carlo error"):
        fig.compute("tiny", 0)


def test_noise_rates_without_mislabeled_points_are_hatched_and_explained(monkeypatch):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    # eta = 0 flips no label: its column has nothing to measure and must say so.
    monkeypatch.setitem(fig.PRESETS, "tiny", {**fig.PRESETS["tiny"], "etas": (0.0, 0.3)})
    data = fig.compute("tiny", 0)
    figure = fig.plot(data)
    for ax in figure.axes[: len(data["panels"])]:
        (patch,) = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_hatch()]
        assert patch.get_x() < 0.0 < patch.get_x() + patch.get_width()  # the eta = 0 column
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "no mislabeled point (exact counts)" in labels
    plt.close(figure)
