"""Symbolic block-model eigen-analysis vs numeric eigendecompositions and predictions."""

import numpy as np
import pytest
import sympy as sp

from theory import block_symbolic as bs
from theory.averaging import eigen_weights
from theory.conditions import eigen_ratio_rho, min_rounds_closed_form
from theory.gram import block_gram, check_block_params
from theory.groups import BlockModel, predict_linear

PARAMS = [
    (2, 3, 0.5, 0.1),
    (3, 4, 0.7, -0.2),
    (4, 2, 0.2, 0.2),
    (5, 3, 1.0, 0.3),
    (3, 5, -0.1, 0.0),
]


@pytest.mark.slow
@pytest.mark.parametrize("k, n, c, d", PARAMS)
def test_symbolic_vs_numeric_eigen(k, n, c, d):
    f = bs.numeric()
    mus = np.array(f["eigenvalues"](k, n, c, d), dtype=float)
    mult = np.array(f["multiplicities"](k, n), dtype=int)
    gram = block_gram(k, n, c, d)
    expected = np.sort(np.repeat(mus, mult))
    # eigvalsh of an O(1)-entry N x N matrix: backward error ~ N eps.
    np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(gram)), expected, atol=1e-12)
    # Eigenvector families: ones, a class contrast, a within-class contrast.
    big_n = k * n
    ones = np.ones(big_n)
    contrast = np.zeros(big_n)
    contrast[:n], contrast[n : 2 * n] = 1.0, -1.0
    vecs = [ones, contrast]
    if n >= 2:
        within = np.zeros(big_n)
        within[0], within[1] = 1.0, -1.0
        vecs.append(within)
    for v, mu in zip(vecs, mus[: len(vecs)], strict=True):
        np.testing.assert_allclose(gram @ v, mu * v, atol=1e-12)


def test_symbolic_eigenvalues_vs_sympy_matrix():
    # Exact symbolic check on an explicit 6 x 6 block matrix with symbolic c, d.
    c, d = bs.SYMBOLS["c"], bs.SYMBOLS["d"]
    k, n = 3, 2
    g = sp.Matrix(k * n, k * n, lambda i, j: 1 if i == j else (c if i // n == j // n else d))
    got = {sp.expand(e): m for e, m in g.eigenvals().items()}
    subs = {bs.SYMBOLS["K"]: k, bs.SYMBOLS["n"]: n}
    want = {
        sp.expand(e["eigenvalue"].subs(subs)): int(e["multiplicity"].subs(subs))
        for e in bs.eigen_system()
    }
    assert got == want


def test_psd_region_vs_check_block_params():
    f = bs.numeric()
    for k, n in [(2, 1), (3, 4), (6, 2)]:
        d_min, d_max = f["d_range"](k, n, 0.3)
        assert d_min < d_max
        # Grids offset by irrational amounts so that no point lies on a boundary mu_j = 0, where
        # the sign would be decided by round-off.
        for c in np.linspace(-0.5, 1.2, 18) + np.sqrt(2) * 1e-3:
            for d in np.linspace(-1.0, 1.2, 23) + np.sqrt(3) * 1e-3:
                try:
                    check_block_params(k, n, c, d)
                    ok = True
                except ValueError:
                    ok = False
                assert bool(f["psd"](k, n, c, d)) == ok, (k, n, c, d)


@pytest.mark.parametrize("k, n, c, d", PARAMS[:4])
def test_symbolic_weights_vs_eigen_weights(k, n, c, d):
    f = bs.numeric()
    lam, rounds = 0.03, 4
    mus = np.array(f["eigenvalues"](k, n, c, d), dtype=float)
    ref = eigen_weights(mus, k, lam, k * n, rounds)
    got = np.array([f["weights"](k, n, c, d, lam, t) for t in range(rounds + 1)], dtype=float)
    np.testing.assert_allclose(got, ref, rtol=1e-13)


@pytest.mark.parametrize("k, n, c, d", PARAMS[:4])
def test_decomposition_vs_linear_groups(k, n, c, d):
    f = bs.numeric()
    lam, rounds = 0.02, 3
    counts = np.full((k, k), 0)
    counts[:, 0] += n // 2
    counts[np.arange(k), np.arange(k)] += n - n // 2
    pred = predict_linear(BlockModel(k, n, c, d), counts, lam, rounds)
    h_class = counts / n
    h = counts.sum(axis=0) / (k * n)
    for t in range(rounds + 1):
        own, cls, glob, uni = (float(v) for v in f["decomposition"](k, n, c, d, lam, t))
        assert own + cls + glob + uni == pytest.approx(1.0)
        for kk in range(k):
            for ll in range(k):
                if counts[kk, ll] == 0:
                    continue
                p = own * np.eye(k)[ll] + cls * h_class[kk] + glob * h + uni / k
                np.testing.assert_allclose(pred.outputs[t, kk, ll], p, atol=1e-14)


def test_symbolic_rho_and_min_round_vs_conditions():
    f = bs.numeric()
    k, n, c, d = 3, 6, 0.5, 0.1
    counts = np.array([[4, 1, 1], [1, 4, 1], [1, 1, 4]])  # balanced, margin 1/2
    model = BlockModel(k, n, c, d)
    for lam in (0.3, 0.01, 1e-3):
        assert float(f["rho"](k, n, c, d, lam)) == pytest.approx(eigen_ratio_rho(model, lam))
        assert int(f["min_round"](k, n, c, d, lam, 0.5)) == min_rounds_closed_form(
            model, counts, lam
        )
