"""Pure, deterministic theory of self-distillation as label averaging.

No randomness, no I/O, no plotting: closed forms, Gram eigen-analysis and conditions.

The main entry points are importable from the package (``from theory import predict_exact``);
they live in, and are documented with, their modules:

* block model, ``p -> inf`` (docs/theory.md §§3-7): :class:`~theory.groups.BlockModel`,
  :func:`~theory.groups.predict_exact` (exact SD), :func:`~theory.groups.predict_linear`
  (linearised), :func:`~theory.pll.predict_pll` (the PLL student);
* label noise: :func:`~theory.noise.transition_matrix`, :func:`~theory.noise.exact_counts`;
* Gram matrices and label averaging: :func:`~theory.gram.block_gram`,
  :func:`~theory.averaging.eigen_weights`, :func:`~theory.averaging.linearised_outputs`;
* finite ``p`` (§§11, 16): :class:`~theory.finite.MixtureModel`,
  :func:`~theory.finite.predict_finite` (linearised),
  :func:`~theory.finite_exact.predict_finite_exact` (exact finite-ratio theory);
* conditions (§§6, 15): :func:`~theory.conditions.window_linear`,
  :func:`~theory.conditions.min_rounds_linear`, :func:`~theory.pll_conditions.loss_condition`,
  :func:`~theory.pll_flow.flow_student`;
* :func:`~theory.metrics.accuracy`;
* one spec and one result for every theory and the Monte Carlo (docs/api.md):
  :class:`~theory.spec.Spec`, :class:`~theory.spec.Result`, :func:`~theory.spec.predict`.

Importing ``theory`` imports none of them (nor numpy): each submodule is imported on first use
of one of its names (PEP 562), so ``import theory`` stays cheap and cannot create import cycles.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it (imported on first access).
_EXPORTS = {
    "BlockModel": "theory.groups",
    "GroupPrediction": "theory.groups",
    "predict_exact": "theory.groups",
    "predict_linear": "theory.groups",
    "LinearisationUndefinedError": "theory.pll",
    "predict_pll": "theory.pll",
    "exact_counts": "theory.noise",
    "transition_matrix": "theory.noise",
    "block_gram": "theory.gram",
    "eigen_weights": "theory.averaging",
    "linearised_outputs": "theory.averaging",
    "MixtureModel": "theory.finite",
    "FinitePrediction": "theory.finite",
    "predict_finite": "theory.finite",
    "FiniteExactPrediction": "theory.finite_exact",
    "predict_finite_exact": "theory.finite_exact",
    "window_linear": "theory.conditions",
    "min_rounds_linear": "theory.conditions",
    "loss_condition": "theory.pll_conditions",
    "flow_student": "theory.pll_flow",
    "accuracy": "theory.metrics",
    "Spec": "theory.spec",
    "Result": "theory.spec",
    "predict": "theory.spec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'theory' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
