"""One consistent figure style: Okabe-Ito colours, theory = lines, simulation = markers with CIs.

Conventions used by every figure module
---------------------------------------
* Colours come from the Okabe-Ito palette (Okabe & Ito, 2008), which stays distinguishable under the
  common colour-vision deficiencies; sequential maps use ``cividis`` (perceptually uniform and
  colour-blind safe).
* Theory is drawn as lines (solid for the exact group-level theory, dashed for the linearisation),
  simulation as markers with 95% confidence bars. Legends say which is which.
* :func:`save_figure` writes ``NAME.png`` and ``NAME.pdf``; :func:`write_csv` writes ``NAME.csv``
  with the data behind the figure. Every file is written atomically
  (:mod:`selfdistill_cli.files`): a full disk leaves the previous file intact and a symbolic link
  planted at the name is replaced, never followed.
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

from selfdistill_cli.files import atomic_write_many, atomic_write_text, render_figure

__all__ = [
    "CMAP",
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
#: Colours for teacher, round 1, 2, ... (black first: the teacher is the reference).
ROUND_COLORS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7")
#: Sequential colour map for heatmaps (colour-blind safe, monotone lightness).
CMAP = "cividis"

_RC = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 9,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
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


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 3.3, height: float = 2.7, **kw):
    """``plt.subplots`` with the project style, ``width``/``height`` inches per panel."""
    apply_style()
    kw.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), **kw)


def round_color(t: int) -> str:
    """Colour of round ``t`` (teacher = 0); cycles after the palette is exhausted."""
    return ROUND_COLORS[int(t) % len(ROUND_COLORS)]


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


def sim_errorbar(ax, x, mean, half_width, *, color, label=None, marker="o", **kw):
    """Draw simulation means as markers with (95% CI) error bars, no connecting line."""
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


def save_figure(fig, out_dir, name: str, *, dpi: int | None = None) -> list[Path]:
    """Write ``NAME.png`` and ``NAME.pdf`` into ``out_dir`` (created); return the paths.

    Both are byte-for-byte reproducible (module docstring).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.pdf"]
    try:  # rendered in memory, then both written atomically together (selfdistill_cli.files)
        png = render_figure(fig, paths[0], dpi=dpi or _RC["savefig.dpi"])
        pdf = render_figure(fig, paths[1], metadata=PDF_METADATA)
    finally:
        plt.close(fig)
    atomic_write_many({paths[0]: png, paths[1]: pdf})
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
