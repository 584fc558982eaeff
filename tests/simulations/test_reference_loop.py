"""Tests of the reference code's solver loop reproduced in simulations/reference_loop.py."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.reference_loop import (
    reference_correlation,
    reference_loop,
    reference_noisy_labels,
    residual_loss_and_gradient,
    torch_available,
)
from simulations.solver import factorize, fixed_point_residual, solve_probe
from theory.gram import block_gram
from theory.validation import one_hot


def _setup(k=3, n=8, lam=0.05, seed=0):
    rng = np.random.default_rng(seed)
    gram = block_gram(k, n, 0.5, 0.1)
    targets = one_hot(reference_noisy_labels(k, n, 0.3, rng), k)
    return rng, gram, targets, lam


@pytest.mark.parametrize("epsilon", [0.0, 0.05])
def test_residual_gradient_vs_finite_differences(epsilon):
    """float64 evaluation; C may be non-symmetric (the reference's matrix), hence C^T."""
    rng = np.random.default_rng(1)
    k, n = 3, 6
    corr = reference_correlation(k, n, 0.5, 0.1, epsilon, rng, dtype=np.float64)
    y = rng.random((k, k * n))
    y /= y.sum(axis=0)
    t = one_hot(rng.integers(0, k, k * n), k)
    scale = 1.0 / (0.1 * k * n)
    _, grad = residual_loss_and_gradient(y, t, corr, scale)
    h = 1e-6
    fd = np.zeros_like(y)
    for idx in np.ndindex(*y.shape):
        e = np.zeros_like(y)
        e[idx] = h
        fd[idx] = (
            residual_loss_and_gradient(y + e, t, corr, scale)[0]
            - residual_loss_and_gradient(y - e, t, corr, scale)[0]
        ) / (2 * h)
    # Central differences: truncation O(h^2) ~ 1e-11, cancellation ~ eps |L| / h ~ 1e-9.
    np.testing.assert_allclose(grad, fd, atol=1e-7, rtol=0)


def test_first_iteration_is_one_adam_step_with_clamp_and_renormalisation():
    rng, gram, targets, lam = _setup()
    start = np.random.default_rng(7).random(targets.shape, dtype=np.float32)
    start /= start.sum(axis=0)
    run = reference_loop(targets, gram, lam, np.random.default_rng(7), max_iter=1)
    # torch.optim.Adam, first step: m = (1-b1) g, v = (1-b2) g^2, step = lr/(1-b1) m /
    # (sqrt(v)/sqrt(1-b2) + eps) = lr g / (|g| + eps).
    _, g = residual_loss_and_gradient(
        start, targets.astype(np.float32), gram.astype(np.float32), np.float32(1 / (lam * 24))
    )
    y = start - 1e-3 * g / (np.abs(g) + 1e-8)
    y = np.maximum(y, 1e-6)
    y /= y.sum(axis=0)
    np.testing.assert_allclose(run.outputs, y, rtol=1e-5, atol=1e-7)  # float32 arithmetic
    assert run.iterations == 1 and not run.stopped and run.backend in ("numpy", "torch")


def test_early_stop_on_squared_frobenius_loss():
    rng, gram, targets, _ = _setup(lam=1.0)
    run = reference_loop(targets, gram, 1.0, rng, max_iter=20_000)
    assert run.stopped and run.loss < 1e-5 and run.iterations < 20_000
    # The stop is on the squared Frobenius norm evaluated before the last step: the float64
    # max-abs residual of the returned Y is at most about sqrt(1e-5) ~ 3e-3.
    res, _ = fixed_point_residual(run.outputs, targets, 1.0, factor=factorize(gram=gram))
    assert res < 4e-3


def test_converged_reference_agrees_with_exact_solver_at_large_lam():
    """Where the loop converges, it finds the solver's fixed point to its own accuracy."""
    rng, gram, targets, _ = _setup(lam=1.0)
    run = reference_loop(targets, gram, 1.0, rng, max_iter=20_000, stop=1e-9)
    exact = solve_probe(targets, 1.0, gram=gram)
    # Loss ~ 1e-9 => |Y - S| ~ 3e-5 entrywise; the fixed-point map contracts strongly at lam = 1
    # (|dZ/dY| = ||G|| / (lam N) ~ 0.3), so |Y - P*| ~ |Y - S| / (1 - 0.3 * 0.5) < 1e-4; float32
    # floors the achievable loss near 1e-12.
    np.testing.assert_allclose(run.outputs, exact.outputs, atol=1e-4)


def test_reference_correlation_properties():
    rng = np.random.default_rng(3)
    k, n, c, d, eps = 3, 10, 0.4, 0.1, 0.05
    corr = reference_correlation(k, n, c, d, eps, rng)
    assert corr.dtype == np.float32 and corr.shape == (30, 30)
    np.testing.assert_array_equal(np.diag(corr), 1.0)
    base = block_gram(k, n, c, d)
    off = ~np.eye(30, dtype=bool)
    assert np.all(np.abs(corr - base)[off] <= eps + 1e-6)
    assert not np.allclose(corr, corr.T)  # independent entries: not symmetric
    np.testing.assert_allclose(reference_correlation(k, n, c, d, 0.0, rng), base, atol=1e-7)


def test_reference_noisy_labels_flip_to_other_classes():
    rng = np.random.default_rng(4)
    k, n, eta = 4, 2000, 0.5
    noisy = reference_noisy_labels(k, n, eta, rng)
    truth = np.repeat(np.arange(k), n)
    flipped = noisy != truth
    # Binomial(8000, 0.5): std 0.0056; 5 sigma.
    assert abs(flipped.mean() - eta) < 0.03
    counts = np.bincount(noisy[flipped & (truth == 0)], minlength=k)
    assert counts[0] == 0 and np.all(counts[1:] > 0)


def test_reference_loop_bad_input():
    rng, gram, targets, lam = _setup()
    with pytest.raises(ValueError, match="corr must have shape"):
        reference_loop(targets, gram[:-1, :-1], lam, rng)
    with pytest.raises(ValueError, match="lam"):
        reference_loop(targets, gram, 0.0, rng)
    with pytest.raises(ValueError, match="backend"):
        reference_loop(targets, gram, lam, rng, backend="jax")
    with pytest.raises(ValueError, match="max_iter"):
        reference_loop(targets, gram, lam, rng, max_iter=0)
    if not torch_available():
        with pytest.raises(ValueError, match="PyTorch"):
            reference_loop(targets, gram, lam, rng, backend="torch")
    with pytest.raises(ValueError, match="epsilon"):
        reference_correlation(2, 3, 0.4, 0.1, -1.0, rng)


def test_torch_backend_matches_numpy_backend():
    pytest.importorskip("torch", reason="optional backend: PyTorch is not a dependency")
    _, gram, targets, lam = _setup()
    a = reference_loop(targets, gram, lam, np.random.default_rng(5), max_iter=200, backend="torch")
    b = reference_loop(targets, gram, lam, np.random.default_rng(5), max_iter=200, backend="numpy")
    np.testing.assert_allclose(a.outputs, b.outputs, atol=1e-4)  # float32, different kernels
