"""One consistent figure style: the shared palette, theory = lines, simulation = markers with CIs.

Conventions used by every figure module
---------------------------------------
* Colours, markers and line styles have one meaning across all figures (:mod:`figures.palette`):
  teacher grey, SD rounds a blue ramp, the PLL student a vermillion accent, clean / mislabeled
  points green / orange; heat maps of an accuracy use ``cividis`` (perceptually uniform and
  colour-blind safe).
* Theory is drawn as lines (solid for the exact group-level theory, dashed for the linearisation
  and the finite-``p`` theory), simulation as markers with 95% confidence bars. A shared legend
  says so once (:func:`encoding_handles`).
* Printed size: figures are made at the size they are printed (at most :data:`PAGE_WIDTH` inches
  wide) with every font at least :data:`MIN_FONT_PT` points (:func:`check_paper_rules`); rounds
  get integer ticks (:func:`integer_ticks`); reference lines are labelled where drawn
  (:func:`reference_line`).
* :func:`save_figure` writes ``NAME.png`` and ``NAME.pdf``, the options per preset from
  :func:`preset_save`: the paper preset a 300-dpi PNG and the PDF, the tiny preset (smoke tests,
  every writer exercised) both, the quick preset a 150-dpi PNG only (a preview: the PDF cost
  ~0.6 s of CPU per figure, an eighth of the quick run); :func:`write_csv` writes ``NAME.csv``
  with the data behind the figure.
  Every file is written atomically (:mod:`selfdistill_cli.files`): a full disk leaves the
  previous file intact and a symbolic link planted at the name is replaced, never followed.
* Outputs are reproducible: the same figure gives the same bytes in every run. The PDF carries no
  creation date (``metadata={'CreationDate': None}``; matplotlib would otherwise stamp the current
  time); the PNG's only metadata is the matplotlib version (``Software``) and its resolution.
  CSV numbers are plain Python literals (``0.025``, ``nan``, ``true``) that ``float()`` and
  ``csv`` read back: numpy scalars are converted first (under numpy 2 their repr is
  ``np.float64(0.025)``).

Figure scripts call :func:`use_file_backend` (via :func:`figures.common.parse_args`) to render with
the non-interactive ``Agg`` backend; importing this module does not change the backend, so an
interactive tool (the explorer) can share the palette without losing its window.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from figures import palette
from selfdistill_cli.files import atomic_write_many, atomic_write_text, render_figure

__all__ = [
    "CMAP",
    "MIN_FONT_PT",
    "PAGE_WIDTH",
    "check_paper_rules",
    "encoding_handles",
    "integer_ticks",
    "preset_dpi",
    "preset_save",
    "reference_line",
    "OKABE_ITO",
    "ROUND_COLORS",
    "apply_style",
    "figure",
    "fmt_count",
    "round_color",
    "save_figure",
    "sim_errorbar",
    "theory_line",
    "TIE_RANGE_STYLE",
    "tie_ranges",
    "use_file_backend",
    "write_csv",
]

#: Okabe-Ito palette (name -> hex).
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "skyblue": "#56B4E9",
    "green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "purple": "#CC79A7",
}
#: Colours for teacher, rounds 1..6 (:func:`figures.palette.sd_color`; kept for old callers).
ROUND_COLORS = tuple(palette.sd_color(t, 6) for t in range(7))
#: Sequential colour map for heatmaps (colour-blind safe, monotone lightness).
CMAP = palette.CMAP
#: Widest printed figure (inches): a full page width; figures are drawn at their printed size.
PAGE_WIDTH = 7.2
#: Smallest font at the printed size (points).
MIN_FONT_PT = 8.0
#: Resolution of the PNG per preset (the PDF is vector).
DPI = {"paper": 300}
DEFAULT_DPI = 150

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": DEFAULT_DPI,
    "font.size": 8.5,
    "axes.titlesize": 9,
    "axes.labelsize": 8.5,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 5,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
    "svg.fonttype": "none",
}


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def fmt_count(value) -> str:
    """Compact label for a size: ``10⁸`` for powers of ten >= 1000, else ``12,345``."""
    v = int(value)
    if v >= 1000 and 10 ** (len(str(v)) - 1) == v:
        return "10" + str(len(str(v)) - 1).translate(_SUPERSCRIPT)
    return f"{v:,}"


def use_file_backend() -> None:
    """Switch matplotlib to ``Agg`` (files only, no window; works on headless machines)."""
    matplotlib.use("Agg")


def apply_style() -> None:
    """Apply the project's matplotlib rcParams (idempotent)."""
    plt.rcParams.update(_RC)


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 2.3, height: float = 2.2, **kw):
    """``plt.subplots`` with the project style, ``width``/``height`` inches per panel.

    The total width is capped at :data:`PAGE_WIDTH` (panels shrink): a figure is drawn at the size
    it is printed, so its fonts keep their point sizes on the page.
    """
    apply_style()
    kw.setdefault("layout", "constrained")
    total = min(width * ncols, PAGE_WIDTH)
    return plt.subplots(nrows, ncols, figsize=(total, height * nrows), **kw)


