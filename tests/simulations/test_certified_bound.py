"""The lower-bound model of ``benchmarks.certified_bound`` (issue 11): its Hessian and CG count."""

from __future__ import annotations

import re

import numpy as np
import pytest

from benchmarks import certified_bound as cb
from benchmarks.solver_large_k import gradient


def _fd_problem(seed):
    """Rows of norms 0.5-3, one-hot targets, a unit class-mean-free direction ``S`` (p, K)."""
    rng = np.random.default_rng(seed)
    n, p, k, lam = 60, 7, 5, 0.05
    x = rng.standard_normal((n, p))
    x /= np.linalg.norm(x, axis=1, keepdims=True) / rng.uniform(0.5, 3.0, (n, 1))
    targets = np.eye(k)[rng.integers(0, k, n)]
    s = rng.standard_normal((p, k))
    s -= s.mean(axis=1, keepdims=True)
    s /= np.linalg.norm(s)
    return x, targets, s, lam


def test_linearised_hessian_vs_finite_difference_of_gradient():
    """``H0 S`` is the objective's Hessian at ``W = 0`` on class-mean-free ``S``.

    Central differences of the exact gradient err by ``eps^2 / 6`` times its third derivative
    (O(1) here: rows have norm <= 3 and ``|S| = 1``) plus ~1e-16 / eps of round-off; with
    eps = 1e-4 both are below 1e-8, far inside the 1e-6 relative tolerance.
    """
    x, targets, s, lam = _fd_problem(3)
    eps = 1e-4
    fd = (
        gradient((eps * s).T, x, targets.T, lam).T - gradient((-eps * s).T, x, targets.T, lam).T
    ) / (2 * eps)
    got = cb.linearised_hessian(x, s, lam)
    assert np.linalg.norm(got - fd) <= 1e-6 * np.linalg.norm(fd), (got, fd)


def test_optimum_hessian_vs_finite_difference_of_gradient():
    """``optimum_hessian`` at the outputs of ``W`` is the objective's Hessian there (central
    differences as above: third derivative O(1), eps = 1e-4), and at uniform outputs it is the
    linearised Hessian on class-mean-free directions."""
    x, targets, s, lam = _fd_problem(6)
    n, p, k = x.shape[0], x.shape[1], targets.shape[1]
    coef = np.random.default_rng(7).standard_normal((p, k))
    z = x @ coef
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    eps = 1e-4
    fd = (
        gradient((coef + eps * s).T, x, targets.T, lam).T
        - gradient((coef - eps * s).T, x, targets.T, lam).T
    ) / (2 * eps)
    got = cb.optimum_hessian(x, probs, s, lam)
    assert np.linalg.norm(got - fd) <= 1e-6 * np.linalg.norm(fd), (got, fd)
    uniform = np.full((n, k), 1.0 / k)
    want = cb.linearised_hessian(x, s, lam)
    assert np.linalg.norm(cb.optimum_hessian(x, uniform, s, lam) - want) <= 1e-13 * np.linalg.norm(
        want
    )


@pytest.mark.parametrize("jacobi", [False, True])
def test_cg_pairs_vs_direct_solve(jacobi):
    """CG's answer solves ``(X^T X / (K N) + lam I) S = rhs`` column by column, to its rtol.

    Its residual is below ``rtol |rhs|`` after the returned count, which is at most about p
    (CG's exact-arithmetic limit; CG's residual is not monotone, so nothing sharper is asserted).
    The error then obeys ``|S - S*| <= |A^{-1}| rtol |rhs|``.
    """
    rng = np.random.default_rng(4)
    n, p, k, lam = 200, 12, 4, 1e-3
    x = rng.standard_normal((n, p)) * np.linspace(0.2, 3.0, p)
    rhs = rng.standard_normal((p, k))
    rhs -= rhs.mean(axis=1, keepdims=True)
    rtol = 1e-10
    precond = np.einsum("ij,ij->j", x, x) / (k * n) + lam if jacobi else None
    m, sol = cb.cg_pairs(x, rhs, lam, rtol, precond)
    a = x.T @ x / (k * n) + lam * np.eye(p)
    exact = np.linalg.solve(a, rhs)
    assert 1 <= m <= p + 2  # +2: round-off can delay the last reductions slightly
    assert np.linalg.norm(rhs - a @ sol) <= rtol * np.linalg.norm(rhs) * (1 + 1e-6)
    bound = rtol * np.linalg.norm(rhs) / np.linalg.eigvalsh(a)[0]
    assert np.linalg.norm(sol - exact) <= 1.01 * bound + 1e-14 * np.linalg.norm(exact)


def test_cg_pairs_reports_failure():
    x = np.random.default_rng(5).standard_normal((50, 6))
    rhs = np.ones((6, 3)) - np.eye(6, 3)
    with pytest.raises(RuntimeError, match="did not reach"):
        cb.cg_pairs(x, rhs, 1e-3, 1e-30, max_pairs=2)


@pytest.mark.slow
def test_certified_bound_quick_smoke(capsys):
    """``python -m benchmarks.certified_bound --quick`` prints a bound and our certified time."""
    assert cb.main(["--quick", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "lower bound" in out and "ours (certified, direct)" in out
    assert "ours / lower bound" in out and "alone cost" in out
    assert "at the optimum CG needs" in out
    verdict = r"that model is [0-9.]+x the lower bound: .* CG count (can|cannot) reach 1\.5x"
    assert re.search(verdict, out)
    assert cb.main(["--quick", "--repeat", "1", "--cpu", "--sizes", "2000x128"]) == 0
    out = capsys.readouterr().out
    assert "CPU seconds with one thread" in out and "ours / lower bound" in out
    for bad in (
        ["--repeat", "0"],
        ["--quick", "--lams", "-1"],
        ["--sizes", "10x5"],  # not a preset cell
        ["--quick", "--sizes", "10000x512"],  # a full cell with --quick
        ["--sizes", "10000by512"],
    ):
        with pytest.raises(SystemExit) as info:
            cb.main(bad)
        assert info.value.code == 2
