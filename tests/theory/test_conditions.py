"""Conditions (plurality, minimum round, collapse window, population) vs round-by-round predictions.

Every condition is checked against the linearised prediction (where it is a theorem) and against
the exact group-level prediction. At small lam the exact dynamics are slower than the linearised
ones (softmax saturation keeps the own-label part alive longer); those comparisons assert what does
hold and mark the equality as xfail.
"""

import math

import numpy as np
import pytest

from theory.conditions import (
    collapse_round_linear,
    collapse_window_linear,
    correct_round_intervals_linear,
    eigen_ratio_rho,
    is_balanced,
    min_rounds_closed_form,
    min_rounds_linear,
    mislabeled_margin,
    plurality_condition,
    population_condition_linear,
    training_gap_coefficients,
    window_linear,
)
from theory.groups import BlockModel, predict_exact, predict_linear

SYM4 = np.array([[5, 2, 2, 1], [2, 5, 2, 1], [2, 2, 5, 1], [2, 2, 1, 5]])  # unbalanced histogram
ASYM4 = np.array([[6, 2, 1, 1], [1, 6, 2, 1], [1, 1, 6, 2], [2, 1, 1, 6]])  # balanced
SYM5 = np.array(
    [[8, 3, 3, 3, 3], [3, 8, 3, 3, 3], [3, 3, 8, 3, 3], [3, 3, 3, 8, 3], [3, 3, 3, 3, 8]]
)


def full_rounds(pred):
    """Boolean (R+1,) 100%-accuracy rounds and a mask of rounds without ties."""
    return pred.train_acc == 1.0, pred.ties == 0


def rounds_from_intervals(intervals, rounds):
    out = np.zeros(rounds + 1, dtype=bool)
    for a, b in intervals:
        out[a : (rounds if b is None else min(b, rounds)) + 1] = True
    return out


def first_true(mask):
    idx = np.flatnonzero(mask)
    return None if idx.size == 0 else int(idx[0])


def test_plurality_condition_and_margins():
    counts = np.array([[4, 1, 1], [2, 3, 1], [0, 2, 4]])
    holds, margin = plurality_condition(counts)
    assert holds and margin == pytest.approx(1 / 6)
    assert mislabeled_margin(counts) == pytest.approx(1 / 6)
    assert plurality_condition([[2, 3], [1, 4]]) == (False, pytest.approx(-1 / 5))
    assert plurality_condition([[3, 3], [0, 6]])[0] is False  # equality is not a plurality
    assert mislabeled_margin(np.diag([5, 5])) == math.inf
    assert is_balanced(ASYM4) and not is_balanced(SYM4)
    with pytest.raises(ValueError, match="same per_class"):
        plurality_condition([[3, 1], [1, 2]])
    with pytest.raises(ValueError, match="square"):
        plurality_condition([[3, 1, 0]])


def test_rho_properties():
    model = BlockModel(3, 5, 0.5, 0.1)
    lams = np.logspace(-5, 2, 15)
    rhos = np.array([eigen_ratio_rho(model, lam) for lam in lams])
    assert np.all(rhos > 1) and np.all(np.diff(rhos) > 0)  # increasing in lam
    _, mu2, mu3 = model.eigenvalues
    assert rhos[-1] < mu2 / mu3 and rhos[-1] == pytest.approx(mu2 / mu3, rel=1e-2)
    assert eigen_ratio_rho(BlockModel(3, 5, 0.3, 0.3), 0.1) == pytest.approx(1.0)
    assert eigen_ratio_rho(BlockModel(3, 5, 1.0, 0.3), 0.1) == math.inf


@pytest.mark.parametrize(
    "counts, c, d, lam",
    [
        (ASYM4, 0.4, 0.1, 0.01),
        (ASYM4, 0.3, 0.2, 0.003),
        (ASYM4, 0.6, 0.0, 1e-3),
        (SYM5, 0.6, 0.0, 1e-4),
        (SYM4, 0.6, 0.0, 1e-3),
    ],
)
def test_min_rounds_closed_form_vs_linear_rounds(counts, c, d, lam):
    k, n = counts.shape[0], counts[0].sum()
    model = BlockModel(k, n, c, d)
    t_min = min_rounds_closed_form(model, counts, lam)
    assert t_min is not None and t_min == min_rounds_linear(model, counts, lam)
    rounds = t_min + 4
    full, clean = full_rounds(predict_linear(model, counts, lam, rounds))
    assert np.all(clean)  # the comparison below is not blurred by ties
    np.testing.assert_array_equal(full, np.arange(rounds + 1) >= t_min)


