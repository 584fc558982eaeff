"""Group-level block-model predictions vs full N x N computations."""

import numpy as np
import pytest

from simulations.solver import factorize, solve_probe
from theory.averaging import linearised_outputs, linearised_test_outputs
from theory.gram import block_gram
from theory.groups import (
    BlockModel,
    GroupConvergenceError,
    check_counts,
    linear_accuracy_grid,
    one_hot_group_targets,
    predict_exact,
    predict_linear,
    solve_groups,
)
from theory.metrics import correct_and_tied
from theory.noise import exact_counts, transition_matrix

CASES = [
    # (K, n, c, d, lam, counts)
    (3, 6, 0.5, 0.1, 0.05, [[4, 1, 1], [2, 3, 1], [0, 2, 4]]),
    (2, 5, 0.8, 0.0, 0.01, [[3, 2], [1, 4]]),
    (4, 5, 0.3, 0.25, 0.2, [[3, 1, 1, 0], [0, 5, 0, 0], [1, 1, 2, 1], [2, 0, 0, 3]]),
    (3, 4, 0.6, -0.1, 0.003, [[2, 1, 1], [0, 4, 0], [1, 0, 3]]),  # d < 0 (still PSD)
    (3, 5, 1.0, 0.2, 0.02, [[3, 2, 0], [1, 4, 0], [0, 1, 4]]),  # c = 1: mu_3 = 0
]


def _expand(counts):
    """Point-level labels: true class (class-major) and given labels with the counts."""
    cnt = np.asarray(counts)
    given = np.concatenate([np.repeat(np.arange(len(cnt)), row) for row in cnt])
    true = np.repeat(np.arange(len(cnt)), cnt.sum(axis=1))
    return true, given


@pytest.mark.parametrize("k, n, c, d, lam, counts", CASES)
def test_exact_groups_vs_full_solver(k, n, c, d, lam, counts):
    model = BlockModel(k, n, c, d)
    rounds = 3
    pred = predict_exact(model, counts, lam, rounds)
    # The group solve certifies <= 1e-12; the N x N solver is asked for 1e-11. Outputs of two
    # solutions with residuals r1, r2 differ by <= (r1 + r2) times the conditioning of I + L D
    # (eigenvalues >= 1, so the inverse has norm <= 1 in the right norm): 1e-7 is a wide margin.
    assert np.all(pred.residuals <= 1e-12)
    true, given = _expand(counts)
    factor = factorize(gram=block_gram(k, n, c, d))
    targets = np.eye(k)[:, given]
    rows = model.population_kernel_rows()
    for t in range(rounds + 1):
        sol = solve_probe(targets, lam, factor=factor, tol=1e-11)
        np.testing.assert_allclose(pred.outputs[t][true, given].T, sol.outputs, atol=1e-7, rtol=0)
        np.testing.assert_allclose(
            pred.population_outputs[t], sol.predict(kernel_rows=rows).T, atol=1e-7, rtol=0
        )
        targets = sol.outputs


@pytest.mark.parametrize("k, n, c, d, lam, counts", CASES)
def test_linear_groups_vs_closed_form(k, n, c, d, lam, counts):
    model = BlockModel(k, n, c, d)
    rounds = 4
    pred = predict_linear(model, counts, lam, rounds)
    true, given = _expand(counts)
    gram = block_gram(k, n, c, d)
    y = np.eye(k)[:, given]
    ref = linearised_outputs(y, lam, rounds, gram=gram)
    ref_pop = linearised_test_outputs(y, lam, rounds, model.population_kernel_rows(), gram=gram)
    # Both are O(N) sums of O(1) terms in float64: agreement to ~1e-13.
    np.testing.assert_allclose(pred.outputs[:, true, given].transpose(0, 2, 1), ref, atol=1e-12)
    np.testing.assert_allclose(pred.population_outputs, ref_pop.transpose(0, 2, 1), atol=1e-12)


@pytest.mark.parametrize("method", ["linear", "exact"])
def test_group_accuracies_vs_pointwise(method):
    k, n, c, d, lam, counts = CASES[0]
    model = BlockModel(k, n, c, d)
    fn = predict_linear if method == "linear" else predict_exact
    pred = fn(model, counts, lam, 3)
    true, given = _expand(counts)
    for t in range(4):
        scores = pred.outputs[t][true, given].T
        correct, tied = correct_and_tied(scores, true)
        clean = true == given
        assert pred.train_acc[t] == pytest.approx(correct.mean())
        assert pred.train_acc_clean[t] == pytest.approx(correct[clean].mean())
        assert pred.train_acc_mislabeled[t] == pytest.approx(correct[~clean].mean())
        assert pred.ties[t] == tied.sum()
        pc, pt = correct_and_tied(pred.population_outputs[t].T, np.arange(k))
        assert pred.population_acc[t] == pytest.approx(pc.mean())
        assert pred.population_ties[t] == pt.sum()
    assert pred.method == method


