"""PLL student: group-level predictions vs full computations, and its 100%-accuracy condition."""

import numpy as np
import pytest

from simulations.distill import train_pll
from simulations.solver import factorize, solve_probe
from theory.averaging import linearised_outputs
from theory.conditions import min_rounds_linear
from theory.gram import block_gram
from theory.groups import BlockModel, linear_group_outputs, one_hot_group_targets, predict_exact
from theory.noise import exact_counts, transition_matrix
from theory.partial_labels import top2_indices, top2_targets
from theory.pll import group_top2, pll_condition, predict_pll

ASYM4 = exact_counts(transition_matrix("asym", 4, 0.4), 10)
SYM5 = exact_counts(transition_matrix("sym", 5, 0.6), 15)  # rows like [6, 3, 2, 2, 2]
SYM5_TIES = exact_counts(transition_matrix("sym", 5, 0.6), 10)  # rows like [4, 2, 2, 1, 1]
PAIR4 = exact_counts(transition_matrix("pair", 4, 0.3), 10)


def _expand(counts):
    cnt = np.asarray(counts)
    given = np.concatenate([np.repeat(np.arange(len(cnt)), row) for row in cnt])
    true = np.repeat(np.arange(len(cnt)), cnt.sum(axis=1))
    return true, given


@pytest.mark.parametrize(
    "counts, c, d, lam", [(ASYM4, 0.4, 0.1, 0.01), (SYM5, 0.5, 0.0, 0.003), (ASYM4, 0.3, 0.2, 0.1)]
)
def test_pll_exact_vs_full_solver(counts, c, d, lam):
    k, n = counts.shape[0], int(counts[0].sum())
    model = BlockModel(k, n, c, d)
    pred = predict_pll(model, counts, lam, method="exact")
    assert pred.candidate_ties == 0  # so the tolerant and the exact top-2 rules coincide
    true, given = _expand(counts)
    factor = factorize(gram=block_gram(k, n, c, d))
    teacher = solve_probe(np.eye(k)[:, given], lam, factor=factor, tol=1e-11)
    student = train_pll(teacher, lam, factor=factor, tol=1e-11)
    # Same tolerance argument as test_exact_groups_vs_full_solver.
    np.testing.assert_allclose(pred.outputs[0][true, given].T, student.outputs, atol=1e-7)
    pop = student.predict(kernel_rows=model.population_kernel_rows()).T
    np.testing.assert_allclose(pred.population_outputs[0], pop, atol=1e-7)


@pytest.mark.parametrize("counts, c, d, lam", [(ASYM4, 0.4, 0.1, 0.01), (SYM5, 0.5, 0.0, 0.3)])
def test_pll_linear_vs_closed_form(counts, c, d, lam):
    k, n = counts.shape[0], int(counts[0].sum())
    model = BlockModel(k, n, c, d)
    pred = predict_pll(model, counts, lam, method="linear")
    true, given = _expand(counts)
    gram = block_gram(k, n, c, d)
    teacher = linearised_outputs(np.eye(k)[:, given], lam, 0, gram=gram)[0]
    student = linearised_outputs(top2_targets(teacher), lam, 0, gram=gram)[0]
    np.testing.assert_allclose(pred.outputs[0][true, given].T, student, atol=1e-12)


def test_group_top2_matches_partial_labels_rule_without_ties():
    model = BlockModel(4, 10, 0.4, 0.1)
    teacher = linear_group_outputs(model, ASYM4, one_hot_group_targets(4), 0.01)
    top2, tied = group_top2(teacher, ASYM4)
    assert tied == 0
    kk, ll = np.nonzero(ASYM4 > 0)
    np.testing.assert_array_equal(top2[kk, ll].T, top2_indices(teacher[kk, ll].T))
    # Near-ties (below TIE_RTOL times the spread) go to the smaller index, whatever the round-off.
    scores = np.array([[[0.5, 0.25 - 1e-12, 0.25 + 1e-12]]])
    top2, tied = group_top2(scores, np.array([[1]]))
    assert top2[0, 0].tolist() == [0, 1] and tied == 1
    scores = np.array([[[0.5 - 1e-12, 0.5 + 1e-12, 0.0]]])  # tied leaders: both selected
    top2, tied = group_top2(scores, np.array([[1]]))
    assert top2[0, 0].tolist() == [0, 1] and tied == 0
    scores = np.array([[[0.25 + 1e-12, 0.5, 0.25 - 1e-12]]])
    top2, tied = group_top2(scores, np.array([[1]]))
    assert top2[0, 0].tolist() == [1, 0] and tied == 1


