import pytest

from figures import exact_vs_linear as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs, corrupted


@pytest.mark.slow
def test_exact_vs_linear_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path), "--workers", "1"]) == 0
    assert_outputs(tmp_path, fig.NAME)


def test_exact_vs_linear_check_fails_on_wrong_theory(monkeypatch):
    real = fig.predict_exact
    monkeypatch.setattr(fig, "predict_exact", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="disagree beyond Monte Carlo error"):
        fig.compute("tiny", 0)