def test_empty_groups_are_nan_and_clean_only_has_nan_mislabeled():
    model = BlockModel(3, 4, 0.5, 0.1)
    counts = np.diag([4, 4, 4])
    for fn in (predict_linear, predict_exact):
        pred = fn(model, counts, 0.1, 2)
        off = ~np.eye(3, dtype=bool)
        assert np.all(np.isnan(pred.outputs[:, off]))
        assert np.all(np.isfinite(pred.outputs[:, ~off]))
        assert np.all(np.isnan(pred.train_acc_mislabeled))
        np.testing.assert_array_equal(pred.train_acc, pred.train_acc_clean)


def test_exact_approaches_linear_at_large_lam():
    # Logits are O(1/lam); softmax's linearisation error is quadratic in the logits, so the
    # exact-minus-linear output gap must scale like lam^-2: doubling lam divides it by ~4.
    k, n, c, d, _, counts = CASES[0]
    model = BlockModel(k, n, c, d)
    errs = []
    for lam in (1.0, 2.0, 4.0):
        lin = predict_linear(model, counts, lam, 2).outputs
        ex = predict_exact(model, counts, lam, 2).outputs
        errs.append(np.nanmax(np.abs(lin - ex)))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 3.0) & (ratios < 5.0)), ratios


def test_exact_rows_on_simplex_and_symmetric_under_class_relabelling():
    k, n, c, d, lam, counts = CASES[2]
    counts = np.array(counts)
    model = BlockModel(k, n, c, d)
    pred = predict_exact(model, counts, lam, 2)
    np.testing.assert_allclose(np.nansum(pred.outputs, axis=-1)[:, counts > 0], 1.0, atol=1e-14)
    perm = np.array([2, 0, 3, 1])
    pred_p = predict_exact(model, counts[np.ix_(perm, perm)], lam, 2)
    np.testing.assert_allclose(
        pred_p.outputs, pred.outputs[:, perm][:, :, perm][..., perm], atol=1e-12, equal_nan=True
    )
    np.testing.assert_array_equal(pred_p.train_acc, pred.train_acc)


def test_block_model_properties():
    model = BlockModel(3, 4, 0.5, 0.1)
    assert model.n_samples == 12
    np.testing.assert_allclose(
        np.sort(model.eigenvalues),
        np.sort(np.unique(np.round(np.linalg.eigvalsh(model.gram()), 12))),
    )
    assert model.multiplicities == (1, 2, 9)
    with pytest.raises(ValueError, match="c"):
        BlockModel(3, 4, 1.5, 0.1)
    with pytest.raises(ValueError, match="n_classes"):
        BlockModel(1, 4, 0.5, 0.1)
    with pytest.raises(ValueError, match="d too negative"):
        BlockModel(3, 4, 0.5, -0.9)


@pytest.mark.parametrize(
    "counts, match",
    [
        ([[2, 1], [1, 2]], "shape"),
        ([[3, 1, 0], [0, 4, 0], [0, 0, 3]], "row 2 sums to 3"),
        ([[5, -1, 0], [0, 4, 0], [0, 0, 4]], "non-negative"),
        ([[3.5, 0.5, 0], [0, 4, 0], [0, 0, 4]], "integers"),
    ],
)
def test_invalid_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        check_counts(counts, BlockModel(3, 4, 0.5, 0.1))


def test_invalid_lam_rounds_and_nonconvergence():
    model = BlockModel(3, 4, 0.5, 0.1)
    counts = np.diag([4, 4, 4])
    with pytest.raises(ValueError, match="lam"):
        predict_linear(model, counts, 0.0, 2)
    with pytest.raises(ValueError, match="lam"):
        predict_exact(model, counts, -1.0, 2)
    with pytest.raises(ValueError, match="rounds"):
        predict_exact(model, counts, 0.1, -1)
    with pytest.raises(GroupConvergenceError, match="did not converge"):
        solve_groups(model, counts, one_hot_group_targets(3), 1e-4, max_iter=1)


def test_tiny_deviations_keep_relative_accuracy_at_large_lam():
    # lam = 1, 10 rounds: every output is within ~1e-19 of 1/K (the probabilities read 1/K), yet
    # the exact deviations keep their relative accuracy. At such tiny logits one exact round IS
    # the linear filter up to O(logits) = 1e-19 relative, so the exact round 10 must equal the
    # linear filter applied to the exact round 9 to ~1e-12 of its size: a test of the
    # arithmetic, not of the linearisation.
    from theory.groups import linear_group_deviations
    from theory.noise import exact_counts, transition_matrix

    model = BlockModel(4, 50, 0.4, 0.1)
    counts = exact_counts(transition_matrix("sym", 4, 0.3), 50)
    ex = predict_exact(model, counts, 1.0, 10)
    size = np.abs(ex.deviations[10]).max()
    assert size < 1e-18
    one_round = linear_group_deviations(model, counts, ex.deviations[9], 1.0)
    np.testing.assert_allclose(ex.deviations[10], one_round, rtol=0, atol=1e-12 * size)
    lin = predict_linear(model, counts, 1.0, 10)
    assert np.all(ex.train_acc == 1.0) and np.all(lin.train_acc == 1.0)
    assert np.all(ex.ties == 0) and np.all(lin.ties == 0) and np.all(ex.converged)
    # The outputs themselves have lost the information: all equal to 1/K up to round-off.
    assert np.ptp(ex.outputs[10][counts > 0]) <= 2e-16


