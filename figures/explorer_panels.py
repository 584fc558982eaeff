"""The explorer's four panels and their artists, without widgets (:class:`ExplorerPanels`).

Training and population accuracy per round, the block eigen-weights and the ``(eta, t)`` phase
diagram, drawn from an :class:`~figures.explorer_model.ExplorerState` (and a Monte Carlo summary)
in a region of any figure: the window of :class:`figures.explorer.ExplorerApp` (sliders, blitting,
background jobs) and the notebook (``notebooks/explore.ipynb``) both draw through it. Colours and
markers follow :mod:`figures.palette`.
"""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from figures import palette
from figures.explorer_model import (
    ExplorerState,
    MonteCarloSummary,
    reliable_bulk_weights,
)

__all__ = ["EIG_HEADROOM", "EIG_SLACK", "ExplorerPanels"]

#: The eigen-weight axis is narrowed only when it is this many times wider than needed.
EIG_SLACK = 1e3
#: When the eigen-weight axis changes, its lower end is set this many times below the smallest
#: weight drawn, so that a lam drag (the smallest weight scales like lam^-(R+1)) rescales it
#: rarely: each rescale repaints that panel's y-axis and inside (~25 ms more CPU than a move
#: that does not, at K = 10; figures.explorer_redraw.BlitRedraw._repaint_y_range).
EIG_HEADROOM = 100.0
#: Tick objects created up front on the eigen-weight y-axis (ExplorerPanels.__init__).
_EIG_MAJOR_TICKS, _EIG_MINOR_TICKS = 16, 96
#: Horizontal offsets so that theory markers and Monte Carlo error bars do not hide each other.
_MC_OFFSET = 0.15
_PLL_ROUND = 1.0
_CAP = 0.07  # half-width of the CI caps, in rounds


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def decade_label(y, _pos=None) -> str:
    """Tick label ``10ᵏ`` for ``y = 10**k`` (Unicode superscripts), ``""`` between decades.

    Plain text instead of matplotlib's mathtext ``$10^{k}$``: a rescaled eigen-weight axis
    shows exponents not seen before, and mathtext parses each new label (~10-25 ms per label),
    which made the move that rescales the axis the slowest of a lam drag.
    """
    if not (np.isfinite(y) and y > 0):
        return ""
    k = int(np.round(np.log10(y)))
    if not np.isclose(y, 10.0**k, rtol=1e-9, atol=0.0):
        return ""
    return "10" + str(k).translate(_SUPERSCRIPT)


def _empty(line):
    line.set_data([], [])


