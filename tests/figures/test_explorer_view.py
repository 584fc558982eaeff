"""What the explorer shows (issue 22 item 7) and its partial redraws (issue 24 item 1), headless.

Legends list only what is drawn; the Monte Carlo says when its dimension is not the theory's;
SD and PLL Monte Carlo markers differ; the current point is visible; the eigen-weight axis keeps
every drawn curve in view; and a blitted update paints exactly what a full redraw paints.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from figures import explorer_model as em
from figures import palette
from figures.explorer import ExplorerApp

BASE = {"n_classes": 3, "per_class": 6, "c": 0.5, "d": 0.1, "lam": 1e-2, "noise": "sym",
        "eta": 0.3, "rounds": 2, "n_over_p": 0.0, "dim": 60, "trials": 2}  # fmt: skip


@pytest.fixture(scope="module")
def _shared_app():
    a = ExplorerApp(BASE, fig=plt.figure(figsize=(15, 9)))
    yield a
    plt.close(a.fig)


@pytest.fixture
def app(_shared_app):
    _shared_app.cancel_simulation("")
    _shared_app.set_params(**BASE)
    yield _shared_app
    _shared_app.cancel_simulation("")


def legend(app):
    return [t.get_text() for t in app.panels.legend.get_texts()]


def eig_legend(app):
    return [t.get_text() for t in app.panels.eig_legend.get_texts()]


def test_legends_list_only_what_is_drawn(app):
    assert not any("bulk" in t for t in eig_legend(app))  # p = inf: no bulk curve
    assert not any("Monte Carlo" in t for t in legend(app))  # nothing simulated yet
    app.set_params(n_over_p=1.0)
    assert any("bulk" in t for t in eig_legend(app))
    app.set_params(n_over_p=0.0, eta=0.1)
    fails = ~app.state.phase.plurality
    assert ("plurality fails" in legend(app)) == bool(fails.any())


def test_monte_carlo_says_when_its_dimension_is_not_the_theorys(app):
    app.start_simulation(blocking=True)
    note = app.panels.mc_note
    assert note.get_visible() and "p = 60" in note.get_text() and "p = ∞" in note.get_text()
    assert any("Monte Carlo SD (p = 60" in t for t in legend(app))
    app.set_params(n_over_p=18 / 60)  # the theory at p = N/(N/p) = 60, as the Monte Carlo
    app.start_simulation(blocking=True)
    assert app.state.finite_dim == 60 and not app.panels.mc_note.get_visible()


def test_sd_and_pll_monte_carlo_markers_differ(app):
    sd, pll = app.panels.lines["train_mc"], app.panels.lines["train_mc_pll"]
    assert sd.get_marker() != pll.get_marker()
    assert sd.get_color() != pll.get_color() and pll.get_color() == palette.PLL


def test_current_point_is_visible_above_everything(app):
    star = app.panels.lines["phase_point"]
    others = [a.get_zorder() for a in app.panels.ax_phase.get_children() if a is not star]
    assert star.get_zorder() > max(others) and not star.get_clip_on()
    assert star.get_markersize() >= 16
    assert star.get_markerfacecolor() != app.panels.lines["phase_plurality"].get_color()


def test_eigen_weight_axis_keeps_every_drawn_curve_in_view(app):
    # At K = 3, N/p = 0.25, lam = 0.1 the bulk weights reach round-off from round ~12 on.
    app.set_params(n_over_p=0.25, lam=0.1, rounds=15, per_class=20)
    lo, hi = app.panels.ax_eig.get_ylim()
    for j in range(3):
        y = app.panels.lines[f"eig{j}"].get_ydata()
        assert np.all((y >= lo) & (y <= hi))
    bulk = np.asarray(app.panels.lines["eig_bulk"].get_ydata(), dtype=float)
    shown = bulk[np.isfinite(bulk)]
    assert shown.size and np.all((shown >= lo) & (shown <= hi))
    raw = app.state.finite.bulk_weights
    np.testing.assert_array_equal(shown, raw[: shown.size])  # kept values are the theory's


def test_reliable_bulk_weights_cuts_round_off_only():
    w = np.array([0.5, 0.1, 1e-3, 1e-9, -1e-12, 1e-11])
    out = em.reliable_bulk_weights(w)
    np.testing.assert_array_equal(out[:3], w[:3])
    assert np.isnan(out[3:]).all()


def _pixels(app):
    return np.asarray(app.fig.canvas.buffer_rgba()).copy()


@pytest.mark.slow
def test_blitted_update_paints_what_a_full_redraw_paints():
    app = ExplorerApp(BASE, fig=plt.figure(figsize=(15, 9)), blit=True)
    try:
        app.refresh()
        drawn = []
        real = app.fig.canvas.draw
        app.fig.canvas.draw = lambda: drawn.append(1) or real()
        app.sliders["lam"].set_val(np.log10(1.1e-2))  # data change only: a partial redraw
        assert not drawn
        app.fig.canvas.draw = real
        _assert_same_as_full_redraw(app)
        app.sliders["rounds"].set_val(4)  # the x-range changes: those axes are repainted
        assert app.last_draw_kind == "axes"
        app.fig.canvas.draw = lambda: drawn.append(1) or real()
        app.sliders["rounds"].set_val(5)
        assert not drawn and app.last_draw_kind == "axes"
        app.fig.canvas.draw = real
        _assert_same_as_full_redraw(app)
    finally:
        plt.close(app.fig)


def _assert_same_as_full_redraw(app):
    """The window shows, pixel for pixel, what a full redraw shows."""
    shown = _pixels(app)
    app._bg = None
    app.refresh()
    assert app.last_draw_kind == "full"
    np.testing.assert_array_equal(shown, _pixels(app))


def test_repainted_axes_paint_what_a_full_redraw_paints():
    """lam moves that rescale the eigen-weight axis (and change its legend: bulk weights below
    round-off) repaint that panel only, pixel for pixel as a full redraw; the figure legend
    changing (finite-p curves switched on) redraws everything."""
    app = ExplorerApp(
        BASE | {"n_classes": 4, "n_over_p": 1.0}, fig=plt.figure(figsize=(15, 9)), blit=True
    )
    try:
        app.refresh()
        kinds = []
        for lam in (2e-2, 5e-2, 0.1, 0.3, 1.0):  # all inside the validated regime (K = 4)
            lo = app.panels.ax_eig.get_ylim()[0]
            app.sliders["lam"].set_val(np.log10(lam))
            kinds.append(app.last_draw_kind)
            if app.panels.ax_eig.get_ylim()[0] != lo:
                assert app.last_draw_kind == "axes"
        assert "axes" in kinds and "full" not in kinds
        _assert_same_as_full_redraw(app)
        app.sliders["n_over_p"].set_val(0.0)  # block model: the legend's labels change
        assert app.last_draw_kind == "full"
    finally:
        plt.close(app.fig)


def test_changed_summary_line_is_repainted_alone():
    """A changed line of the summary is repainted with its neighbours clipped to its region; the
    far lines are not drawn again, and the window shows what a full redraw shows."""
    app = ExplorerApp(BASE, fig=plt.figure(figsize=(15, 9)), blit=True)
    try:
        text = [f"line {i}: {app.info_text.get_text()[:60]}" for i in range(5)]
        app.info_text.set_text("\n".join(text))
        app.refresh()
        lines = app.info_text.lines
        drawn = []
        for i, line in enumerate(lines):
            line.draw = lambda renderer, i=i, real=line.draw: drawn.append(i) or real(renderer)
        app.info_text.set_text("\n".join(text[:-1] + [text[-1] + " (changed)"]))
        app.refresh()
        assert app.last_draw_kind == "axes"
        last = len(text) - 1
        assert last in drawn and 0 not in drawn and set(drawn) <= {last - 1, last, last + 1}
        for line in lines:
            del line.draw
        _assert_same_as_full_redraw(app)
        assert app.info_text.get_text().endswith(" (changed)")
    finally:
        plt.close(app.fig)


def test_decade_label_known_answers():
    """Decades as 10 with Unicode superscripts (no mathtext), nothing between decades."""
    from figures.explorer_panels import decade_label

    assert decade_label(1e-14) == "10⁻¹⁴"
    assert decade_label(1.0) == "10⁰"
    assert decade_label(100.0) == "10²"
    assert decade_label(1e-300) == "10⁻³⁰⁰"
    assert decade_label(10.0**-7 * (1 + 1e-12)) == "10⁻⁷"  # a locator's round-off
    for y in (3e-5, 2.0, 0.0, -1.0, np.nan, np.inf):
        assert decade_label(y) == ""


def test_inner_change_is_a_y_range_or_legend_change_only():
    from figures.explorer_panels import ExplorerPanels

    sig = ((-0.4, 8.4), (1e-12, 1.5), "title", ("legend",))
    assert ExplorerPanels.inner_change(sig, (sig[0], (1e-14, 1.5), *sig[2:]))
    assert ExplorerPanels.inner_change(sig, (*sig[:3], ("other legend",)))
    assert ExplorerPanels.inner_change(sig, (sig[0], (1e-14, 1.5), sig[2], ("other legend",)))
    assert not ExplorerPanels.inner_change(sig, sig)  # nothing changed
    assert not ExplorerPanels.inner_change(sig, ((-0.4, 9.4), *sig[1:]))  # the x-range
    assert not ExplorerPanels.inner_change(sig, (*sig[:2], "other title", sig[3]))


def test_legend_inside_only_for_an_opaque_legend():
    """The kept pixels of a legend are those strictly inside its frame, and only when the frame
    hides what lies beneath."""
    from figures.explorer_redraw import _LEGEND_EDGE, _legend_inside

    fig = plt.figure(figsize=(4, 3))
    try:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], label="a line")
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        assert _legend_inside(ax.legend(framealpha=0.8), renderer) is None
        assert _legend_inside(ax.legend(framealpha=1.0, frameon=False), renderer) is None
        legend = ax.legend(framealpha=1.0, frameon=True)  # figures.style turns frames off
        fig.canvas.draw()
        outer, inner = (
            legend.get_frame().get_window_extent(renderer),
            _legend_inside(legend, renderer),
        )
        assert inner.x0 - outer.x0 >= _LEGEND_EDGE and outer.x1 - inner.x1 >= _LEGEND_EDGE
        assert inner.y0 - outer.y0 >= _LEGEND_EDGE and outer.y1 - inner.y1 >= _LEGEND_EDGE
        assert float(inner.x0).is_integer() and float(inner.y1).is_integer()
    finally:
        plt.close(fig)


@pytest.mark.slow
def test_rescaled_eigen_weight_axis_repaints_its_y_part_only():
    """A lam move that rescales the eigen-weight axis (K = 10, finite p) or relabels its
    legend does not redraw the panel's title, nor its legend when that is the same (kept
    pixels), and the window still shows what a full redraw shows; without the y-axis' extent
    before, it falls back to repainting the panel whole."""
    app = ExplorerApp(
        BASE | {"n_classes": 10, "n_over_p": 1.0, "rounds": 8, "lam": 1e-3},
        fig=plt.figure(figsize=(15, 9)),
        blit=True,
    )
    ax = app.panels.ax_eig
    drawn = []

    def spy(artist, name):
        real = artist.draw
        artist.draw = lambda r: (artist.get_visible() and drawn.append(name)) or real(r)

    try:
        app.refresh()
        spy(ax.title, "title")
        rescaled = relabelled = 0
        for lam in (2e-3, 5e-3, 1e-2, 3e-2, 0.1, 1e-2, 1e-3, 1e-4):
            old = app.panels.axes_signatures()[ax]
            legend = app.panels.eig_legend
            spy(legend, "legend")
            drawn.clear()
            app.sliders["lam"].set_val(np.log10(lam))
            new = app.panels.axes_signatures()[ax]
            del legend.draw
            if old == new:
                continue
            assert app.panels.inner_change(old, new)  # lam changes no x-range, no title
            assert ax in app.last_repainted and app.last_draw_kind == "axes"
            assert "title" not in drawn
            if app.panels.eig_legend is legend:
                rescaled += 1
                assert "legend" not in drawn  # pasted
            else:
                relabelled += 1
                if relabelled == 1:  # the old legend's pixels are all gone, the new one drawn
                    _assert_same_as_full_redraw(app)
        assert rescaled >= 3 and relabelled >= 1
        _assert_same_as_full_redraw(app)
        app._yextents.clear()  # the y-axis' extent before unknown: the whole panel
        drawn.clear()
        old = app.panels.axes_signatures()[ax]
        app.sliders["lam"].set_val(np.log10(1e-3))  # from 1e-4: the y-range changes
        assert old != app.panels.axes_signatures()[ax]
        assert "title" in drawn
        _assert_same_as_full_redraw(app)
    finally:
        plt.close(app.fig)