def test_partial_results_api():
    # allow_unconverged=True returns every round with its certificate instead of raising.
    model = BlockModel(3, 4, 0.5, 0.1)
    counts = np.array([[3, 1, 0], [0, 4, 0], [1, 0, 3]])
    pred = predict_exact(model, counts, 1e-3, 2, tol=1e-300, allow_unconverged=True)
    assert pred.residuals.shape == (3,) and pred.residual_targets.shape == (3,)
    # tol = 1e-300 is below the round-off floor: the certificate is the floor itself,
    # ~ 8 eps mu_1 / (lam N) = 5e-13 here (docs/theory.md, Section 13).
    assert np.all(pred.converged) and np.all(pred.residuals <= pred.residual_targets)
    assert np.all(pred.residual_targets < 1e-11)


@pytest.mark.parametrize(
    "k, n, noise, lam, rounds",
    [
        (10, 50, "sym", 1.3e-3, 8),  # the explorer's benchmark point
        (5, 3, "pair", 1e-2, 15),  # small n: repeated count matrices, whole-class ties
        (4, 7, "asym", 1e-4, 12),
        (3, 2, "sym", 10.0, 5),  # large lam: deviations ~1e-20, decided after rescaling
        (2, 6, "sym", 1e-3, 0),
    ],
)
def test_linear_accuracy_grid_vs_predict_linear(k, n, noise, lam, rounds):
    """The vectorised grid returns predict_linear's accuracies, float for float.

    Same operations on the same numbers (only batched over the count matrices), so the values are
    identical, not merely close; the grid includes eta = 0 (empty mislabeled groups) and noise
    rates with tied scores.
    """
    model = BlockModel(k, n, 0.5, 0.1)
    etas = np.linspace(0.0, 0.95, 13)
    stack = np.stack([exact_counts(transition_matrix(noise, k, e), n) for e in etas])
    train, pop = linear_accuracy_grid(model, stack, lam, rounds)
    for i, cnt in enumerate(stack):
        ref = predict_linear(model, cnt, lam, rounds)
        np.testing.assert_array_equal(train[i], ref.train_acc)
        np.testing.assert_array_equal(pop[i], ref.population_acc)


def test_linear_accuracy_grid_bad_input():
    model = BlockModel(3, 4, 0.5, 0.1)
    with pytest.raises(ValueError, match=r"\(E, K, K\)"):
        linear_accuracy_grid(model, np.full((3, 3), 4 / 3), 1e-3, 2)
    with pytest.raises(ValueError, match="rows|per_class|sum"):
        linear_accuracy_grid(model, np.ones((1, 3, 3), dtype=int), 1e-3, 2)
    train, pop = linear_accuracy_grid(model, np.empty((0, 3, 3), dtype=int), 1e-3, 2)
    assert train.shape == pop.shape == (0, 3)


@pytest.mark.parametrize(
    "c, d, counts",
    [
        (0.4, 0.1, ((3, 3, 3),) * 3),  # every class has the same (uniform) label histogram
        (0.1, 0.1, ((7, 2, 1), (1, 7, 2), (2, 1, 7))),  # c = d: one shared class mean
        (0.4, 0.4, ((7, 2, 1), (1, 7, 2), (2, 1, 7))),
    ],
)
def test_exact_population_ties_by_symmetry_vs_linear(c, d, counts):
    """Population points that tie by symmetry tie in the exact theory too, as in the linearised
    one (whose closed form keeps them exactly equal): their logits agree mathematically, and the
    computed ones differ only by round-off, which the relative tie rule alone read as decisions
    (population accuracy 0 or 1/3 by round-off). Gaps below the logits' round-off bound
    (``GroupCoupling.population_logit_error``) are ties."""
    model = BlockModel(3, 9 if counts[0] == (3, 3, 3) else 10, c, d)
    exact = predict_exact(model, counts, 1e-2, 2)
    linear = predict_linear(model, counts, 1e-2, 2)
    assert np.all(exact.population_acc == 0.0) and np.all(exact.population_ties == 3)
    assert np.array_equal(exact.population_acc, linear.population_acc)
    # A real gap of 1e-7 relative (c - d = 1e-7) is far above the round-off bound: decided.
    if c == d:
        near = predict_exact(BlockModel(3, 10, c + 1e-7, d), counts, 1e-2, 1)
        assert np.all(near.population_acc == 1.0)
