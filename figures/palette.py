"""One meaning per colour, marker and line style, shared by every figure and the explorer.

A reader who has learnt one figure can read the next without its legend. The roles:

=====================  ============================================================================
colour                 meaning (nowhere else used for anything else)
=====================  ============================================================================
grey ``TEACHER``       the teacher (round 0)
blue ramp ``SD_CMAP``  self-distillation rounds ``t = 1, 2, ...`` (light to dark, :func:`sd_color`)
vermillion ``PLL``     the PLL student (the accent)
green ``CLEAN``        clean training points (given label = true label)
orange ``MISLABELED``  mislabeled training points
yellow-brown ramp      the noise rate ``eta`` when several are compared (:func:`eta_color`)
``ETA_CMAP``
purple ramp            the feature ratio ``N/p`` (light = large ``p``, dark = small ``p``,
``DIM_CMAP``           :func:`dim_color`)
black ``THEORY``       a theory quantity with no role above (class average, ``rho^(t+1)``, ...)
grey ``REFERENCE``     reference lines (``1/K``, ``p = N``, plurality boundary): thin, dash-dot,
                       always labelled where they are drawn
``EIGEN``              the three block eigenspaces (global mean, class means, within class)
``CMAP``               continuous heat maps of an accuracy (``cividis``, 0..1)
``OUTCOME_COLORS``     categorical maps (pll_conditions' outcomes; light tints, never lines)
=====================  ============================================================================

Encodings: **theory is a line** (solid: exact theory, which includes the exact finite-ratio theory;
dashed: linearised theory, which includes the linearised finite-``p`` theory), **simulation is a
marker with its 95% confidence interval** (filled: trained exactly; hollow: Monte Carlo of the
linearised dynamics). A linearised finite-``p`` value more than 0.03 from the exact finite-ratio
theory (outside the regime where it was validated) carries a cross (:data:`FLAG_MARKER`, in the
line's colour); where the linearised theory is refused (its random-matrix part fails) it is not
drawn, and heat-map cells are hatched (:data:`REFUSED_HATCH`). Markers name the model: teacher
square, SD round circle, PLL diamond (:data:`MARKERS`). Colour-blind safety: the hues are the
Okabe-Ito set (Okabe & Ito, 2008) and ramps vary in lightness.
"""

from __future__ import annotations

import matplotlib as mpl

__all__ = [
    "CLEAN",
    "CMAP",
    "DIM_CMAP",
    "EIGEN",
    "ETA_CMAP",
    "FLAG_MARKER",
    "LINESTYLES",
    "MARKERS",
    "MISLABELED",
    "OUTCOME_COLORS",
    "PLL",
    "REFERENCE",
    "REFUSED_HATCH",
    "REFERENCE_STYLE",
    "SD_CMAP",
    "TEACHER",
    "THEORY",
    "dim_color",
    "eta_color",
    "hollow",
    "model_color",
    "model_marker",
    "ramp_colors",
    "sd_color",
]

TEACHER = "#707070"
PLL = "#D55E00"
CLEAN = "#009E73"
MISLABELED = "#E69F00"
THEORY = "#000000"
REFERENCE = "#8C8C8C"
#: Thin dash-dot reference line (label it where it is drawn or in the legend).
REFERENCE_STYLE = {"color": REFERENCE, "lw": 0.9, "ls": "-.", "zorder": 1}
SD_CMAP = "Blues"
DIM_CMAP = "RdPu"
ETA_CMAP = "YlOrBr"
CMAP = "cividis"
#: Global mean, class means, within class (mu_1, mu_2, mu_3 of the block Gram matrix).
EIGEN = ("#000000", "#882255", "#999933")
#: Outcome categories of a PLL cell: train & population 100%, train only, population only,
#: neither, tie (Paul Tol's "light" scheme: readable under black markers and lines).
OUTCOME_COLORS = ("#44BB99", "#99DDFF", "#EEDD88", "#EE8866", "#DDDDDD")
MARKERS = {"teacher": "s", "sd": "o", "pll": "D"}
LINESTYLES = {"exact": "-", "linear": "--"}
#: A linearised finite-p value more than LINEARISED_TOL (0.03) from the exact finite-ratio theory
#: (figures.finite_theories.linearised_off): a cross on the dashed line, in the line's colour.
FLAG_MARKER = {"marker": "x", "markersize": 5.5, "markeredgewidth": 1.3, "linestyle": "none"}
#: Hatch of heat-map cells where a theory is refused (the linearised finite-p theory where its
#: random-matrix part fails) or not computed; drawn in REFERENCE grey.
REFUSED_HATCH = "////"

#: Lightness range of the ramps (the lightest end must stay visible on white).
_RAMP = (0.42, 0.95)


def _ramp(cmap: str, i: int, n: int) -> str:
    """Colour ``i`` of ``n`` evenly spaced colours of ``cmap`` within :data:`_RAMP`."""
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"need 0 <= i < n, got i={i}, n={n}")
    x = _RAMP[0] if n == 1 else _RAMP[0] + (_RAMP[1] - _RAMP[0]) * i / (n - 1)
    return mpl.colors.to_hex(mpl.colormaps[cmap](x))


def sd_color(t: int, rounds: int) -> str:
    """Colour of SD round ``t`` in ``1..rounds`` (teacher: :data:`TEACHER`)."""
    if t == 0:
        return TEACHER
    return _ramp(SD_CMAP, int(t) - 1, max(int(rounds), 1))


def dim_color(i: int, n: int) -> str:
    """Colour of the ``i``-th of ``n`` feature ratios ``N/p``, sorted from small to large."""
    return _ramp(DIM_CMAP, i, n)


def eta_color(i: int, n: int) -> str:
    """Colour of the ``i``-th of ``n`` noise rates, sorted from small to large."""
    return _ramp(ETA_CMAP, i, n)


def model_color(kind: str, t: int = 0, rounds: int = 1) -> str:
    """Colour of ``kind`` in ``{'teacher', 'sd', 'pll'}`` (``t``/``rounds`` for SD rounds)."""
    if kind == "teacher" or (kind == "sd" and t == 0):
        return TEACHER
    if kind == "sd":
        return sd_color(t, rounds)
    if kind == "pll":
        return PLL
    raise ValueError(f"kind must be 'teacher', 'sd' or 'pll', got {kind!r}")


def model_marker(kind: str, t: int = 1) -> str:
    """Marker of ``kind`` (:data:`MARKERS`); SD round 0 is the teacher."""
    if kind == "sd" and t == 0:
        kind = "teacher"
    return MARKERS[kind]


def ramp_colors(cmap: str, n: int) -> list[str]:
    """``n`` colours of a ramp (for a legend or a colour bar)."""
    return [_ramp(cmap, i, n) for i in range(n)]


def hollow(color: str) -> dict:
    """Marker keywords of a hollow marker (Monte Carlo of the linearised dynamics)."""
    return {"markerfacecolor": "white", "markeredgecolor": color, "markeredgewidth": 1.1}
