r"""JSON-able summaries of the exact finite-ratio theory, and the linearised theory's error flag.

Used by ``python -m theory predict --dim P`` and ``python -m simulations run`` (no printing here).

The linearised finite-``p`` theory (:mod:`theory.finite`) predicts the linearised dynamics; its
distance to the exact theory is its *error indicator* (docs §16.7): a value whose distance
exceeds :data:`LINEARISED_TOL` is flagged as outside the regime where the linearised theory was
validated. Where the exact theory was not computed, the measured regime map decides
(:func:`linearised_regime`).
"""

from __future__ import annotations

import math

import numpy as np

from theory.finite import population_rounds

__all__ = [
    "ACC_KEYS",
    "LINEARISED_TOL",
    "exact_regime_notes",
    "exact_rows",
    "exact_summary",
    "linearised_flags",
    "linearised_regime",
    "random_matrix_failure",
]

ACC_KEYS = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")
#: Largest distance from the exact theory at which a linearised value counts as validated: the
#: agreement criterion of the validation against exact SD (issue 20: max(3 SE, 0.03)).
LINEARISED_TOL = 0.03


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def exact_rows(pred) -> list[dict]:
    """Per round: the four accuracies (``None`` where undefined)."""
    return [
        {key: _num(getattr(pred, key)[t]) for key in ACC_KEYS}
        for t in range(pred.train_acc.shape[0])
    ]


def exact_summary(pred, delta: float) -> dict:
    """Best population round, gain, first round ``>= 1 - delta`` and the fixed point's state."""
    cond = population_rounds(pred, delta)
    return {
        "dim": int(pred.model.dim),
        "ratio": pred.model.ratio,
        "linearised": False,
        "conditions": cond.to_json(),
        "fixed_point": {
            "converged": bool(pred.converged),
            "iterations": [int(i) for i in pred.iterations],
            "max_residual": float(np.max(pred.residuals)),
        },
        "quadrature_err": {
            "train": float(np.max(pred.train_quadrature_err)),
            "population": float(np.max(pred.population_quadrature_err)),
        },
        "symmetry": pred.symmetry,
        "points_per_group": int(pred.points),
    }


def random_matrix_failure(lam: float, ratio: float) -> str | None:
    """Why the linearised finite-p theory is refused at ``(lam, N/p)``, or ``None``.

    Measured (issue 20, K = 4, n = 25): at ``lam <= 1e-4`` with ``p <= N/2`` and at
    ``lam <= 1e-3`` with ``p <= N/4`` its random-matrix part (the deterministic equivalents of
    §11.3-11.5) misses even the *linearised* Monte Carlo by 0.09-0.25, mostly in the teacher
    round: ``kappa = K lam N`` is then small against the bulk's spread below ``p < N`` (the atom
    at 0 and the lower Marchenko-Pastur edge), where the first-order fluctuation expansion fails.
    """
    if (lam <= 1e-4 and ratio >= 2.0) or (lam <= 1e-3 and ratio >= 4.0):
        return (
            f"linearised finite-p theory refused at lam = {lam:g}, N/p = {ratio:.3g}: its "
            "random-matrix part fails there (lam <= 1e-4 with p <= N/2, or lam <= 1e-3 with "
            "p <= N/4; docs §11.9); use the exact finite-ratio theory"
        )
    return None


def linearised_regime(n_classes: int, lam: float, ratio: float) -> tuple[bool, str]:
    """Whether the measured regime map validates the linearised theory (``N/p = ratio``).

    From docs §16.7 (linearised theory vs exact SD on the 90-cell grid, c = 0.4, d = 0.1,
    symmetric and pair noise): within 0.03 only for ``lam >= 1e-2`` with ``K <= 4`` and
    ``N/p <= 1``.
    """
    if lam >= 1e-2 and n_classes <= 4 and ratio <= 1.0:
        return True, "inside the validated regime (lam >= 1e-2, K <= 4, N/p <= 1)"
    return False, (
        f"outside the validated regime of the linearised theory (lam >= 1e-2, K <= 4 and "
        f"N/p <= 1; here lam = {lam:g}, K = {n_classes}, N/p = {ratio:.3g}): it predicts the "
        "linearised dynamics, which exact cross-entropy SD leaves at small lam and many classes"
    )


def exact_regime_notes(n_classes: int, per_class: int, ratio: float) -> tuple[str, ...]:
    """A note where ``(K, n, N/p)`` lies outside the grid the exact finite-ratio theory was
    validated on against exact SD (docs §16.7-§16.8: ``n >= 10`` per class, ``N/p <= 2``,
    ``K <= 20``); empty inside it."""
    outside = []
    if per_class < 10:
        outside.append(f"n = {per_class} < 10 (its O(1/n) terms are first-order, §16.8)")
    if ratio > 2:
        outside.append(f"N/p = {ratio:.3g} > 2")
    if n_classes > 20:
        outside.append(f"K = {n_classes} > 20")
    if not outside:
        return ()
    return (
        "outside the grid the exact finite-ratio theory was validated on against exact SD "
        "(docs/theory.md §16.7): " + "; ".join(outside),
    )


def linearised_flags(lin_rows: list[dict], exact: list[dict] | None, regime) -> list[dict]:
    """Per round: ``error_indicator`` (max |linearised - exact| over the accuracies, or ``None``)
    and ``validated`` (indicator <= LINEARISED_TOL, or the regime map without the exact theory)."""
    out = []
    for t, row in enumerate(lin_rows):
        if exact is None:
            out.append({"error_indicator": None, "validated": bool(regime[0])})
            continue
        gaps = [
            abs(row[k] - exact[t][k])
            for k in ACC_KEYS
            if row.get(k) is not None and exact[t].get(k) is not None
        ]
        err = max(gaps) if gaps else None
        out.append({"error_indicator": err, "validated": err is not None and err <= LINEARISED_TOL})
    return out