class ExplorerPanels:
    """The four explorer panels in ``rect`` = (left, bottom, right, top) of ``fig``; no widgets.

    A shared legend is anchored (its ``legend_loc`` corner) at ``legend_anchor`` in figure
    coordinates; it lists only what is drawn (rebuilt by :meth:`render` / :meth:`render_mc` when
    that changes). Colours and markers follow :mod:`figures.palette`: all training points black,
    mislabeled points orange, the PLL student vermillion (theory: stars at round 1, filled exact,
    hollow linearised), Monte Carlo SD black circles and PLL vermillion diamonds with their 95%
    CIs, offset to the right of the theory.

    Used by :class:`~figures.explorer.ExplorerApp` and by the notebook. ``render(state)`` sets
    every artist's data from an :class:`~figures.explorer_model.ExplorerState`;
    ``render_mc(summary)`` overlays a Monte Carlo summary (and says so when its dimension differs
    from the theory's); ``clear_mc()`` removes it. :meth:`data_artists` lists the artists whose
    data change on an update (the ones an interactive window redraws by blitting).
    """

    def __init__(
        self,
        fig,
        rect=(0.05, 0.30, 0.66, 0.94),
        legend_anchor=(0.40, 0.02),
        legend_loc="lower left",
    ):
        from matplotlib import patheffects
        from matplotlib.collections import LineCollection

        left, bottom, right, top = rect
        gs = fig.add_gridspec(
            2, 2, left=left, bottom=bottom, right=right, top=top, hspace=0.38, wspace=0.3
        )
        self.fig = fig
        self.legend_anchor, self.legend_loc = legend_anchor, legend_loc
        self.ax_train = fig.add_subplot(gs[0, 0])
        self.ax_pop = fig.add_subplot(gs[0, 1])
        self.ax_eig = fig.add_subplot(gs[1, 0])
        self.ax_phase = fig.add_subplot(gs[1, 1])
        #: The four panels, in the order of :meth:`axes_signatures`.
        self.all_axes = (self.ax_train, self.ax_pop, self.ax_eig, self.ax_phase)
        self.lines: dict[str, object] = {}
        black, mis, pll = palette.THEORY, palette.MISLABELED, palette.PLL
        for ax, kind, title in (
            (self.ax_train, "train", "training accuracy (true labels)"),
            (self.ax_pop, "pop", "population accuracy"),
        ):
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("round t")
            ax.set_ylim(-0.03, 1.05)
            ax.grid(alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            self.lines[f"{kind}_exact"] = ax.plot(
                [], [], "-", color=black, marker=".", label="exact"
            )[0]
            self.lines[f"{kind}_linear"] = ax.plot([], [], "--", color=black, label="linearised")[0]
            if kind == "train":
                self.lines["mis_exact"] = ax.plot(
                    [], [], "-", color=mis, marker=".", label="mislabeled pts, exact"
                )[0]
                self.lines["mis_linear"] = ax.plot(
                    [], [], "--", color=mis, label="mislabeled pts, linearised"
                )[0]
            # The hollow (linearised) star is larger and below the filled (exact) one: where the
            # two coincide a ring shows around the filled star.
            self.lines[f"{kind}_pll_linear"] = ax.plot(
                [], [], "*", color=pll, mfc="white", mew=1.2, ms=19, zorder=4,
                label="PLL student, linearised",
            )[0]  # fmt: skip
            self.lines[f"{kind}_pll_exact"] = ax.plot(
                [], [], "*", color=pll, mec="black", mew=0.6, ms=12, zorder=5,
                label="PLL student, exact",
            )[0]  # fmt: skip
            # Linearised finite-p values outside their validated regime (palette.FLAG_MARKER).
            self.lines[f"{kind}_flag"] = ax.plot(
                [], [], color=black, zorder=3.5, label="linearised > 0.03 from exact",
                **palette.FLAG_MARKER,
            )[0]  # fmt: skip
            if kind == "train":
                self.lines["mis_flag"] = ax.plot(
                    [], [], color=mis, zorder=3.5, label="mislabeled, > 0.03 from exact",
                    **palette.FLAG_MARKER,
                )[0]  # fmt: skip
            self.lines[f"{kind}_mc"] = ax.plot(
                [], [], "o", color=black, mec="white", mew=0.6, ms=5, label="Monte Carlo SD"
            )[0]
            self.lines[f"{kind}_mc_pll"] = ax.plot(
                [], [], "D", color=pll, mec="black", mew=0.6, ms=6, label="Monte Carlo PLL"
            )[0]
            coll = LineCollection([], colors="0.25", linewidths=1.3)
            ax.add_collection(coll)
            self.lines[f"{kind}_mc_ci"] = coll
        # Said in the accuracy panels when the Monte Carlo's p differs from the theory's.
        self.mc_note = self.ax_train.text(
            0.02, 0.03, "", transform=self.ax_train.transAxes, fontsize=9, color="darkred",
            va="bottom", ha="left", bbox={"boxstyle": "round", "fc": "white", "ec": "darkred"},
        )  # fmt: skip
        # The exact finite-ratio theory's state: computing, skipped (and why), unavailable.
        self.exact_note = self.ax_pop.text(
            0.02, 0.03, "", transform=self.ax_pop.transAxes, fontsize=8, color="0.2",
            va="bottom", ha="left", wrap=True, visible=False,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.5"},
        )  # fmt: skip

        self.ax_eig.set_title("eigen-weights a_j(t) = (μ_j/(μ_j+KλN))^(t+1)", fontsize=10)
        self.ax_eig.set_xlabel("round t")
        self.ax_eig.set_yscale("log")
        self.ax_eig.yaxis.set_major_formatter(FuncFormatter(decade_label))
        self.ax_eig.yaxis.set_minor_formatter(NullFormatter())
        # Ticks are created on first need (~0.4 ms each, with their grid line) and reused after:
        # create now as many as a rescale can show (9 decades of 8 minor ticks at most), so
        # that a lam move to a short y-range (below 10 decades) does not pay for them.
        self.ax_eig.yaxis.get_major_ticks(_EIG_MAJOR_TICKS)
        self.ax_eig.yaxis.get_minor_ticks(_EIG_MINOR_TICKS)
        self.ax_eig.grid(alpha=0.3, which="both")
        self.ax_eig.xaxis.set_major_locator(MaxNLocator(integer=True))
        for j, name in enumerate(("μ1: global mean", "μ2: class contrasts", "μ3: within class")):
            self.lines[f"eig{j}"] = self.ax_eig.plot(
                [], [], "o-", color=palette.EIGEN[j], ms=3, label=name
            )[0]
        self.lines["eig_bulk"] = self.ax_eig.plot(
            [], [], "--", color=palette.EIGEN[2], label="bulk average (finite p)"
        )[0]
        self.eig_legend = None

        self.ax_phase.set_title("(η, t) phase: linearised train acc.", fontsize=10)
        self.ax_phase.set_xlabel("η (noise rate)")
        self.ax_phase.set_ylabel("round t")
        self.ax_phase.yaxis.set_major_locator(MaxNLocator(integer=True))
        self.image = self.ax_phase.imshow(
            np.zeros((2, 2)),
            origin="lower",
            aspect="auto",
            cmap=palette.CMAP,
            vmin=0.0,
            vmax=1.0,
            interpolation="nearest",
            extent=(0, 1, -0.5, 1.5),
        )
        cb = fig.colorbar(self.image, ax=self.ax_phase, fraction=0.05, pad=0.02)
        cb.set_label("linearised train acc.")
        outline = [patheffects.withStroke(linewidth=3, foreground="black")]
        self.lines["phase_first"] = self.ax_phase.plot(
            [], [], "-", color="white", lw=1.5, drawstyle="steps-mid", label="first 100% round",
            path_effects=outline,
        )[0]  # fmt: skip
        self.lines["phase_plurality"] = self.ax_phase.plot(
            [], [], "v", color=palette.REFERENCE, mec="white", ms=5, label="plurality fails"
        )[0]
        self.lines["phase_point"] = self.ax_phase.plot(
            [], [], "*", color="white", mec="black", mew=1.5, ms=20, zorder=10, clip_on=False,
            label="current (η, R)",
        )[0]  # fmt: skip
        self.legend_keys = (
            "train_exact",
            "train_linear",
            "mis_exact",
            "mis_linear",
            "train_flag",
            "train_pll_exact",
            "train_pll_linear",
            "train_mc",
            "train_mc_pll",
            "phase_first",
            "phase_plurality",
            "phase_point",
        )
        self.block_labels = {k: self.lines[k].get_label() for k in self.legend_keys}
        self.legend = None
        self._legend_sig = None
        self._mc_label = None  # Monte Carlo legend suffix, e.g. "p = 400"
        self._relegend({})

        self.error_text = fig.text(
            0.5 * (left + right),
            0.5 * (bottom + top),
            "",
            ha="center",
            va="center",
            fontsize=12,
            color="darkred",
            wrap=True,
            bbox={"boxstyle": "round", "fc": "mistyrose", "ec": "darkred"},
            visible=False,
            zorder=10,
        )
        self.state: ExplorerState | None = None

    # ------------------------------------------------------------------------------------------
    def data_artists(self) -> list:
        """Artists whose data change on an update (blitted by an interactive window)."""
        return [*self.lines.values(), self.image, self.mc_note, self.exact_note, self.error_text]

    def _drawn(self, key) -> bool:
        if key == "train_flag":  # one legend entry for the crosses of all three curves
            return any(self._drawn_artist(k) for k in ("train_flag", "mis_flag", "pop_flag"))
        return self._drawn_artist(key)

    def _drawn_artist(self, key) -> bool:
        art = self.lines[key]
        if key.endswith("_mc_ci"):
            return len(art.get_segments()) > 0
        return len(art.get_xdata()) > 0 and np.isfinite(np.asarray(art.get_ydata(), float)).any()

    def _relegend(self, labels: dict) -> None:
        """(Re)build the shared legend from the drawn artists (only when its content changes)."""
        keys = [k for k in self.legend_keys if self._drawn(k)]
        entries = tuple((k, labels.get(k, self.block_labels[k])) for k in keys)
        if entries == self._legend_sig and self.legend is not None:
            return
        if self.legend is not None:
            self.legend.remove()
        self._legend_sig = entries
        handles = [self.lines[k] for k, _ in entries]
        self.legend = self.fig.legend(
            handles,
            [lab for _, lab in entries],
            loc=self.legend_loc,
            bbox_to_anchor=self.legend_anchor,
            ncol=3,
            fontsize=8,
            frameon=False,
        )

    def _relegend_eig(self) -> None:
        keys = [f"eig{j}" for j in range(3)] + (["eig_bulk"] if self._drawn("eig_bulk") else [])
        labels = tuple(self.lines[k].get_label() for k in keys)
        if self.eig_legend is not None and getattr(self, "_eig_sig", None) == labels:
            return
        if self.eig_legend is not None:
            self.eig_legend.remove()
        self._eig_sig = labels
        # Framed whatever the rcParams say (figures.style turns legend frames off) and opaque,
        # so that its inside does not depend on the grid lines beneath, and its entries
        # well inside its frame (borderpad 0.8 font sizes, ~8 px, against the 3.5 px of frame
        # edge that blends with what is beneath): a window keeps its inside's pixels when the
        # axis rescales (figures.explorer_redraw.BlitRedraw._repaint_y_range).
        self.eig_legend = self.ax_eig.legend(
            [self.lines[k] for k in keys], labels, fontsize=7, loc="lower left",
            frameon=True, framealpha=1.0, borderpad=0.8,
        )  # fmt: skip
        # Above the grid (1.5) and below the curves (2), as in the window, where the curves are
        # blitted over the background: an opaque legend never hides a curve.
        self.eig_legend.set_zorder(1.6)

    def static_signature(self) -> tuple:
        """What an update can change outside the data artists (limits, titles, legends).

        A window redraws everything when it changes and only the data artists otherwise.
        """
        return (*self.axes_signatures().items(), self._legend_sig)

    def axes_signatures(self) -> dict:
        """Per panel, what an update can change in its static parts: limits, title (and the
        eigen-weight panel's legend). A window repaints only the panels whose entry changed
        (:meth:`~figures.explorer.ExplorerApp.refresh`); the shared legend (``_legend_sig``) is
        figure-level."""
        out = {}
        for ax in self.all_axes:
            sig = (ax.get_xlim(), ax.get_ylim(), ax.get_title())
            out[ax] = sig + ((getattr(self, "_eig_sig", None),) if ax is self.ax_eig else ())
        return out

    @staticmethod
    def inner_change(old, new) -> bool:
        """Whether two signatures of a panel (:meth:`axes_signatures`: x-limits, y-limits,
        title, [legend]) differ in the y-limits or the legend alone -- the eigen-weight axis
        rescaled by a lam move, its legend relabelled: the x-axis and the title stay, and a
        window repaints only the panel's inside and y-axis."""
        return old != new and (old[0], old[2]) == (new[0], new[2])

    # ------------------------------------------------------------------------------------------
    def render(self, state: ExplorerState) -> None:
        """Set every panel's data from ``state`` (or blank them and show ``state.error``)."""
        self.state = state
        self.clear_mc()
        if not state.ok:
            for name, line in self.lines.items():
                if not name.endswith("_mc_ci"):
                    _empty(line)
            self.image.set_data(np.full((2, 2), np.nan))
            self.exact_note.set_visible(False)
            self.error_text.set_text(f"Invalid parameters:\n{state.error}")
            self.error_text.set_visible(True)
            self._relegend({})
            self._relegend_eig()
            return
        self.error_text.set_visible(False)
        t = state.rounds
        # Solid curves: the exact finite-ratio theory when computed at the slider's p, else the
        # block model's exact theory; dashed: the linearised finite-p theory when computed (not
        # refused), else the block model's. Curves at p = inf are faded and relabelled when a
        # finite-p curve is shown (_label_theory); PLL curves are p = inf only.
        ex = state.finite_exact if state.finite_exact is not None else state.exact
        lin = state.finite if state.finite is not None else state.linear
        self.lines["train_linear"].set_data(t, lin.train_acc)
        self.lines["mis_linear"].set_data(t, lin.train_acc_mislabeled)
        self.lines["pop_linear"].set_data(t, lin.population_acc)
        if ex is not None:
            self.lines["train_exact"].set_data(t, ex.train_acc)
            self.lines["mis_exact"].set_data(t, ex.train_acc_mislabeled)
            self.lines["pop_exact"].set_data(t, ex.population_acc)
        else:
            for name in ("train_exact", "mis_exact", "pop_exact"):
                _empty(self.lines[name])
        off = state.linear_off if state.finite is not None else None
        for key, values in (
            ("train_flag", lin.train_acc),
            ("mis_flag", lin.train_acc_mislabeled),
            ("pop_flag", lin.population_acc),
        ):
            mask = None if off is None else off[key.split("_")[0]]
            if mask is None or not mask.any():
                _empty(self.lines[key])
            else:
                self.lines[key].set_data(t[mask], np.asarray(values)[mask])
        self.exact_note.set_text(state.exact_note)
        self.exact_note.set_visible(bool(state.exact_note))
        for method, pred in (("linear", state.pll_linear), ("exact", state.pll_exact)):
            for kind, values in (("train", "train_acc"), ("pop", "population_acc")):
                line = self.lines[f"{kind}_pll_{method}"]
                if pred is None:
                    _empty(line)
                else:
                    line.set_data([_PLL_ROUND], getattr(pred, values)[-1:])
        r = t[-1]
        for ax in (self.ax_train, self.ax_pop, self.ax_eig):
            ax.set_xlim(-0.4, max(r, 1) + 0.4)

        mult = state.multiplicities
        for j in range(3):
            self.lines[f"eig{j}"].set_data(t, state.weights[:, j])
            base = self.lines[f"eig{j}"].get_label().split(" [")[0]
            self.lines[f"eig{j}"].set_label(f"{base} [×{mult[j]}]")
        w = state.weights
        if state.finite is not None:
            bulk = reliable_bulk_weights(state.finite.bulk_weights)
            self.lines["eig_bulk"].set_data(t, bulk)
            cut = "; below round-off: not drawn" if np.isnan(bulk).any() else ""
            self.lines["eig_bulk"].set_label(f"bulk average (finite p{cut})")
            w = np.column_stack([w, bulk])
        else:
            _empty(self.lines["eig_bulk"])
        self._eig_limits(w)
        self._relegend_eig()

        ph = state.phase
        de = (ph.etas[-1] - ph.etas[0]) / max(ph.etas.size - 1, 1)
        self.image.set_data(ph.train_acc.T)
        extent = (ph.etas[0] - de / 2, ph.etas[-1] + de / 2, -0.5, r + 0.5)
        if tuple(self.image.get_extent()) != extent:
            self.image.set_extent(extent)
        self.ax_phase.set_xlim(ph.etas[0] - de / 2, ph.etas[-1] + de / 2)
        self.ax_phase.set_ylim(-0.5, r + 0.5)
        self.lines["phase_first"].set_data(ph.etas, ph.first_full_round)
        bad = ~ph.plurality
        self.lines["phase_plurality"].set_data(ph.etas[bad], np.full(bad.sum(), r + 0.3))
        self.lines["phase_point"].set_data([state.params["eta"]], [r])
        self._label_theory(state)

    def _eig_limits(self, w) -> None:
        """Log y-range that keeps every drawn weight in view, changed only when it must be.

        It is widened when a curve would leave it and narrowed when it is more than
        :data:`EIG_SLACK` times too wide, each time to :data:`EIG_HEADROOM` below the smallest
        weight, so small slider moves keep the axis (and the window can redraw only the curves).
        """
        vals = np.asarray(w, dtype=float)
        vals = vals[np.isfinite(vals) & (vals > 0)]
        need = max(float(vals.min()) if vals.size else 1e-12, 1e-300)
        lo, _ = self.ax_eig.get_ylim()
        if not (need / EIG_SLACK <= lo <= need / 1.5):
            self.ax_eig.set_ylim(need / EIG_HEADROOM, 1.5)

    def _label_theory(self, state: ExplorerState) -> None:
        """Legend labels, titles and fading saying which theory (block / finite p) is drawn."""
        lin_fin = state.finite is not None
        ex_fin = state.finite_exact is not None
        finite = lin_fin or ex_fin
        where = f"p = {state.finite_dim}" if finite else "p = ∞"
        self.ax_train.set_title(f"training accuracy (true labels), {where}", fontsize=10)
        self.ax_pop.set_title(f"population accuracy, {where}", fontsize=10)
        phase = "(η, t) phase: linearised train acc." + (" (p→∞)" if finite else "")
        self.ax_phase.set_title(phase, fontsize=10)
        at_p = f", finite p = {state.finite_dim}"
        flag = (
            "linearised > 0.03 from exact"
            if state.linear_off_reason == "exact"
            else "linearised, outside validated regime"
        )
        labels, alpha = {}, {}
        for key in self.legend_keys:
            label = self.block_labels[key]
            if key in ("train_linear", "mis_linear"):
                label += at_p if lin_fin else (" (p→∞)" if finite else "")
                alpha[key] = 0.35 if finite and not lin_fin else 1.0
            elif key in ("train_exact", "mis_exact"):
                label += at_p if ex_fin else (" (p→∞)" if finite else "")
                alpha[key] = 0.35 if finite and not ex_fin else 1.0
            elif "pll" in key and "mc" not in key:
                label += " (p→∞)" if finite else ""
                alpha[key] = 0.35 if finite else 1.0
            elif key == "train_flag":
                label = flag
            elif key in ("train_mc", "train_mc_pll") and self._mc_label:
                label += f" ({self._mc_label}, 95% CI)"
            labels[key] = label
        for key, a in alpha.items():
            self.lines[key].set_alpha(a)
            partner = key.replace("train_", "pop_")
            if partner != key and partner in self.lines:
                self.lines[partner].set_alpha(a)
        self._relegend(labels)

    def clear_mc(self) -> None:
        """Remove the Monte Carlo overlay."""
        for kind in ("train", "pop"):
            _empty(self.lines[f"{kind}_mc"])
            _empty(self.lines[f"{kind}_mc_pll"])
            self.lines[f"{kind}_mc_ci"].set_segments([])
        self.mc_note.set_text("")
        self.mc_note.set_visible(False)
        self._mc_label = None
        if self.state is not None and self.state.ok:
            self._label_theory(self.state)

    def render_mc(self, summary: MonteCarloSummary) -> None:
        """Overlay Monte Carlo means (markers) and 95% CIs (vertical bars).

        If the Monte Carlo's feature dimension differs from the theory's (``p = ∞`` when the
        N/p slider is at 0), a note in the training panel and the legend say so.
        """
        t = summary.rounds + _MC_OFFSET
        for kind, mean, ci, pmean, pci in (
            (
                "train",
                summary.sd_train_mean,
                summary.sd_train_ci,
                summary.pll_train_mean,
                summary.pll_train_ci,
            ),
            (
                "pop",
                summary.sd_pop_mean,
                summary.sd_pop_ci,
                summary.pll_pop_mean,
                summary.pll_pop_ci,
            ),
        ):
            self.lines[f"{kind}_mc"].set_data(t, mean)
            self.lines[f"{kind}_mc_pll"].set_data([_PLL_ROUND + 2 * _MC_OFFSET], [pmean])
            xs = np.append(t, _PLL_ROUND + 2 * _MC_OFFSET)
            ms = np.append(mean, pmean)
            hs = np.append(ci, pci)
            ok = np.isfinite(ms) & np.isfinite(hs)
            segs = []
            for x, m, h in zip(xs[ok], ms[ok], hs[ok], strict=True):
                segs.append([(x, m - h), (x, m + h)])  # the interval
                # caps, so that short intervals stay visible next to the marker
                segs += [[(x - _CAP, y), (x + _CAP, y)] for y in (m - h, m + h)]
            self.lines[f"{kind}_mc_ci"].set_segments(segs)
        dim = getattr(summary, "dim", None)
        theory_dim = None if self.state is None else self.state.finite_dim
        if self.state is not None and self.state.ok and self.state.finite is None:
            theory_dim = None  # the block model is drawn (p = inf)
        self._mc_label = None if dim is None else f"p = {dim}"
        if dim is not None and dim != theory_dim:
            shown = "∞" if theory_dim is None else str(theory_dim)
            self.mc_note.set_text(f"Monte Carlo at p = {dim}; theory at p = {shown}")
            self.mc_note.set_visible(True)
        else:
            self.mc_note.set_visible(False)
        if self.state is not None and self.state.ok:
            self._label_theory(self.state)
