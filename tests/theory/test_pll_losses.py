"""Candidate-set PLL students (ce / candidate / gce): group engine vs independent N x N solves."""

import numpy as np
import pytest
from scipy.optimize import minimize

from simulations.features import exact_block_features
from simulations.solver import solve_probe
from theory.groups import BlockModel, predict_exact
from theory.noise import exact_counts, transition_matrix
from theory.partial_labels import top2_indices
from theory.pll import LinearisationUndefinedError, predict_pll

ASYM4 = exact_counts(transition_matrix("asym", 4, 0.4), 10)
SYM3 = exact_counts(transition_matrix("sym", 3, 0.5), 6)  # rows like [3, 2, 1]


def _expand(counts):
    cnt = np.asarray(counts)
    given = np.concatenate([np.repeat(np.arange(len(cnt)), row) for row in cnt])
    true = np.repeat(np.arange(len(cnt)), cnt.sum(axis=1))
    return true, given


def _loss_and_grad(name, z, cand, q):
    """Per-sample loss (N,) and its gradient in the logits (N, K), written from scratch."""
    zmax = z.max(axis=1, keepdims=True)
    e = np.exp(z - zmax)
    p = e / e.sum(axis=1, keepdims=True)
    rows = np.arange(z.shape[0])
    mask = np.zeros_like(z)
    mask[rows, cand[:, 0]] = 1.0
    mask[rows, cand[:, 1]] = 1.0
    if name == "ce":
        t = 0.5 * mask
        logp = z - zmax - np.log(e.sum(axis=1, keepdims=True))
        return -(t * logp).sum(axis=1), p - t
    pi = (p * mask).sum(axis=1)
    pt = p * mask / pi[:, None]  # softmax restricted to the candidates
    if name == "candidate":
        return -np.log(pi), p - pt
    return (1.0 - pi**q) / q, -(pi**q)[:, None] * (pt - p)


def _reference_student(name, x, cand, lam, w0, q=0.7):
    """argmin (1/N) sum_i l(W x_i) + lam/2 |W|^2 by L-BFGS from w0 (the teacher's weights)."""
    n = x.shape[0]
    shape = w0.shape

    def fun(wflat):
        w = wflat.reshape(shape)
        val, grad_z = _loss_and_grad(name, x @ w.T, cand, q)
        f = val.mean() + 0.5 * lam * np.sum(w * w)
        return f, (grad_z.T @ x / n + lam * w).ravel()

    res = minimize(
        fun,
        w0.ravel(),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 50000, "maxcor": 50, "gtol": 1e-13, "ftol": 0.0},
    )
    w = res.x.reshape(shape)
    grad = fun(res.x)[1]
    return w, float(np.abs(grad).max())


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["ce", "candidate", "gce"])
@pytest.mark.parametrize("counts, c, d, lam", [(ASYM4, 0.4, 0.1, 0.01), (SYM3, 0.5, 0.0, 0.03)])
def test_exact_student_vs_nxn_optimisation(loss, counts, c, d, lam):
    k, n = counts.shape[0], int(counts[0].sum())
    model = BlockModel(k, n, c, d)
    pred = predict_pll(model, counts, lam, method="exact", loss=loss)
    assert pred.candidate_ties == 0 and pred.converged[0]
    true, given = _expand(counts)
    x = exact_block_features(k, n, c, d)
    teacher = solve_probe(np.eye(k)[:, given], lam, features=x, tol=1e-12)
    cand = top2_indices(teacher.outputs).T
    w, grad = _reference_student(loss, x, cand, lam, teacher.weights)
    # Strong convexity (ce) or a local minimum with Hessian >= ~lam (checked below): the outputs
    # are within ~|grad| / lam of the stationary point; L-BFGS reaches |grad| ~ 1e-11.
    assert grad < 1e-9
    ref = _softmax(x @ w.T)
    np.testing.assert_allclose(pred.outputs[0][true, given], ref, atol=1e-6)
    # Population points: fresh exact-block points [mu_k, 0] (kernel rows c / d).
    fresh = np.zeros((k, x.shape[1]))
    fresh[:, :k] = x[np.arange(k) * n, :k]
    np.testing.assert_allclose(pred.population_outputs[0], _softmax(fresh @ w.T), atol=1e-6)
    if loss != "ce":
        # Second-order certificate of the engine vs the reference's dense Hessian (finite
        # differences of the gradient): both say "strict local minimum".
        assert pred.second_order == (0, 0)
        hess = _fd_hessian(loss, x, cand, lam, w)
        assert np.linalg.eigvalsh(hess).min() > 0.5 * lam


