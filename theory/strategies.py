r"""Hypothesis strategies for the block model: property testing as an API.

State a condition of the theory as a property over *all* admissible models, count matrices and
regularisations, and let `Hypothesis <https://hypothesis.readthedocs.io>`_ search for a
counterexample (and shrink it to a minimal one). The strategies draw only inside the theorems'
domain, so a failure is a real counterexample, never an invalid input:

* :func:`block_models` -- :class:`theory.groups.BlockModel` ``(K, n, c, d)`` with a positive
  semidefinite block Gram matrix;
* :func:`count_matrices` -- integer ``(K, K)`` count matrices (row ``k`` = the given labels of
  the ``n`` points of class ``k``), optionally balanced (circulant: every class confused alike)
  and with the true class the plurality of its row;
* :func:`lams` -- regularisations ``lam``, log-uniform in a range;
* :func:`cases` -- a model, a matching count matrix and a ``lam`` at once;
* :func:`mixtures` -- :class:`theory.finite.MixtureModel` (finite dimension ``p >= K``).

Example (``examples/property_condition.py``, docs/property_testing.md)::

    from hypothesis import given
    from theory.conditions import window_linear
    from theory.strategies import cases

    @given(cases(balanced=True))
    def test_balanced_window_never_closes(case):
        model, counts, lam = case
        window = window_linear(model, counts, lam)
        assert window is None or window[1] is None

Profiles. :func:`load_profile` registers and loads the settings named by the environment variable
``HYPOTHESIS_PROFILE`` (:data:`PROFILES`: ``ci``, the default -- 30 examples, derandomised, so CI
is reproducible and fast; ``dev`` -- 100 random examples; ``thorough`` -- 1000 random examples).
The test suite calls it from ``tests/conftest.py``, so ``HYPOTHESIS_PROFILE=thorough python -m
pytest tests/theory/test_properties.py`` searches harder.

Hypothesis is a test dependency (``pip install -e ".[test]"``); importing this module without it
raises an ``ImportError`` that says so. Nothing else in :mod:`theory` imports this module.
"""

from __future__ import annotations

import os

import numpy as np

try:
    from hypothesis import settings
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - the test extra is installed in CI
    raise ImportError(
        "theory.strategies needs hypothesis, a test dependency: pip install -e '.[test]'"
    ) from exc

from theory.groups import BlockModel

__all__ = [
    "PROFILES",
    "PROFILE_ENV",
    "block_models",
    "cases",
    "count_matrices",
    "lams",
    "load_profile",
    "mixtures",
]

#: Environment variable naming the settings profile (:func:`load_profile`).
PROFILE_ENV = "HYPOTHESIS_PROFILE"
#: Settings profiles: ``ci`` (default; reproducible and fast), ``dev``, ``thorough``. No deadline:
#: the exact group-level solves vary in time with the machine's load, not with correctness.
PROFILES = {
    "ci": {"max_examples": 30, "derandomize": True, "deadline": None},
    "dev": {"max_examples": 100, "deadline": None},
    "thorough": {"max_examples": 1000, "deadline": None},
}


def load_profile(name: str | None = None):
    """Register :data:`PROFILES` and load ``name`` (default: ``$HYPOTHESIS_PROFILE`` or ``ci``).

    Returns the loaded :class:`hypothesis.settings`. An unknown name raises ``ValueError``
    listing the profiles.
    """
    for key, values in PROFILES.items():
        settings.register_profile(key, **values)
    name = name or os.environ.get(PROFILE_ENV) or "ci"
    if name not in PROFILES:
        raise ValueError(f"{PROFILE_ENV} must be one of {', '.join(PROFILES)}, got {name!r}")
    settings.load_profile(name)
    return settings.default


def lams(lo: float = 1e-3, hi: float = 1.0):
    """Regularisations ``lam``, log-uniform in ``[lo, hi]`` (``0 < lo <= hi``)."""
    if not 0 < lo <= hi:
        raise ValueError(f"need 0 < lo <= hi, got lo={lo}, hi={hi}")
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda x: float(10.0**x))


