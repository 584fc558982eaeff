"""Headless tests of the explorer's exact finite-ratio theory and of its flags on the linearised
finite-p theory. Expected values come straight from the theory modules."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from figures import explorer_model as em
from figures import finite_theories as ft
from figures.explorer import ExplorerApp
from theory.finite import MixtureModel, predict_finite
from theory.finite_exact import predict_finite_exact
from theory.groups import BlockModel, predict_linear
from theory.noise import exact_counts, transition_matrix

BASE = {"n_classes": 3, "per_class": 10, "c": 0.5, "d": 0.1, "lam": 1e-3, "noise": "sym",
        "eta": 0.3, "rounds": 3, "n_over_p": 1.0}  # fmt: skip


def ydata(app, name):
    return np.asarray(app.panels.lines[name].get_ydata(), dtype=float)


def legend(app):
    return [t.get_text() for t in app.panels.legend.get_texts()]


@pytest.fixture(autouse=True)
def _fresh_cache():
    ft.clear_cache()
    yield
    ft.clear_cache()


@pytest.fixture(scope="module")
def _shared_app():
    a = ExplorerApp(BASE, fig=plt.figure(figsize=(15, 9)))
    yield a
    plt.close(a.fig)


@pytest.fixture
def app(_shared_app):
    _shared_app.interactive = False
    _shared_app.set_params(**BASE)
    return _shared_app


def _theories(params):
    p = BASE | params
    k, n = p["n_classes"], p["per_class"]
    counts = exact_counts(transition_matrix("sym", k, p["eta"]), n)
    model = MixtureModel(k, n, round(k * n / p["n_over_p"]), p["c"], p["d"])
    exact = predict_finite_exact(
        model, counts, p["lam"], p["rounds"], points=em.EXACT_POINTS, tol=ft.EXACT_TOL
    )
    return exact, predict_finite(model, counts, p["lam"], p["rounds"])


@pytest.mark.slow
def test_exact_theory_pending_then_drawn_vs_predict_finite_exact(app):
    state = app.state
    assert state.exact_status == "pending" and state.finite_exact is None
    assert state.exact_seconds > 0 and "not computed yet" in app.panels.exact_note.get_text()
    # K = 3, lam = 1e-3 is outside the regime map: every linearised round flagged meanwhile
    assert state.linear_off_reason == "regime"
    np.testing.assert_array_equal(app.panels.lines["train_flag"].get_xdata(), state.rounds)
    assert "linearised, outside validated regime" in legend(app)
    app.compute_exact_now()
    exact, lin = _theories({})
    state = app.state
    assert state.exact_status == "done"
    np.testing.assert_array_equal(ydata(app, "train_exact"), exact.train_acc)
    np.testing.assert_array_equal(ydata(app, "mis_exact"), exact.train_acc_mislabeled)
    np.testing.assert_array_equal(ydata(app, "pop_exact"), exact.population_acc)
    np.testing.assert_array_equal(ydata(app, "pop_linear"), lin.population_acc)
    assert app.panels.lines["train_exact"].get_alpha() == 1
    assert "exact, finite p = 30" in legend(app)
    assert not app.panels.exact_note.get_visible()
    assert "exact finite-p theory: train acc." in app.info_text.get_text()
    # crosses exactly where the linearised value is more than 0.03 from the exact one
    for key, field in (("train", "train_acc"), ("pop", "population_acc")):
        off = np.abs(getattr(lin, field) - getattr(exact, field)) > ft.LINEARISED_TOL
        np.testing.assert_array_equal(
            app.panels.lines[f"{key}_flag"].get_xdata(), state.rounds[off]
        )
    assert state.linear_off_reason == "exact"


@pytest.mark.slow
def test_exact_theory_comes_from_the_cache_when_revisited(app):
    app.compute_exact_now()
    app.set_params(eta=0.2)
    assert app.state.exact_status == "pending"
    app.set_params(eta=0.3)
    assert app.state.exact_status == "done"  # no computation: the shared cache answered
    assert ft.cache_info()["misses"] == 1


def test_exact_theory_skipped_with_a_note_when_too_costly(app):
    app.set_params(n_classes=10, per_class=20, rounds=15)
    state = app.state
    assert state.exact_status == "skipped" and state.exact_seconds > em.EXACT_MAX_SECONDS
    assert "not computed" in app.panels.exact_note.get_text()
    assert "not computed" in app.info_text.get_text()
    app.compute_exact_now()  # a no-op: skipped points are never computed
    assert app.state.finite_exact is None
    assert app.panels.lines["train_exact"].get_alpha() < 1  # the block model's, faded
    assert "exact (p→∞)" in legend(app)


def test_exact_theory_unavailable_for_p_not_above_k(app):
    app.set_params(per_class=2, n_over_p=2.0)  # N = 6, p = 3 = K
    assert app.state.exact_status == "unavailable"
    assert "p > K" in app.panels.exact_note.get_text()


@pytest.mark.slow
def test_refused_linearised_theory_is_not_drawn(app):
    app.set_params(lam=1e-4, n_over_p=2.0)
    state = app.state
    assert state.finite is None and state.finite_refused is not None
    assert "refused at N/p = 2" in app.info_text.get_text()
    block = predict_linear(
        BlockModel(3, 10, 0.5, 0.1), exact_counts(transition_matrix("sym", 3, 0.3), 10), 1e-4, 3
    )
    np.testing.assert_array_equal(ydata(app, "pop_linear"), block.population_acc)
    assert app.panels.ax_pop.get_title().endswith("p = ∞")  # nothing at finite p drawn yet
    assert len(app.panels.lines["train_flag"].get_xdata()) == 0
    app.compute_exact_now()
    assert "exact, finite p = 15" in legend(app)  # the exact theory is not refused
    assert "linearised (p→∞)" in legend(app)
    assert app.panels.lines["train_linear"].get_alpha() < 1
    assert len(app.panels.lines["train_flag"].get_xdata()) == 0  # nothing to flag: not drawn


@pytest.mark.slow
def test_background_job_is_applied_only_to_its_own_point(app):
    app.interactive = True  # schedule as a window would (Agg timers never fire: call by hand)
    app.set_params(eta=0.25)
    assert app.state.exact_status == "pending" and "computing" in app.state.exact_message
    app._start_exact()
    job = app._exact_job
    assert job is not None and job.wait(120)
    app._poll_exact()
    assert app.state.exact_status == "done"
    np.testing.assert_array_equal(
        ydata(app, "pop_exact"), _theories({"eta": 0.25})[0].population_acc
    )
    # a job whose point is no longer on screen is cancelled and never drawn
    app.set_params(eta=0.35)
    app._start_exact()
    stale = app._exact_job
    app.set_params(eta=0.1)  # another count matrix (0.15 would have 0.25's: a cache hit)
    assert stale.cancelled and app._exact_job is None
    stale.wait(120)
    assert app.state.exact_status == "pending"
    app._cancel_exact()


def test_exact_job_cancels_between_rounds():
    p = em.normalise_params(BASE | {"rounds": 6})
    _, counts = em.noise_counts(3, 10, "sym", 0.3)
    job = em.ExactFiniteJob(p, counts)
    job.cancel()
    job.run()
    assert job.done and job.result is None and job.error is None
    assert ft.cache_info()["size"] == 0
