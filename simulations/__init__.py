"""Empirical side of selfdistill-lab: features, noise, exact training, Monte Carlo sweeps.

Randomness only enters through explicit ``numpy.random.Generator`` / seed arguments.

``from simulations import SelfDistillationClassifier`` gives the scikit-learn estimator
(:mod:`simulations.estimator`); it is imported lazily, so importing ``simulations`` (or any of its
other modules) does not import scikit-learn.
"""

__all__ = ["SelfDistillationClassifier"]


def __getattr__(name):
    if name == "SelfDistillationClassifier":
        from simulations.estimator import SelfDistillationClassifier

        return SelfDistillationClassifier
    raise AttributeError(f"module 'simulations' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
