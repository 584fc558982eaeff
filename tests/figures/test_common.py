"""Tests of the shared figure machinery: agreement checks, tie bounds, style."""

import math

import numpy as np
import pytest

from figures import FIGURES, style
from figures.common import (
    NO_MC_WORKERS,
    AgreementError,
    check_close,
    check_mc_agreement,
    figure_run,
    figure_spec,
    mc_tolerance,
    mean_ci95,
    prediction_bounds,
    result_mean_ci95,
    sample_columns,
    simulate_figure,
    tie_fractions,
)
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.noise import exact_counts, transition_matrix
from theory.pll import predict_pll
from theory.spec import METRICS, Spec, predict


def test_check_mc_agreement_accepts_matching_noisy_data():
    rng = np.random.default_rng(0)
    theory = np.array([0.2, 0.5, 0.9])
    samples = theory + 0.05 * rng.standard_normal((30, 3))
    out = check_mc_agreement(samples, theory)
    assert out["n_comparisons"] == 3
    assert out["max_excess"] <= 0


def test_check_mc_agreement_raises_on_systematic_offset_without_noise():
    # All trials agree (s = 0) but differ from the theory: a real disagreement, whatever T is.
    samples = np.full((50, 2), 0.98)
    with pytest.raises(AgreementError, match="1 of 2"):
        check_mc_agreement(samples, [0.98, 1.0], labels=["a", "b"])


def test_check_mc_agreement_raises_beyond_monte_carlo_error():
    rng = np.random.default_rng(1)
    samples = 0.5 + 0.01 * rng.standard_normal((40, 1))
    # Offset of 20 standard errors (s / sqrt(T) ~ 0.0016): far beyond any Bonferroni t quantile.
    with pytest.raises(AgreementError, match="disagree beyond Monte Carlo error"):
        check_mc_agreement(samples, [0.5 + 20 * 0.01 / math.sqrt(40)])


def test_mc_tolerance_shrinks_like_one_over_sqrt_trials():
    base = np.array([0.0, 1.0])
    _, tol_small = mc_tolerance(np.tile(base, 8)[:, None])
    _, tol_large = mc_tolerance(np.tile(base, 800)[:, None])
    # Same sample sd (~0.5); 100x more trials -> ~10x smaller tolerance (t quantiles differ a bit).
    ratio = tol_small[0] / tol_large[0]
    assert 10 < ratio < 25


def test_mc_tolerance_bonferroni_grows_with_comparisons():
    samples = np.tile([0.0, 1.0], 10)[:, None]
    _, one = mc_tolerance(samples, 1)
    _, many = mc_tolerance(samples, 1000)
    assert many[0] > one[0]


def test_check_mc_agreement_interval_for_ties():
    samples = np.full((10, 1), 0.5)
    check_mc_agreement(samples, [0.0], upper=[1.0])  # inside [0, 1]: accepted
    with pytest.raises(AgreementError):
        check_mc_agreement(samples, [0.0], upper=[0.25])
    with pytest.raises(ValueError, match="upper"):
        check_mc_agreement(samples, [0.5], upper=[0.25])


def test_check_mc_agreement_nan_handling():
    samples = np.array([[np.nan, 1.0], [np.nan, 1.0]])
    check_mc_agreement(samples, [np.nan, 1.0])
    with pytest.raises(AgreementError, match="no defined simulation value"):
        check_mc_agreement(samples, [0.5, 1.0])
    with pytest.raises(AgreementError, match="theory undefined"):
        check_mc_agreement(np.ones((2, 1)), [np.nan])


def test_check_close():
    assert check_close([1.0, 2.0], [1.0, 2.0 + 1e-12], atol=1e-10, what="x") < 1e-10
    with pytest.raises(AgreementError, match="max abs difference"):
        check_close([1.0], [1.1], atol=1e-3, what="x")
    with pytest.raises(AgreementError, match="NaN"):
        check_close([np.nan], [1.0], atol=1.0, what="x")


def test_mean_ci95_matches_student_t():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    mean, half = mean_ci95(x)
    assert mean[0] == pytest.approx(1.5)
    # t_{0.975, 3} = 3.182446..., s = sqrt(5/3)
    assert half[0] == pytest.approx(3.182446305 * math.sqrt(5 / 3) / 2, rel=1e-8)
    mean, half = mean_ci95(np.array([[np.nan], [np.nan]]))
    assert np.isnan(mean[0]) and half[0] == 0


