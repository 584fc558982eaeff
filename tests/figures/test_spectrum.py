import pytest

from figures import spectrum as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs


@pytest.mark.slow
def test_spectrum_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path)]) == 0
    rows = assert_outputs(tmp_path, fig.NAME)
    assert {r["kind"] for r in rows} == {
        "block_eigenvalue",
        "mixture_eigenvalue",
        "eigen_weight",
        "min_round",
    }


def test_spectrum_check_fails_on_wrong_min_round(monkeypatch):
    real = fig.min_rounds_linear
    monkeypatch.setattr(fig, "min_rounds_linear", lambda *a: real(*a) + 1)
    with pytest.raises(AgreementError, match="min_rounds_linear"):
        fig.compute("tiny", 0)
