import numpy as np
import pytest

from figures import finite_phase as fig
from figures import finite_theories as ft
from figures.common import AgreementError
from tests.figures._helpers import assert_outputs


@pytest.fixture(autouse=True)
def _fresh_cache():
    ft.clear_cache()
    yield
    ft.clear_cache()


@pytest.mark.slow
def test_finite_phase_smoke(tmp_path):
    assert fig.main(["--preset", "tiny", "--out", str(tmp_path)]) == 0
    rows = assert_outputs(tmp_path, fig.NAME)
    exact = [r for r in rows if r["kind"] == "exact"]
    assert exact and {r["n_classes"] for r in exact} == {"3", "4"}
    assert {r["linearised_refused"] for r in exact} == {"true", "false"}


def test_finite_phase_check_fails_on_wrong_theory(monkeypatch):
    import dataclasses

    real = fig.predict_finite

    def wrong(*args, **kwargs):
        out = real(*args, **kwargs)
        return dataclasses.replace(out, population_acc=np.zeros_like(out.population_acc))

    monkeypatch.setattr(fig, "predict_finite", wrong)
    with pytest.raises(AgreementError, match="disagree beyond Monte Carlo error"):
        fig.compute("tiny", 0)


@pytest.mark.slow
def test_exact_maps_vs_theories():
    """Each exact map holds the exact and linearised theories at its points, its crosses are
    the distance rule and its hatched rows the refusal rule (wiring checked value by value)."""
    from theory.finite import MixtureModel, predict_finite
    from theory.finite_exact import predict_finite_exact
    from theory.noise import exact_counts, transition_matrix

    maps = fig.compute_exact_maps("tiny")
    assert [m["params"]["n_classes"] for m in maps] == [3, 4]
    for m in maps:
        cfg = m["params"]
        k, n = cfg["n_classes"], cfg["per_class"]
        counts = exact_counts(transition_matrix("sym", k, cfg["eta"]), n)
        assert m["ratios"][0] == 0.0  # the block limit is the first row
        i = len(m["ratios"]) - 1  # the largest N/p
        model = MixtureModel(k, n, round(k * n / m["ratios"][i]), cfg["c"], cfg["d"])
        ex = predict_finite_exact(
            model, counts, cfg["lam"], cfg["rounds"], points=cfg["points"], tol=ft.EXACT_TOL
        )
        lin = predict_finite(model, counts, cfg["lam"], cfg["rounds"])
        for f in fig.EXACT_FIELDS:
            np.testing.assert_array_equal(m["exact"][f][i], getattr(ex, f))
            np.testing.assert_array_equal(m["linear"][f][i], getattr(lin, f))
            refused = np.array([r is not None for r in m["refused"]])
            gap = np.abs(m["linear"][f] - m["exact"][f])
            np.testing.assert_array_equal(
                m["off"][f], (gap > ft.LINEARISED_TOL) & ~refused[:, None]
            )
    # K = 4, lam = 1e-4: refused at N/p = 2 only
    assert [r is not None for r in maps[1]["refused"]] == [False, False, False, True]


def test_exact_map_configs_follow_sd_generalization():
    from figures import sd_generalization as sdg

    for preset in fig.PRESETS:
        cfgs = fig.exact_map_configs(preset)
        rows = sdg.PRESETS[preset]["rows"]
        assert len(cfgs) == len(rows) + len(fig.PRESETS[preset]["exact_extra"])
        for cfg, row in zip(cfgs, rows, strict=False):
            big_n = row["n_classes"] * row["per_class"]
            assert sorted(round(big_n / r) for r in cfg["ratios"][1:]) == sorted(sdg.dims_of(row))


def test_check_trials_of_t_rounds_vs_trials_of_all_rounds():
    """The checks simulate rounds 0..t only: round t of such a trial is, bit for bit, round t of a
    trial of all R rounds with the same seed."""
    from simulations.linear_trials import LinearTrial, run_linear_trials
    from theory.noise import transition_matrix

    tr = tuple(map(tuple, transition_matrix("sym", 3, 0.4)))
    full = run_linear_trials(LinearTrial(3, 10, 30, 0.4, 0.1, 1e-3, 6, tr), 3, base_seed=2)
    short = run_linear_trials(LinearTrial(3, 10, 30, 0.4, 0.1, 1e-3, 2, tr), 3, base_seed=2)
    for key in ("pop_acc", "train_acc", "train_acc_mislabeled"):
        np.testing.assert_array_equal(short[key], full[key][:, :3])