@pytest.mark.parametrize("counts, c, d, lam", [(ASYM4, 0.4, 0.1, 0.01), (SYM5, 0.6, 0.0, 1e-3)])
def test_min_rounds_closed_form_vs_exact_rounds(counts, c, d, lam):
    k, n = counts.shape[0], counts[0].sum()
    model = BlockModel(k, n, c, d)
    t_min = min_rounds_closed_form(model, counts, lam)
    rounds = t_min + 4
    full, clean = full_rounds(predict_exact(model, counts, lam, rounds))
    assert np.all(clean)
    np.testing.assert_array_equal(full, np.arange(rounds + 1) >= t_min)


@pytest.mark.parametrize(
    "counts, c, d, lam",
    [(ASYM4, 0.4, 0.1, 1e-3), (ASYM4, 0.3, 0.2, 1e-3), (SYM5, 0.6, 0.0, 1e-4)],
)
def test_min_rounds_closed_form_vs_exact_rounds_small_lam(counts, c, d, lam):
    k, n = counts.shape[0], counts[0].sum()
    model = BlockModel(k, n, c, d)
    t_min = min_rounds_closed_form(model, counts, lam)
    rounds = 2 * t_min + 4
    full, clean = full_rounds(predict_exact(model, counts, lam, rounds))
    t_exact = first_true(full)
    # What holds: the exact prediction also reaches (and keeps) 100%, never before t_min.
    assert np.all(clean) and t_exact is not None and t_exact >= t_min
    assert np.all(full[t_exact:])
    if t_exact != t_min:
        pytest.xfail(
            f"small lam: exact SD needs {t_exact} rounds, the linearised closed form says {t_min} "
            "(saturated softmax outputs shrink the own-label part more slowly than a_3^(t+1))"
        )


@pytest.mark.parametrize("lam", [0.1, 0.01, 0.003, 1e-3])
def test_window_vs_linear_rounds(lam):
    model = BlockModel(4, 10, 0.4, 0.1)
    intervals = correct_round_intervals_linear(model, SYM4, lam)
    assert len(intervals) == 1 and intervals[0][1] is not None  # collapse: a finite window
    first, last = window_linear(model, SYM4, lam)
    assert collapse_round_linear(model, SYM4, lam) == last + 1
    rounds = last + 3
    full, clean = full_rounds(predict_linear(model, SYM4, lam, rounds))
    want = rounds_from_intervals(intervals, rounds)
    # Where the numeric prediction has no tie it must agree exactly; tied rounds count as errors.
    np.testing.assert_array_equal(full[clean], want[clean])
    assert not np.any(full[~clean])
    if lam <= 0.01:
        assert np.all(clean)
    assert collapse_window_linear(model, SYM4, lam, rounds) == (first, last)
    assert collapse_window_linear(model, SYM4, lam, first) == (first, first)
    assert collapse_window_linear(model, SYM4, lam, first - 1 if first else 0) in (None, (0, 0))


@pytest.mark.parametrize("lam", [0.1, 0.03])
def test_window_vs_exact_rounds(lam):
    model = BlockModel(4, 10, 0.4, 0.1)
    first, last = window_linear(model, SYM4, lam)
    full, clean = full_rounds(predict_exact(model, SYM4, lam, last + 3))
    want = rounds_from_intervals([(first, last)], last + 3)
    np.testing.assert_array_equal(full[clean], want[clean])


@pytest.mark.parametrize("lam", [0.01, 1e-3])
def test_window_vs_exact_rounds_small_lam(lam):
    model = BlockModel(4, 10, 0.4, 0.1)
    first, last = window_linear(model, SYM4, lam)
    rounds = min(last + 3, 40)
    full, clean = full_rounds(predict_exact(model, SYM4, lam, rounds))
    assert np.all(clean)
    t_exact = first_true(full)
    # What holds: exact SD also reaches 100%, not earlier than the linearised window opens, and
    # stays at 100% at least as long within the computed rounds.
    assert t_exact is not None and t_exact >= first
    assert np.all(full[t_exact : min(last, rounds) + 1])
    want = rounds_from_intervals([(first, last)], rounds)
    if not np.array_equal(full, want):
        pytest.xfail(
            f"small lam: exact 100% rounds {np.flatnonzero(full).tolist()} vs linearised window "
            f"[{first}, {last}]; saturation delays both the recovery and the collapse"
        )


