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
are repainted into that background alone (pixel-identical to a full redraw); the whole window
only when the shared legend's entries change. Legends list only what is drawn; colours and
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
notebook); this module adds the widgets, the blitting and the background jobs. The command line
(``main``, ``--set``, ``--snapshot``, the backend choice) lives in :mod:`figures.explorer_cli`.
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
    MonteCarloSummary,
    PhaseCache,
    attach_finite_exact,
    compute_state,
    describe,
    job_key,
    theory_dim,
)
from figures.explorer_panels import ExplorerPanels
from selfdistill_cli.files import save_figure

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
#: Progress bar colours (Okabe-Ito): running, finished, finished with failed trials.
PROGRESS_COLORS = {"running": "#0072B2", "done": "#009E73", "failed": "#D55E00"}


def _no_draw(*_args, **_kwargs):
    return None


def _extent(artist, renderer):
    """Display-space extent of a top-level artist (ticks, labels and legends included); ``None``
    for a text that draws nothing."""
    from matplotlib.text import Text

    if isinstance(artist, Text) and not (artist.get_visible() and artist.get_text()):
        return None
    return artist.get_tightbbox(renderer)


def _pixel_box(box):
    """``box`` grown by 2 pixels (antialiasing) and out to whole pixels."""
    from matplotlib.transforms import Bbox

    return Bbox([np.floor(box.p0) - 2, np.ceil(box.p1) + 2])


class TextLines:
    """A multi-line figure text drawn as one :class:`~matplotlib.text.Text` per line.

    Matplotlib (3.11) renders text glyph by glyph, ~0.1 ms per character: the explorer's
    five-line summary cost ~45 ms on every update. One artist per line lets a window repaint
    only the lines that changed (:meth:`ExplorerApp.refresh`), usually one. ``set_text`` /
    ``get_text`` / ``get_window_extent`` behave as for a single text anchored at its top left
    (``va='top'``); lines beyond ``max_lines`` go into the last artist.
    """

    def __init__(self, fig, x, y, *, max_lines=12, **kwargs):
        # Where matplotlib's multi-line layout puts the lines: a block of two lines is two
        # pitches high, one line is a pitch less the line gap, and the first baseline of a block
        # sits half a gap lower than a single line's.
        probe = fig.text(x, y, "lp\nlp", va="top", **kwargs)
        two = probe.get_window_extent().height
        probe.set_text("lp")
        one = probe.get_window_extent().height
        probe.remove()
        pitch = 0.5 * two / fig.bbox.height
        gap = pitch - one / fig.bbox.height
        self.lines = [
            fig.text(x, y - 0.5 * gap - i * pitch, "", va="top", **kwargs) for i in range(max_lines)
        ]
        self._text = ""

    def set_text(self, text: str) -> None:
        self._text = str(text)
        parts = self._text.split("\n")
        n = len(self.lines)
        parts = parts[: n - 1] + ["\n".join(parts[n - 1 :])] if len(parts) > n else parts
        parts += [""] * (n - len(parts))
        for line, part in zip(self.lines, parts, strict=True):
            line.set_text(part)

    def get_text(self) -> str:
        return self._text

    def get_window_extent(self, renderer=None):
        from matplotlib.transforms import Bbox

        boxes = [t.get_window_extent(renderer) for t in self.lines if t.get_text()]
        return Bbox.union(boxes) if boxes else self.lines[0].get_window_extent(renderer)


