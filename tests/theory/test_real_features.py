"""Tests of theory/real_features.py against explicit N x N references."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from theory.averaging import linearised_outputs
from theory.gram import block_gram
from theory.groups import predict_linear
from theory.metrics import accuracy
from theory.noise import exact_counts, transition_matrix
from theory.real_features import (
    block_fit,
    class_correlations,
    filter_summary,
    linearised_accuracy,
    real_feature_theory,
    rescaled_counts,
)
from theory.validation import one_hot

#: Sums of O(N^2) products of O(1) numbers in float64: relative round-off ~ N eps << 1e-10.
RTOL = 1e-10


def _features(n=60, p=7, k=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    means = rng.standard_normal((k, p))
    x = means[labels] + 0.7 * rng.standard_normal((n, p))
    return x, labels


def _block_features(k, n, c, d):
    """Features X with X X^T equal to the block Gram matrix (eigen-factor of block_gram)."""
    mu, q = np.linalg.eigh(block_gram(k, n, c, d))
    return q * np.sqrt(np.clip(mu, 0.0, None))


def test_class_correlations_vs_explicit_gram():
    x, y = _features()
    g = x @ x.T
    same = y[:, None] == y[None, :]
    off = ~np.eye(y.size, dtype=bool)
    scale = np.mean(np.diag(g))
    corr = class_correlations(x, y, 3)
    assert corr.scale == pytest.approx(scale, rel=RTOL)
    assert corr.c == pytest.approx(g[same & off].mean() / scale, rel=RTOL)
    assert corr.d == pytest.approx(g[~same].mean() / scale, rel=RTOL)
    np.testing.assert_array_equal(corr.class_counts, np.bincount(y, minlength=3))


def test_class_correlations_vs_block_gram_parameters():
    k, n, c, d = 3, 5, 0.6, 0.1
    x = _block_features(k, n, c, d)
    corr = class_correlations(x, np.repeat(np.arange(k), n), k)
    assert corr.scale == pytest.approx(1.0, rel=1e-12)
    assert corr.c == pytest.approx(c, abs=1e-12)
    assert corr.d == pytest.approx(d, abs=1e-12)


def test_linearised_accuracy_vs_explicit_filter():
    x, y = _features(seed=1)
    k, lam, rounds = 3, 0.02, 4
    noisy = y.copy()
    noisy[::5] = (noisy[::5] + 1) % k
    g = x @ x.T
    big_n = y.size
    a = g @ np.linalg.inv(g + k * lam * big_n * np.eye(big_n))
    yc = one_hot(noisy, k) - 1.0 / k
    expected = []
    power = a.copy()
    for _ in range(rounds + 1):
        expected.append(accuracy(1.0 / k + yc @ power, y))
        power = power @ a
    got = linearised_accuracy(x, noisy, y, k, lam, rounds)
    np.testing.assert_array_equal(got, expected)


def test_block_prediction_vs_real_gram_linearisation():
    """On features whose Gram IS a block matrix, the fitted block model and the real-Gram
    linearisation are the same computation (group level vs N x N) and must agree exactly."""
    k, n, c, d = 3, 8, 0.5, 0.05
    x = _block_features(k, n, c, d)
    y = np.repeat(np.arange(k), n)
    counts = exact_counts(transition_matrix("sym", k, 0.25), n)
    noisy = np.concatenate([np.repeat(np.arange(k), counts[cls]) for cls in range(k)])
    lam, rounds = 0.01, 6
    fit = block_fit(x, y, k)
    assert not fit.d_clamped and not fit.c_clipped
    assert fit.model.per_class == n
    assert fit.model.c == pytest.approx(c, abs=1e-12)
    assert fit.model.d == pytest.approx(d, abs=1e-12)
    np.testing.assert_array_equal(rescaled_counts(y, noisy, k, n), counts)
    group = predict_linear(fit.model, counts, fit.block_lam(lam), rounds).train_acc
    real = linearised_accuracy(x, noisy, y, k, lam, rounds)
    np.testing.assert_array_equal(group, real)
    # and the outputs themselves, not only the accuracies
    out = linearised_outputs(one_hot(noisy, k), lam, rounds, features=x)
    pred = predict_linear(fit.model, counts, fit.block_lam(lam), rounds).outputs
    for t in range(rounds + 1):
        np.testing.assert_allclose(out[t][:, 0], pred[t, 0, 0], rtol=0, atol=1e-12)


def test_scale_is_absorbed_into_lam():
    """G -> s G with lam -> s lam leaves every prediction unchanged (P depends on G / lam)."""
    x, y = _features(seed=2)
    noisy = y.copy()
    noisy[::4] = (noisy[::4] + 2) % 3
    a = real_feature_theory(x, y, noisy, 3, 0.01, 3).to_dict()
    b = real_feature_theory(3.0 * x, y, noisy, 3, 0.09, 3).to_dict()
    for key in (
        "c",
        "d",
        "block_lam",
        "linearised_train_acc",
        "block_linear_train_acc",
        "min_rounds",
        "pll_linear_train_acc",
    ):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9)
    assert b["scale"] == pytest.approx(9.0 * a["scale"], rel=1e-12)


def test_rescaled_counts_rows_sum_to_per_class():
    y = np.array([0] * 5 + [1] * 9 + [2] * 4)
    noisy = y.copy()
    noisy[[0, 5, 6, 14]] = [1, 2, 0, 0]
    cnt = rescaled_counts(y, noisy, 3, 6)
    np.testing.assert_array_equal(cnt.sum(axis=1), [6, 6, 6])
    raw = np.array([[4, 1, 0], [1, 7, 1], [1, 0, 3]])
    assert np.all(np.abs(cnt - 6 * raw / raw.sum(axis=1, keepdims=True)) < 1)


def test_block_fit_clamps_to_psd_boundary():
    # Two antipodal classes: c = 1, d = -1 lies exactly on mu_1 = 0 for n = N / K.
    x = np.array([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 5)
    y = np.array([0] * 3 + [1] * 5)
    fit = block_fit(x, y, 2)
    assert fit.d_clamped
    assert np.all(fit.model.eigenvalues >= 0)
    assert fit.correlations.d == pytest.approx(-1.0)


def test_filter_summary_counts_kept_directions():
    mu = np.array([10.0, 5.0, 1.0, 0.1])
    s = filter_summary(mu, 2, 0.5, 4, 1)  # threshold K lam N = 4
    assert s["threshold"] == 4.0
    assert s["kept_round0"] == 2
    np.testing.assert_allclose(s["top_weights"][1], (mu / (mu + 4.0)) ** 2)


def test_real_feature_theory_errors():
    x, y = _features()
    with pytest.raises(ValueError, match="labels"):
        class_correlations(x, y[:-1], 3)
    with pytest.raises(ValueError, match="single sample"):
        class_correlations(x[:3], np.array([0, 1, 2]), 3)
    with pytest.raises(ValueError, match="lam"):
        real_feature_theory(x, y, y, 3, -1.0, 2)


def test_real_feature_theory_memory_is_not_quadratic():
    """N = 20000: an N x N float64 matrix would need 3.2 GB; O(N p) work stays far below 100 MB."""
    rng = np.random.default_rng(3)
    n, p, k = 20000, 8, 4
    y = np.arange(n) % k
    x = rng.standard_normal((k, p))[y] + rng.standard_normal((n, p))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    noisy = y.copy()
    noisy[::10] = (noisy[::10] + 1) % k
    tracemalloc.start()
    try:
        th = real_feature_theory(x, y, noisy, k, 1e-3, 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB"
    assert len(th.linearised_train_acc) == 3