@st.composite
def _compositions(draw, n, k):
    """``k`` non-negative integers summing to ``n`` (uniform cut points)."""
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=k - 1, max_size=k - 1)))
    return np.diff([0, *cuts, n])


@st.composite
def count_matrices(draw, n_classes, per_class, *, balanced=False, plurality=None):
    """Count matrices ``C`` (K, K) of int64 with rows summing to ``per_class``.

    Parameters
    ----------
    n_classes, per_class : int or strategy
    balanced : bool
        Circulant ``C`` (``C[k] = roll(C[0], k)``): a balanced global label histogram, every
        class confused alike (the symmetric noise families' exact counts are of this kind).
    plurality : bool or None
        ``True``: the true class is (one of) the largest entries of every row; ``False``: not
        forced; ``None``: drawn (often, not always, plurality), as the property tests need both.
    """
    k = draw(n_classes) if isinstance(n_classes, st.SearchStrategy) else int(n_classes)
    n = draw(per_class) if isinstance(per_class, st.SearchStrategy) else int(per_class)
    diag_first = draw(st.booleans()) if plurality is None else bool(plurality)
    if balanced:
        row = draw(_compositions(n, k))
        if diag_first:
            row = np.sort(row)[::-1]
        return np.array([np.roll(row, kk) for kk in range(k)], dtype=np.int64)
    rows = []
    for kk in range(k):
        row = draw(_compositions(n, k))
        if diag_first:
            j = int(np.argmax(row))
            row[[kk, j]] = row[[j, kk]]
        rows.append(row)
    return np.array(rows, dtype=np.int64)


@st.composite
def block_models(draw, max_classes=8, max_per_class=12, *, min_classes=2, negative_d=False):
    """Block models ``(K, n, c, d)``: ``c in [0.05, 0.95]``, ``d in [0, 0.95 c]``.

    ``negative_d=True`` also draws ``d < 0`` down to the PSD limit
    ``mu_1 = 1 - c + n (c - d) + N d >= 0`` (kept strictly inside by a factor 0.9).
    """
    k = draw(st.integers(min_classes, max_classes))
    n = draw(st.integers(1, max_per_class))
    c = draw(st.floats(0.05, 0.95))
    if negative_d:
        # mu_1 >= 0  <=>  d >= -(1 - c + n c) / (N - n)
        lo = -0.9 * (1 - c + n * c) / (k * n - n)
        d = draw(st.floats(max(lo, -0.95 * c), 0.95 * c))
    else:
        d = draw(st.floats(0.0, 0.95)) * c
    return BlockModel(k, n, c, d)


@st.composite
def cases(draw, max_classes=8, balanced=False, *, lam_range=(1e-3, 1.0), max_per_class=12):
    """``(model, counts, lam)``: a block model, a count matrix of its shape and a ``lam``."""
    model = draw(block_models(max_classes, max_per_class))
    counts = draw(count_matrices(model.n_classes, model.per_class, balanced=balanced))
    lam = draw(lams(*lam_range))
    return model, counts, lam


@st.composite
def mixtures(draw, max_classes=6, max_per_class=30, *, max_ratio=4.0):
    """Gaussian mixtures :class:`theory.finite.MixtureModel` at finite ``p``.

    ``p`` is drawn so that ``N/p`` lies in ``[0.05, max_ratio]`` (and ``p >= K``); ``c`` in
    ``[0.05, 0.95]`` and ``d`` in ``[0, 0.95 c]`` as in :func:`block_models`.
    """
    from theory.finite import MixtureModel  # lazy: the finite-p theory is the heaviest module

    k = draw(st.integers(2, max_classes))
    n = draw(st.integers(2, max_per_class))
    ratio = draw(st.floats(0.05, max_ratio))
    dim = max(k, int(round(k * n / ratio)))
    c = draw(st.floats(0.05, 0.95))
    d = draw(st.floats(0.0, 0.95)) * c
    return MixtureModel(k, n, dim, c, d)
