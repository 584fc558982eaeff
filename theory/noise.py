r"""Label-noise transition matrices and their exact per-class count matrices.

A transition matrix ``T`` of shape (K, K) is row-stochastic: ``T[k, l]`` is the probability that a
sample of true class ``k`` receives the (noisy) label ``l``. Four named families are provided
(``eta`` is the noise rate, ``K = n_classes``):

``'sym'``
    Symmetric noise: ``T[k, k] = 1 - eta`` and ``T[k, l] = eta / (K - 1)`` for ``l != k``.
``'pair'``
    Pair flip: ``T[k, k] = 1 - eta`` and ``T[k, (k + 1) mod K] = eta``.
``'asym'``
    The public reference code's asymmetric variant: ``eta / K`` to every other class plus an extra
    ``eta / K`` to the next class ``(k + 1) mod K``, i.e. ``T[k, k+1] = 2 eta / K`` and
    ``T[k, l] = eta / K`` for the other ``K - 2`` classes. The off-diagonal mass is
    ``(K - 1) eta / K + eta / K = eta``, so the diagonal is ``T[k, k] = 1 - eta`` (the same total
    flip rate as ``'sym'``; for ``K = 2`` it coincides with ``'sym'`` and ``'pair'``).
``'superclass'``
    Flips only within given groups (a partition of the classes): for a group of size ``g >= 2``,
    ``T[k, k] = 1 - eta`` and ``T[k, l] = eta / (g - 1)`` for the other members ``l`` of the group;
    a singleton group keeps its label, ``T[k, k] = 1``, so every row still sums to 1.

All families require ``0 <= eta <= 1``.

Exact counts
------------
For ``n = per_class`` samples per class, :func:`exact_counts` returns the integer matrix
``C[k, l]`` (samples of class ``k`` labelled ``l``) with rows summing exactly to ``n`` and
``C[k, l]`` within 1 of ``n T[k, l]``, by the *largest-remainder rule per row*:
take ``floor(n T[k, l])``, then hand the ``n - sum_l floor(n T[k, l])`` left-over samples one each
to the entries with the largest fractional parts; ties go to the label that comes first in cyclic
order from the true class, i.e. the smallest ``(l - k) mod K`` (own label first, then ``k+1``, ...).
The cyclic tie rule keeps the count matrix of a cyclically symmetric ``T`` (``'sym'``, ``'pair'``,
``'asym'``) circulant, so no class is favoured by rounding (a "smaller label index" rule would
give e.g. rows ``[4, 1, 0], [1, 3, 1], [1, 1, 3]`` for ``'asym'``, ``K = 3``, ``eta = 0.3``,
``n = 5``).
Products ``n T[k, l]`` within ``COUNT_ATOL`` of an integer are treated as that integer (so round-off
in e.g. ``10 * 0.3`` cannot change a count) and fractional parts are compared on a ``COUNT_ATOL``
grid (so round-off cannot break a tie).
"""

from __future__ import annotations

import numpy as np

from theory.names import NOISE_KINDS as _NOISE_KINDS
from theory.validation import check_finite_matrix, check_int

__all__ = [
    "COUNT_ATOL",
    "NOISE_KINDS",
    "ROW_ATOL",
    "check_eta",
    "check_groups",
    "check_transition",
    "exact_counts",
    "transition_matrix",
]

#: Names accepted by :func:`transition_matrix` (:data:`theory.names.NOISE_KINDS`).
NOISE_KINDS = _NOISE_KINDS
#: Absolute tolerance for rows summing to 1 and entries being >= 0 (float round-off of user input).
ROW_ATOL = 1e-9
#: Tolerance on ``per_class * T[k, l]`` for counting (see module docstring); far above the
#: round-off of a product of two doubles (~1e-16 relative) and far below a count step of 1.
COUNT_ATOL = 1e-9


def check_eta(eta) -> float:
    """``eta`` as a float in ``[0, 1]`` (``ValueError`` otherwise); nothing is allocated."""
    return _check_eta(eta)


def _check_eta(eta) -> float:
    try:
        val = float(eta)
    except (TypeError, ValueError):
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}") from None
    if not np.isfinite(val) or val < 0 or val > 1:
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
    return val


def check_groups(groups, n_classes: int) -> list[list[int]]:
    """Validate that ``groups`` is a partition of ``range(n_classes)`` into non-empty groups.

    Returns the groups as lists of ints (order preserved).
    """
    k = check_int(n_classes, "n_classes", 2)
    if groups is None:
        raise ValueError("groups is required for kind='superclass' (a partition of the classes)")
    out: list[list[int]] = []
    seen: set[int] = set()
    for g in groups:
        members = [check_int(x, "groups member", 0) for x in np.atleast_1d(np.asarray(g)).tolist()]
        if not members:
            raise ValueError("groups must not contain an empty group")
        for m in members:
            if m >= k:
                raise ValueError(f"groups members must lie in [0, {k}), got {m}")
            if m in seen:
                raise ValueError(f"groups must be disjoint; class {m} appears twice")
            seen.add(m)
        out.append(members)
    if len(seen) != k:
        missing = sorted(set(range(k)) - seen)
        raise ValueError(
            f"groups must cover every class 0..{k - 1} (use singletons to keep labels); "
            f"missing {missing}"
        )
    return out


