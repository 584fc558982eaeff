"""Headless (Agg) tests of the regime explorer: widgets drive the drawn data to the theory's values.

The expected values are computed here directly from the theory modules (not through
``figures.explorer_model``), so a wiring mistake in the explorer (wrong parameter, wrong round,
stale cache) makes the drawn data differ from them. Update timings are measured in
``benchmarks/explorer.py``, not here.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from figures import explorer_model as em
from figures.explorer import ExplorerApp
from figures.explorer_cli import main, parse_assignments
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from theory.averaging import eigen_weights
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.noise import exact_counts, transition_matrix
from theory.pll import predict_pll

# Small, fast point; K=3 so that the PLL student is meaningful (K=2 candidates are all classes).
BASE = {"n_classes": 3, "per_class": 10, "c": 0.5, "d": 0.1, "lam": 1e-3, "noise": "sym",
        "eta": 0.3, "rounds": 6}  # fmt: skip


def theory(params):
    """Reference predictions straight from the theory modules."""
    p = dict(em.DEFAULT_PARAMS) | params
    model = BlockModel(p["n_classes"], p["per_class"], p["c"], p["d"])
    groups = em.superclass_groups(p["n_classes"]) if p["noise"] == "superclass" else None
    counts = exact_counts(
        transition_matrix(p["noise"], p["n_classes"], p["eta"], groups=groups), p["per_class"]
    )
    return {
        "model": model,
        "counts": counts,
        "linear": predict_linear(model, counts, p["lam"], p["rounds"]),
        "exact": predict_exact(model, counts, p["lam"], p["rounds"]),
        "pll_exact": predict_pll(model, counts, p["lam"], method="exact"),
        "pll_linear": predict_pll(model, counts, p["lam"], method="linear"),
        "weights": eigen_weights(
            model.eigenvalues, model.n_classes, p["lam"], model.n_samples, p["rounds"]
        ),
    }


def ydata(app, name):
    return np.asarray(app.panels.lines[name].get_ydata(), dtype=float)


def assert_drawn_theory(app, params):
    ref = theory(params)
    lin, ex = ref["linear"], ref["exact"]
    np.testing.assert_array_equal(
        app.panels.lines["train_exact"].get_xdata(), np.arange(lin.rounds + 1)
    )
    # Same functions on the same inputs: identical floats, no tolerance needed.
    np.testing.assert_array_equal(ydata(app, "train_exact"), ex.train_acc)
    np.testing.assert_array_equal(ydata(app, "train_linear"), lin.train_acc)
    np.testing.assert_array_equal(ydata(app, "mis_exact"), ex.train_acc_mislabeled)
    np.testing.assert_array_equal(ydata(app, "mis_linear"), lin.train_acc_mislabeled)
    np.testing.assert_array_equal(ydata(app, "pop_exact"), ex.population_acc)
    np.testing.assert_array_equal(ydata(app, "pop_linear"), lin.population_acc)
    np.testing.assert_array_equal(ydata(app, "train_pll_exact"), ref["pll_exact"].train_acc)
    np.testing.assert_array_equal(ydata(app, "pop_pll_linear"), ref["pll_linear"].population_acc)
    for j in range(3):
        np.testing.assert_allclose(ydata(app, f"eig{j}"), ref["weights"][:, j], rtol=1e-14)
    np.testing.assert_array_equal(app.state.counts, ref["counts"])
    assert not app.panels.error_text.get_visible()
    return ref


@pytest.fixture(scope="module")
def _shared_app():
    # One window for the module (building 16 axes costs ~0.5 s); each test resets it to BASE.
    a = ExplorerApp(BASE, fig=plt.figure(figsize=(15, 9)))
    yield a
    plt.close(a.fig)


@pytest.fixture
def app(_shared_app):
    a = _shared_app
    a.cancel_simulation("")
    a.set_params(**(BASE | {k: em.DEFAULT_PARAMS[k] for k in em.MC_DEFAULTS}))
    yield a
    a.cancel_simulation("")


def test_initial_frame_draws_theory(app):
    assert_drawn_theory(app, BASE)
    assert app.sliders["lam"].val == pytest.approx(np.log10(BASE["lam"]))


def test_lam_slider_changes_lines_to_theory(app):
    before = ydata(app, "train_exact").copy()
    app.sliders["lam"].set_val(np.log10(0.05))  # fires the widget callback like a mouse drag
    params = BASE | {"lam": 10 ** app.sliders["lam"].val}
    assert params["lam"] == pytest.approx(0.05)
    ref = assert_drawn_theory(app, params)
    # At lam=1e-3 the teacher memorises the flipped labels (70%); at lam=0.05 it does not.
    assert not np.array_equal(before, ref["exact"].train_acc)


@pytest.mark.parametrize(
    "name, value",
    [("n_classes", 5), ("per_class", 7), ("c", 0.7), ("d", 0.0), ("eta", 0.5), ("rounds", 3)],
)
def test_each_slider_drives_theory(app, name, value):
    app.sliders[name].set_val(value)
    assert app.params[name] == value
    assert_drawn_theory(app, BASE | {name: value})


@pytest.mark.parametrize("noise", ["pair", "asym", "superclass"])
def test_noise_radio_drives_theory(app, noise):
    app.radio.set_active(em.PARAM_SPECS["noise"].choices.index(noise))
    assert app.params["noise"] == noise
    assert_drawn_theory(app, BASE | {"noise": noise, "n_classes": 3})


def test_set_params_updates_once_and_matches_theory(app):
    calls = []
    orig = app.update
    app.update = lambda: calls.append(1) or orig()
    new = {"n_classes": 4, "lam": 2e-3, "eta": 0.4, "noise": "pair", "rounds": 9}
    try:
        app.set_params(**new)
    finally:
        del app.update  # back to the method (the app is shared by the module)
    assert len(calls) == 1
    assert_drawn_theory(app, BASE | new)


def test_phase_diagram_and_current_point(app):
    app.sliders["eta"].set_val(0.45)
    ph = app.state.phase
    img = np.asarray(app.panels.image.get_array())
    assert img.shape == (BASE["rounds"] + 1, em.PHASE_POINTS)
    model = BlockModel(3, 10, 0.5, 0.1)
    for i in (0, em.PHASE_POINTS // 2, em.PHASE_POINTS - 1):
        cnt = exact_counts(transition_matrix("sym", 3, ph.etas[i]), 10)
        np.testing.assert_array_equal(img[:, i], predict_linear(model, cnt, 1e-3, 6).train_acc)
    x, y = app.panels.lines["phase_point"].get_data()
    assert (x[0], y[0]) == (pytest.approx(0.45), BASE["rounds"])
    # first 100% round read off the image; NaN where no round reaches 100%
    first = app.panels.lines["phase_first"].get_ydata()
    for i in range(em.PHASE_POINTS):
        full = np.flatnonzero(img[:, i] >= 1.0)
        assert (np.isnan(first[i]) and full.size == 0) or first[i] == full[0]


def test_eta_change_reuses_cached_phase(app):
    phase = app.state.phase
    app.sliders["eta"].set_val(0.1)
    assert app.state.phase is phase
    app.sliders["lam"].set_val(-2.0)
    assert app.state.phase is not phase


@pytest.mark.slow
def test_invalid_combination_shows_message_then_recovers(app):
    app.set_params(c=0.2, d=0.3)
    assert app.panels.error_text.get_visible()
    assert "c must exceed d" in app.panels.error_text.get_text()
    assert len(app.panels.lines["train_exact"].get_xdata()) == 0
    app.fig.canvas.draw()  # rendering the error frame must not raise
    assert app.start_simulation(blocking=True) is None
    assert "invalid" in app.mc_text.get_text()
    app.set_params(c=0.5, d=0.1)
    assert_drawn_theory(app, BASE)


@pytest.mark.slow
def test_non_psd_combination_shows_message(app):
    app.set_params(n_classes=10, per_class=100, c=0.9, d=-0.3)
    assert app.panels.error_text.get_visible()
    assert "PSD" in app.panels.error_text.get_text()
    app.fig.canvas.draw()


def _mc_reference(params, trials):
    """Means over trials computed directly with the pipeline (no explorer code)."""
    p = em.normalise_params(params)
    common = dict(n_classes=p["n_classes"], per_class=p["per_class"], dim=p["dim"], c=p["c"],
                  d=p["d"], eta=p["eta"], lam=p["lam"], noise=p["noise"],
                  sampling="exact-count", features="mixture")  # fmt: skip
    sd = [run_trial(TrialConfig(rounds=p["rounds"], **common), trial_seed(p["seed"], i))
          for i in range(trials)]  # fmt: skip
    pll = [run_trial(TrialConfig(method="pll-ce", **common), trial_seed(p["seed"], i))
           for i in range(trials)]  # fmt: skip
    sd_train = np.mean([[r["train_acc"] for r in t.rows] for t in sd], axis=0)
    pll_train = np.mean([t.rows[-1]["train_acc"] for t in pll])
    return sd_train, pll_train


MC_POINT = {"n_classes": 3, "per_class": 6, "dim": 60, "rounds": 2, "trials": 3, "lam": 1e-2}


@pytest.mark.slow
def test_simulate_blocking_overlays_means_and_cis(app):
    app.set_params(**MC_POINT)
    run = app.start_simulation(blocking=True)
    assert run is not None and run.done
    sd_train, pll_train = _mc_reference(BASE | MC_POINT, MC_POINT["trials"])
    x, y = app.panels.lines["train_mc"].get_data()
    np.testing.assert_allclose(y, sd_train, rtol=0, atol=1e-12)
    np.testing.assert_allclose(x, np.arange(3) + 0.15)
    np.testing.assert_allclose(
        app.panels.lines["train_mc_pll"].get_ydata(), [pll_train], atol=1e-12
    )
    segs = app.panels.lines["train_mc_ci"].get_segments()
    summary = run.summary()
    finite = np.isfinite(np.append(summary.sd_train_ci, summary.pll_train_ci))
    assert len(segs) == 3 * finite.sum()  # interval + two caps per finite CI
    bars = segs[::3]
    centres = np.append(summary.sd_train_mean, summary.pll_train_mean)[finite]
    halves = np.append(summary.sd_train_ci, summary.pll_train_ci)[finite]
    for seg, m, h in zip(bars, centres, halves, strict=True):
        assert seg[0][0] == seg[1][0]
        np.testing.assert_allclose([seg[0][1], seg[1][1]], [m - h, m + h], atol=1e-12)
    assert f"{MC_POINT['trials']}/{MC_POINT['trials']}" in app.mc_text.get_text()
    assert app.progress_bar.get_width() == pytest.approx(1.0)
    app.fig.canvas.draw()


def test_progress_bar_turns_green_when_finished(app):
    from matplotlib.colors import to_hex

    from figures.explorer import PROGRESS_COLORS

    app.set_params(**MC_POINT)
    run = app.start_simulation()
    assert to_hex(app.progress_bar.get_facecolor()) == PROGRESS_COLORS["running"].lower()
    app.wait_simulation(timeout=60)
    assert run.done and "done" in app.mc_text.get_text()
    assert to_hex(app.progress_bar.get_facecolor()) == PROGRESS_COLORS["done"].lower()
    app.cancel_simulation("")
    app.start_simulation()  # a new run starts in the running colour again
    assert to_hex(app.progress_bar.get_facecolor()) == PROGRESS_COLORS["running"].lower()


def test_window_layout_has_no_overlaps_and_no_empty_band(app):
    fig = app.fig
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    height = fig.bbox.height
    info = app.info_text.get_window_extent(renderer)
    legend = app.panels.legend.get_window_extent(renderer)
    status = app.status_text.get_window_extent(renderer)
    panels = [
        ax.get_tightbbox(renderer)
        for ax in (app.panels.ax_train, app.panels.ax_pop, app.panels.ax_eig, app.panels.ax_phase)
    ]
    boxes = [info, legend, status]
    for i, a in enumerate(boxes):
        assert not any(a.overlaps(b) for b in boxes[i + 1 :] + panels), i
    # The info text and the legend both start right under the panels (the old layout left 12% of
    # the height empty above the legend), and below them only the status line remains.
    lowest_panel = min(b.y0 for b in panels)
    assert 0 < (lowest_panel - info.y1) / height < 0.05
    assert 0 < (lowest_panel - legend.y1) / height < 0.05
    assert (legend.y0 - status.y1) / height < 0.08


def test_simulate_in_background_thread_and_cancel_on_change(app):
    app.set_params(**MC_POINT)
    run = app.start_simulation()
    assert app._mc_thread is not None and app._mc_thread.daemon
    app.wait_simulation(timeout=60)
    assert run.done
    assert len(app.panels.lines["pop_mc"].get_xdata()) == MC_POINT["rounds"] + 1
    app.sliders["eta"].set_val(0.2)  # a parameter change clears the stale overlay
    assert len(app.panels.lines["pop_mc"].get_xdata()) == 0
    assert "parameters changed" in app.mc_text.get_text()


def test_monte_carlo_rejects_points_without_mixture_features():
    with pytest.raises(ValueError, match="c"):
        em.MonteCarloRun(BASE | {"c": 0.3, "d": -0.4})  # c + (K-1) d < 0: no class means


@pytest.mark.parametrize(
    "params, match",
    [
        ({"bogus": 1}, "unknown explorer parameter"),
        ({"c": 0.2, "d": 0.2}, "c must exceed d"),
        ({"lam": 0}, "lam must be > 0"),
        ({"rounds": 1.5}, "rounds must be an integer"),
        ({"noise": "nope"}, "noise must be one of"),
        ({"trials": 1}, "trials must be >= 2"),
    ],
)
def test_normalise_params_rejects(params, match):
    with pytest.raises(ValueError, match=match):
        em.normalise_params(params)
    assert match.split()[0] in em.compute_state(params).error


@pytest.mark.slow
def test_main_snapshot_writes_png(tmp_path):
    out = tmp_path / "frame.png"
    before = plt.get_fignums()
    assert main(["--snapshot", str(out), "--set", "K=4", "--set", "lam=2e-3"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plt.get_fignums() == before  # the snapshot closes its figure


def test_main_rejects_bad_assignment(capsys):
    assert main(["--snapshot", "x.png", "--set", "nonsense=1"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main(["--simulate"]) == 2  # a Monte Carlo run only makes sense for a snapshot here
    assert "--snapshot" in capsys.readouterr().err


@pytest.mark.slow
def test_main_bad_values_are_one_line_errors_in_a_subprocess(tmp_path):
    from tests.cli import assert_one_line_error, run_many

    snap = ["figures", "explore", "--snapshot"]
    png = tmp_path / "f.png"
    (tmp_path / "a_file").write_text("x")
    procs = run_many(
        [
            [*snap, png, "--set", "noise=bogus"],
            [*snap, png, "--set", "lam=0"],
            [*snap, png, "--set", "K=200"],
            [*snap, tmp_path / "a_file" / "f.png"],  # its folder cannot be created
            [*snap, tmp_path / "f.foo"],
            [*snap, png, "--backend", "Bogus"],
            [*snap, png, "--seed", "-1"],
        ],
        cwd=tmp_path,
    )
    assert_one_line_error(procs[0], "noise must be one of", "bogus")
    assert_one_line_error(procs[1], "lam must be > 0")
    assert_one_line_error(procs[2], "K (n_classes) must lie in [2, 30]", "200")
    assert_one_line_error(procs[3], "--snapshot folder", "is a file")
    assert_one_line_error(procs[4], "'.foo' is not an image format")
    assert_one_line_error(procs[5], "--backend 'Bogus' is not a matplotlib backend")
    assert_one_line_error(procs[6], "seed must be >= 0")
    assert not png.exists()


def test_parse_assignments_aliases():
    assert parse_assignments(["K=4", "n=7", "noise=pair", "lam=1e-2"]) == {
        "n_classes": 4.0, "per_class": 7.0, "noise": "pair", "lam": 0.01}  # fmt: skip


def _first_full(acc):
    full = np.flatnonzero(np.asarray(acc) >= 1.0)
    return int(full[0]) if full.size else None


def test_presets_show_what_their_comments_say():
    states = {name: em.compute_state(p) for name, p in em.PRESETS.items()}
    assert all(s.ok and s.exact is not None for s in states.values())
    s = states["sd-fixes-noise"]
    assert (_first_full(s.linear.train_acc), _first_full(s.exact.train_acc)) == (7, 8)
    s = states["pair-noise"]
    assert (_first_full(s.linear.train_acc), _first_full(s.exact.train_acc)) == (2, 4)
    assert s.conditions["pll_tied_classes"] == tuple(range(5)) and s.pll_exact.train_acc[0] < 1
    s = states["plurality-fails"]
    assert not s.conditions["plurality"] and s.conditions["window"] is None
    assert _first_full(s.exact.train_acc) is None


def test_closing_the_window_stops_the_worker(app):
    from matplotlib.backend_bases import CloseEvent

    app.set_params(**(MC_POINT | {"trials": 200}))
    run = app.start_simulation()
    thread = app._mc_thread
    app.fig.canvas.callbacks.process("close_event", CloseEvent("close_event", app.fig.canvas))
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert run.progress < 1.0  # stopped after its current trial, not after 200


def test_exact_failure_becomes_a_note_not_a_crash(app, monkeypatch):
    from theory.groups import GroupConvergenceError

    def fail(*_args, **_kwargs):
        raise GroupConvergenceError("did not converge (test)")

    monkeypatch.setattr(em, "predict_exact", fail)
    app.sliders["eta"].set_val(0.25)
    assert app.state.ok and app.state.exact is None
    assert "exact theory unavailable" in app.info_text.get_text()
    assert len(app.panels.lines["train_exact"].get_xdata()) == 0
    np.testing.assert_array_equal(
        ydata(app, "train_linear"), theory(BASE | {"eta": 0.25})["linear"].train_acc
    )


def test_phase_cache_across_rounds_vs_uncached():
    """Fewer rounds are a slice of the cached longer diagram: the same numbers as computing them."""
    params = em.normalise_params(BASE | {"rounds": 9})
    model = BlockModel(3, 10, 0.5, 0.1)
    cache = em.PhaseCache()
    long = cache.get(params, model)
    etas = long.etas
    for rounds in (4, 0, 9):
        got = cache.get(params | {"rounds": rounds}, model)
        want = em.compute_phase(model, "sym", params["lam"], rounds, etas)
        for name in ("rounds", "train_acc", "population_acc", "first_full_round", "plurality"):
            np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert len(cache._store) == 1  # one entry (the longest) for the three horizons
    more = cache.get(params | {"rounds": 12}, model)  # more rounds: computed, then kept
    assert more.rounds.size == 13 and cache.get(params | {"rounds": 9}, model).rounds.size == 10
    np.testing.assert_array_equal(cache.get(params, model).train_acc, long.train_acc)


def test_compute_phase_vs_predict_linear_per_eta():
    """The vectorised phase diagram vs one predict_linear per grid point (superclass, small n)."""
    model = BlockModel(4, 3, 0.5, 0.1)
    etas = np.linspace(0.0, 0.95, em.PHASE_POINTS)
    ph = em.compute_phase(model, "superclass", 1e-3, 5, etas)
    for i, eta in enumerate(etas):
        _, cnt = em.noise_counts(4, 3, "superclass", eta)
        ref = predict_linear(model, cnt, 1e-3, 5)
        np.testing.assert_array_equal(ph.train_acc[i], ref.train_acc)
        np.testing.assert_array_equal(ph.population_acc[i], ref.population_acc)


def test_phase_counts_cached_vs_noise_counts():
    """The grid's count matrices (independent of lam and the rounds) are computed once."""
    etas = tuple(np.linspace(0.0, 0.95, em.PHASE_POINTS))
    stack, where, plur = em.phase_counts(5, 4, "pair", etas)
    hits = em.phase_counts.cache_info().hits
    assert em.phase_counts(5, 4, "pair", etas)[0] is stack
    assert em.phase_counts.cache_info().hits == hits + 1
    assert len(np.unique(where)) == len(stack) < len(etas)  # n = 4: repeated count matrices
    for i, eta in enumerate(etas):
        np.testing.assert_array_equal(stack[where[i]], em.noise_counts(5, 4, "pair", eta)[1])
    assert not stack.flags.writeable and not plur.flags.writeable
