import numpy as np
import pytest

from figures import FIGURES
from figures import finite_theories as ft
from figures import sd_generalization as fig
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs, corrupted


@pytest.fixture(autouse=True)
def _fresh_cache():
    ft.clear_cache()  # a test that replaces a theory must not see (or leave) cached answers
    yield
    ft.clear_cache()


@pytest.mark.slow
def test_sd_generalization_smoke(tmp_path):
    assert fig.NAME in FIGURES
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path), "--workers", "1"]) == 0
    rows = assert_outputs(tmp_path, fig.NAME)
    # p = N/2, N, 4N with N = 24 (K = 3); p = N/2, N, 2N with N = 32 (K = 4, lam = 1e-4)
    assert {int(r["dim"]) for r in rows if r["n_classes"] == "3"} == {12, 24, 96}
    assert {int(r["dim"]) for r in rows if r["n_classes"] == "4"} == {16, 32, 64}
    refused = {r["dim"] for r in rows if r["linearised_refused"] == "true"}
    assert refused == {"16"}  # lam = 1e-4 with p = N/2: the random-matrix part fails


@pytest.mark.slow
def test_sd_generalization_checks_every_round_dimension_panel_and_row():
    data = fig.compute("tiny", 0)
    rows = fig.PRESETS["tiny"]["rows"]
    n_exact = sum(len(fig.METRICS) * len(r["ratios"]) * (r["rounds"] + 1) for r in rows)
    assert data["check_exact"]["n_comparisons"] == n_exact
    # linearised Monte Carlo only in the first row (trials_linear > 0), no refused dimension there
    assert data["check"]["n_comparisons"] == len(fig.METRICS) * 3 * (rows[0]["rounds"] + 1)
    first, second = data["rows"]
    assert first["lin"]["pop_acc"].shape == (rows[0]["trials_linear"], 3, rows[0]["rounds"] + 1)
    assert second["lin"] is None
    assert np.all(first["limit"]["pop_acc"] == 1.0)  # the block limit: plurality holds
    # the quadrature error enters the exact theory's tolerance
    assert data["check_exact"]["theory_atol"] > fig.FINITE_EXACT_THEORY_ATOL


@pytest.mark.slow
def test_sd_generalization_flags_vs_theory_distance():
    data = fig.compute("tiny", 0)
    for row in data["rows"]:
        refused = np.array([r is not None for r in row["refused"]])
        for m in fig.METRICS:
            gap = np.abs(row["curves"]["finite"][m] - row["curves"]["exact"][m])
            np.testing.assert_array_equal(
                row["off"][m], (gap > ft.LINEARISED_TOL) & ~refused[:, None]
            )
    assert [r is not None for r in data["rows"][1]["refused"]] == [True, False, False]


@pytest.mark.slow
def test_sd_generalization_check_fails_on_wrong_linearised_theory(monkeypatch):
    real = ft.predict_finite
    monkeypatch.setattr(ft, "predict_finite", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="linearised simulation vs finite-p theory"):
        fig.compute("tiny", 0)


@pytest.mark.slow
def test_sd_generalization_check_fails_on_wrong_exact_theory(monkeypatch):
    real = ft.predict_finite_exact
    monkeypatch.setattr(ft, "predict_finite_exact", lambda *a, **k: corrupted(real(*a, **k)))
    with pytest.raises(AgreementError, match="exact SD simulation vs exact finite-p theory"):
        fig.compute("tiny", 0)


@pytest.mark.slow
def test_sd_generalization_shares_its_predictions_with_finite_phase():
    from figures import finite_phase

    fig.compute("tiny", 0)
    before = ft.cache_info()
    finite_phase.compute_exact_maps("tiny")
    after = ft.cache_info()
    # only the block-limit rows (N/p = 0, one per configuration) are new
    assert after["misses"] - before["misses"] == len(fig.PRESETS["tiny"]["rows"])
    assert after["hits"] - before["hits"] == sum(
        len(r["ratios"]) for r in fig.PRESETS["tiny"]["rows"]
    )