def test_tie_bounds_of_whole_class_pll_tie():
    # eta = 0.05 with n = 25: every class gets the same top-2 pair {k, k+1}, so every training
    # point of the PLL student is an exact tie (theory accuracy 0, all points tied).
    model = BlockModel(4, 25, 0.4, 0.1)
    counts = exact_counts(transition_matrix("sym", 4, 0.05), 25)
    pred = predict_pll(model, counts, 1e-3, method="exact")
    lo, hi = prediction_bounds(pred, "train_acc")
    assert lo[0] == 0.0 and hi[0] == pytest.approx(1.0)
    assert tie_fractions(pred.outputs[0], counts) == pytest.approx((1.0, 1.0, 1.0))


def test_write_csv_numpy_scalars_read_back_as_numbers(tmp_path):
    # Under numpy 2, repr(np.float64(0.025)) is 'np.float64(0.025)': never write that.
    row = {"a": np.float64(0.025), "b": np.float32(0.5), "c": np.int64(3), "d": np.bool_(True)}
    row |= {"e": np.float64("nan"), "f": np.float64("inf"), "g": 1e-300}
    path = style.write_csv([row], tmp_path, "t")
    assert path.read_text().splitlines()[1] == "0.025,0.5,3,true,nan,inf,1e-300"
    from tests.figures._helpers import assert_csv_reads_back

    (back,) = assert_csv_reads_back(path)
    assert float(back["a"]) == 0.025 and float(back["g"]) == 1e-300


@pytest.mark.slow
def test_save_figure_is_byte_reproducible(tmp_path):
    def draw():
        fig, axes = style.figure(2, 1)
        axes[0].plot([0, 1], [1, 2], "o-", label="λ, η")
        axes[0].legend()
        axes[1].imshow(np.arange(12.0).reshape(3, 4), cmap=style.CMAP)
        fig.suptitle("μ test")
        return fig

    a = style.save_figure(draw(), tmp_path / "a", "f")
    b = style.save_figure(draw(), tmp_path / "b", "f")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    # no time stamp that would differ in the next second
    assert b"CreationDate" not in a[1].read_bytes()


def test_style_helpers(tmp_path):
    assert style.fmt_count(10**8) == "10⁸"
    assert style.fmt_count(1234) == "1,234"
    path = style.write_csv([{"a": 1, "b": float("nan")}, {"a": 2, "c": True}], tmp_path, "t")
    assert path.read_text().splitlines() == ["a,b,c", "1,nan,", "2,,true"]
    with pytest.raises(ValueError, match="non-empty"):
        style.write_csv([], tmp_path, "t")


def test_theory_atol_admits_the_theorys_own_error_and_no_more():
    # A deterministic equivalent off by 0.02 with tiny Monte Carlo error: rejected as exact theory,
    # accepted with theory_atol = 0.03, rejected again at an offset of 0.04.
    rng = np.random.default_rng(2)
    samples = 0.5 + 1e-3 * rng.standard_normal((40, 1))
    with pytest.raises(AgreementError):
        check_mc_agreement(samples, [0.52])
    out = check_mc_agreement(samples, [0.52], theory_atol=0.03)
    assert out["tol"][0] == 0.03 and out["max_excess"] < 0
    with pytest.raises(AgreementError, match="tol 0.03"):
        check_mc_agreement(samples, [0.54], theory_atol=0.03)
    with pytest.raises(ValueError, match="theory_atol"):
        check_mc_agreement(samples, [0.5], theory_atol=-0.1)


# ---------------------------------------------------------------------------------------------
# Specs and Results (issue 23)

PRESET = dict(n_classes=3, per_class=6, c=0.4, d=0.1, lam=1e-3, eta=0.4, rounds=3, trials=2)


def test_figure_spec_takes_the_spec_keys_of_a_preset():
    spec = figure_spec(PRESET, lam=1e-2)
    assert spec == Spec(n_classes=3, per_class=6, c=0.4, d=0.1, lam=1e-2, eta=0.4, rounds=3)
    assert not spec.finite  # a preset's simulation dimension is never taken implicitly
    assert figure_spec(PRESET, dim=50).dim == 50


def test_figure_spec_names_a_bad_parameter():
    with pytest.raises(ValueError, match="lam"):
        figure_spec(PRESET, lam=-1.0)


@pytest.mark.parametrize("source, direct", [("exact", predict_exact), ("linear", predict_linear)])
def test_figure_spec_predict_vs_group_theory(source, direct):
    # What the figures now draw (a Result of their preset's Spec) must be the very floats of the
    # direct call they made before (byte-identical CSVs).
    for lam in (1e-2, 1e-3):
        result = predict(figure_spec(PRESET, lam=lam), source=source)
        counts = exact_counts(transition_matrix("sym", 3, 0.4), 6)
        pred = direct(BlockModel(3, 6, 0.4, 0.1), counts, lam, 3)
        np.testing.assert_array_equal(
            result.value("train_acc_mislabeled"), pred.train_acc_mislabeled
        )
        np.testing.assert_array_equal(result.value("pop_acc"), pred.population_acc)


