"""Property tests (hypothesis) for the block-model conditions and predictions.

The strategies are the public ones of :mod:`theory.strategies`; how many examples each test draws
is set by the profile that ``tests/conftest.py`` loads from ``HYPOTHESIS_PROFILE`` (``ci`` by
default: 30 derandomised examples, so the file runs in seconds and reproducibly; ``dev`` 100,
``thorough`` 1000 random examples).
"""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from theory.conditions import (
    correct_round_intervals_linear,
    is_balanced,
    min_rounds_closed_form,
    min_rounds_linear,
    plurality_condition,
)
from theory.groups import predict_exact, predict_linear
from theory.metrics import tie_tolerance
from theory.pll import pll_condition, predict_pll
from theory.strategies import cases

ROUNDS = 15


def _full(pred):
    return pred.train_acc == 1.0, pred.ties == 0


@given(cases())
def test_intervals_vs_linear_rounds(case):
    model, counts, lam = case
    pred = predict_linear(model, counts, lam, ROUNDS)
    full, clean = _full(pred)
    want = np.zeros(ROUNDS + 1, dtype=bool)
    for a, b in correct_round_intervals_linear(model, counts, lam):
        want[a : (ROUNDS if b is None else min(b, ROUNDS)) + 1] = True
    np.testing.assert_array_equal(full[clean], want[clean])
    assert not np.any(full[~clean])  # ties count as errors


@given(cases(balanced=True))
def test_closed_form_min_round_equals_first_linear_round(case):
    model, counts, lam = case
    t_min = min_rounds_closed_form(model, counts, lam)
    holds, _ = plurality_condition(counts)
    assert (t_min is not None) == holds  # rho > 1 always here (c > d)
    rounds = ROUNDS if t_min is None else t_min + 2
    full, clean = _full(predict_linear(model, counts, lam, rounds))
    # Compare only up to the first tied round (a tie is an exact-arithmetic zero gap here).
    stop = int(np.argmin(clean)) if not np.all(clean) else rounds + 1
    assume(stop > 0)
    want = np.zeros(rounds + 1, dtype=bool) if t_min is None else np.arange(rounds + 1) >= t_min
    np.testing.assert_array_equal(full[:stop], want[:stop])


@given(cases(balanced=True), st.floats(1.5, 10.0))
def test_min_round_nonincreasing_in_lam(case, factor):
    model, counts, lam = case
    t1, t2 = min_rounds_linear(model, counts, lam), min_rounds_linear(model, counts, lam * factor)
    assert (t1 is None) == (t2 is None)
    if t1 is not None:
        assert t2 <= t1  # rho increases with lam


@given(cases(max_classes=5), st.randoms(use_true_random=False))
def test_relabelling_invariance(case, rnd):
    model, counts, lam = case
    k = model.n_classes
    perm = np.array(rnd.sample(range(k), k))
    permuted = counts[np.ix_(perm, perm)]
    for fn in (predict_linear, predict_exact):
        a, b = fn(model, counts, lam, 3), fn(model, permuted, lam, 3)
        np.testing.assert_allclose(
            b.outputs, a.outputs[:, perm][:, :, perm][..., perm], atol=1e-10, equal_nan=True
        )
        np.testing.assert_allclose(
            b.population_outputs, a.population_outputs[:, perm][..., perm], atol=1e-10
        )
        # Accuracies are permutation invariant wherever no score is near a tie.
        ok = (a.ties == 0) & (b.ties == 0)
        np.testing.assert_array_equal(a.train_acc[ok], b.train_acc[ok])


@given(cases(balanced=True))
def test_balanced_population_constant_and_plurality(case):
    model, counts, lam = case
    pred = predict_linear(model, counts, lam, 6)
    ok = pred.population_ties == 0
    assume(np.all(ok))
    holds, _ = plurality_condition(counts)
    assert is_balanced(counts)
    assert np.all(pred.population_acc == pred.population_acc[0])
    # Class k's population point is correct iff C_kk beats every C_km; with a circulant count
    # matrix all classes behave alike, so accuracy is 1 iff plurality holds.
    assert (pred.population_acc[0] == 1.0) == holds


@given(cases(balanced=True))
def test_balanced_plurality_clean_correct_and_mislabeled_monotone(case):
    model, counts, lam = case
    holds, _ = plurality_condition(counts)
    assume(holds)
    pred = predict_linear(model, counts, lam, ROUNDS)
    clean = pred.ties == 0
    stop = int(np.argmin(clean)) if not np.all(clean) else ROUNDS + 1
    assert np.all(pred.train_acc_clean[:stop] == 1.0)
    mis = pred.train_acc_mislabeled[:stop]
    if not np.all(np.isnan(mis)):
        assert np.all(np.diff(mis) >= 0)  # a corrected mislabeled point stays corrected


@given(cases(max_classes=6))
def test_pll_condition_vs_linear_prediction(case):
    model, counts, lam = case
    cond = pll_condition(model, counts, lam)
    pred = predict_pll(model, counts, lam, method="linear")
    # Away from the (relative) tie tolerance the exact predicate and the prediction must agree.
    assume(abs(cond.margin) > tie_tolerance(pred.deviations[0][counts > 0].T))
    assert cond.holds == (pred.train_acc[0] == 1.0)
    if cond.sufficient:
        assert cond.holds
    if cond.tied_classes and (cond.balanced_candidates or model.d == 0.0):
        assert not cond.holds
