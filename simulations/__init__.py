"""Empirical side of selfdistill-lab: features, noise, exact training, Monte Carlo sweeps.

Randomness only enters through explicit ``numpy.random.Generator`` / seed arguments.

The main entry points are importable from the package (``from simulations import solve_probe``);
they live in, and are documented with, their modules (docs/solver.md):

* the exact solver: :func:`~simulations.solver.solve_probe` (one certified probe fit),
  :func:`~simulations.solver.factorize`, :class:`~simulations.solver.ProbeSolution`;
* self-distillation and the PLL students: :func:`~simulations.distill.self_distill`,
  :func:`~simulations.distill.train_pll`, :func:`~simulations.pll_losses.train_pll_student`;
* features: :class:`~simulations.features.GaussianMixture`,
  :func:`~simulations.features.exact_block_features`;
* the Monte Carlo of a :class:`theory.spec.Spec`: :func:`~simulations.monte_carlo.simulate` and,
  with common random numbers across specs, :func:`~simulations.monte_carlo.simulate_many`
  (docs/api.md);
* one Monte Carlo trial and sweeps: :class:`~simulations.pipelines.TrialConfig`,
  :func:`~simulations.pipelines.run_trial`, :func:`~simulations.sweep.run_sweep`,
  :func:`~simulations.sweep.load_spec`;
* your own features: :func:`~simulations.probe.run_probe`, :class:`~simulations.probe.ProbeConfig`,
  :func:`~simulations.datasets.load_dataset`, and the scikit-learn estimator
  :class:`~simulations.estimator.SelfDistillationClassifier`.

Importing ``simulations`` imports none of them: each submodule is imported on first use of one
of its names (PEP 562), so ``import simulations`` stays cheap (no scikit-learn, no dask) and
cannot create import cycles.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it (imported on first access).
_EXPORTS = {
    "SelfDistillationClassifier": "simulations.estimator",
    "ProbeSolution": "simulations.solver",
    "factorize": "simulations.solver",
    "solve_probe": "simulations.solver",
    "self_distill": "simulations.distill",
    "train_pll": "simulations.distill",
    "PLLStudent": "simulations.pll_losses",
    "train_pll_student": "simulations.pll_losses",
    "GaussianMixture": "simulations.features",
    "exact_block_features": "simulations.features",
    "simulate": "simulations.monte_carlo",
    "simulate_many": "simulations.monte_carlo",
    "TrialConfig": "simulations.pipelines",
    "run_trial": "simulations.pipelines",
    "load_spec": "simulations.sweep",
    "run_sweep": "simulations.sweep",
    "ProbeConfig": "simulations.probe",
    "run_probe": "simulations.probe",
    "load_dataset": "simulations.datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'simulations' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
