"""Softmax deviations and objective-change helpers against high-precision references (mpmath)."""

import mpmath
import numpy as np
import pytest

from simulations.softmax import (
    expm1_minus_identity,
    log1p_minus_identity,
    log_softmax,
    softmax_deviation,
    softmax_with_deviation,
)

EPS = np.finfo(float).eps


def _reference_deviation(row, dps):
    with mpmath.workdps(dps):
        zs = [mpmath.mpf(float(v)) for v in row]
        m = max(zs)
        es = [mpmath.exp(v - m) for v in zs]
        total = sum(es)
        return [float(e / total - mpmath.mpf(1) / len(zs)) for e in es]


@pytest.mark.parametrize("scale", [1e-300, 1e-20, 1e-6, 9e-4, 1.1e-3, 0.3, 30.0, 600.0])
def test_softmax_deviation_vs_mpmath(scale):
    """Deviations keep ~13 digits relative to the row's largest deviation at every logit scale.

    Error budget: for a logit spread s >= 1e-3 the deviations are e^w - mean(e^w), whose absolute
    error ~eps against a largest deviation >= s / 2 gives <= 2 eps / s ~ 4.4e-13 relative; below,
    expm1 keeps full relative accuracy (~K eps). 1e-12 covers both with margin; the naive
    softmax(z) - 1/K would be off by 100% for scale <= 1e-17.
    """
    z = np.random.default_rng(0).standard_normal((6, 5)) * scale
    probs, dev = softmax_with_deviation(z)
    # dps: enough digits that exp(z - max) resolves scale-sized differences from 1.
    dps = 40 + int(max(0.0, -np.log10(scale)))
    for i in range(z.shape[0]):
        ref = np.array(_reference_deviation(z[i], dps))
        err = np.max(np.abs(dev[i] - ref)) / np.max(np.abs(ref))
        assert err <= 1e-12, f"row {i}: relative error {err:.2e}"
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=8 * EPS)
    np.testing.assert_allclose(softmax_deviation(z.T, axis=0), dev.T, rtol=0, atol=0)


def test_softmax_extreme_logits_no_warnings():
    z = np.array([[1e300, -1e300, 0.0], [-800.0, 0.0, 800.0]])
    # Underflow of e^{-2e300} to 0 is the right limit; overflow / invalid / divide must not occur.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        probs, dev = softmax_with_deviation(z)
    np.testing.assert_array_equal(probs, [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(dev, probs - 1 / 3, rtol=0, atol=4 * EPS)
    assert np.all(np.isfinite(log_softmax(z)))


@pytest.mark.parametrize(
    "w", [-1e-300, 1e-12, -3e-7, 9.99e-4, -1.001e-3, 0.04, -0.7, 3.0, -40.0, 600.0]
)
def test_expm1_minus_identity_vs_mpmath(w):
    """phi(w) = e^w - 1 - w: series below 1e-3 (truncation < 1e-18), direct formula above
    (relative error ~2 eps / |w| < 5e-13); 1e-12 covers both."""
    with mpmath.workdps(60):
        ref = float(mpmath.expm1(mpmath.mpf(w)) - mpmath.mpf(w))
    got = float(expm1_minus_identity(np.array([w]))[0])
    if ref == 0.0:  # |w| ~ 1e-300: w^2 / 2 underflows to 0
        assert got == 0.0
    else:
        assert abs(got / ref - 1) <= 1e-12


@pytest.mark.parametrize("a", [1e-300, -2e-9, 5e-5, 9.99e-4, -1.001e-3, 0.2, -0.9, 7.0])
def test_log1p_minus_identity_vs_mpmath(a):
    with mpmath.workdps(60):
        ref = float(mpmath.log1p(mpmath.mpf(a)) - mpmath.mpf(a))
    got = float(log1p_minus_identity(np.array([a]))[0])
    if ref == 0.0:
        assert got == 0.0
    else:
        assert abs(got / ref - 1) <= 1e-12


def test_mixed_rows_use_the_right_branch():
    """One near-uniform row and one spread-out row in the same call are both accurate."""
    z = np.array([[2e-14, -1e-14, 0.0, 5e-15], [3.0, -1.0, 0.5, 0.0]])
    _, dev = softmax_with_deviation(z)
    for i in range(2):
        ref = np.array(_reference_deviation(z[i], 60))
        assert np.max(np.abs(dev[i] - ref)) <= 1e-12 * np.max(np.abs(ref))