def _fd_hessian(name, x, cand, lam, w, q=0.7, step=1e-5):
    n, shape = x.shape[0], w.shape

    def grad(wflat):
        ww = wflat.reshape(shape)
        _, gz = _loss_and_grad(name, x @ ww.T, cand, q)
        return (gz.T @ x / n + lam * ww).ravel()

    base = w.ravel()
    cols = []
    for i in range(base.size):
        e = np.zeros_like(base)
        e[i] = step
        cols.append((grad(base + e) - grad(base - e)) / (2 * step))
    hess = np.array(cols)
    return 0.5 * (hess + hess.T)


@pytest.mark.parametrize("loss", ["candidate", "gce"])
def test_linearised_student_vs_exact_at_large_lam(loss):
    # Logits are O(1/lam); the linearisation error of the force is quadratic in them, so the
    # exact-minus-linear output gap must fall by ~4 when lam doubles (K >= 3).
    model = BlockModel(4, 10, 0.4, 0.1)
    errs = []
    for lam in (2.0, 4.0, 8.0):
        lin = predict_pll(model, ASYM4, lam, method="linear", loss=loss)
        ex = predict_pll(model, ASYM4, lam, method="exact", loss=loss)
        errs.append(np.nanmax(np.abs(lin.deviations - ex.deviations)))
        assert np.nanmax(np.abs(ex.deviations)) > 10 * errs[-1]  # the comparison is not vacuous
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 3.0) & (ratios < 5.0)), ratios


def test_linearised_candidate_student_undefined_at_small_lam():
    # H(0) of the candidate loss has curvature 1/K - 1/2 < 0 along e_a - e_b: once L is large
    # the quadratic model has no minimiser and the linearised student is refused.
    model = BlockModel(4, 10, 0.4, 0.1)
    with pytest.raises(LinearisationUndefinedError, match="negative eigenvalue"):
        predict_pll(model, ASYM4, 1e-3, method="linear", loss="candidate")
    assert predict_pll(model, ASYM4, 10.0, method="linear", loss="candidate").train_acc.shape == (
        1,
    )


def test_ce_loss_is_the_two_hot_student_and_teacher_reuse():
    model = BlockModel(4, 10, 0.4, 0.1)
    lam = 0.01
    default = predict_pll(model, ASYM4, lam, method="exact")
    explicit = predict_pll(model, ASYM4, lam, method="exact", loss="ce")
    np.testing.assert_array_equal(default.deviations, explicit.deviations)
    teacher = predict_exact(model, ASYM4, lam, 0).teacher
    shared = predict_pll(model, ASYM4, lam, method="exact", loss="gce", teacher=teacher)
    alone = predict_pll(model, ASYM4, lam, method="exact", loss="gce")
    np.testing.assert_allclose(shared.deviations, alone.deviations, atol=1e-12, equal_nan=True)
    assert default.loss == "ce" and shared.loss == "gce" and default.second_order is None


def test_invalid_loss_and_q():
    model = BlockModel(4, 10, 0.4, 0.1)
    with pytest.raises(ValueError, match="loss must be one of"):
        predict_pll(model, ASYM4, 0.01, loss="mae")
    with pytest.raises(ValueError, match="q"):
        predict_pll(model, ASYM4, 0.01, loss="gce", q=0.0)
