"""Structured group-level Newton engine vs dense linear algebra on small problems."""

import numpy as np
import pytest

from theory.group_engine import (
    GroupCoupling,
    NewtonSystem,
    StructuredInverse,
    apply_newton,
    force_to_logits_inverse,
    newton_inertia,
    structured_step,
)
from theory.groups import BlockModel
from theory.losses import Candidate, CrossEntropy, GeneralisedCE

# (K, n, c, d, lam, counts): empty groups, d < 0, c = 1, and a generic case.
CASES = [
    (3, 6, 0.5, 0.1, 0.05, [[4, 1, 1], [2, 3, 1], [0, 2, 4]]),
    (4, 5, 0.3, 0.25, 0.2, [[3, 1, 1, 0], [0, 5, 0, 0], [1, 1, 2, 1], [2, 0, 0, 3]]),
    (3, 4, 0.6, -0.1, 0.003, [[2, 1, 1], [0, 4, 0], [1, 0, 3]]),
    (3, 5, 1.0, 0.2, 0.02, [[3, 2, 0], [1, 4, 0], [0, 1, 4]]),
]


def _dense_l(coupling):
    """Dense (G K) x (G K) matrix of L, built entry by entry from its definition."""
    g, k = coupling.n_groups, coupling.k
    mat = np.zeros((g, g))
    for i in range(g):
        for j in range(g):
            same = coupling.kk[i] == coupling.kk[j]
            mat[i, j] = (
                coupling.a * (i == j) + (coupling.g_class * same + coupling.g_all) * coupling.w[j]
            )
    return np.kron(mat, np.eye(k))


def _dense_h(hess):
    h, u, w = hess
    blocks = [np.diag(h[i]) + (u[:, i].T * w[:, i]) @ u[:, i] for i in range(h.shape[0])]
    size = sum(b.shape[0] for b in blocks)
    out = np.zeros((size, size))
    pos = 0
    for b in blocks:
        out[pos : pos + b.shape[0], pos : pos + b.shape[0]] = b
        pos += b.shape[0]
    return out


def _losses(coupling, rng):
    k, g = coupling.k, coupling.n_groups
    cand = np.array([rng.choice(k, size=2, replace=False) for _ in range(g)])
    t = rng.dirichlet(np.ones(k), size=g)
    return [CrossEntropy(t - 1.0 / k), Candidate(cand, k), GeneralisedCE(cand, k, 0.7)]


@pytest.mark.parametrize("case", CASES)
def test_structured_step_vs_dense_solve(case):
    k, n, c, d, lam, counts = case
    coupling = GroupCoupling(BlockModel(k, n, c, d), np.array(counts), lam)
    rng = np.random.default_rng(0)
    dense_l = _dense_l(coupling)
    for loss in _losses(coupling, rng):
        for convex in (False, True):
            z = rng.normal(scale=1.5, size=(coupling.n_groups, k))
            hess = loss.hessian(z, convex=convex)
            rhs = rng.normal(size=z.shape)
            mat = np.eye(rhs.size) + dense_l @ _dense_h(hess)
            ref = np.linalg.solve(mat, rhs.ravel()).reshape(rhs.shape)
            got = structured_step(coupling, hess, rhs)
            if got is None:  # allowed only for a (nearly) singular non-convex Newton matrix
                assert not convex and loss.name != "ce"
                assert np.linalg.cond(mat) > 1e6
                continue
            # Backward-stable solves: error <= cond * eps * |rhs| with a generous factor.
            tol = 1e-12 * np.linalg.cond(mat) * np.abs(ref).max()
            np.testing.assert_allclose(got, ref, atol=max(tol, 1e-12))
            np.testing.assert_allclose(
                apply_newton(coupling, hess, got), rhs, atol=1e-9 * np.abs(rhs).max()
            )