def round_color(t: int, rounds: int = 6) -> str:
    """Colour of round ``t`` (teacher = 0, grey; rounds ``1..rounds`` on the SD ramp)."""
    return palette.sd_color(min(int(t), max(int(rounds), 1)), rounds)


def preset_dpi(preset: str) -> int:
    """PNG resolution of a preset: 300 dpi for ``paper``, else :data:`DEFAULT_DPI`."""
    return DPI.get(preset, DEFAULT_DPI)


#: Presets whose figures are written as PNG only (module docstring).
PNG_ONLY_PRESETS = frozenset({"quick"})


def preset_save(preset: str) -> dict:
    """Keyword arguments of :func:`save_figure` for a preset: ``dpi`` and ``pdf``."""
    return {"dpi": preset_dpi(preset), "pdf": preset not in PNG_ONLY_PRESETS}


def integer_ticks(ax, axis: str = "x") -> None:
    """Integer major ticks on ``axis`` (rounds are integers)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(MaxNLocator(integer=True))


def reference_line(
    ax,
    value,
    label: str,
    *,
    axis: str = "y",
    pos: float = 0.98,
    rotate: bool = True,
    side: str = "left",
    **kw,
):
    """A labelled thin reference line at ``value`` (text at the line, ``pos`` along the axis).

    ``axis='y'``: horizontal line, text right-aligned at ``pos`` of the axis width, just above it;
    ``axis='x'``: vertical line, text along it (``rotate``, on its ``side``: ``'left'`` or
    ``'right'``) or beside it at ``pos`` of the axis height.
    """
    style = {**palette.REFERENCE_STYLE, **kw}
    color = style["color"]
    if axis == "y":
        line = ax.axhline(value, **style)
        ax.annotate(
            label,
            (pos, value),
            xycoords=("axes fraction", "data"),
            xytext=(0, 2),
            textcoords="offset points",
            ha="right" if pos > 0.5 else "left",
            va="bottom",
            color=color,
            fontsize=MIN_FONT_PT,
        )
    else:
        line = ax.axvline(value, **style)
        ax.annotate(
            label,
            (value, pos),
            xycoords=("data", "axes fraction"),
            xytext=(-2, 0) if rotate and side == "left" else (2, 0),
            textcoords="offset points",
            ha="right" if rotate and side == "left" else "left",
            va="top" if pos > 0.5 else "bottom",
            rotation=90 if rotate else 0,
            color=color,
            fontsize=MIN_FONT_PT,
        )
    return line


def encoding_handles(*, exact=True, linear=False, sim=True, sim_linear=False, ci=True):
    """Legend entries that say once how theory and simulation are drawn (black, role-free).

    ``exact``/``linear``: solid / dashed theory lines; ``sim``: filled marker with its 95% CI
    (trained exactly); ``sim_linear``: hollow marker (Monte Carlo of the linearised dynamics).
    """
    out = []
    if exact:
        out.append(Line2D([], [], color="0.15", ls="-", label="exact theory"))
    if linear:
        out.append(Line2D([], [], color="0.15", ls="--", label="linearised theory"))
    if sim:
        label = "simulation ± 95% CI" if ci else "simulation"
        out.append(_marker_handle("0.15", "o", label, filled=True))
    if sim_linear:
        out.append(_marker_handle("0.15", "o", "linearised sim. ± 95% CI", filled=False))
    return out


def _marker_handle(color, marker, label, *, filled=True):
    kw = {} if filled else palette.hollow(color)
    return Line2D([], [], color=color, marker=marker, ls="none", ms=5, label=label, **kw)


def role_handles(roles):
    """Legend entries for model roles: ``[('teacher', label), ('sd', t, rounds, label), ...]``.

    Each is a coloured line with the role's marker (used for both theory and simulation).
    """
    out = []
    for role in roles:
        kind, label = role[0], role[-1]
        if kind == "sd":
            t, rounds = role[1], role[2]
            color, marker = palette.sd_color(t, rounds), palette.model_marker("sd", t)
        else:
            color, marker = palette.model_color(kind), palette.model_marker(kind)
        out.append(Line2D([], [], color=color, marker=marker, ms=4.5, label=label))
    return out


def check_paper_rules(fig) -> list[str]:
    """Problems of ``fig`` against the paper rules; an empty list when it complies.

    Checked: the width is at most :data:`PAGE_WIDTH` inches (the figure is its printed size);
    every visible, non-empty text is at least :data:`MIN_FONT_PT` points; an axis labelled as a
    round (``round``) has integer major ticks; every legend entry has a non-empty label.
    """
    from matplotlib.text import Text

    problems = []
    width = fig.get_size_inches()[0]
    if width > PAGE_WIDTH + 1e-9:
        problems.append(f"figure is {width:.2f} in wide (> {PAGE_WIDTH} in)")
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT_PT:
            problems.append(f"text {text.get_text()[:30]!r} at {text.get_fontsize():.1f} pt")
    for ax in fig.axes:
        for axis, label in ((ax.xaxis, ax.get_xlabel()), (ax.yaxis, ax.get_ylabel())):
            if "round" in label.lower() and axis.get_scale() == "linear":
                ticks = [v for v in axis.get_majorticklocs() if np.isfinite(v)]
                lo, hi = axis.get_view_interval()
                shown = [v for v in ticks if min(lo, hi) - 1e-9 <= v <= max(lo, hi) + 1e-9]
                if any(abs(v - round(v)) > 1e-9 for v in shown):
                    problems.append(f"axis {label!r} has non-integer ticks {shown}")
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + fig.legends
    for leg in legends:
        for t in leg.get_texts():
            if not t.get_text().strip():
                problems.append("legend entry without a label")
    return problems


def theory_line(ax, x, y, *, color, label=None, linear: bool = False, **kw):
    """Draw theory as a line: solid for exact, dashed for the linearisation."""
    kw.setdefault("linestyle", "--" if linear else "-")
    kw.setdefault("zorder", 2)
    return ax.plot(x, y, color=color, label=label, **kw)


#: Style of :func:`tie_ranges` (also for legend entries: ``ax.plot([], [], **TIE_RANGE_STYLE)``).
TIE_RANGE_STYLE = {"lw": 1.0, "alpha": 0.6, "linestyle": ":", "marker": "_", "markersize": 5}


def tie_ranges(ax, x, theory, upper, *, color, offset: float = 0.0, **kw):
    """Draw the admissible range ``[theory, upper]`` where the theory has exact ties.

    An exact tie counts as an error in the theory, but at finite ``p`` it is broken at random, so
    the expected accuracy lies anywhere in the range (see :func:`figures.common.prediction_bounds`).
    Drawn as a thin dotted interval with end caps (a range, not a measurement: a wide bar would
    dominate the panel where the range spans 0..1), shifted by ``offset`` along x so that the
    ranges of several series at the same x stay apart; nothing is drawn where ``upper == theory``.
    """
    x, lo, hi = (np.asarray(v, dtype=float) for v in (x, theory, upper))
    sel = np.flatnonzero(hi > lo)
    if not sel.size:
        return
    style = {**TIE_RANGE_STYLE, "zorder": 1, **kw}
    xs = x[sel] + offset
    cap = {k: style.pop(k) for k in ("marker", "markersize")}
    ax.vlines(xs, lo[sel], hi[sel], color=color, **style)
    ax.plot(
        np.repeat(xs, 2),
        np.column_stack([lo[sel], hi[sel]]).ravel(),
        ls="none",
        color=color,
        alpha=style["alpha"],
        zorder=style["zorder"],
        **cap,
    )


def sim_errorbar(ax, x, mean, half_width, *, color, label=None, marker="o", hollow=False, **kw):
    """Draw simulation means as markers with (95% CI) error bars, no connecting line.

    ``hollow=True``: a white-filled marker (Monte Carlo of the linearised dynamics).
    """
    if hollow:
        for key, value in palette.hollow(color).items():
            kw.setdefault(key, value)
    kw.setdefault("zorder", 3)
    kw.setdefault("capsize", 2)
    kw.setdefault("markersize", 4.5)
    kw.setdefault("markeredgecolor", "white")
    kw.setdefault("markeredgewidth", 0.6)
    kw.setdefault("elinewidth", 1.0)
    return ax.errorbar(
        x, mean, yerr=half_width, color=color, marker=marker, linestyle="none", label=label, **kw
    )


#: PDF metadata: no creation date, so that the same figure gives the same bytes (module docs).
PDF_METADATA = {"CreationDate": None}


def save_figure(fig, out_dir, name: str, *, dpi: int | None = None, pdf: bool = True) -> list[Path]:
    """Write ``NAME.png`` (and ``NAME.pdf`` if ``pdf``) into ``out_dir`` (created); the paths.

    Both are byte-for-byte reproducible (module docstring). The layout is computed once, for the
    PNG: the figure's layout engine is then switched off, so the PDF has the PNG's positions and
    skips a second constrained-layout pass (~0.1-0.3 s per figure).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png"] + ([out / f"{name}.pdf"] if pdf else [])
    try:  # rendered in memory, then written atomically together (selfdistill_cli.files)
        files = {paths[0]: render_figure(fig, paths[0], dpi=dpi or _RC["savefig.dpi"])}
        if pdf:
            fig.set_layout_engine("none")  # keep the positions the PNG was drawn with
            files[paths[1]] = render_figure(fig, paths[1], metadata=PDF_METADATA)
    finally:
        plt.close(fig)
    atomic_write_many(files)
    return paths


def _fmt(value) -> str:
    """A CSV cell that ``float()`` / ``csv`` read back (numpy scalars as Python numbers)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):  # np.float64 is a float whose repr is np.float64(x)
        v = float(value)
        return "nan" if math.isnan(v) else repr(v)
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def write_csv(rows: list[dict], out_dir, name: str) -> Path:
    """Write a tidy table (list of dicts; columns in first-seen order) as ``NAME.csv``."""
    if not rows:
        raise ValueError("rows must be a non-empty list of dicts")
    cols: list[str] = []
    for row in rows:
        cols.extend(k for k in row if k not in cols)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for row in rows:
        writer.writerow([_fmt(row.get(c)) for c in cols])
    return atomic_write_text(out / f"{name}.csv", buf.getvalue())
