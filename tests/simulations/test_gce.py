"""Tests of the reference GCE PLL student (tests/simulations/reference_gce.py)."""

from __future__ import annotations

import numpy as np
import pytest

from simulations.distill import self_distill, train_pll
from tests.simulations.reference_gce import gce_objective, predict_proba, train_pll_gce
from theory.partial_labels import top2_indices


def _problem(seed=0, n=120, p=8, k=4):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) / np.sqrt(p)
    w = 0.5 * rng.standard_normal((k, p))
    cand = np.stack([rng.integers(0, k, n), rng.integers(0, k, n)])
    return x, w, cand


@pytest.mark.parametrize("q", [0.7, 1.0, 0.2])
def test_gce_gradient_vs_finite_differences(q):
    x, w, cand = _problem()
    lam = 0.03
    _, grad = gce_objective(w, x, cand, lam, q=q)
    h = 1e-6
    fd = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        e = np.zeros_like(w)
        e[idx] = h
        fd[idx] = (
            gce_objective(w + e, x, cand, lam, q=q)[0] - gce_objective(w - e, x, cand, lam, q=q)[0]
        ) / (2 * h)
    # Central differences: truncation O(h^2 |J'''|) ~ 1e-12 and cancellation ~ eps |J| / h ~ 1e-10.
    np.testing.assert_allclose(grad, fd, atol=1e-8, rtol=0)


def test_gce_objective_vs_direct_formula():
    x, w, cand = _problem(seed=1)
    lam, q = 0.05, 0.7
    z = w @ x.T
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    cols = np.arange(x.shape[0])
    loss = 0.5 * ((1 - p[cand[0], cols] ** q) / q + (1 - p[cand[1], cols] ** q) / q)
    expected = loss.mean() + 0.5 * lam * np.sum(w * w)
    obj, _ = gce_objective(w, x, cand, lam, q=q)
    assert obj == pytest.approx(expected, rel=1e-13)


def test_train_pll_gce_reaches_stationary_point_and_decreases():
    x, w, cand = _problem(seed=2)
    res = train_pll_gce(x, cand, 0.01, init_weights=w)
    assert res.report.converged, res.report
    assert res.report.objective <= res.report.initial_objective
    _, grad = gce_objective(res.weights, x, cand, 0.01)
    assert np.max(np.abs(grad)) <= res.report.tol
    assert res.weights.shape == w.shape


def test_gce_small_q_vs_two_hot_cross_entropy_solver():
    """q -> 0: GCE with weight 1/2 per candidate becomes CE on the two-hot target.

    (1 - p^q)/q = -log p - q (log p)^2 / 2 + O(q^2), so the GCE optimum is W_CE + q V + O(q^2)
    (implicit function theorem; the CE objective is strongly convex). Hence the distance to the
    exact CE PLL student must shrink linearly: err(q/10) ~ err(q)/10. We allow a ratio up to 0.15
    (the O(q^2) term at q = 1e-3 is ~1e-3 relative) and require err(1e-4) to be tiny in absolute
    terms.

    Solver tolerance: the weights err by at most ``sqrt(K p) tol / lam`` (strong convexity ~lam
    at q -> 0), 4.2e-6 for tol = 5e-8, which moves the ratio (err(1e-4) ~ 2e-5 against
    err(1e-3) ~ 2e-4) by at most ~0.02. A tighter tol is below what L-BFGS-B's line search can
    resolve here (``reference_gce.train_pll_gce``: ~sqrt(eps |J| lam) ~ 3e-9 at best; on some
    machines' BLAS it stopped at 1.4e-8 with 'ABNORMAL').
    """
    x, _, _ = _problem(seed=3, n=90, p=6, k=3)
    labels = np.random.default_rng(3).integers(0, 3, x.shape[0])
    lam = 0.05
    teacher = self_distill(labels, 3, lam, 0, features=x).solutions[0]
    pll = train_pll(teacher, lam)
    cand = top2_indices(teacher.outputs)
    errs = []
    for q in (1e-3, 1e-4):
        res = train_pll_gce(x, cand, lam, init_weights=teacher.weights, q=q, tol=5e-8)
        assert res.report.converged, res.report
        errs.append(np.max(np.abs(res.weights - pll.weights)))
    assert errs[1] <= 0.15 * errs[0]
    assert errs[1] <= 1e-4 * np.max(np.abs(pll.weights))
    np.testing.assert_allclose(predict_proba(res.weights, x), pll.outputs, atol=1e-4)


def test_gce_zero_init_requires_n_classes_and_validates():
    x, w, cand = _problem()
    with pytest.raises(ValueError, match="n_classes"):
        train_pll_gce(x, cand, 0.1)
    res = train_pll_gce(x, cand, 0.1, n_classes=4)
    assert res.weights.shape == (4, x.shape[1])
    with pytest.raises(ValueError, match="q"):
        train_pll_gce(x, cand, 0.1, init_weights=w, q=1.5)
    with pytest.raises(ValueError, match="lam"):
        train_pll_gce(x, cand, 0.0, init_weights=w)
    with pytest.raises(ValueError, match="candidates"):
        train_pll_gce(x, cand[:, :-1], 0.1, init_weights=w)
    bad = cand.copy()
    bad[0, 0] = 4
    with pytest.raises(ValueError, match="candidates"):
        train_pll_gce(x, bad, 0.1, init_weights=w)
    with pytest.raises(ValueError, match="init_weights"):
        train_pll_gce(x, cand, 0.1, init_weights=w[:, :-1])


def test_gce_reports_non_convergence_honestly():
    x, w, cand = _problem(seed=4)
    res = train_pll_gce(x, cand, 1e-3, init_weights=w, max_iter=1, tol=1e-12)
    assert not res.report.converged
    assert res.report.gradient_norm > 1e-12
