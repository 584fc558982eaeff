"""State a new condition of the theory and let Hypothesis look for a counterexample.

Run it with pytest (the settings profile comes from ``HYPOTHESIS_PROFILE``: ``ci``, ``dev`` or
``thorough``)::

    python -m pytest examples/property_condition.py
    HYPOTHESIS_PROFILE=thorough python -m pytest examples/property_condition.py

The condition: **with a balanced count matrix the 100%-accuracy window of the linearised rounds
never closes** -- once every training point is classified correctly, every later round is correct
too (``theory.conditions.window_linear`` returns ``(first, None)``, or ``None`` if no round
reaches 100%). A balanced (circulant) count matrix is what symmetric, pair and the reference
code's asymmetric noise produce with exact counts, so SD cannot over-distil under them.

The second test states the same condition for *any* count matrix. It is false (an unbalanced
label histogram with d > 0 lets the rounds collapse onto the most frequent labels, Theorem 6.4 of
docs/theory.md; the balanced case is Theorem 6.2): Hypothesis finds a counterexample and shrinks
it; the test records that with ``xfail(strict=True)``, so it fails if the condition ever starts
to hold (e.g. after a change to the theory).
"""

import pytest
from hypothesis import given

from theory.conditions import window_linear
from theory.strategies import cases, load_profile

load_profile()  # HYPOTHESIS_PROFILE (tests/conftest.py does the same for the test suite)


def window_never_closes(model, counts, lam) -> bool:
    """The condition: no round after the first 100% round drops below 100%."""
    window = window_linear(model, counts, lam)
    return window is None or window[1] is None


@given(cases(balanced=True))
def test_balanced_counts_window_never_closes(case):
    model, counts, lam = case
    assert window_never_closes(model, counts, lam), (model, counts.tolist(), lam)


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="an unbalanced histogram with d > 0 collapses the rounds (docs/theory.md, Theorem 6.4)",
)
@given(cases(balanced=False))
def test_any_counts_window_never_closes(case):
    model, counts, lam = case
    assert window_never_closes(model, counts, lam), (model, counts.tolist(), lam)