def test_balanced_or_d0_never_collapses():
    for counts, d in [(ASYM4, 0.1), (SYM4, 0.0)]:
        model = BlockModel(4, 10, 0.4, d)
        assert window_linear(model, counts, 0.01)[1] is None
        assert collapse_round_linear(model, counts, 0.01) is None
    with pytest.raises(ValueError, match="balanced"):
        min_rounds_closed_form(BlockModel(4, 10, 0.4, 0.1), SYM4, 0.01)


@pytest.mark.parametrize("lam", [0.1, 0.01, 1e-3])
def test_plurality_failure_never_reaches_100(lam):
    counts = np.array([[2, 3, 0], [1, 4, 0], [0, 1, 4]])  # class 0: label 1 outnumbers label 0
    model = BlockModel(3, 5, 0.5, 0.1)
    assert min_rounds_linear(model, counts, lam) is None
    assert correct_round_intervals_linear(model, counts, lam) == []
    for fn in (predict_linear, predict_exact):
        pred = fn(model, counts, lam, 15)
        assert np.all(pred.train_acc < 1.0)
        # The class-0 population point follows the class-0 label histogram and is misclassified.
        assert np.all(pred.population_acc < 1.0)


def test_rho_one_never_reaches_100():
    model = BlockModel(4, 10, 0.3, 0.3)
    assert min_rounds_linear(model, ASYM4, 0.01) is None
    assert not np.any(predict_linear(model, ASYM4, 0.01, 10).train_acc == 1.0)


@pytest.mark.parametrize("method", ["linear", "exact"])
@pytest.mark.parametrize("lam", [0.01, 1e-3])
def test_population_balanced_plurality_is_100_for_all_rounds(method, lam):
    model = BlockModel(4, 10, 0.4, 0.1)
    cond = population_condition_linear(model, ASYM4, lam)
    assert cond.intervals == [(0, None)] and cond.flip_rounds == {}
    fn = predict_linear if method == "linear" else predict_exact
    pred = fn(model, ASYM4, lam, 8)
    assert np.all(pred.population_acc == 1.0)


@pytest.mark.parametrize("lam", [0.1, 0.01])
def test_population_condition_vs_predictions_unbalanced(lam):
    counts = np.array([[4, 2, 0], [3, 3, 0], [3, 0, 3]])  # class 1: tie in its own histogram
    model = BlockModel(3, 6, 0.5, 0.2)
    cond = population_condition_linear(model, counts, lam)
    rounds = 12
    want = rounds_from_intervals(cond.intervals, rounds)
    lin = predict_linear(model, counts, lam, rounds)
    ok = lin.population_ties == 0
    np.testing.assert_array_equal((lin.population_acc == 1.0)[ok], want[ok])
    # Each pairwise population gap changes sign at most once: per class the correctness sequence
    # is monotone or has a single switch.
    assert all(v > 0 for v in cond.flip_rounds.values())
    ex = predict_exact(model, counts, lam, rounds)
    np.testing.assert_array_equal((ex.population_acc == 1.0)[ok], want[ok])


@pytest.mark.parametrize("method", ["linear", "exact"])
def test_population_d0_is_plurality_even_if_unbalanced(method):
    # d = 0: a_1 = a_2 and the histogram term cancels exactly, so population accuracy is 100% at
    # every round iff plurality holds, whatever the global histogram.
    model = BlockModel(4, 10, 0.4, 0.0)
    cond = population_condition_linear(model, SYM4, 1e-3)
    assert cond.intervals == [(0, None)]
    fn = predict_linear if method == "linear" else predict_exact
    assert np.all(fn(model, SYM4, 1e-3, 10).population_acc == 1.0)


def test_distinct_training_gaps_vs_all_rows():
    from theory.conditions import _distinct_training_gaps

    rng = np.random.default_rng(3)
    for k in (3, 5, 8):
        model = BlockModel(k, 9, 0.5, 0.1)
        counts = np.array([rng.multinomial(9, np.full(k, 1 / k)) for _ in range(k)])
        all_rows, _ = training_gap_coefficients(model, counts)
        np.testing.assert_array_equal(
            np.unique(_distinct_training_gaps(model, counts), axis=0), np.unique(all_rows, axis=0)
        )
