"""Headless tests of the explorer's N/p slider: finite-p theory curves (theory.finite) vs block.

Expected values come straight from the theory modules, so wiring mistakes (wrong p, wrong counts,
stale cache, wrong labels) show.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from figures import explorer_model as em
from figures.explorer import ExplorerApp
from figures.explorer_cli import parse_assignments
from theory.finite import MixtureModel, predict_finite
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.noise import exact_counts, transition_matrix

BASE = {"n_classes": 3, "per_class": 10, "c": 0.5, "d": 0.1, "lam": 1e-3, "noise": "sym",
        "eta": 0.3, "rounds": 4, "n_over_p": 0.0}  # fmt: skip


def ydata(app, name):
    return np.asarray(app.panels.lines[name].get_ydata(), dtype=float)


def legend(app):
    return [t.get_text() for t in app.panels.legend.get_texts()]


@pytest.fixture(scope="module")
def _shared_app():
    a = ExplorerApp(BASE, fig=plt.figure(figsize=(15, 9)))
    yield a
    plt.close(a.fig)


@pytest.fixture
def app(_shared_app):
    _shared_app.set_params(**BASE)
    return _shared_app


def _reference(params):
    p = BASE | params
    k, n = p["n_classes"], p["per_class"]
    counts = exact_counts(transition_matrix("sym", k, p["eta"]), n)
    dim = round(k * n / p["n_over_p"])
    finite = predict_finite(MixtureModel(k, n, dim, p["c"], p["d"]), counts, p["lam"], p["rounds"])
    block = BlockModel(k, n, p["c"], p["d"])
    exact = predict_exact(block, counts, p["lam"], p["rounds"])
    linear = predict_linear(block, counts, p["lam"], p["rounds"])
    return dim, finite, exact, linear


def test_ratio_slider_switches_linearised_curves_to_the_finite_theory(app):
    app.sliders["n_over_p"].set_val(0.5)  # like a mouse drag: p = N / 0.5 = 60
    dim, finite, exact, _ = _reference({"n_over_p": 0.5})
    assert dim == 60 and app.state.finite_dim == 60
    np.testing.assert_array_equal(ydata(app, "train_linear"), finite.train_acc)
    np.testing.assert_array_equal(ydata(app, "mis_linear"), finite.train_acc_mislabeled)
    np.testing.assert_array_equal(ydata(app, "pop_linear"), finite.population_acc)
    np.testing.assert_array_equal(ydata(app, "eig_bulk"), finite.bulk_weights)
    # the exact-softmax theory has no finite-p counterpart: still the block model, faded, labelled
    np.testing.assert_array_equal(ydata(app, "train_exact"), exact.train_acc)
    assert app.panels.lines["train_exact"].get_alpha() < 1
    labels = legend(app)
    assert "linearised, finite p = 60" in labels and "exact (p→∞)" in labels
    assert "PLL student, exact (p→∞)" in labels
    assert app.panels.ax_pop.get_title().endswith("p = 60")
    assert app.sliders["n_over_p"].label.get_text() == "N/p (p=60)"
    assert "finite p = 60" in app.info_text.get_text()


def test_ratio_zero_is_the_block_model_again(app):
    app.sliders["n_over_p"].set_val(1.0)
    app.sliders["n_over_p"].set_val(0.0)
    _, _, _, linear = _reference({"n_over_p": 1.0})
    np.testing.assert_array_equal(ydata(app, "train_linear"), linear.train_acc)
    np.testing.assert_array_equal(ydata(app, "pop_linear"), linear.population_acc)
    assert len(ydata(app, "eig_bulk")) == 0 and app.state.finite is None
    assert "linearised" in legend(app) and not any("p→∞" in t for t in legend(app))
    assert app.panels.lines["train_exact"].get_alpha() == 1
    assert app.sliders["n_over_p"].label.get_text() == "N/p (p=∞)"


def test_other_sliders_move_the_finite_theory_too(app):
    app.set_params(n_over_p=2.0, eta=0.45, rounds=3)
    _, finite, _, _ = _reference({"n_over_p": 2.0, "eta": 0.45, "rounds": 3})
    np.testing.assert_array_equal(ydata(app, "pop_linear"), finite.population_acc)
    assert app.sliders["n_over_p"].label.get_text() == "N/p (p=15)"


def test_large_k_and_unrealisable_points_fall_back_to_the_block_model_with_a_note(app):
    app.set_params(n_classes=em.FINITE_MAX_CLASSES + 1, per_class=4, n_over_p=1.0)
    assert app.state.ok and app.state.finite is None
    assert f"only for K <= {em.FINITE_MAX_CLASSES}" in app.info_text.get_text()
    assert app.panels.ax_train.get_title().endswith("p = ∞")
    app.set_params(n_classes=3, per_class=1, n_over_p=4.0)  # p = 3/4 -> 1 < K
    assert app.state.ok and app.state.finite is None
    assert "finite-p theory unavailable at p = 1" in app.info_text.get_text()


def test_monte_carlo_runs_at_the_theory_dimension():
    run = em.MonteCarloRun(BASE | {"n_over_p": 0.5, "dim": 400})
    assert run.dim == 60 and all(c.dim == 60 for c in run.configs.values())
    assert em.MonteCarloRun(BASE | {"dim": 400}).dim == 400  # p = inf: the dim setting


def test_ratio_parameter_validation_and_alias():
    with pytest.raises(ValueError, match="n_over_p"):
        em.normalise_params({"n_over_p": -1})
    assert parse_assignments(["N/p=0.5"]) == {"n_over_p": 0.5}
    assert em.theory_dim(em.normalise_params(BASE)) is None