def transition_matrix(kind: str, n_classes, eta, *, groups=None) -> np.ndarray:
    """Row-stochastic label-noise transition matrix of a named family.

    Parameters
    ----------
    kind : {'sym', 'pair', 'asym', 'superclass'}
        Noise family, defined in the module docstring.
    n_classes : int
        ``K >= 2``.
    eta : float
        Noise rate in ``[0, 1]``; every family has ``T[k, k] = 1 - eta`` except singleton
        superclass groups (``T[k, k] = 1``).
    groups : sequence of sequences of int, optional
        Required for ``'superclass'``: a partition of ``range(K)``; ignored otherwise (must be
        ``None``).

    Returns
    -------
    ndarray, shape (K, K)
        ``T[k, l] = P(noisy label l | true class k)``; rows sum to 1.
    """
    k = check_int(n_classes, "n_classes", 2)
    e = _check_eta(eta)
    if kind not in NOISE_KINDS:
        raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")
    if kind != "superclass" and groups is not None:
        raise ValueError(f"groups is only used with kind='superclass', not kind={kind!r}")
    t = np.zeros((k, k))
    nxt = (np.arange(k) + 1) % k
    if kind == "sym":
        t[:] = e / (k - 1)
        np.fill_diagonal(t, 1.0 - e)
    elif kind == "pair":
        t[np.arange(k), nxt] = e
        np.fill_diagonal(t, 1.0 - e)
    elif kind == "asym":
        t[:] = e / k
        t[np.arange(k), nxt] += e / k
        np.fill_diagonal(t, 1.0 - e)
    else:
        for members in check_groups(groups, k):
            g = len(members)
            if g == 1:
                t[members[0], members[0]] = 1.0
                continue
            idx = np.asarray(members)
            t[np.ix_(idx, idx)] = e / (g - 1)
            t[idx, idx] = 1.0 - e
    return t


def check_transition(matrix, name: str = "transition") -> np.ndarray:
    """Validate a row-stochastic matrix: (K, K), K >= 2, finite, entries >= 0, rows summing to 1.

    Entries in ``[-ROW_ATOL, 0)`` are clipped to 0 (round-off); the returned float64 matrix has rows
    renormalised to sum to 1 exactly up to round-off.
    """
    t = check_finite_matrix(matrix, name)
    if t.shape[0] != t.shape[1] or t.shape[0] < 2:
        raise ValueError(f"{name} must be square (K x K) with K >= 2, got shape {t.shape}")
    if t.min() < -ROW_ATOL:
        raise ValueError(f"{name} has negative entries (min {t.min():.3g}); entries must be >= 0")
    err = float(np.max(np.abs(t.sum(axis=1) - 1.0)))
    if err > ROW_ATOL * t.shape[0]:
        raise ValueError(f"{name} rows must sum to 1 (row-stochastic); max deviation {err:.3g}")
    t = np.clip(t, 0.0, None)
    return t / t.sum(axis=1, keepdims=True)


def exact_counts(transition, per_class) -> np.ndarray:
    """Integer count matrix realising ``transition`` as closely as possible with ``per_class`` rows.

    Parameters
    ----------
    transition : array_like, shape (K, K)
        Row-stochastic matrix (validated by :func:`check_transition`).
    per_class : int
        ``n >= 1`` samples per true class.

    Returns
    -------
    ndarray of int64, shape (K, K)
        ``C[k, l]`` = number of class-``k`` samples given label ``l``; ``C.sum(axis=1) == n`` and
        ``|C[k, l] - n T[k, l]| < 1``. Largest-remainder rule per row, ties to the smallest
        cyclic offset ``(l - k) mod K`` (module docstring).
    """
    t = check_transition(transition)
    n = check_int(per_class, "per_class", 1)
    scaled = n * t
    base = np.floor(scaled + COUNT_ATOL)
    frac = np.round((scaled - base) / COUNT_ATOL) * COUNT_ATOL
    counts = base.astype(np.int64)
    left = n - counts.sum(axis=1)
    n_classes = t.shape[0]
    for k in range(n_classes):
        if left[k] <= 0:
            continue
        offset = (np.arange(n_classes) - k) % n_classes
        # np.lexsort: last key is primary (largest remainder), then smallest cyclic offset.
        order = np.lexsort((offset, -frac[k]))
        counts[k, order[: left[k]]] += 1
    return counts