def test_figure_run_fills_the_shared_docstring():
    @figure_run("demo", NO_MC_WORKERS)
    def run(*, preset="quick", out=None, seed=0, workers=1):
        """Draws nothing."""

    assert run.__doc__.startswith("Compute the figure, check it, and write ``demo`` to ``out``.")
    assert "python -m figures.demo" in run.__doc__
    assert NO_MC_WORKERS in run.__doc__
    assert run.__doc__.rstrip().endswith("Notes\n-----\nDraws nothing.")


#: Figures whose import alone takes ~0.7 s (scikit-learn).
HEAVY_IMPORTS = ("real_gain", "pll_real")


@pytest.mark.parametrize(
    "name",
    [pytest.param(f, marks=pytest.mark.slow) if f in HEAVY_IMPORTS else f for f in FIGURES],
)
def test_figure_run_docstrings_name_their_figure(name):
    # Every figure's run is documented (through figure_run or by hand) with its own name and the
    # shared parameter section.
    import importlib

    doc = importlib.import_module(f"figures.{name}").run.__doc__
    assert f"``{name}``" in doc
    for param in ("preset :", "out :", "seed :", "workers :"):
        assert param in doc


def _small_specs():
    return [figure_spec(PRESET, rounds=2, dim=dim) for dim in (12, 40)]


@pytest.mark.slow
def test_sample_columns_vs_run_mc_many():
    # The figures' Monte Carlo moved from run_mc_many to simulate_many: the same floats, trial
    # for trial, for SD and the PLL student (their CSVs stay byte-identical).
    from simulations.gram_trials import MixtureTrial, run_mc_many

    specs = _small_specs()
    results = simulate_figure(specs, 2, 3, 1, None, pll=True, n_test=4)
    tr = tuple(map(tuple, transition_matrix("sym", 3, 0.4)))
    old = run_mc_many(
        [MixtureTrial(3, 6, s.dim, 0.4, 0.1, 1e-3, 2, tr, pll=True, n_test=4) for s in specs], 2, 3
    )
    sd = sample_columns(results, ("pop_acc", "train_acc_mislabeled"))
    pll = sample_columns([r.pll for r in results], ("pop_acc",))
    assert sd["pop_acc"].shape == (2, 2, 3)
    for j, ref in enumerate(old):
        np.testing.assert_array_equal(sd["pop_acc"][:, j], ref["pop_acc"])
        np.testing.assert_array_equal(sd["train_acc_mislabeled"][:, j], ref["train_acc_mislabeled"])
        np.testing.assert_array_equal(pll["pop_acc"][:, j, 1], ref["pll_pop_acc"])
    for res in results:
        mean, half = result_mean_ci95(res, "pop_acc")
        ref_mean, ref_half = mean_ci95(res.samples[:, :, METRICS.index("pop_acc")])
        np.testing.assert_array_equal(mean, ref_mean)
        np.testing.assert_array_equal(half, ref_half)


def test_sample_columns_vs_run_linear_many():
    from simulations.linear_trials import LinearTrial, run_linear_many

    specs = _small_specs()
    results = simulate_figure(specs, 3, 1, 1, None, backend="linearised")
    tr = tuple(map(tuple, transition_matrix("sym", 3, 0.4)))
    old = run_linear_many([LinearTrial(3, 6, s.dim, 0.4, 0.1, 1e-3, 2, tr) for s in specs], 3, 1)
    trials = sample_columns(results, ("pop_acc",))["pop_acc"]
    for j, ref in enumerate(old):
        np.testing.assert_array_equal(trials[:, j], ref["pop_acc"])


def test_sample_columns_and_mean_ci95_refuse_a_theory():
    theory = predict(figure_spec(PRESET), source="linear")
    with pytest.raises(ValueError, match="per-trial samples"):
        sample_columns([theory], ("pop_acc",))
    with pytest.raises(ValueError, match="Monte Carlo Result"):
        result_mean_ci95(theory, "pop_acc")
    with pytest.raises(ValueError, match="at least one"):
        sample_columns([], ("pop_acc",))


def test_simulate_figure_refuses_another_count_matrix(monkeypatch):
    import dataclasses

    import simulations.monte_carlo as mc

    real = mc.simulate_many

    def wrong_counts(*args, **kw):
        return [dataclasses.replace(r, counts=r.counts[:, ::-1]) for r in real(*args, **kw)]

    monkeypatch.setattr(mc, "simulate_many", wrong_counts)
    with pytest.raises(RuntimeError, match="another count matrix"):
        simulate_figure(_small_specs()[:1], 1, 0, 1, None, backend="linearised")
