"""Interactive regime explorer: ``python -m figures explore``.

A matplotlib window with sliders for K, n, c, d, λ (log scale), η, rounds and ``N/p``, radio
buttons for the noise type, and four panels computed by
:func:`figures.explorer_model.compute_state` (closed-form group-level theory, no N x N work per
update):

* training accuracy per round (all points and mislabeled points; linearised vs exact theory; the
  PLL student as a star at round 1),
* population accuracy per round (same curves),
* eigen-weights ``a_j(t) = (mu_j / (mu_j + K lam N))^(t+1)`` of the three block eigenspaces,
* the ``(eta, t)`` phase diagram (linearised training accuracy) with the current point marked.

The ``N/p`` slider (0 = ``p = inf``) switches the linearised curves to the finite-``p`` theory of
the Gaussian mixture (:func:`theory.finite.predict_finite`) and adds the bulk's average
eigen-weight. Above :data:`figures.explorer_model.FINITE_MAX_CLASSES` classes the finite theory is
not computed (a note says so): a whole update costs ~0.15 s at K = 10 and ~0.3 s at K = 20
(docs/explorer.md, "Update time"). The solid curves become the
exact finite-ratio theory at that ``p`` (:mod:`theory.finite_exact`), which takes seconds: an
interactive window computes it in a background thread once the point has stayed put for
``EXACT_DEBOUNCE_MS`` (:class:`figures.explorer_model.ExactFiniteJob`; a note in the population
panel says "computing", moving on cancels it after the round in progress) and redraws when it is
done; results are cached per point; it is skipped with a note for ``K > 10``, ``p <= K`` and
estimates above :data:`figures.explorer_model.EXACT_MAX_SECONDS`. Until then the solid curves are
the block model's. Curves at ``p = inf`` next to finite-``p`` ones are drawn faded, labelled
``p→∞`` (legend and panel titles say which theory is shown); the PLL curves are ``p = inf`` only.
Linearised finite-``p`` values are flagged with a cross (:data:`figures.palette.FLAG_MARKER`) where
they are more than 0.03 from the exact theory (before it is computed: on every round of a point
outside the measured regime map) and not drawn where the theory is refused (a note says why).

Drawing: an interactive window redraws by blitting (:meth:`ExplorerApp.refresh`): a slider move
repaints the data artists and the widgets' moving parts over a cached background; a panel whose
limits, title or legend changed, a slider's value and each line of the summary text that changed
are repainted into that background alone (pixel-identical to a full redraw); of a panel whose
y-range alone changed (the eigen-weight axis rescaled by a lam move), only the y-dependent part:
its inside, frame and y-axis, with its opaque legend's pixels kept; the whole window only when
the shared legend's entries change. Legends list only what is drawn; colours and
markers follow :mod:`figures.palette`.

"simulate" runs a quick Monte Carlo (:class:`figures.explorer_model.MonteCarloRun`) in a background
thread, one trial at a time; a timer on the GUI thread polls it, draws the progress bar and
overlays means with 95% CIs (SD: black circles, PLL: vermillion diamonds); when its feature
dimension differs from the theory's (the N/p slider at 0 draws the ``p = ∞`` theory while the
Monte Carlo runs at ``--dim``), a note in the training panel and the legend say so. The worker
never touches matplotlib. Changing a parameter cancels the
run (its results would belong to another point). Invalid parameter combinations show a message in
the window instead of raising.

The panels and their artists are :class:`figures.explorer_panels.ExplorerPanels` (also drawn by the
notebook); this module adds the widgets and their events, the redrawing by blitting
(:mod:`figures.explorer_redraw`) and the background jobs (:mod:`figures.explorer_tasks`). The
command line (``main``, ``--set``, ``--snapshot``, the backend choice) lives in
:mod:`figures.explorer_cli`.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from figures.explorer_model import (
    DEFAULT_PARAMS,
    PARAM_SPECS,
    ExactFiniteJob,
    ExplorerState,
    MonteCarloRun,
    PhaseCache,
    compute_state,
    describe,
    theory_dim,
)
from figures.explorer_panels import ExplorerPanels
from figures.explorer_redraw import BlitRedraw, TextLines
from figures.explorer_tasks import PROGRESS_COLORS, BackgroundTasks

__all__ = ["NON_INTERACTIVE", "ExplorerApp", "ExplorerPanels"]

#: Backends that cannot open a window (``plt.show`` would return immediately).
NON_INTERACTIVE = {
    "agg",
    "pdf",
    "svg",
    "ps",
    "cairo",
    "pgf",
    "template",
    "module://matplotlib_inline.backend_inline",
}


def _no_draw(*_args, **_kwargs):
    return None


class ExplorerApp(BlitRedraw, BackgroundTasks):
    """Explorer window: :class:`ExplorerPanels` plus sliders, radio buttons, simulate button.

    Parameters
    ----------
    params : dict, optional
        Starting parameters (completed with :data:`~figures.explorer_model.DEFAULT_PARAMS`).
    fig : matplotlib Figure, optional
        Created with ``pyplot.figure`` (current backend) if omitted.

    Attributes
    ----------
    sliders : dict of name -> matplotlib.widgets.Slider
        ``sliders['lam']`` holds ``log10(lam)``.
    radio : matplotlib.widgets.RadioButtons
        Noise type.
    state : ExplorerState
        The state currently drawn.
    last_update_seconds : float
        Wall time of the last :meth:`update`: compute, artist updates and, when blitting, the
        partial redraw (``benchmarks/explorer.py`` measures it).
    blit : bool
        Whether updates redraw by blitting (module docstring of :meth:`refresh`).

    Parameters
    ----------
    blit : bool, optional
        Redraw by blitting (default: on interactive canvases that support it). ``True`` under
        Agg renders the same partial redraws off screen (the benchmark).
    """

    def __init__(self, params=None, *, fig=None, blit=None):
        import matplotlib

        if fig is None:
            import matplotlib.pyplot as plt

            fig = plt.figure(figsize=(15, 9))
        self.fig = fig
        # Under a non-interactive backend (Agg) draw_idle draws synchronously: every widget
        # callback would render the whole figure (~0.3 s). Nothing displays those frames (savefig
        # draws its own), so redraws are only requested on interactive canvases.
        self.interactive = matplotlib.get_backend().lower() not in NON_INTERACTIVE
        canvas = fig.canvas
        self.blit = bool(
            (self.interactive and getattr(canvas, "supports_blit", False)) if blit is None else blit
        )
        self._bg = None  # background without the data artists (blitting)
        self._sig = None  # static signature of the background: {axes or "figure": signature}
        self._extents: dict = {}  # static top-level artist -> its extent in the background
        self._yextents: dict = {}  # axes of _y_rescaled_axes -> its y-axis' extent, likewise
        self.last_draw_seconds = float("nan")
        #: How the last :meth:`refresh` drew: ``'full'``, ``'axes'`` (some panels' static parts
        #: repainted) or ``'blit'`` (data artists only).
        self.last_draw_kind = ""
        #: The static artists the last :meth:`refresh` repainted into the background (none for
        #: a blit or a full draw); ``benchmarks/explorer.py`` counts the panels among them.
        self.last_repainted: list = []
        canvas.draw_idle = _no_draw  # Slider.__init__ calls draw_idle; restored below
        try:
            self._build(params)
        finally:
            del canvas.draw_idle
        if self.blit:
            for artist in self._animated():
                artist.set_animated(True)
            canvas.mpl_connect("draw_event", self._on_draw)
        self.update()

    # ------------------------------------------------------------------------------------------
    # drawing: full redraws only when limits, titles or legends change; otherwise blitting
    def _animated(self) -> list:
        """Artists redrawn on every update (everything else is the cached background).

        Besides the panels' data: the progress bar and the moving parts of the widgets (slider
        fill and handle; the radio buttons' marks). The texts outside the panels (summary lines,
        status, Monte Carlo line, slider values, button label) are part of the background and
        repainted only when they change (:meth:`_static_signature`).
        """
        widgets = []
        for slider in self.sliders.values():
            # Private on purpose: matplotlib (3.11) gives the slider's handle (a marker Line2D)
            # no public accessor -- Slider documents ``val`` and ``poly`` only, ``handle_style``
            # styles the handle without returning it -- and an unanimated handle would be frozen
            # into the background at its old position. Picking it out of ``slider.ax.lines``
            # would rely on the construction order instead (issue 23).
            widgets += [slider.poly, slider._handle]
        marks = getattr(self.radio, "_buttons", None)  # matplotlib >= 3.7
        widgets += [marks] if marks is not None else list(getattr(self.radio, "circles", []))
        return [*self.panels.data_artists(), self.progress_bar, *widgets]

    def _static_signature(self) -> dict:
        """What can change in the background, per top-level artist (repainted alone when its
        entry changes): ``{panel axes: signature}`` (:meth:`ExplorerPanels.axes_signatures`),
        ``{slider axes: (label, value text)}``, the simulate button's label, the texts outside
        the panels; and ``'figure'``: the shared legend's entries (a full draw)."""
        out = dict(self.panels.axes_signatures())
        out.update(
            {s.ax: (s.label.get_text(), s.valtext.get_text()) for s in self.sliders.values()}
        )
        label = self.button_sim.label
        out[self.button_sim.ax] = (label.get_text(), str(label.get_color()))
        for text in (*self.info_text.lines, self.status_text, self.mc_text):
            out[text] = text.get_text()
        out["figure"] = self.panels._legend_sig
        return out

    def _inner_change(self, artist, old, new) -> bool:
        """A panel whose y-range or legend changed, not its x-range or title
        (:meth:`ExplorerPanels.inner_change`)."""
        return artist in self.panels.all_axes and self.panels.inner_change(old, new)

    def _y_rescaled_axes(self) -> tuple:
        """The eigen-weight panel: its log y-range follows the weights as lam moves."""
        return (self.panels.ax_eig,)

    def _build(self, params) -> None:
        from matplotlib.widgets import Button, RadioButtons, Slider

        fig = self.fig
        self._params = dict(DEFAULT_PARAMS) | dict(params or {})
        self.cache = PhaseCache()
        # Panels down to 0.21; the info text (left) and the legend (right of it) fill the strip
        # right below their axis labels, so the window has no empty band at the bottom.
        self.panels = ExplorerPanels(
            fig, rect=(0.05, 0.21, 0.66, 0.95), legend_anchor=(0.49, 0.15), legend_loc="upper left"
        )
        self._suspend = False
        self.sliders = {}
        y = 0.93
        for name, spec in PARAM_SPECS.items():
            if spec.kind == "choice":
                continue
            ax = fig.add_axes((0.79, y, 0.15, 0.025))
            value = self._params[name]
            if spec.kind == "log":
                init = float(np.log10(value))
                lo, hi = min(np.log10(spec.lo), init), max(np.log10(spec.hi), init)
                slider = Slider(ax, spec.label, lo, hi, valinit=init)
                slider.valtext.set_text(f"{value:.3g}")
            else:
                # Slider ranges are widget ranges; a preset outside them is still allowed.
                lo, hi = min(spec.lo, value), max(spec.hi, value)
                fmt = "%d" if spec.kind == "int" else "%.2f"
                slider = Slider(
                    ax, spec.label, lo, hi, valinit=value, valstep=spec.step, valfmt=fmt
                )
            slider.drawon = False  # redraws are requested once per update (_request_draw)
            slider.on_changed(lambda _v, n=name: self._on_slider(n))
            self.sliders[name] = slider
            y -= 0.045
        noise = PARAM_SPECS["noise"]
        ax_radio = fig.add_axes((0.79, y - 0.12, 0.12, 0.14))
        ax_radio.set_title("noise type", fontsize=9)
        self.radio = RadioButtons(
            ax_radio, noise.choices, active=noise.choices.index(self._params["noise"])
        )
        self.radio.drawon = False
        self.radio.on_clicked(lambda _label: self._on_slider("noise"))
        self._ratio_text()
        y -= 0.19
        self.button_sim = Button(fig.add_axes((0.79, y, 0.07, 0.04)), "simulate")
        self.button_sim.on_clicked(lambda _e: self.start_simulation())
        self.button_cancel = Button(fig.add_axes((0.87, y, 0.07, 0.04)), "cancel")
        self.button_cancel.on_clicked(lambda _e: self.cancel_simulation("cancelled"))
        y -= 0.035
        self.ax_progress = fig.add_axes((0.79, y, 0.15, 0.018))
        self.ax_progress.set_xlim(0, 1)
        self.ax_progress.set_ylim(0, 1)
        self.ax_progress.set_xticks([])
        self.ax_progress.set_yticks([])
        self.progress_bar = self.ax_progress.barh(
            [0.5], [0.0], height=1.0, color=PROGRESS_COLORS["running"]
        )[0]
        self.mc_text = fig.text(0.79, y - 0.012, "", fontsize=8, va="top", wrap=True)
        self.info_text = TextLines(fig, 0.05, 0.14, fontsize=9, family="monospace")
        self.status_text = fig.text(0.05, 0.015, "", fontsize=8, color="0.35")
        self._mc: MonteCarloRun | None = None
        self._mc_drawn = -1  # trials attempted at the last overlay redraw
        self._mc_cancel: threading.Event | None = None
        self._mc_thread: threading.Thread | None = None
        self._timer = None
        self._exact_job: ExactFiniteJob | None = None
        self._exact_timer = None  # debounce, then poll, of the exact finite-ratio theory
        self.last_update_seconds = float("nan")
        self.state: ExplorerState | None = None
        fig.canvas.mpl_connect("close_event", lambda _e: self._stop_worker())

    # ------------------------------------------------------------------------------------------
    # parameters
    @property
    def params(self) -> dict:
        """Current parameters as read from the widgets (``lam`` as a value, not its log)."""
        out = dict(self._params)
        for name, slider in self.sliders.items():
            spec = PARAM_SPECS[name]
            v = float(slider.val)
            if spec.kind == "log":
                out[name] = 10.0**v
            elif spec.kind == "int":
                out[name] = int(round(v))
            else:
                # valstep snapping computes valmin + k * step: drop its round-off (e.g. 5e-17
                # for d = 0) so that the theory sees the value the slider shows.
                out[name] = round(v, 10)
        out["noise"] = self.radio.value_selected
        return out

    def set_params(self, **values) -> None:
        """Set several widgets at once (one update); non-widget keys (dim, trials, seed) too."""
        self._suspend = True
        try:
            for name, value in values.items():
                if name in self.sliders:
                    spec = PARAM_SPECS[name]
                    self.sliders[name].set_val(np.log10(value) if spec.kind == "log" else value)
                elif name == "noise":
                    self.radio.set_active(PARAM_SPECS["noise"].choices.index(value))
                elif name in DEFAULT_PARAMS:
                    self._params[name] = value
                else:
                    raise ValueError(f"unknown explorer parameter {name!r}")
        finally:
            self._suspend = False
        self.update()

    def _on_slider(self, name) -> None:
        if name == "lam":
            self.sliders["lam"].valtext.set_text(f"{10.0 ** self.sliders['lam'].val:.3g}")
        if name in ("n_over_p", "n_classes", "per_class"):
            self._ratio_text()
        if not self._suspend:
            self.update()

    def _ratio_text(self) -> None:
        """The N/p slider's label names the dimension it selects: ``p=∞`` or ``p=120``."""
        dim = theory_dim(self.params)
        self.sliders["n_over_p"].label.set_text(
            "N/p (p=" + ("∞" if dim is None else str(dim)) + ")"
        )

    # ------------------------------------------------------------------------------------------
    def update(self) -> ExplorerState:
        """Recompute the state at the widget values and update the artists (no full redraw)."""
        start = time.perf_counter()
        if self._mc is not None:
            self.cancel_simulation("Monte Carlo cleared: parameters changed")
        self._params = self.params
        state = compute_state(self._params, cache=self.cache)
        self.state = state
        self.panels.render(state)
        self.info_text.set_text(describe(state) if state.ok else "")
        self.button_sim.label.set_color("black" if state.ok else "0.6")
        previous = self.last_update_seconds
        draw = (
            ""
            if np.isnan(self.last_draw_seconds)
            else f", draw {1e3 * self.last_draw_seconds:.0f} ms"
        )
        self.status_text.set_text(
            f"theory {1e3 * state.seconds:.0f} ms{draw}; previous update "
            + ("-" if np.isnan(previous) else f"{1e3 * previous:.0f} ms")
        )
        self._schedule_exact(state)
        self._request_draw()
        self.last_update_seconds = time.perf_counter() - start
        return state


if __name__ == "__main__":  # python -m figures.explorer: the command line of explorer_cli
    from figures.explorer_cli import main
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