@pytest.mark.parametrize("method", ["linear", "exact"])
@pytest.mark.parametrize("counts", [ASYM4, SYM5, SYM5_TIES])
@pytest.mark.parametrize("lam", [0.01, 1e-3, 1e-4])
def test_pll_condition_vs_predictions(method, counts, lam):
    k, n = counts.shape[0], int(counts[0].sum())
    model = BlockModel(k, n, 0.4, 0.1)
    cond = pll_condition(model, counts, lam)
    pred = predict_pll(model, counts, lam, method=method)
    assert pred.ties[0] == 0
    assert cond.holds and cond.margin > 0
    assert cond.top2_contains_true and cond.tied_classes == ()
    # The sufficient condition needs a balanced candidate histogram (or d = 0); the largest-
    # remainder sym counts with n = 10 are unbalanced, yet the exact predicate still holds.
    assert cond.sufficient == cond.balanced_candidates
    assert pred.train_acc[0] == 1.0 and pred.population_acc[0] == 1.0


@pytest.mark.parametrize("method", ["linear", "exact"])
@pytest.mark.parametrize("d", [0.0, 0.1])
def test_pll_whole_class_tie_fails(method, d):
    # Pair noise: every point of class k has top-2 {k, k+1}; the student's targets are identical
    # within the class, so k and k+1 tie for every point (the global part is balanced too).
    model = BlockModel(4, 10, 0.4, d)
    cond = pll_condition(model, PAIR4, 0.01)
    assert cond.top2_contains_true and cond.tied_classes == (0, 1, 2, 3)
    assert not cond.holds and not cond.sufficient
    pred = predict_pll(model, PAIR4, 0.01, method=method)
    assert pred.train_acc[0] == 0.0 and pred.ties[0] == model.n_samples
    # Multi-round SD does recover pair noise (plurality holds, balanced histogram).
    t_min = min_rounds_linear(model, PAIR4, 0.01)
    assert predict_exact(model, PAIR4, 0.01, t_min + 1).train_acc[-1] == 1.0


def test_pll_beats_multi_round_sd_at_small_lam():
    # High symmetric noise, small lam: SD needs many rounds, PLL is exact after one round.
    model = BlockModel(5, 15, 0.4, 0.1)
    lam = 1e-4
    t_min = min_rounds_linear(model, SYM5, lam)
    assert t_min > 5
    sd = predict_exact(model, SYM5, lam, 1)
    pll = predict_pll(model, SYM5, lam, method="exact")
    assert sd.train_acc[1] < 1.0 and pll.train_acc[0] == 1.0


def test_pll_invalid_method():
    with pytest.raises(ValueError, match="method"):
        predict_pll(BlockModel(4, 10, 0.4, 0.1), ASYM4, 0.01, method="nope")


@pytest.mark.parametrize("method", ["linear", "exact"])
def test_pll_fails_on_noise_free_data(method):
    # A class without mislabeled points gives all its points the same top-2 pair {k, m0}: a whole-
    # class tie. With d = 0 every class ties exactly; with d > 0 the (unbalanced) candidate
    # histogram breaks the ties towards the most frequent candidate, here only class 0 survives.
    counts = np.diag([5, 5, 5])
    cond0 = pll_condition(BlockModel(3, 5, 0.5, 0.0), counts, 0.01)
    assert cond0.tied_classes == (0, 1, 2) and not cond0.holds
    pred0 = predict_pll(BlockModel(3, 5, 0.5, 0.0), counts, 0.01, method=method)
    assert pred0.train_acc[0] == 0.0 and pred0.ties[0] == 15
    pred1 = predict_pll(BlockModel(3, 5, 0.5, 0.1), counts, 0.01, method=method)
    assert pred1.train_acc[0] == pytest.approx(1 / 3) and pred1.ties[0] == 0
    # Multi-round SD is trivially right on noise-free data.
    assert np.all(predict_exact(BlockModel(3, 5, 0.5, 0.1), counts, 0.01, 3).train_acc == 1.0)
