r"""The two finite-``p`` theories as the figures and the explorer use them.

* The **exact finite-ratio theory** (:func:`theory.finite_exact.predict_finite_exact`, docs
  §16) predicts exact cross-entropy self-distillation -- what :mod:`simulations.gram_trials` and
  :func:`simulations.pipelines.run_trial` simulate -- at finite ``N/p``. It costs seconds
  (:func:`theory.finite_exact.exact_resource_estimate`), so :func:`exact_accuracies` keeps every
  prediction of the process in one cache shared by all figures (``sd_generalization`` and
  ``finite_phase`` draw the same ``K = 10, lam = 1e-4`` configuration) and the explorer. Round
  ``t`` of the theory depends on rounds ``<= t`` only (each round's fixed point is solved given
  the earlier ones, on nested quadrature points), so a cached prediction with more rounds answers
  a request with fewer: the answer is the cached prediction's first rounds, bit for bit.
* The **linearised finite-p theory** (:func:`theory.finite.predict_finite`, docs §11) predicts the
  linearised dynamics. Its values are flagged where they leave the regime in which they were
  validated: :func:`refusal` (the random-matrix part fails, :func:`theory.finite_exact.report.
  random_matrix_failure`: the value is not drawn) and :func:`linearised_off` (more than
  :data:`LINEARISED_TOL` from the exact theory: drawn with :data:`figures.palette.FLAG_MARKER`).

Stopping rule. The figures solve the state equations to a relative change of :data:`EXACT_TOL`
instead of the library default ``1e-7``: measured (K = 4 and 10, ``lam = 1e-2 .. 1e-4``, 3-12
rounds, 16 lattice points) the accuracies move by at most ``2e-3`` between the two, far below the
``0.03`` agreement rule and the quadrature error, and the solve takes 20-40% less time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from theory.finite import MixtureModel, predict_finite
from theory.finite_exact import exact_resource_estimate, predict_finite_exact
from theory.finite_exact.report import LINEARISED_TOL, linearised_regime, random_matrix_failure

__all__ = [
    "EXACT_TOL",
    "LINEARISED_TOL",
    "ExactAccuracies",
    "cache_info",
    "clear_cache",
    "exact_accuracies",
    "exact_estimate",
    "fmt_lam",
    "is_cached",
    "linear_prediction",
    "linearised_regime",
    "linearised_off",
    "refusal",
    "refusal_rule",
]

#: Stopping rule of the state equations in figures (module docs: accuracies move <= 2e-3).
EXACT_TOL = 1e-4
#: Most predictions kept (each holds a few MB of order parameters at K = 10).
CACHE_SIZE = 48

_ACC = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")


@dataclass(frozen=True)
class ExactAccuracies:
    """Accuracies of the exact finite-ratio theory, rounds ``0..R`` (each array shape (R + 1,)).

    ``quadrature_err`` is the larger of the training and population quadrature error estimates
    per round (3 standard errors over the lattice shifts; the orthant error), ``points`` the
    lattice points per shift, ``seconds`` the CPU time the prediction took (0 on a cache hit).
    """

    train_acc: np.ndarray
    train_acc_clean: np.ndarray
    train_acc_mislabeled: np.ndarray
    population_acc: np.ndarray
    quadrature_err: np.ndarray
    points: int
    dim: float
    converged: bool
    seconds: float = 0.0

    def get(self, field: str) -> np.ndarray:
        """An accuracy by its theory name (``population_acc``, ``train_acc_mislabeled``, ...)."""
        if field not in _ACC:
            raise ValueError(f"field must be one of {_ACC}, got {field!r}")
        return getattr(self, field)


_CACHE: dict[tuple, tuple[int, ExactAccuracies]] = {}
_STATS = {"hits": 0, "misses": 0}
#: Guards the caches (the explorer computes in a background thread); never held while computing.
_LOCK = threading.RLock()


def _key(model: MixtureModel, counts, lam, points, tol) -> tuple:
    cnt = np.ascontiguousarray(counts, dtype=np.int64)
    return (
        model.n_classes,
        model.per_class,
        float(model.dim),
        float(model.c),
        float(model.d),
        cnt.shape,
        cnt.tobytes(),
        float(lam),
        int(points),
        float(tol),
    )


def _slice(acc: ExactAccuracies, rounds: int, seconds: float) -> ExactAccuracies:
    r1 = rounds + 1
    return ExactAccuracies(
        *(getattr(acc, f)[:r1].copy() for f in (*_ACC, "quadrature_err")),
        points=acc.points,
        dim=acc.dim,
        converged=acc.converged,
        seconds=seconds,
    )


def exact_accuracies(
    model: MixtureModel,
    counts,
    lam: float,
    rounds: int,
    *,
    points: int,
    tol: float = EXACT_TOL,
    progress=None,
) -> ExactAccuracies:
    """Accuracies of :func:`theory.finite_exact.predict_finite_exact`, rounds ``0..rounds``, cached.

    Parameters
    ----------
    model : MixtureModel
        ``K, n, p, c, d`` (``p = inf``: the block model's exact group theory).
    counts : array_like of int, shape (K, K)
    lam : float
    rounds : int
    points : int
        Lattice points per shift (the quadrature resolution, ``>= 16``).
    tol : float
        Stopping rule of the state equations (module docs).
    progress : callable, optional
        Passed to the theory (called with the round index after each round; the explorer raises
        from it to cancel).

    Raises
    ------
    ValueError
        Invalid input (from the theory: ``p <= K``, ``c >= 1``, a count matrix that does not fit).
    theory.finite_exact.FixedPointNotConverged
        When the state equations do not converge (never drawn as if converged).
    """
    import time

    key = _key(model, counts, lam, points, tol)
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None and hit[0] >= rounds:
            _STATS["hits"] += 1
            _CACHE[key] = _CACHE.pop(key)  # most recently used last
            return _slice(hit[1], rounds, 0.0)
        _STATS["misses"] += 1
    start = time.process_time()
    # The theory directly, not theory.spec.predict(spec, 'finite_exact'): the figures' stopping
    # rule ``tol`` (module docs), the per-round quadrature error and the explorer's ``progress``
    # (cancel) are not parameters or fields of predict / Result; the floats would differ.
    pred = predict_finite_exact(
        model, counts, lam, rounds, points=points, tol=tol, progress=progress
    )
    err = np.maximum(
        np.nan_to_num(pred.train_quadrature_err), np.nan_to_num(pred.population_quadrature_err)
    )
    acc = ExactAccuracies(
        *(np.asarray(getattr(pred, f), dtype=float) for f in _ACC),
        quadrature_err=err,
        points=int(points),
        dim=float(model.dim),
        converged=bool(pred.converged),
    )
    with _LOCK:
        old = _CACHE.pop(key, None)
        if old is None or old[0] < rounds:  # keep the longer of two concurrent answers
            old = (int(rounds), acc)
        _CACHE[key] = old
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
    return _slice(acc, rounds, time.process_time() - start)


def exact_estimate(
    model: MixtureModel, counts, lam: float, rounds: int, *, points: int, tol: float = EXACT_TOL
) -> float:
    """Typical seconds of :func:`exact_accuracies` (``0`` when the cache answers).

    :func:`theory.finite_exact.exact_resource_estimate` of the point, before any work.
    """
    if is_cached(model, counts, lam, rounds, points=points, tol=tol):
        return 0.0
    return float(exact_resource_estimate(model, counts, rounds, points=points)["seconds"])


def is_cached(model: MixtureModel, counts, lam, rounds, *, points, tol=EXACT_TOL) -> bool:
    """Whether :func:`exact_accuracies` would answer from the cache."""
    with _LOCK:
        hit = _CACHE.get(_key(model, counts, lam, points, tol))
    return hit is not None and hit[0] >= rounds


_LINEAR_CACHE: dict[tuple, object] = {}


def linear_prediction(model: MixtureModel, counts, lam: float, rounds: int):
    """:func:`theory.finite.predict_finite` (the linearised finite-p theory), cached likewise.

    Shared by the figures that draw the same configuration (``sd_generalization``'s rows are
    ``finite_phase``'s exact maps); the cache holds at most :data:`CACHE_SIZE` predictions.
    """
    key = (*_key(model, counts, lam, 0, 0.0), int(rounds))
    with _LOCK:
        pred = _LINEAR_CACHE.pop(key, None)
    if pred is None:
        # Directly, not theory.spec.predict(spec, 'finite'), which refuses where the random-matrix
        # part fails (refusal): the figures still compute, write and flag those values.
        pred = predict_finite(model, counts, lam, rounds)
    with _LOCK:
        _LINEAR_CACHE[key] = pred  # most recently used last
        while len(_LINEAR_CACHE) > CACHE_SIZE:
            _LINEAR_CACHE.pop(next(iter(_LINEAR_CACHE)))
    return pred


def clear_cache() -> None:
    """Forget every cached prediction (tests that replace a theory)."""
    with _LOCK:
        _CACHE.clear()
        _LINEAR_CACHE.clear()
        _STATS.update(hits=0, misses=0)


def cache_info() -> dict:
    """``{'size', 'hits', 'misses'}`` of the shared cache."""
    with _LOCK:
        return {"size": len(_CACHE), **_STATS}


def refusal(lam: float, ratio: float) -> str | None:
    """Why the linearised finite-p theory is not drawn at ``(lam, N/p)``, or ``None``.

    :func:`theory.finite_exact.report.random_matrix_failure` (``ratio = N/p``; ``0`` is the block
    limit ``p = inf``, never refused).
    """
    if not ratio > 0 or not math.isfinite(ratio):
        return None
    return random_matrix_failure(float(lam), float(ratio))


def refusal_rule(lam: float, ratio: float) -> str | None:
    """The refusal rule that applies at ``(lam, N/p)``, short (for a legend or a panel note)."""
    if refusal(lam, ratio) is None:
        return None
    if lam <= 1e-4 and ratio >= 2.0:
        return "λ ≤ 1e-4 with p ≤ N/2"
    return "λ ≤ 1e-3 with p ≤ N/4"


_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def fmt_lam(lam: float) -> str:
    """``10⁻⁴`` for a power of ten, else ``3e-04``-style (compact, for titles and legends)."""
    exp = round(math.log10(lam))
    if math.isclose(lam, 10.0**exp, rel_tol=1e-9):
        return "10" + str(exp).translate(_SUPERSCRIPT)
    return f"{lam:.3g}"


def linearised_off(linear, exact, tol: float = LINEARISED_TOL) -> np.ndarray:
    """Where a linearised value is more than ``tol`` from the exact theory (boolean, same shape).

    ``False`` where either value is undefined (NaN). This is the error indicator of
    :func:`theory.finite_exact.report.linearised_flags`, per drawn value (the report takes the
    largest distance over the four accuracies of a round).
    """
    lin = np.asarray(linear, dtype=float)
    ex = np.asarray(exact, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.abs(lin - ex) > tol
