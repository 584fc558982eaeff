import numpy as np
import pytest

from theory.metrics import TIE_RTOL, tie_tolerance
from theory.partial_labels import top2_indices, top2_targets


def test_top2_vs_sorted_without_ties():
    rng = np.random.default_rng(0)
    s = rng.random((5, 50))
    expected = np.argsort(-s, axis=0)[:2]
    assert np.array_equal(top2_indices(s), expected)


def test_tie_rule_smaller_index_within_relative_tolerance():
    # Spread of this matrix: column 1 ranges over 0.25 (0.5 - 0.25), column 0 over 0.2.
    tol = TIE_RTOL * 0.25
    s = np.array([[0.2, 0.5], [0.4 + 0.3 * tol, 0.25], [0.4, 0.25 + 0.5 * tol]])
    assert tie_tolerance(s) == pytest.approx(tol, rel=1e-6)
    # Column 0: classes 1 and 2 tie within the tolerance -> smaller index (1) first.
    # Column 1: class 0 first; classes 1, 2 tie for second -> class 1.
    assert top2_indices(s).T.tolist() == [[1, 2], [0, 1]]
    # A gap larger than the tolerance is resolved by the scores.
    s2 = np.array([[0.1], [0.4], [0.4 + 10 * TIE_RTOL * 0.3]])
    assert top2_indices(s2)[:, 0].tolist() == [2, 1]


@pytest.mark.parametrize("scale", [1.0, 1e-20, 1e-200, 1e20])
def test_tie_rule_is_scale_and_shift_free(scale):
    # Outputs all within 1e-20 of 1/K keep their order: a gap of 1e-3 of the spread is not a
    # tie at any scale; an exact tie stays a tie (smaller index first).
    base = np.array([[0.0, 0.3], [1.0, 0.3], [0.999, 1.0]])
    s = scale * base + np.array([[5.0], [5.0], [5.0]]) * (scale == 1.0)
    assert top2_indices(s).T.tolist() == [[1, 2], [2, 0]]
    deviations = 1e-20 * base - 1e-20 * base.mean(axis=0)
    assert top2_indices(deviations).T.tolist() == [[1, 2], [2, 0]]


def test_top2_targets_two_hot():
    t = top2_targets(np.array([[0.6, 0.1], [0.3, 0.2], [0.1, 0.7]]))
    assert np.array_equal(t, [[0.5, 0.0], [0.5, 0.5], [0.0, 0.5]])
    with pytest.raises(ValueError, match="K >= 2"):
        top2_indices(np.ones((1, 3)))
