"""Per-sample losses of theory.losses: forces and Hessians against finite differences."""

import mpmath
import numpy as np
import pytest

from theory.losses import (
    LOSSES,
    Candidate,
    CrossEntropy,
    GeneralisedCE,
    make_loss,
    softmax,
    softmax_deviation,
)

K = 5


def _losses(rng, m=7):
    cand = np.array([rng.choice(K, size=2, replace=False) for _ in range(m)])
    t = rng.dirichlet(np.ones(K), size=m)
    return [
        CrossEntropy(t - 1.0 / K),
        Candidate(cand, K),
        GeneralisedCE(cand, K, q=0.7),
        GeneralisedCE(cand, K, q=1.0),
        GeneralisedCE(cand, K, q=0.05),
    ]


def _dense_hessian(hess):
    h, u, w = hess
    return np.stack([np.diag(h[i]) + (u[:, i].T * w[:, i]) @ u[:, i] for i in range(h.shape[0])])


@pytest.mark.parametrize("index", range(5))
def test_force_is_minus_gradient_and_hessian_is_its_jacobian(index):
    rng = np.random.default_rng(index)
    loss = _losses(rng)[index]
    z = rng.normal(scale=2.0, size=(7, K))
    step = 1e-6
    # Central differences: error ~ step^2 * third derivative ~ 1e-12, round-off ~ eps/step.
    grad = np.zeros_like(z)
    jac = np.zeros((7, K, K))
    for j in range(K):
        e = np.zeros(K)
        e[j] = step
        grad[:, j] = (loss.value(z + e) - loss.value(z - e)) / (2 * step)
        jac[:, :, j] = -(loss.force(z + e) - loss.force(z - e)) / (2 * step)
    np.testing.assert_allclose(loss.force(z), -grad, atol=1e-8)
    hess = _dense_hessian(loss.hessian(z))
    np.testing.assert_allclose(hess, jac, atol=1e-8)
    np.testing.assert_allclose(hess, hess.transpose(0, 2, 1), atol=1e-14)
    # The convexified Hessian is positive semidefinite and keeps diag(h) >= 0.
    conv = _dense_hessian(loss.hessian(z, convex=True))
    assert np.linalg.eigvalsh(conv).min() > -1e-14
    assert np.all(loss.hessian(z)[0] >= 0)
    # Forces live in the zero-sum subspace (the logits z = L f then have zero class mean).
    np.testing.assert_allclose(loss.force(z).sum(axis=1), 0.0, atol=1e-15)


@pytest.mark.parametrize("index", range(5))
def test_linearisation_point_is_z_equal_zero(index):
    loss = _losses(np.random.default_rng(10 + index))[index]
    zero = np.zeros((7, K))
    np.testing.assert_allclose(loss.force0(), loss.force(zero), atol=1e-15)
    np.testing.assert_allclose(
        _dense_hessian(loss.hessian0()), _dense_hessian(loss.hessian(zero)), atol=1e-15
    )


def test_gce_tends_to_candidate_loss_and_ce_on_two_hot_differs():
    rng = np.random.default_rng(4)
    cand = np.array([[0, 1], [2, 4], [3, 1]])
    z = rng.normal(size=(3, K))
    small_q = GeneralisedCE(cand, K, q=1e-7)
    np.testing.assert_allclose(small_q.force(z), Candidate(cand, K).force(z), rtol=1e-5)
    # The candidate loss only sees p_a + p_b, two-hot CE also the split between a and b.
    two_hot = np.zeros((3, K))
    two_hot[np.arange(3)[:, None], cand] = 0.5
    ce = CrossEntropy(two_hot - 1.0 / K)
    assert not np.allclose(ce.force(z), Candidate(cand, K).force(z))


def test_softmax_deviation_keeps_relative_accuracy():
    mpmath.mp.dps = 50
    rng = np.random.default_rng(5)
    for scale in (1e-30, 1e-12, 1e-3, 1.0, 30.0):
        z = scale * rng.normal(size=(4, K))
        got = softmax_deviation(z)
        for i in range(4):
            e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[i]]
            tot = sum(e)
            ref = np.array([float(v / tot - mpmath.mpf(1) / K) for v in e])
            # Relative to the row's own spread of deviations (what the decisions use).
            spread = np.ptp(ref)
            assert np.max(np.abs(got[i] - ref)) <= 1e-13 * spread, (scale, i)
    np.testing.assert_allclose(softmax(z), softmax_deviation(z) + 1.0 / K, atol=1e-15)


def test_make_loss_and_validation():
    cand = np.array([[0, 1]])
    assert make_loss("candidate", K, candidates=cand).name == "candidate"
    assert make_loss("gce", K, candidates=cand, q=0.3).q == 0.3
    assert make_loss("ce", K, target_deviation=np.zeros((1, K))).convex
    assert set(LOSSES) == {"ce", "candidate", "gce"}
    with pytest.raises(ValueError, match="q"):
        GeneralisedCE(cand, K, q=0.0)
    with pytest.raises(ValueError, match="q"):
        GeneralisedCE(cand, K, q=1.5)
    with pytest.raises(ValueError, match="differ"):
        Candidate(np.array([[1, 1]]), K)
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        Candidate(np.array([[0, 5]]), K)
    with pytest.raises(ValueError, match="loss must be one of"):
        make_loss("mae", K, candidates=cand)
    with pytest.raises(ValueError, match="target_deviation"):
        make_loss("ce", K)
