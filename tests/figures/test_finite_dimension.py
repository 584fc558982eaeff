import numpy as np
import pytest

from figures import finite_dimension as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs, corrupted


@pytest.mark.slow
def test_finite_dimension_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path), "--workers", "1"]) == 0
    rows = assert_outputs(tmp_path, fig.NAME)
    checked = {int(r["dim"]) for r in rows if r.get("checked") == "true"}
    n_samples = fig.PRESETS["tiny"]["n_classes"] * fig.PRESETS["tiny"]["per_class"]
    assert checked == {12, 48} and all(n_samples / 2 <= p <= 20 * n_samples for p in checked)


def test_finite_dimension_checks_the_finite_theory_at_realistic_p():
    data = fig.compute("tiny", 0)
    assert data["check"]["n_comparisons"] == 2 * 2 * 2  # metrics x (teacher, SD t*) x checked p
    assert data["dims"][data["checked"]].max() <= 20 * 24
    # the drawn curve passes through the checked theory values
    for m in fig.METRICS:
        at = np.searchsorted(data["grid"], data["dims"])
        np.testing.assert_array_equal(data["curve"][m][at], data["finite"][m])


def test_finite_dimension_check_fails_on_wrong_finite_theory(monkeypatch):
    real = fig.predict_finite
    monkeypatch.setattr(fig, "predict_finite", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="linearised simulation vs finite-p theory"):
        fig.compute("tiny", 0)


def test_finite_dimension_check_fails_on_wrong_block_theory(monkeypatch):
    real = fig.predict_exact
    monkeypatch.setattr(fig, "predict_exact", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="disagree beyond Monte Carlo error"):
        fig.compute("tiny", 0)
