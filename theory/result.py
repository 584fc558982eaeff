r"""The result type shared by the theory and the Monte Carlo (issue 23, item 2).

:class:`Result` holds, per round and metric, a theory's value (:func:`theory.spec.predict`) or a
Monte Carlo mean with its standard error and 95% interval
(:func:`simulations.monte_carlo.simulate`), for the experiment a :class:`theory.spec.Spec` names.
Metrics use the simulations' spelling (:data:`METRICS`). Import it from :mod:`theory.spec` or
from here. Pure: no RNG, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from theory.names import THEORY_FIELDS

if TYPE_CHECKING:  # the spec module imports this one
    from theory.spec import Spec

__all__ = ["METRICS", "Result"]

#: Metrics of a :class:`Result`, in column order (the simulations' names).
METRICS = tuple(THEORY_FIELDS)


@dataclass(frozen=True, eq=False)
class Result:
    """Per round and metric: a theory's value, or a Monte Carlo mean with its errors.

    Attributes
    ----------
    spec : Spec
    source : str
        One of :data:`SOURCES`, or a Monte Carlo source (``'monte_carlo'``,
        ``'linearised_monte_carlo'``, ``'kernel_monte_carlo'``).
    values : ndarray, shape (R + 1, len(METRICS))
        ``[round, metric]``; ``NaN`` where a metric is undefined (no mislabeled points).
    se : ndarray, shape (R + 1, len(METRICS)), or None
        Monte Carlo standard error of the mean (``None`` for a theory).
    ci95 : ndarray, shape (R + 1, len(METRICS)), or None
        Half-width of the Student-t 95% interval of the mean (``None`` for a theory).
    trials : int or None
        Monte Carlo trials (``None`` for a theory).
    notes : tuple of str
        What the source says about itself: convergence, validity, refusals.
    extra : dict
        Source-specific diagnostics (JSON-compatible), e.g. the fixed point's residual.
    samples : ndarray, shape (trials, R + 1, len(METRICS)), or None
        Monte Carlo per-trial values (``simulate(..., keep_trials=True)``; else ``None``).
    counts : ndarray of int, shape (trials, K, K), or None
        Each trial's realised count matrix ``C[k, l]`` (``keep_trials=True``; else ``None``).
    trial_data : dict of ndarray
        Further per-trial fields with a leading trial axis (``keep_trials=True``), e.g.
        ``pop_acc_err`` (trials, R + 1) and ``max_residual`` (trials,); the backend lists them.
    pll : Result or None
        The PLL student trained from the *same* trials' teachers (``simulate(...,
        pll=True)``): its spec is this spec with ``method='pll-ce'``, rows [teacher, student].
    prediction : object, optional
        A theory's native prediction object, for what ``values`` do not carry (ties, per-round
        residuals and certificates, a PLL student's saddles, the finite-p bulk weights):
        :class:`theory.groups.GroupPrediction` (``'exact'``, ``'linear'``; for a PLL spec the
        student's, from :func:`theory.pll.predict_pll`), :func:`theory.finite.predict_finite`'s
        and :func:`theory.finite_exact.predict_finite_exact`'s results. Not serialised
        (:meth:`to_dict`), not compared; ``None`` for the Monte Carlo.
    """

    spec: Spec
    source: str
    values: np.ndarray
    se: np.ndarray | None = None
    ci95: np.ndarray | None = None
    trials: int | None = None
    notes: tuple = ()
    extra: dict = field(default_factory=dict)
    samples: np.ndarray | None = None
    counts: np.ndarray | None = None
    trial_data: dict = field(default_factory=dict)
    pll: Result | None = None
    prediction: object = field(default=None, repr=False, compare=False)

    @property
    def rounds(self) -> np.ndarray:
        """Round indices ``0..R``."""
        return np.arange(self.values.shape[0])

    def _column(self, array, metric):
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        return None if array is None else array[:, METRICS.index(metric)]

    def value(self, metric: str) -> np.ndarray:
        """Values (or Monte Carlo means) of ``metric`` per round, shape (R + 1,)."""
        return self._column(self.values, metric)

    def stderr(self, metric: str) -> np.ndarray | None:
        """Monte Carlo standard error of ``metric`` per round (``None`` for a theory)."""
        return self._column(self.se, metric)

    def to_rows(self) -> list[dict]:
        """Long format, one dict per (round, metric): ``source, round, metric, value, se, ci95``
        (``None`` where undefined), ready for ``csv.DictWriter`` or JSON."""
        rows = []
        for t in range(self.values.shape[0]):
            for j, metric in enumerate(METRICS):
                rows.append(
                    {
                        "source": self.source,
                        "round": t,
                        "metric": metric,
                        "value": _num(self.values[t, j]),
                        "se": None if self.se is None else _num(self.se[t, j]),
                        "ci95": None if self.ci95 is None else _num(self.ci95[t, j]),
                    }
                )
        return rows

    def to_dict(self) -> dict:
        """JSON-compatible: the spec, the source, ``trials``, ``notes``, ``extra`` and ``rows``
        (and ``pll``, the companion PLL student's dict, when there is one). Per-trial arrays
        (``samples``, ``counts``, ``trial_data``) are not included."""
        out = {
            "spec": self.spec.to_dict(),
            "source": self.source,
            "trials": self.trials,
            "notes": list(self.notes),
            "extra": self.extra,
            "rows": self.to_rows(),
        }
        if self.pll is not None:
            out["pll"] = self.pll.to_dict()
        return out


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None