@pytest.mark.parametrize("case", CASES)
def test_preconditioned_krylov_reuses_a_stale_inverse(case):
    k, n, c, d, lam, counts = case
    coupling = GroupCoupling(BlockModel(k, n, c, d), np.array(counts), lam)
    rng = np.random.default_rng(1)
    loss = _losses(coupling, rng)[0]
    z = rng.normal(size=(coupling.n_groups, k))
    system = NewtonSystem(coupling)
    system.direct = False  # small problems rebuild at every step; test the Krylov path itself
    rhs = rng.normal(size=z.shape)
    system.solve(loss.hessian(z), rhs, rtol=1e-12)
    assert system.builds == 1
    # A nearby Hessian: GMRES preconditioned by the old inverse, no rebuild.
    z2 = z + 1e-3 * rng.normal(size=z.shape)
    x = system.solve(loss.hessian(z2), rhs, rtol=1e-10)
    assert system.builds == 1
    resid = apply_newton(coupling, loss.hessian(z2), x) - rhs
    assert np.linalg.norm(resid) <= 1e-10 * np.linalg.norm(rhs)


@pytest.mark.parametrize("case", CASES)
def test_newton_inertia_vs_dense_eigenvalues(case):
    k, n, c, d, lam, counts = case
    model = BlockModel(k, n, c, d)
    coupling = GroupCoupling(model, np.array(counts), lam * 0.01)  # small lam: curvature matters
    rng = np.random.default_rng(2)
    dense_l = _dense_l(coupling)
    seen_negative = False
    for loss in _losses(coupling, rng)[1:]:
        for scale in (0.0, 0.5, 3.0):
            z = rng.normal(scale=scale, size=(coupling.n_groups, k))
            hess = loss.hessian(z)
            got = newton_inertia(coupling, hess)
            mat = np.eye(coupling.n_groups * k) + dense_l @ _dense_h(hess)
            eig = np.linalg.eigvals(mat)
            # I + L H is similar to a symmetric matrix: real spectrum.
            assert np.abs(eig.imag).max() <= 1e-8 * np.abs(eig).max()
            if np.abs(eig.real).min() < 1e-9 * np.abs(eig).max():
                continue  # (nearly) singular: the sign count is not well defined
            neg = int(np.sum(eig.real < 0))
            blocks = np.eye(k)[None] + coupling.a * np.stack(
                [
                    np.diag(hess[0][i]) + (hess[1][:, i].T * hess[2][:, i]) @ hess[1][:, i]
                    for i in range(coupling.n_groups)
                ]
            )
            within = int(np.sum((coupling.w >= 2) & (np.linalg.eigvalsh(blocks).min(axis=1) < 0)))
            assert got == (neg, within), (loss.name, scale)
            seen_negative |= neg > 0
    if c < 1:
        assert seen_negative  # the check is not vacuous: some Newton matrices are indefinite


def test_convex_newton_matrix_has_no_negative_eigenvalue():
    k, n, c, d, lam, counts = CASES[0]
    coupling = GroupCoupling(BlockModel(k, n, c, d), np.array(counts), lam)
    rng = np.random.default_rng(3)
    loss = _losses(coupling, rng)[0]
    z = rng.normal(size=(coupling.n_groups, k))
    assert newton_inertia(coupling, loss.hessian(z)) == (0, 0)
    assert newton_inertia(coupling, _losses(coupling, rng)[1].hessian(z, convex=True)) == (0, 0)


@pytest.mark.parametrize("case", CASES[:3])
def test_force_to_logits_inverse(case):
    k, n, c, d, lam, counts = case
    coupling = GroupCoupling(BlockModel(k, n, c, d), np.array(counts), lam)
    rng = np.random.default_rng(4)
    r = rng.normal(size=(coupling.n_groups, k))
    np.testing.assert_allclose(force_to_logits_inverse(coupling, coupling.apply(r)), r, atol=1e-10)


def test_structured_inverse_memory_is_cubic():
    # K^3 = 8000 group entries: the inverse stores O(r K^3), never a K^2 x K^2 matrix.
    k = 20
    counts = np.full((k, k), 1)
    coupling = GroupCoupling(BlockModel(k, k, 0.4, 0.1), counts, 1e-3)
    loss = CrossEntropy(np.zeros((coupling.n_groups, k)))
    inv = StructuredInverse(coupling, loss.hessian(np.zeros((coupling.n_groups, k))))
    stored = (
        sum(getattr(inv.fac, f).size for f in ("h", "u", "wts", "delta", "ut", "minv", "mw"))
        + inv.einv.size
        + inv.q.size
        + inv.vinv.size
    )
    assert stored <= 10 * k**3
