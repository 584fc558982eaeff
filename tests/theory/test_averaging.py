"""Label-averaging closed form against exact computations."""

import numpy as np
import pytest

from simulations.distill import self_distill
from tests.tolerances import assert_close
from theory.averaging import (
    eigen_weights,
    gram_spectrum,
    linearised_outputs,
    linearised_test_outputs,
)
from theory.gram import block_gram, gram_from_spectrum
from theory.validation import one_hot


def _noisy_block(k=3, n=6, c=0.5, d=0.1, seed=0):
    rng = np.random.default_rng(seed)
    true = np.repeat(np.arange(k), n)
    noisy = true.copy()
    flip = rng.choice(k * n, size=k * n // 4, replace=False)
    noisy[flip] = (true[flip] + 1) % k
    return block_gram(k, n, c, d), true, noisy


def test_linearised_vs_matrix_power():
    """Spectral evaluation == dense 1/K + (Y - 1/K) A^(t+1) with A = G (G + K lam N I)^-1."""
    g, _, noisy = _noisy_block()
    k, n = 3, g.shape[0]
    y = one_hot(noisy, k)
    lam = 0.02
    a = g @ np.linalg.inv(g + k * lam * n * np.eye(n))
    out = linearised_outputs(y, lam, 4, gram=g)
    for t in range(5):
        dense = 1 / k + (y - 1 / k) @ np.linalg.matrix_power(a, t + 1)
        assert_close(out[t], dense, atol=1e-12, rtol=0, what=f"round {t}")
    assert_close(out.sum(axis=1), np.ones((5, n)), atol=1e-12, rtol=0)


def test_known_answer_single_eigenvector():
    """Targets 1/K + eps v u_j^T are reproduced with exactly the weight a_j(t)."""
    rng = np.random.default_rng(1)
    n, k, lam = 8, 3, 0.05
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    mu = np.array([6.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.1, 0.05])
    g = gram_from_spectrum(q, mu)
    v = np.array([1.0, -0.5, -0.5])
    j = 2
    eps = 0.2 / np.abs(q[:, j]).max()
    targets = 1 / k + eps * np.outer(v, q[:, j])
    out = linearised_outputs(targets, lam, 3, gram=g)
    w = eigen_weights(mu, k, lam, n, 3)[:, j]
    for t in range(4):
        expected = 1 / k + eps * w[t] * np.outer(v, q[:, j])
        assert_close(out[t], expected, atol=1e-13, rtol=0)


def test_eigen_weights_formula():
    w = eigen_weights([3.0, 1.0, 0.0], 2, 0.5, 4, 2)
    assert w.shape == (3, 3)
    assert_close(w[:, 0], [(3 / 7) ** 1, (3 / 7) ** 2, (3 / 7) ** 3])
    assert np.all(w[:, 2] == 0)
    with pytest.raises(ValueError, match="lam"):
        eigen_weights([1.0], 2, 0.0, 4, 2)
    with pytest.raises(ValueError, match="rounds"):
        eigen_weights([1.0], 2, 1.0, 4, -1)


def test_features_vs_gram_spectrum():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((20, 5))
    y = one_hot(rng.integers(0, 3, 20), 3)
    a = linearised_outputs(y, 0.1, 3, features=x)
    b = linearised_outputs(y, 0.1, 3, gram=x @ x.T)
    assert_close(a, b, atol=1e-12, rtol=0)
    assert gram_spectrum(features=x).eigenvalues.shape == (5,)


def test_linearised_test_outputs_vs_dense():
    """z_t(x) = (T_t - P_t) k(x) / (lam N) with T_t, P_t from the dense closed form."""
    g, _, noisy = _noisy_block(seed=3)
    k, n, lam = 3, g.shape[0], 0.05
    y = one_hot(noisy, k)
    rows = g[:4] * 0.9  # any kernel rows in the range of G
    out = linearised_test_outputs(y, lam, 3, rows, gram=g)
    a = g @ np.linalg.inv(g + k * lam * n * np.eye(n))
    for t in range(4):
        t_t = 1 / k + (y - 1 / k) @ np.linalg.matrix_power(a, t)
        p_t = 1 / k + (y - 1 / k) @ np.linalg.matrix_power(a, t + 1)
        z = (t_t - p_t) @ rows.T / (lam * n)
        assert_close(out[t], 1 / k + z / k, atol=1e-12, rtol=0)


def _rate(k, lams, rounds=3):
    """Errors and spreads of the closed form against exact multi-round training."""
    g, _, noisy = _noisy_block(k=k, n=5, c=0.6, d=0.1, seed=4)
    errors, spreads = [], []
    for lam in lams:
        exact = self_distill(noisy, k, lam, rounds, gram=g).outputs
        lin = linearised_outputs(one_hot(noisy, k), lam, rounds, gram=g)
        errors.append(np.abs(exact - lin).max())
        spreads.append(np.abs(exact - 1 / k).max())
    return np.log(errors), np.log(spreads)


def test_linearised_vs_exact():
    """Error of the closed form shrinks like spread^2 as lam grows (K >= 3).

    softmax(z) = 1/K + (z - mean z)/K + O(|z|^2) with a nonzero quadratic term for K >= 3, and the
    spread of the outputs is O(|z|), so the log-log slope of error against spread tends to 2.
    """
    log_err, log_spread = _rate(3, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
    slope = np.polyfit(log_spread, log_err, 1)[0]
    assert 1.8 <= slope <= 2.2, f"slope {slope:.3f}"
    # And the error really is small relative to the spread at large lam.
    assert np.exp(log_err[-1] - log_spread[-1]) < 0.05


def test_linearised_vs_exact_binary_is_third_order():
    """For K = 2, softmax is 1/2 + z/4 - z^3/48 + ...: no quadratic term, so the rate is 3."""
    log_err, log_spread = _rate(2, [1.0, 2.0, 4.0, 8.0, 16.0])
    slope = np.polyfit(log_spread, log_err, 1)[0]
    assert 2.8 <= slope <= 3.2, f"slope {slope:.3f}"


def test_linearised_fails_at_small_lam():
    """Where the linearisation breaks: at small lam its round-by-round accuracy departs from exact.

    Block model K=3, n=30, c=0.4, d=0.1, 25% pair noise: at lam = 1e-3 the exact softmax saturates
    (outputs near the labels) and round 2 still fits the noise, while the linear filter already
    averages some mislabeled points back; at lam >= 1e-2 both give the same accuracies.
    """
    g, true, noisy = _noisy_block(k=3, n=30, c=0.4, d=0.1, seed=5)
    y = one_hot(noisy, 3)

    def accuracies(lam):
        exact = self_distill(noisy, 3, lam, 3, gram=g).outputs
        lin = linearised_outputs(y, lam, 3, gram=g)
        return (exact.argmax(1) == true).mean(1), (lin.argmax(1) == true).mean(1)

    exact, lin = accuracies(1e-3)
    assert np.any(exact != lin), (exact, lin)
    for lam in [1e-2, 1e-1]:
        exact, lin = accuracies(lam)
        assert np.array_equal(exact, lin), (lam, exact, lin)


def test_linearised_deviations_keep_gaps_that_outputs_lose():
    # Heavy regularisation and many rounds: the outputs are 1/K to the last bit, the deviations
    # still order the classes exactly as the closed form in exact arithmetic does.
    from theory.averaging import linearised_deviations, linearised_test_logits
    from theory.gram import block_gram
    from theory.metrics import correct_and_tied

    k, n = 3, 4
    gram = block_gram(k, n, 0.5, 0.1)
    labels = np.repeat(np.arange(k), n)
    y = np.eye(k)[:, labels]
    out = linearised_outputs(y, 1.0, 12, gram=gram)
    dev = linearised_deviations(y, 1.0, 12, gram=gram)
    np.testing.assert_allclose(out, 1.0 / k + dev, atol=1e-15)
    assert np.ptp(out[12]) < 1e-15  # the probabilities carry no information any more
    correct, tied = correct_and_tied(dev[12], labels)
    assert correct.all() and not tied.any()
    rows = np.where(np.arange(k)[:, None] == labels[None, :], 0.5, 0.1)
    logits = linearised_test_logits(y, 1.0, 12, rows, gram=gram)
    np.testing.assert_allclose(
        linearised_test_outputs(y, 1.0, 12, rows, gram=gram), 1.0 / k + logits / k, atol=1e-15
    )
    assert correct_and_tied(logits[12], np.arange(k))[0].all()
