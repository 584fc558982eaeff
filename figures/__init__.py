"""Figures of selfdistill-lab: theory (lines) and Monte Carlo simulation (markers) on the same axes.

Run every figure with ``python -m figures`` (see :mod:`figures.__main__`); each module in
:data:`FIGURES` also runs alone, e.g. ``python -m figures.sd_vs_pll --preset quick``, or from
Python: ``figures.sd_vs_pll.main(["--preset", "tiny", "--out", "out"])``.

The public names are :data:`FIGURES` and the figure modules it lists; a figure module is
imported on first access (PEP 562), so ``import figures`` imports neither matplotlib nor the
theory.
"""

from __future__ import annotations

import importlib

#: Figure modules in the order the runner produces them (``figures.<name>.main(argv)``).
FIGURES = (
    "label_averaging",
    "spectrum",
    "exact_vs_linear",
    "sd_vs_pll",
    "phase_diagram",
    "finite_dimension",
    "sd_generalization",
    "finite_phase",
    "real_gain",
    "pll_real",
    "pll_conditions",
)

__all__ = ["FIGURES", *FIGURES]


def __getattr__(name):
    if name in FIGURES:
        return importlib.import_module(f"figures.{name}")  # also binds it on the package
    raise AttributeError(f"module 'figures' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
