"""The shared, scale-free accuracy and tie rule (theory.metrics)."""

import numpy as np
import pytest

from theory.losses import softmax, softmax_deviation
from theory.metrics import TIE_RTOL, accuracy, correct_and_tied, score_spread, tie_tolerance


def test_correct_and_tied_known_answer():
    s = np.array([[1.0, 0.5, 0.2, 0.4], [0.0, 0.5, 0.7, 0.4], [0.5, 0.0, 0.1, 0.2]])
    correct, tied = correct_and_tied(s, np.array([0, 0, 1, 2]))
    assert correct.tolist() == [True, False, True, False]
    assert tied.tolist() == [False, True, False, False]
    assert accuracy(s, np.array([0, 0, 1, 2])) == 0.5
    assert score_spread(s) == pytest.approx(1.0)


@pytest.mark.parametrize("scale", [1.0, 1e-12, 1e-30, 1e-250, 1e30])
def test_decisions_invariant_under_scaling_and_shifts(scale):
    rng = np.random.default_rng(1)
    s = rng.normal(size=(4, 50))
    y = rng.integers(0, 4, size=50)
    ref = correct_and_tied(s, y)
    shifted = scale * s + rng.normal(size=(1, 50)) * scale * 10
    got = correct_and_tied(shifted, y)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


def test_near_uniform_outputs_keep_their_gaps_via_deviations():
    # Logits of size 1e-18: probabilities round to exactly 1/K (every column reads as a tie),
    # deviations computed with expm1 keep the ordering -- the decision must use them.
    z = 1e-18 * np.array([[1.0, -1.0], [0.0, 2.0], [-1.0, -1.0]])
    y = np.array([0, 1])
    probs = softmax(z.T).T
    assert np.all(correct_and_tied(probs, y)[1])  # information lost in the probabilities
    dev = softmax_deviation(z.T).T
    correct, tied = correct_and_tied(dev, y)
    assert correct.all() and not tied.any()


def test_exact_ties_and_all_equal_scores():
    s = np.array([[0.5, 0.3], [0.5, 0.3], [0.0, 0.3]])
    correct, tied = correct_and_tied(s, np.array([0, 2]))
    assert not correct.any() and tied.all()
    # Round-off far below TIE_RTOL of the spread is still an exact tie.
    s2 = s + np.array([[0.0, 0.0], [1e-3 * TIE_RTOL, 0.0], [0.0, 0.0]])
    assert correct_and_tied(s2, np.array([0, 2]))[1].all()
    assert tie_tolerance(np.zeros((3, 4))) == 0.0
    with pytest.raises(ValueError, match="tie_rtol"):
        tie_tolerance(s, -1.0)
    with pytest.raises(ValueError, match="scores must be"):
        correct_and_tied(np.zeros(3), np.zeros(3, dtype=int))
