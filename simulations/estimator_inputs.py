"""What :class:`simulations.estimator.SelfDistillationClassifier` accepts: parameters and features.

:class:`InvalidParameterError` (a ``ValueError`` and a ``TypeError``, as in scikit-learn) and the
two helpers that raise it for the estimator's hyper-parameters (:func:`check_real`,
:func:`as_invalid_parameter`); :func:`check_raw_scale`, the refusal of raw features whose scale
puts ``lam`` outside its range; :func:`center_l2`, the ``preprocess='center-l2'`` map applied to
new features with the training mean. Every public name is importable from
:mod:`simulations.estimator` too.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from simulations.datasets import normalise_rows, power_of_two_scale
from theory.validation import LAM_MAX, LAM_MIN

__all__ = [
    "InvalidParameterError",
    "as_invalid_parameter",
    "center_l2",
    "check_raw_scale",
    "check_real",
]


def center_l2(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``(x - mean) / ||x - mean||_2`` row-wise; rows equal to ``mean`` stay zero (new array).

    The operations of :func:`simulations.datasets.preprocess` (used in ``fit``) with a given mean,
    equally scale-free: ``x`` and ``mean`` are divided by one power of two near their largest
    entry (exact) and the rows normalised without overflow.
    """
    scale = max(power_of_two_scale(x), power_of_two_scale(mean))
    out = x / scale
    out -= mean / scale
    normalise_rows(out)
    return out


class InvalidParameterError(ValueError, TypeError):
    """A hyper-parameter of the wrong type or outside its range, named in the message.

    Both a ``ValueError`` and a ``TypeError``, like scikit-learn's own ``InvalidParameterError``:
    ``lam='0.1'`` and ``lam=True`` are refused (not converted), as scikit-learn refuses
    ``C='0.1'``.
    """


def check_real(value, name: str) -> float:
    """``value`` as a float if it is a real number (not a bool, a string or a complex number)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise InvalidParameterError(
            f"{name} must be a real number, got {value!r} of type {type(value).__name__}"
        )
    return float(value)


def as_invalid_parameter(check):
    """Run a validation; its ``ValueError`` becomes :class:`InvalidParameterError`."""
    try:
        return check()
    except InvalidParameterError:
        raise
    except ValueError as exc:
        raise InvalidParameterError(str(exc)) from None


def check_raw_scale(x: np.ndarray, lam: float) -> None:
    """Refuse raw features (``preprocess='raw'`` or ``None``) whose scale puts ``lam`` outside its
    range.

    The probe depends on ``lam`` and the features only through ``lam / ||x||^2``: the supported
    range ``[LAM_MIN, LAM_MAX]`` (:func:`theory.validation.check_lam`) is stated for unit-norm
    features, so ``lam / max_i ||x_i||^2`` must lie in it. Features times 1e200 (squares beyond
    float64) or 1e-300 (squares below it) are refused in one line instead of overflowing in the
    solver or fitting a trivial model; ``preprocess='center-l2'`` is scale-free.
    """
    scale = power_of_two_scale(x)
    top = float(np.max(np.einsum("ij,ij->i", x / scale, x / scale))) if x.size else 0.0
    if top == 0.0:
        return  # all-zero features: the solver's own checks apply
    log_eff = math.log10(lam) - 2.0 * math.log10(scale) - math.log10(top)
    if not math.log10(LAM_MIN) <= log_eff <= math.log10(LAM_MAX):
        raise ValueError(
            f"with raw features (preprocess='raw' or None), lam / max ||x||^2 = 1e{log_eff:.0f} "
            f"must lie in [{LAM_MIN:g}, {LAM_MAX:g}] (the range the solvers support for unit-norm "
            f"features; X has rows of norm up to "
            f"1e{math.log10(scale) + 0.5 * math.log10(top):.0f}); rescale X or use "
            "preprocess='center-l2'"
        )
