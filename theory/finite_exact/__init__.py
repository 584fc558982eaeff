r"""Exact finite-ratio theory of cross-entropy self-distillation on the Gaussian mixture.

The linearised finite-``p`` theory (:mod:`theory.finite`) predicts label averaging on a random
Gram matrix; this package predicts the algorithm itself -- ridge multinomial logistic regression,
round after round on the previous round's softmax outputs -- for ``N, p`` large with ``N/p`` and
``lam N`` fixed, any ``K`` and any count matrix (docs/theory.md §16). Modules, one job each:

* :mod:`~theory.finite_exact.quadrature` -- the deterministic Gaussian point set;
* :mod:`~theory.finite_exact.prox` -- the cross-entropy proximal step, batched;
* :mod:`~theory.finite_exact.symmetry` -- which groups are integrated (cyclic count matrices);
* :mod:`~theory.finite_exact.state` -- the state equations, round by round;
* :mod:`~theory.finite_exact.predict` -- accuracies and the public result type.
"""

from theory.finite_exact.predict import (
    DEFAULT_POINTS,
    FiniteExactPrediction,
    exact_resource_estimate,
    predict_finite_exact,
)
from theory.finite_exact.state import FixedPointNotConverged

__all__ = [
    "DEFAULT_POINTS",
    "FiniteExactPrediction",
    "FixedPointNotConverged",
    "exact_resource_estimate",
    "predict_finite_exact",
]
