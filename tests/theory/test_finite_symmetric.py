"""The orbit/circulant path of the finite-p theory (theory/finite_symmetric.py) against the
general path of theory/finite.py, and its orbit-stored arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

import theory.finite_symmetric as fs
from tests.tolerances import assert_close
from theory.finite import ORTHANT_TOL, MixtureModel, predict_finite
from theory.groups import BlockModel, predict_linear
from theory.noise import exact_counts, transition_matrix

#: Agreement of the two paths' moments, relative to the largest output (or covariance) entry.
#: Both evaluate the same contour sums with different round-off; over rounds 0..3 the contour
#: rule amplifies round-off by at most ~(q/u_top)^(2(t+1)) eps <= 4^8 * 2.2e-16 = 1.4e-11 for
#: the double sums of the covariances (contour_weights, docs §11.2; measured <= 2e-11 over
#: K in 2..10, lam in 1e-4..10, N/p in 1/4..4). Later rounds amplify more (measured 2e-5 at
#: t = 10, lam = 1e-3): that is the contour rule's own resolution, the same for both paths.
MOMENT_RTOL = 1e-10
ROUNDS = 3
ARRAYS = ("group_means", "population_means", "group_covs", "population_covs")
ACCURACIES = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc")

CASES = [
    # noise, K, n, eta, lam, N/p (0: block limit), c, d
    ("sym", 2, 25, 0.2, 1e-3, 1.0, 0.4, 0.1),
    ("sym", 5, 8, 0.5, 1e-4, 4.0, 0.4, 0.1),
    ("sym", 5, 8, 0.5, 1e-3, 1.0, 0.5, -0.05),
    ("sym", 5, 8, 0.5, 1e-3, 1.0, 0.3, 0.3),  # c = d: identical means
    ("sym", 6, 10, 0.0, 1e-2, 1.0, 0.4, 0.1),  # no noise: the mislabeled groups are empty
    ("sym", 10, 18, 0.5, 1e-3, 0.25, 0.4, 0.1),
    ("sym", 10, 18, 0.5, 1e-2, 1.0, 0.4, 0.1),
    ("sym", 4, 25, 0.3, 1.0, 0.5, 0.4, 0.1),  # large lam: the contour around the spectrum
    ("sym", 5, 8, 0.5, 1e-3, 0.0, 0.4, 0.1),
    ("pair", 8, 20, 0.3, 1e-3, 2.0, 0.4, 0.1),
    ("asym", 10, 20, 0.5, 1e-1, 4.0, 0.4, 0.1),  # cyclic, every offset non-empty
]


def _predict(noise, k, n, eta, lam, ratio, c, d, symmetry, rounds=ROUNDS):
    counts = exact_counts(transition_matrix(noise, k, eta), n)
    dim = math.inf if ratio == 0 else max(k, round(k * n / ratio))
    return predict_finite(MixtureModel(k, n, dim, c, d), counts, lam, rounds, symmetry=symmetry)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-K{c[1]}-lam{c[4]:g}-r{c[5]:g}")
def test_predict_finite_symmetric_vs_general(case):
    """Same moments to MOMENT_RTOL; accuracies within the orthant rule's error estimate.

    The quasi-Monte Carlo orthant rule is not invariant under relabelling the coordinates (its
    variable ordering breaks ties by index), so a relabelled group's accuracy agrees with the
    representative's only within the error estimate, as in test_predict_finite_class_relabelling.
    """
    sym = _predict(*case, symmetry="auto")
    gen = _predict(*case, symmetry="none")
    assert sym.symmetry in ("exchangeable", "cyclic") and gen.symmetry == "none"
    for names in (ARRAYS[:2], ARRAYS[2:]):
        scale = max(float(np.nanmax(np.abs(getattr(gen, name)))) for name in names)
        for name in names:
            got, want = np.asarray(getattr(sym, name)), getattr(gen, name)
            assert got.shape == want.shape
            assert np.array_equal(np.isnan(got), np.isnan(want)), name
            ok = ~np.isnan(want)
            assert_close(got[ok], want[ok], atol=MOMENT_RTOL * scale, rtol=0.0, what=name)
    tol = 2 * max(sym.quadrature_err, gen.quadrature_err) + 1e-12
    assert np.array_equal(np.isnan(sym.group_acc), np.isnan(gen.group_acc))
    ok = ~np.isnan(gen.group_acc)
    assert_close(sym.group_acc[ok], gen.group_acc[ok], atol=tol, rtol=0.0, what="group_acc")
    for name in ACCURACIES:
        got, want = getattr(sym, name), getattr(gen, name)
        assert np.array_equal(np.isnan(got), np.isnan(want)), name
        assert_close(got[~np.isnan(want)], want[~np.isnan(want)], atol=tol, rtol=0.0, what=name)
    assert_close(sym.bulk_weights, gen.bulk_weights, rtol=1e-13, what="bulk_weights")


def test_predict_finite_symmetric_block_limit_vs_predict_linear_at_k60():
    """p = inf at K = 60 (beyond the general path): the block model's linear groups (§11.7).

    Tolerance as in test_predict_finite_block_limit_vs_predict_linear: 1e-7 of each round's
    largest output. Rounds 0..4 only: the contour rule's absolute round-off grows like
    eps q^(t+1) while the class-level outputs shrink like (mu_class/(mu_class + kappa))^(t+1),
    far below the global spike's u_top^(t+1) at K = 60 (measured here: 1.3e-9 at t = 4, 2e-7 at
    t = 5, 7e-5 at t = 6; the general path behaves alike, e.g. 4e-10 for both at K = 20,
    t = 6).
    """
    k, n, c, d, lam = 60, 118, 0.4, 0.1, 1e-3  # 118 * 0.5 / 59 = 1 per other label
    counts = exact_counts(transition_matrix("sym", k, 0.5), n)
    fin = predict_finite(MixtureModel(k, n, math.inf, c, d), counts, lam, 4)
    lin = predict_linear(BlockModel(k, n, c, d), counts, lam, 4)
    assert fin.symmetry == "exchangeable"
    for kk, ll in [(0, 0), (0, 1), (17, 17), (59, 3), (3, 59)]:
        got, want = fin.group_means[:, kk, ll], lin.deviations[:, kk, ll]
        scale = np.abs(want).max(axis=1, keepdims=True)
        assert np.max(np.abs(got - want) / scale) <= 1e-7
        assert np.all(fin.group_covs[:, kk, ll] == 0.0)
    for key in ACCURACIES:
        assert_close(getattr(fin, key), getattr(lin, key), what=key)


#: Points per shift of the orthant rule's first pass: theory.finite's (the batched vs per-round
#: comparison holds for any value; the check against the prediction needs the prediction's).
FIRST_POINTS = 32
#: Batched vs per-round orthant probabilities: every batch item is computed as alone except that
#: the QMC sums are split into chunks by batch size, i.e. summed in another order: round-off of a
#: mean of ~10^3 terms in [0, 1] (measured <= 3.3e-16 at K = 20).
BATCH_ATOL = 1e-12


@pytest.mark.parametrize(
    "case, batch_entries",
    [
        (("sym", 10, 50, 0.3, 1.3e-3, 1.0, 0.5, 0.1), fs.ORTHANT_BATCH_ENTRIES),
        (("sym", 20, 50, 0.3, 1e-3, 1.0, 0.5, 0.1), fs.ORTHANT_BATCH_ENTRIES),
        (("pair", 8, 20, 0.3, 1e-3, 2.0, 0.4, 0.1), 64 * 7),  # 7 items per call: several calls
        (("sym", 6, 10, 0.0, 1e-2, 1.0, 0.4, 0.1), fs.ORTHANT_BATCH_ENTRIES),  # empty groups
    ],
    ids=["sym-K10", "sym-K20", "pair-K8-chunked", "sym-K6-no-noise"],
)
def test_orthant_all_rounds_vs_per_round_win_probability(case, batch_entries, monkeypatch):
    """The orthant probabilities of all rounds in batched calls vs two calls per round.

    On the moments of a real prediction (its representatives, read from the orbit arrays), to
    BATCH_ATOL; and the prediction holds the batched values.
    """
    from theory.class_symmetry import class_symmetry
    from theory.orthant import win_probability

    monkeypatch.setattr(fs, "ORTHANT_BATCH_ENTRIES", batch_entries)
    pred = _predict(*case, symmetry="auto", rounds=8)
    reps = class_symmetry(pred.counts).group_reps
    a, b = reps[:, 0], reps[:, 1]
    r1 = len(pred.train_acc)
    rep_means = np.stack([pred.group_means[t, a, b] for t in range(r1)])
    rep_covs = np.stack([pred.group_covs[t, a, b] for t in range(r1)])
    p_mean0 = pred.population_means[:, 0]
    p_cov0 = np.stack([pred.population_covs[t, 0] for t in range(r1)])
    tol = 1e-2
    acc, pop, err = fs._orthant_all_rounds(
        rep_means, rep_covs, a, p_mean0, p_cov0, tol, FIRST_POINTS
    )
    ref_err = 0.0
    for t in range(r1):
        one = win_probability(rep_means[t], rep_covs[t], a, abs_tol=tol, first_points=FIRST_POINTS)
        assert_close(acc[t], one.prob, atol=BATCH_ATOL, rtol=0.0, what=f"groups, round {t}")
        alone = win_probability(p_mean0[t], p_cov0[t], 0, abs_tol=tol, first_points=FIRST_POINTS)
        assert abs(pop[t] - alone.prob) <= BATCH_ATOL, (t, pop[t], alone.prob)
        ref_err = max(ref_err, float(np.max(one.err)), alone.err)
    assert err == pytest.approx(ref_err, abs=BATCH_ATOL)
    # the prediction itself (predict_finite's default abs_tol) holds the batched values
    again = fs._orthant_all_rounds(
        rep_means, rep_covs, a, p_mean0, p_cov0, ORTHANT_TOL, FIRST_POINTS
    )
    np.testing.assert_array_equal(again[0], pred.group_acc[:, a, b])
    np.testing.assert_array_equal(again[1], pred.population_acc)


@pytest.fixture(scope="module")
def cyclic_pred():
    """pair noise at K = 5 with eta = 0 rows absent: some groups empty (NaN entries)."""
    return _predict("pair", 5, 10, 0.3, 1e-3, 1.0, 0.4, 0.1, symmetry="auto", rounds=2)


@pytest.mark.parametrize(
    "key",
    [
        (1,),
        (1, 2, 3),
        (1, 2, 0),  # an empty group: NaN
        (slice(None), 2, 3),
        (-1, -2, -1),
        (1, 2, 3, 4, 0),
        (slice(None), np.array([0, 1, 4]), np.array([0, 2, 0])),
        (1, slice(1, 4), slice(None, None, 2)),
        (Ellipsis, 0, 1),
        (0, Ellipsis),
        (np.array([0, 2]), 1, slice(None), 3),  # advanced on both sides: materialised
        (slice(None), 1, 2, np.array([0, 4])),
        (1, None, 2),
        (np.arange(5) % 2 == 0,),  # wrong length: IndexError
        (np.array([True, False, True]), 2),
    ],
)
def test_orbit_array_indexing_vs_materialised(cyclic_pred, key):
    for name in ("group_means", "group_covs", "population_covs"):
        arr = getattr(cyclic_pred, name)
        full = np.asarray(arr)
        assert full.shape == arr.shape and len(arr) == full.shape[0] and arr.size == full.size
        try:
            want = full[key]
        except IndexError:
            with pytest.raises(IndexError):
                arr[key]
            continue
        got = arr[key]
        assert np.shape(got) == np.shape(want), (name, key)
        np.testing.assert_array_equal(got, want)


def test_orbit_array_is_the_relabelled_representative(cyclic_pred):
    """Entry [t, k, l] is the representative (0, l - k mod K) with coordinates shifted by k."""
    covs, means = cyclic_pred.group_covs, cyclic_pred.group_means
    k = 5
    for a, b in [(2, 3), (4, 0), (3, 3)]:
        shift = (np.arange(k) - a) % k
        rep_l = (b - a) % k
        np.testing.assert_array_equal(means[:, a, b], means[:, 0, rep_l][:, shift])
        np.testing.assert_array_equal(
            covs[:, a, b], covs[:, 0, rep_l][:, shift[:, None], shift[None, :]]
        )
    pc = cyclic_pred.population_covs
    np.testing.assert_array_equal(
        pc[:, 3], pc[:, 0][:, (np.arange(k) - 3) % k][:, :, (np.arange(k) - 3) % k]
    )


def test_orbit_array_arithmetic_and_refusal(cyclic_pred, monkeypatch):
    covs = cyclic_pred.group_covs
    full = np.asarray(covs)
    np.testing.assert_array_equal(covs * 2.0, 2.0 * full)
    np.testing.assert_array_equal(np.nan_to_num(covs), np.nan_to_num(full))
    assert "OrbitArray" in repr(covs)
    import theory.orbit_array

    # OrbitArray reads the limit from its own module (theory.finite_symmetric re-exports it).
    monkeypatch.setattr(theory.orbit_array, "MATERIALISE_LIMIT", 5 * 5)
    assert covs[1, 2, 3].shape == (5, 5)  # one block is within the limit
    with pytest.raises(ValueError, match="index it by round and group"):
        np.asarray(covs)
    with pytest.raises(ValueError, match="index it by round and group"):
        covs[:, 2, 3]


def test_predict_finite_symmetry_bad_input():
    counts = exact_counts(transition_matrix("sym", 3, 0.3), 10)
    with pytest.raises(ValueError, match="symmetry"):
        predict_finite(MixtureModel(3, 10, 50, 0.4, 0.1), counts, 1e-3, 1, symmetry="cyclic")
    with pytest.raises(ValueError, match="lead"):
        fs.OrbitArray(np.zeros((1, 2, 3)), None, "round")
