"""Figures of selfdistill-lab: theory (lines) and Monte Carlo simulation (markers) on the same axes.

Run every figure with ``python -m figures`` (see :mod:`figures.__main__`); each module in
:data:`FIGURES` also runs alone, e.g. ``python -m figures.sd_vs_pll --preset quick``.
"""

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
