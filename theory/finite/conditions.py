"""Conditions on the rounds at finite ``p``, read off the prediction (docs §11.8).

:func:`population_rounds` (the best round and the first above ``1 - delta``) and
:func:`finite_phase_diagram` (accuracies over ``(N/p, t)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.finite.model import MixtureModel
from theory.finite.predict import FinitePrediction, predict_finite
from theory.validation import check_int, check_positive


@dataclass(frozen=True)
class PopulationRounds:
    """When self-distillation helps the population at finite ``p`` (:func:`population_rounds`).

    Attributes
    ----------
    best_round : int
        The round ``t`` in ``0..R`` of largest predicted population accuracy (the first one).
    best_accuracy : float
    gain : float
        ``best_accuracy - accuracy of the teacher`` (round 0): SD's generalisation gain.
    first_round_above : int or None
        The smallest ``t`` with population accuracy ``>= 1 - delta`` (``None``: not within R).
    delta : float
    """

    best_round: int
    best_accuracy: float
    gain: float
    first_round_above: int | None
    delta: float

    def to_json(self) -> dict:
        """The ``conditions`` object of ``theory predict --json`` (key order fixed)."""
        return {
            "best_population_round": self.best_round,
            "best_population_acc": self.best_accuracy,
            "population_gain": self.gain,
            "first_round_population_above": self.first_round_above,
            "delta": self.delta,
        }


def population_rounds(pred: FinitePrediction, delta: float = 0.01) -> PopulationRounds:
    r"""Conditions on the rounds at finite ``p``: the best round and the first ``>= 1 - delta``.

    These are read off the deterministic prediction (rounds ``0..R``): at finite ``p`` the
    population accuracy is not a monotone function of ``t`` in general (it rises while the rounds
    remove the memorised bulk component, and may fall once the global-histogram part dominates,
    docs §6.4 and §11.8), so no closed form is claimed. Ties in accuracy go to the earlier round.
    """
    delta = check_positive(delta, "delta")
    if delta >= 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    acc = np.asarray(pred.population_acc, dtype=float)
    best = int(np.argmax(acc))
    above = np.flatnonzero(acc >= 1.0 - delta)
    return PopulationRounds(
        best_round=best,
        best_accuracy=float(acc[best]),
        gain=float(acc[best] - acc[0]),
        first_round_above=int(above[0]) if above.size else None,
        delta=float(delta),
    )


def finite_phase_diagram(n_classes, per_class, c, d, counts, lam, ratios, rounds):
    """Population and mislabeled-point accuracy over ``(N/p, t)`` (the finite-``p`` phase diagram).

    Parameters
    ----------
    ratios : sequence of float
        ``N/p`` values; ``0`` means the block limit ``p = inf``. ``p = round(N/ratio)`` must be
        ``> K``.

    Returns
    -------
    dict
        ``ratios`` (P,), ``dims`` (P,) (``inf`` for ratio 0), ``population_acc`` and
        ``train_acc_mislabeled`` of shape (P, R + 1).
    """
    k = check_int(n_classes, "n_classes", 2)
    n = check_int(per_class, "per_class", 1)
    big_n = k * n
    ratios = np.asarray(ratios, dtype=float)
    if ratios.ndim != 1 or ratios.size == 0 or np.any(~np.isfinite(ratios)) or np.any(ratios < 0):
        raise ValueError("ratios must be a non-empty 1-D array of finite values N/p >= 0")
    dims, pop, mis = [], [], []
    for ratio in ratios:
        dim = math.inf if ratio == 0 else max(k, int(round(big_n / ratio)))
        pred = predict_finite(MixtureModel(k, n, dim, c, d), counts, lam, rounds)
        dims.append(float(dim))
        pop.append(pred.population_acc)
        mis.append(pred.train_acc_mislabeled)
    return {
        "ratios": ratios,
        "dims": np.array(dims),
        "population_acc": np.array(pop),
        "train_acc_mislabeled": np.array(mis),
    }
