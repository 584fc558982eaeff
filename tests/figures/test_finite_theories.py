"""figures.finite_theories: the shared cache answers exactly what the theory answers."""

import math

import numpy as np
import pytest

from figures import finite_theories as ft
from theory.finite import MixtureModel, predict_finite
from theory.finite_exact import predict_finite_exact
from theory.finite_exact.report import LINEARISED_TOL, random_matrix_failure
from theory.noise import exact_counts, transition_matrix

MODEL = MixtureModel(3, 8, 24, 0.4, 0.1)
COUNTS = exact_counts(transition_matrix("sym", 3, 0.4), 8)
FIELDS = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")


@pytest.fixture(autouse=True)
def _fresh_cache():
    ft.clear_cache()
    yield
    ft.clear_cache()


def test_exact_accuracies_vs_predict_finite_exact():
    got = ft.exact_accuracies(MODEL, COUNTS, 1e-3, 2, points=16)
    ref = predict_finite_exact(MODEL, COUNTS, 1e-3, 2, points=16, tol=ft.EXACT_TOL)
    for f in FIELDS:
        np.testing.assert_array_equal(got.get(f), getattr(ref, f))
    np.testing.assert_array_equal(
        got.quadrature_err, np.maximum(ref.train_quadrature_err, ref.population_quadrature_err)
    )
    assert got.converged and got.points == 16 and got.seconds > 0


@pytest.mark.slow
def test_exact_cache_prefix_vs_fresh_prediction():
    """A cached prediction with more rounds answers a request with fewer: bit for bit what a
    fresh prediction of those rounds gives (round t depends on rounds <= t only)."""
    long = ft.exact_accuracies(MODEL, COUNTS, 1e-3, 3, points=16)
    short = ft.exact_accuracies(MODEL, COUNTS, 1e-3, 1, points=16)
    assert ft.cache_info() == {"size": 1, "hits": 1, "misses": 1} and short.seconds == 0.0
    fresh = predict_finite_exact(MODEL, COUNTS, 1e-3, 1, points=16, tol=ft.EXACT_TOL)
    for f in FIELDS:
        np.testing.assert_array_equal(short.get(f), getattr(fresh, f))
        np.testing.assert_array_equal(short.get(f), long.get(f)[:2])
    assert ft.is_cached(MODEL, COUNTS, 1e-3, 3, points=16)
    assert not ft.is_cached(MODEL, COUNTS, 1e-3, 4, points=16)
    assert not ft.is_cached(MODEL, COUNTS, 1e-3, 1, points=32)  # another quadrature
    assert ft.exact_estimate(MODEL, COUNTS, 1e-3, 2, points=16) == 0.0
    assert ft.exact_estimate(MODEL, COUNTS, 1e-2, 2, points=16) > 0.0


def test_cached_answers_are_copies():
    a = ft.exact_accuracies(MODEL, COUNTS, 1e-3, 1, points=16)
    a.population_acc[:] = -1.0
    b = ft.exact_accuracies(MODEL, COUNTS, 1e-3, 1, points=16)
    assert np.all(b.population_acc >= 0)


def test_linear_prediction_vs_predict_finite():
    got = ft.linear_prediction(MODEL, COUNTS, 1e-3, 2)
    ref = predict_finite(MODEL, COUNTS, 1e-3, 2)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(got, f), getattr(ref, f))
    assert ft.linear_prediction(MODEL, COUNTS, 1e-3, 2) is got  # cached


def test_exact_accuracies_refuses_what_the_theory_refuses():
    with pytest.raises(ValueError, match="must be > K"):  # p = K: refused with the model
        ft.exact_accuracies(MixtureModel(3, 8, 3, 0.4, 0.1), COUNTS, 1e-3, 1, points=16)
    with pytest.raises(ValueError, match="field"):
        ft.exact_accuracies(MODEL, COUNTS, 1e-3, 0, points=16).get("pop_acc")


@pytest.mark.parametrize(
    "lam, ratio", [(1e-4, 2.0), (1e-4, 1.0), (1e-3, 4.0), (1e-3, 2.0), (1e-2, 8.0), (1e-4, 0.0)]
)
def test_refusal_vs_random_matrix_failure(lam, ratio):
    expected = None if ratio == 0 else random_matrix_failure(lam, ratio)
    assert ft.refusal(lam, ratio) == expected
    assert (ft.refusal_rule(lam, ratio) is None) == (expected is None)


def test_linearised_off_is_the_distance_rule():
    lin = np.array([0.5, 0.5, 0.5, math.nan])
    exact = np.array([0.5 + LINEARISED_TOL / 2, 0.5 - 2 * LINEARISED_TOL, math.nan, 0.1])
    np.testing.assert_array_equal(ft.linearised_off(lin, exact), [False, True, False, False])


def test_fmt_lam():
    assert ft.fmt_lam(1e-4) == "10⁻⁴" and ft.fmt_lam(1.0) == "10⁰" and ft.fmt_lam(3e-4) == "0.0003"