class ExplorerApp:
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
        self.last_draw_seconds = float("nan")
        #: How the last :meth:`refresh` drew: ``'full'``, ``'axes'`` (some panels' static parts
        #: repainted) or ``'blit'`` (data artists only).
        self.last_draw_kind = ""
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
            widgets += [slider.poly, slider._handle]
        marks = getattr(self.radio, "_buttons", None)  # matplotlib >= 3.7
        widgets += [marks] if marks is not None else list(getattr(self.radio, "circles", []))
        return [*self.panels.data_artists(), self.progress_bar, *widgets]

    def _on_draw(self, _event) -> None:
        """After a full draw: keep the background, then paint the data artists over it."""
        canvas = self.fig.canvas
        self._bg = canvas.copy_from_bbox(self.fig.bbox)
        # Extents of the axes a later update may repaint (their "before"); the other static
        # artists' are taken when first needed (_repaint_axes): each costs ~10 ms of tick layout.
        renderer = canvas.get_renderer()
        self._extents = {a: _extent(a, renderer) for a in self._static_signature() if a != "figure"}
        for artist in self._animated():
            self.fig.draw_artist(artist)

    def _static_children(self) -> list:
        """The figure's top-level artists that make up the background (not animated)."""
        children = [*self.fig.axes, *self.fig.legends, *self.fig.texts, *self.fig.patches]
        return [a for a in children if not a.get_animated()]

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

    def refresh(self) -> None:
        """Show the current artists, repainting as little of the background as possible.

        * Nothing static changed: the cached background is restored and only the data artists
          (and the widgets' moving parts) are drawn and blitted.
        * Some static parts changed (:meth:`_static_signature`: a panel's limits or title, the
          eigen-weight legend; a slider's label or value; a line of text): only those are
          repainted into the background (:meth:`_repaint_axes`, one region each), then as
          above. A slider move that rescales the eigen-weight axis costs one panel, not the
          window (~0.3 s); a changed summary line costs that line, not the whole summary.
        * The shared legend changed (or no background yet): a full ``canvas.draw()``.
        """
        start = time.perf_counter()
        canvas = self.fig.canvas
        sig = self._static_signature()
        old = self._sig
        changed = None if old is None else [a for a in sig if a != "figure" and sig[a] != old[a]]
        if self._bg is None or old is None or sig["figure"] != old["figure"]:
            self._sig = sig
            canvas.draw()  # -> _on_draw: background + data artists
            canvas.blit(self.fig.bbox)
            self.last_draw_kind = "full"
        else:
            if changed:
                self._repaint_axes(changed)
                self._sig = sig
            canvas.restore_region(self._bg)
            for artist in self._animated():
                self.fig.draw_artist(artist)
            canvas.blit(self.fig.bbox)
            self.last_draw_kind = "axes" if changed else "blit"
        self.last_draw_seconds = time.perf_counter() - start

    def _repaint_axes(self, axes) -> None:
        """Repaint the static top-level artists ``axes`` (axes or texts) into the background.

        The region painted is the union of their extents before and after, grown until it
        contains every static artist it touches (each is redrawn whole, so no antialiased edge is
        blended twice); it is cleared to the figure colour, the static artists in it are drawn in
        z-order (animated ones skip themselves) and the result becomes the new background.
        Pixel-identical to a full redraw (``tests/figures/test_explorer_view.py``).
        """
        canvas = self.fig.canvas
        canvas.restore_region(self._bg)
        for artist in axes:  # one region each: far-apart changes must not merge into one box
            self._repaint_region([artist])
        self._bg = canvas.copy_from_bbox(self.fig.bbox)

    def _repaint_region(self, artists) -> None:
        """Repaint ``artists`` (static, top-level) over their extents before and after.

        The region is grown until it contains every static axes or legend it touches (each is
        redrawn whole, so no antialiased edge is blended twice); figure texts it touches are
        redrawn clipped to it (the summary's line boxes overlap their neighbours'). The region
        is cleared to the figure colour and its artists are drawn in z-order (animated ones
        skip themselves).
        """
        from matplotlib.patches import Rectangle
        from matplotlib.text import Text
        from matplotlib.transforms import Bbox, IdentityTransform

        renderer = self.fig.canvas.get_renderer()
        members = set(artists)
        # Before (recorded when last drawn) and after; unchanged artists keep their extent.
        after = {a: _extent(a, renderer) for a in members}
        boxes = [self._extents.get(a) for a in members] + list(after.values())
        boxes = [b for b in boxes if b is not None]
        if not boxes:  # an empty text stays empty
            self._extents.update(after)
            return
        region = _pixel_box(Bbox.union(boxes))
        statics = self._static_children()
        for a in statics:
            if a not in self._extents:
                self._extents[a] = _extent(a, renderer)
        grown = True
        while grown:
            grown = False
            for a in statics:
                ext = self._extents[a]
                if a in members or isinstance(a, Text) or ext is None:
                    continue
                if ext.overlaps(region):
                    members.add(a)
                    region = _pixel_box(Bbox.union([region, ext]))
                    grown = True
        clipped = [
            a
            for a in statics
            if isinstance(a, Text)
            and a not in members
            and self._extents[a] is not None
            and self._extents[a].overlaps(region)
        ]
        (x0, y0), (x1, y1) = region.get_points()
        clear = Rectangle(
            (x0, y0), x1 - x0, y1 - y0, transform=IdentityTransform(), linewidth=0,
            facecolor=self.fig.patch.get_facecolor(), edgecolor="none", antialiased=False,
        )  # fmt: skip
        clear.set_figure(self.fig)
        clear.draw(renderer)
        for a in sorted([*members, *clipped], key=lambda a: a.get_zorder()):
            if a in members:
                a.draw(renderer)
                continue
            box, on = a.get_clip_box(), a.get_clip_on()
            a.set_clip_box(region)
            a.set_clip_on(True)
            try:
                a.draw(renderer)
            finally:
                a.set_clip_box(box)
                a.set_clip_on(on)
        self._extents.update(after)  # the other members did not change

    def save(self, path, **kwargs) -> None:
        """``savefig`` with every artist drawn (a saved figure skips animated artists).

        The file is rendered in memory and written atomically
        (:func:`selfdistill_cli.files.save_figure`): never through a link planted at ``path``,
        and a failed write leaves the previous file intact.
        """
        animated = [a for a in self._animated() if a.get_animated()]
        for artist in animated:
            artist.set_animated(False)
        try:
            save_figure(self.fig, path, **kwargs)
        finally:
            for artist in animated:
                artist.set_animated(True)

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

    def _stop_worker(self) -> None:
        """Window closed: let the worker threads finish their current step and exit."""
        if self._mc_cancel is not None:
            self._mc_cancel.set()
        if self._timer is not None:
            self._timer.stop()
        self._cancel_exact()

    def _request_draw(self) -> None:
        if self.blit:
            self.refresh()
        elif self.interactive:
            self.fig.canvas.draw_idle()

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

    # ------------------------------------------------------------------------------------------
    # exact finite-ratio theory: seconds per point, so computed lazily in a background thread
    #: Milliseconds a point must stay put before its exact theory is started (a slider drag
    #: passes through many points; only the one the user stops at is computed).
    EXACT_DEBOUNCE_MS = 400
    #: Milliseconds between two checks of a running computation.
    EXACT_POLL_MS = 250

    def _cancel_exact(self) -> None:
        if self._exact_timer is not None:
            self._exact_timer.stop()
            self._exact_timer = None
        if self._exact_job is not None:
            self._exact_job.cancel()
            self._exact_job = None

    def _schedule_exact(self, state: ExplorerState) -> None:
        """Keep, cancel or (after the debounce) start the exact theory for the new point.

        Only an interactive window computes it on its own; a snapshot, the notebook and the tests
        call :meth:`compute_exact_now`.
        """
        job = self._exact_job
        key = job_key(state.params) if state.ok and state.finite_dim is not None else None
        if job is not None and (job.key != key or state.exact_status != "pending"):
            self._cancel_exact()
            job = None
        if not state.ok or state.exact_status != "pending" or not self.interactive:
            return
        where = state.exact_message.split(":")[0]
        est = f"~{max(state.exact_seconds, 1.0):.0f} s"
        state.exact_message = f"{where}: computing in the background ({est})…"
        state.exact_note = f"exact finite-p theory: computing ({est})…"
        self._exact_note(state.exact_note)
        self.info_text.set_text(describe(state))
        if job is not None:  # already computing this point
            return
        if self._exact_timer is not None:
            self._exact_timer.stop()
        timer = self.fig.canvas.new_timer(interval=self.EXACT_DEBOUNCE_MS)
        timer.single_shot = True
        timer.add_callback(self._start_exact)
        timer.start()
        self._exact_timer = timer

    def _exact_note(self, text: str) -> None:
        self.panels.exact_note.set_text(text)
        self.panels.exact_note.set_visible(bool(text))

    def _start_exact(self):
        state = self.state
        self._exact_timer = None
        if state is None or not state.ok or state.exact_status != "pending":
            return False
        job = ExactFiniteJob(state.params, state.counts)
        job.start()
        self._exact_job = job
        timer = self.fig.canvas.new_timer(interval=self.EXACT_POLL_MS)
        timer.add_callback(self._poll_exact)
        timer.start()
        self._exact_timer = timer
        return False

    def _poll_exact(self):
        job = self._exact_job
        if job is None:
            return False
        if not job.done:
            return True
        if self._exact_timer is not None:
            self._exact_timer.stop()
            self._exact_timer = None
        self._exact_job = None
        self._apply_exact(job)
        return False

    def _apply_exact(self, job: ExactFiniteJob) -> None:
        """Show a finished computation if it belongs to the point on screen."""
        state = self.state
        if job.cancelled or state is None or not state.ok or job_key(state.params) != job.key:
            return
        if job.result is not None:
            attach_finite_exact(state, job.result)
        else:
            state.exact_status = "unavailable"
            state.exact_message = (
                f"exact finite-p theory at p = {state.finite_dim}: unavailable ({job.error})"
            )
            state.exact_note = "exact finite-p theory: unavailable (see below)"
        self.panels.render(state)
        if self._mc is not None:  # render() cleared the overlay: it belongs to this point
            self._mc_drawn = -1
            self._poll()
        self.info_text.set_text(describe(state))
        self._request_draw()

    def compute_exact_now(self) -> ExplorerState:
        """Compute the exact finite-ratio theory at the current point in this thread (blocking;
        snapshots and tests) and show it; a no-op unless its status is ``'pending'``."""
        state = self.state
        if state is not None and state.ok and state.exact_status == "pending":
            self._cancel_exact()
            job = ExactFiniteJob(state.params, state.counts)
            job.run()
            self._apply_exact(job)
        return self.state

    # ------------------------------------------------------------------------------------------
    # Monte Carlo
    def start_simulation(self, blocking: bool = False) -> MonteCarloRun | None:
        """Start a Monte Carlo at the current point.

        ``blocking=True`` runs all trials in the calling thread (snapshot, tests); otherwise a
        daemon worker thread runs them and a canvas timer polls the progress.
        """
        self.cancel_simulation("")
        if self.state is None or not self.state.ok:
            self.mc_text.set_text("cannot simulate: invalid parameters")
            self._request_draw()
            return None
        try:
            run = MonteCarloRun(self._params)
        except ValueError as exc:
            self.mc_text.set_text(f"cannot simulate: {exc}")
            self._request_draw()
            return None
        self._mc = run
        self._mc_drawn = -1
        self._set_progress(run)
        if blocking:
            run.run()
            self._poll()
            return run
        cancel = threading.Event()
        self._mc_cancel = cancel

        def work():
            while not cancel.is_set() and run.step():
                pass

        self._mc_thread = threading.Thread(target=work, name="explorer-mc", daemon=True)
        self._mc_thread.start()
        self._timer = self.fig.canvas.new_timer(interval=250)
        self._timer.add_callback(self._poll)
        self._timer.start()
        return run

    def cancel_simulation(self, message: str = "cancelled") -> None:
        """Stop a running Monte Carlo (after its current trial) and remove its overlay."""
        self._stop_worker()
        self._mc, self._mc_cancel, self._mc_thread, self._timer = None, None, None, None
        self.panels.clear_mc()
        self.progress_bar.set_width(0.0)
        self.mc_text.set_text(message)
        self._request_draw()

    def _set_progress(self, run: MonteCarloRun, summary: MonteCarloSummary | None = None):
        self.progress_bar.set_width(run.progress)
        failed = summary is not None and bool(summary.errors)
        state = "running" if not run.done else ("failed" if failed else "done")
        self.progress_bar.set_color(PROGRESS_COLORS[state])
        p = run.params
        done = round(run.progress * run.total)
        msg = f"Monte Carlo: {done}/{run.total} trials (mixture, p={run.dim}, seed {p['seed']})"
        if run.done:
            msg += " - done"
        if summary is not None and summary.errors:
            msg += f"\n{len(summary.errors)} failed: {summary.errors[0][:60]}"
        self.mc_text.set_text(msg)

    def _poll(self):
        run = self._mc
        if run is None:
            return False
        attempted = round(run.progress * run.total)
        if attempted == self._mc_drawn and not run.done:
            return True  # no new trial since the last poll: skip the (full-window) redraw
        self._mc_drawn = attempted
        summary = run.summary()
        self.panels.render_mc(summary)
        self._set_progress(run, summary)
        if run.done and self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._request_draw()
        return not run.done

    def wait_simulation(self, timeout: float | None = None) -> None:
        """Join the worker thread (tests) and draw the final overlay."""
        if self._mc_thread is not None:
            self._mc_thread.join(timeout)
        self._poll()


if __name__ == "__main__":  # python -m figures.explorer: the command line of explorer_cli
    from figures.explorer_cli import main
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
