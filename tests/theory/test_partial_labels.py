import numpy as np
import pytest

from theory.metrics import TIE_ATOL
from theory.partial_labels import top2_indices, top2_targets


def test_top2_vs_sorted_without_ties():
    rng = np.random.default_rng(0)
    s = rng.random((5, 50))
    expected = np.argsort(-s, axis=0)[:2]
    assert np.array_equal(top2_indices(s), expected)


def test_tie_rule_smaller_index_within_tolerance():
    s = np.array([[0.2, 0.5], [0.4 + 0.3 * TIE_ATOL, 0.25], [0.4, 0.25 + 0.5 * TIE_ATOL]])
    # Column 0: classes 1 and 2 tie within TIE_ATOL -> smaller index (1) first.
    # Column 1: class 0 first; classes 1, 2 tie for second -> class 1.
    assert top2_indices(s).T.tolist() == [[1, 2], [0, 1]]
    # A gap larger than the tolerance is resolved by the scores.
    s2 = np.array([[0.1], [0.4], [0.4 + 10 * TIE_ATOL]])
    assert top2_indices(s2)[:, 0].tolist() == [2, 1]


def test_top2_targets_two_hot():
    t = top2_targets(np.array([[0.6, 0.1], [0.3, 0.2], [0.1, 0.7]]))
    assert np.array_equal(t, [[0.5, 0.0], [0.5, 0.5], [0.0, 0.5]])
    with pytest.raises(ValueError, match="K >= 2"):
        top2_indices(np.ones((1, 3)))
