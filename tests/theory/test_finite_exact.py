"""Exact finite-ratio theory (theory/finite_exact): its pieces against exact computations.

The comparison of whole predictions with exact self-distillation (certified solver, Monte Carlo)
lives in ``tests/simulations/test_finite_exact_vs_simulation.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from tests.tolerances import assert_close
from theory.finite import MixtureModel
from theory.finite_exact import exact_resource_estimate, predict_finite_exact
from theory.finite_exact.integrate import cross_derivatives
from theory.finite_exact.prox import ce_prox, softmax
from theory.finite_exact.quadrature import gauss_points
from theory.finite_exact.state import STATE_TOL, zero_sum_basis
from theory.finite_exact.symmetry import class_symmetry
from theory.groups import BlockModel, predict_exact
from theory.lattice import kronecker_generator
from theory.noise import exact_counts, transition_matrix


def _spd(k, scale, seed):
    # Deterministic SPD test matrices (no RNG in theory tests' inputs is required; numpy's
    # Generator is fine in tests).
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(k, k))
    return scale * (a @ a.T / k + 0.5 * np.eye(k))


def test_gauss_points_have_exact_first_and_second_moments():
    """Antithetic pairs give mean 0; the Cholesky whitening gives second moment I (round-off)."""
    pts = gauss_points(12, 64, 8)
    assert pts.size == 2 * 64 * 8
    assert_close(pts.xi.mean(axis=0), np.zeros(12), atol=1e-14, what="mean")
    assert_close(pts.xi.T @ pts.xi / pts.size, np.eye(12), atol=1e-12, what="second moment")
    assert set(np.unique(pts.shift_of)) == set(range(8))


def test_gauss_points_are_nested():
    """Round t's coordinates never change when later rounds are added (lower-triangular
    whitening of a generator whose first coordinates do not depend on the dimension)."""
    small = gauss_points(5, 32, 4)
    big = gauss_points(11, 32, 4)
    assert_close(big.xi[:, :5], small.xi, rtol=1e-12, atol=1e-12, what="nested points")


def test_kronecker_generator_salt_zero_is_the_orthant_family():
    """theory.orthant's shifts are the salt-0 family (its calibration tests still apply)."""
    from theory.orthant import N_SHIFTS, _kronecker_params

    a0, s0 = _kronecker_params(7)
    a1, s1 = kronecker_generator(7, N_SHIFTS, 0)
    assert np.array_equal(a0, a1) and np.array_equal(s0, s1)
    _, s2 = kronecker_generator(7, N_SHIFTS, 20)
    assert not np.allclose(s1, s2)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 3e3])
def test_ce_prox_vs_trust_region_minimiser(scale):
    """z + V softmax(z) = a: residual at the documented tolerance, and the minimiser of the
    strictly convex phi found independently (its unique stationary point)."""
    k = 5
    v = _spd(k, scale, 1)
    rng = np.random.default_rng(2)
    a = rng.normal(scale=3.0, size=(40, k)) + scale * rng.dirichlet(np.ones(k), size=40)
    z = ce_prox(a, v)
    res = z + softmax(z) @ v.T - a
    assert np.max(np.abs(res)) <= 1e-12 * (1 + np.abs(a).max()) * 10
    v_inv = np.linalg.inv(v)
    for i in range(0, 40, 7):
        # The minimiser of phi(z) = (z - a)^T V^{-1} (z - a)/2 + lse(z) by scipy's trust-region
        # Newton with exact derivatives (globally convergent on this strictly convex function).
        def phi(x, i=i):
            d = x - a[i]
            m = x.max()
            return 0.5 * d @ v_inv @ d + m + np.log(np.exp(x - m).sum())

        def grad(x, i=i):
            return v_inv @ (x - a[i]) + softmax(x[None])[0]

        def hess(x):
            s = softmax(x[None])[0]
            return v_inv + np.diag(s) - np.outer(s, s)

        opts = {"gtol": 1e-12}
        sol = minimize(phi, a[i], jac=grad, hess=hess, method="trust-exact", options=opts)
        assert_close(z[i], sol.x, atol=1e-6 * (1 + scale), rtol=0, what="prox minimiser")


def test_ce_prox_warm_start_gives_same_root():
    k = 4
    v = _spd(k, 10.0, 3)
    a = np.random.default_rng(4).normal(scale=5.0, size=(30, k))
    z = ce_prox(a, v)
    z2 = ce_prox(a, v, z0=z + 3.0)
    assert_close(z2, z, atol=1e-9, rtol=0, what="warm-started prox")


def test_cross_derivatives_vs_linear_map():
    """For psi_t = sum_r C_r h_r (linear), the score identity E[psi xi^T] = E[d psi/d h] L holds
    exactly on the moment-matched points, and the back-substitution returns every C_r."""
    k, t = 4, 2
    basis = zero_sum_basis(k)
    km = k - 1
    pts = gauss_points((t + 1) * km, 64, 4)
    rng = np.random.default_rng(5)
    a = rng.normal(size=((t + 1) * km, (t + 1) * km))
    chol = np.linalg.cholesky(a @ a.T + np.eye((t + 1) * km))
    h = pts.xi @ (np.kron(np.eye(t + 1), basis) @ chol).T  # (M, (t+1) K): zero-sum per round
    c_true = []
    for _ in range(t + 1):
        c = basis @ rng.normal(size=(km, km)) @ basis.T  # zero-sum on both sides
        c_true.append(c)
    psi = sum(h[:, r * k : (r + 1) * k] @ c_true[r].T for r in range(t + 1))
    score = psi.T @ pts.xi / pts.size
    got = cross_derivatives(t, c_true[t], score, chol, basis, k)
    for r in range(t):
        assert_close(got[r], c_true[r], atol=1e-10, rtol=0, what=f"d psi_t / d h_{r}")


def test_zero_sum_basis_is_orthonormal():
    e = zero_sum_basis(6)
    assert_close(e.T @ e, np.eye(5), atol=1e-14, what="E^T E")
    assert_close(np.ones(6) @ e, np.zeros(5), atol=1e-14, what="1^T E")


def test_cyclic_symmetry_detection():
    assert class_symmetry(exact_counts(transition_matrix("sym", 10, 0.5), 50)).kind == "cyclic"
    assert class_symmetry(exact_counts(transition_matrix("pair", 5, 0.3), 20)).kind == "cyclic"
    c = exact_counts(transition_matrix("sym", 4, 0.5), 20)
    c[0, 0] += 1
    c[0, 1] -= 1
    assert class_symmetry(c).kind == "none"
    assert class_symmetry(exact_counts(transition_matrix("sym", 4, 0.5), 20), allow=False).kind == (
        "none"
    )


@pytest.mark.parametrize("noise, eta", [("sym", 0.5), ("pair", 0.3), ("asym", 0.4)])
@pytest.mark.parametrize("lam", [1e-3, 0.1])
def test_block_limit_vs_predict_exact(noise, eta, lam):
    """p = inf: the state equations reduce to the block model's exact group fixed point (docs
    §16.4): outputs to 1e-10 (both solves are certified far below that), accuracies identical."""
    k, n = 4, 25
    counts = exact_counts(transition_matrix(noise, k, eta), n)
    ex = predict_exact(BlockModel(k, n, 0.4, 0.1), counts, lam, 4)
    fe = predict_finite_exact(MixtureModel(k, n, math.inf, 0.4, 0.1), counts, lam, 4)
    mask = counts > 0
    assert_close(
        fe.group_output_means[:, mask], ex.deviations[:, mask], atol=1e-10, rtol=0, what="outputs"
    )
    for key in ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc"):
        assert_close(getattr(fe, key), getattr(ex, key), atol=1e-12, rtol=0, what=key)


@pytest.mark.slow
def test_cyclic_reduction_vs_all_groups():
    """Integrating class 0's groups and rolling gives the same prediction as integrating every
    class (same point set per group): accuracies within the sum of both quadrature error
    estimates, order parameters within the quadrature's relative error (measured ~1e-3)."""
    k, n = 3, 30
    counts = exact_counts(transition_matrix("sym", k, 0.4), n)
    model = MixtureModel(k, n, 90, 0.4, 0.1)
    red = predict_finite_exact(model, counts, 1e-3, 2, points=32)
    full = predict_finite_exact(model, counts, 1e-3, 2, points=32, use_symmetry=False)
    assert red.symmetry == "cyclic" and full.symmetry == "none"
    tol = red.train_quadrature_err + full.train_quadrature_err + 1e-12
    assert np.all(np.abs(red.train_acc - full.train_acc) <= tol)
    assert np.all(np.abs(red.population_acc - full.population_acc) <= 0.01)
    assert np.max(np.abs(red.v - full.v)) <= 0.02 * np.max(np.abs(full.v))


def test_solution_is_a_fixed_point():
    """Converged rounds report residuals below the tolerance; V's diagonal blocks are symmetric,
    V is block lower triangular and the cavity covariance is PSD."""
    k, n, r = 3, 30, 2
    counts = exact_counts(transition_matrix("pair", k, 0.3), n)
    pred = predict_finite_exact(MixtureModel(k, n, 60, 0.4, 0.1), counts, 1e-3, r, points=32)
    assert pred.converged and np.all(pred.residuals <= STATE_TOL)
    for t in range(r + 1):
        assert_close(pred.v[t, t], pred.v[t, t].T, atol=1e-12 * np.abs(pred.v).max(), what="V_tt")
        for s in range(t + 1, r + 1):
            assert np.all(pred.v[t, s] == 0)
    assert np.linalg.eigvalsh(pred.q).min() >= -1e-10 * np.abs(pred.q).max()


@pytest.mark.slow
def test_more_points_change_little():
    """The quadrature converges: 4x more points moves the population accuracy by < 5e-3 and
    the training accuracy by less than the reported error estimates (measured ~1e-3)."""
    k, n = 4, 25
    counts = exact_counts(transition_matrix("sym", k, 0.5), n)
    model = MixtureModel(k, n, 100, 0.4, 0.1)
    coarse = predict_finite_exact(model, counts, 1e-3, 2, points=32)
    fine = predict_finite_exact(model, counts, 1e-3, 2, points=128)
    assert np.max(np.abs(coarse.population_acc - fine.population_acc)) <= 5e-3
    tol = coarse.train_quadrature_err + fine.train_quadrature_err
    assert np.all(np.abs(coarse.train_acc - fine.train_acc) <= tol)


def test_bad_input_is_refused_with_the_parameter_named():
    counts = exact_counts(transition_matrix("sym", 3, 0.3), 10)
    # p = K: refused where the model is built (theory.finite.MixtureModel, issue 21), so neither
    # finite-p theory ever receives it.
    with pytest.raises(ValueError, match=r"dim \(p\) must be > K = 3"):
        predict_finite_exact(MixtureModel(3, 10, 3, 0.4, 0.1), counts, 1e-3, 1)
    with pytest.raises(ValueError, match="lam"):
        predict_finite_exact(MixtureModel(3, 10, 30, 0.4, 0.1), counts, -1.0, 1)
    with pytest.raises(ValueError, match="rounds"):
        predict_finite_exact(MixtureModel(3, 10, 30, 0.4, 0.1), counts, 1e-3, -1)
    with pytest.raises(ValueError, match="counts"):
        predict_finite_exact(MixtureModel(3, 10, 30, 0.4, 0.1), counts[:2], 1e-3, 1)
    with pytest.raises(ValueError, match="c must be < 1"):
        predict_finite_exact(MixtureModel(3, 10, 30, 1.0, 0.1), counts, 1e-3, 1)


def test_resource_estimate_counts_integrated_groups():
    cyc = exact_counts(transition_matrix("sym", 10, 0.5), 20)
    est = exact_resource_estimate(MixtureModel(10, 20, 200, 0.4, 0.1), cyc, 4)
    assert est["symmetry"] == "cyclic" and est["groups"] == np.count_nonzero(cyc[0])
    gen = cyc.copy()
    gen[0, 0] += 1
    gen[0, 1] -= 1
    est2 = exact_resource_estimate(MixtureModel(10, 20, 200, 0.4, 0.1), gen, 4)
    assert est2["groups"] == np.count_nonzero(gen) and est2["seconds"] > 5 * est["seconds"]


def test_pll_student_is_refused_where_undefined():
    counts = exact_counts(transition_matrix("sym", 2, 0.3), 10)
    with pytest.raises(ValueError, match="n_classes >= 3"):
        predict_finite_exact(MixtureModel(2, 10, 30, 0.4, 0.1), counts, 1e-3, 1, student="pll")
    counts = exact_counts(transition_matrix("sym", 3, 0.3), 10)
    with pytest.raises(ValueError, match="rounds must be 1"):
        predict_finite_exact(MixtureModel(3, 10, 30, 0.4, 0.1), counts, 1e-3, 2, student="pll")
    with pytest.raises(ValueError, match="student must be"):
        predict_finite_exact(MixtureModel(3, 10, 30, 0.4, 0.1), counts, 1e-3, 1, student="gce")


@pytest.mark.parametrize("noise, eta", [("sym", 0.5), ("pair", 0.3)])
def test_pll_student_block_limit_vs_predict_pll(noise, eta):
    """p = inf: the PLL student of the state equations is the block model's exact PLL student
    (theory.pll.predict_pll, two-hot cross-entropy) -- outputs to 1e-10."""
    from theory.pll import predict_pll

    k, n, lam = 4, 25, 1e-2
    counts = exact_counts(transition_matrix(noise, k, eta), n)
    ref = predict_pll(BlockModel(k, n, 0.4, 0.1), counts, lam, method="exact")
    got = predict_finite_exact(
        MixtureModel(k, n, math.inf, 0.4, 0.1), counts, lam, 1, student="pll"
    )
    mask = counts > 0
    assert_close(
        got.group_output_means[1][mask], ref.deviations[0][mask], atol=1e-10, rtol=0, what="PLL"
    )
    for key in ("train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc"):
        assert_close(getattr(got, key)[1], getattr(ref, key)[0], atol=1e-12, rtol=0, what=key)


def test_pathwise_cross_round_tangents_vs_finite_differences():
    """d psi_t / d h_r of the per-point chain of proxes (three rounds, random block lower
    triangular response, random cavity fields) against central differences of the chain itself;
    tolerance: float32 storage of the tangents (~1e-7 relative) plus the differences' O(eps^2)."""
    from theory.finite_exact.integrate import _cross_tangents, _h_times, _store
    from theory.finite_exact.prox import newton_matrix

    rng = np.random.default_rng(0)
    k, m, rounds = 4, 6, 3
    resp = np.zeros((rounds, rounds, k, k))
    for t in range(rounds):
        resp[t, t] = _spd(k, 3.0, 10 + t)
        for s in range(t):
            resp[t, s] = 0.5 * rng.normal(size=(k, k))
    b = rng.normal(size=(rounds, k))
    tau0 = np.eye(k)[1]

    def chain(h):
        zs, psis = [], []
        for t in range(rounds):
            a = b[t] + h[:, t] + sum(psis[s] @ resp[t, s].T for s in range(t))
            tau = np.broadcast_to(tau0, (m, k)) if t == 0 else softmax(zs[-1])
            z = ce_prox(a + tau @ resp[t, t].T, resp[t, t])
            zs.append(z)
            psis.append(tau - softmax(z))
        return zs, psis

    h = rng.normal(size=(m, rounds, k))
    zs, _ = chain(h)

    class _St:  # the two tangent tables and the logits, as in theory.finite_exact.state._State
        dpsi, dz = {}, {}
        z = np.stack(zs)[:, None]

    st, sl = _St(), slice(0, m)
    for t in range(rounds):
        s_t = softmax(zs[t])
        inv = np.linalg.inv(newton_matrix(resp[t, t], s_t))
        if t:
            _cross_tangents(t, 0, resp[t, : t + 1], inv, s_t, st, sl, True)
        _store(st, 0, t, t, sl, -_h_times(s_t, inv), inv)
    eps = 1e-6
    for r in range(rounds):
        for j in range(k):
            hp, hm = h.copy(), h.copy()
            hp[:, r, j] += eps
            hm[:, r, j] -= eps
            (_, pp), (_, pm) = chain(hp), chain(hm)
            for t in range(r, rounds):
                fd = (pp[t] - pm[t]) / (2 * eps)
                got = st.dpsi[(0, t, r)][:, :, j]
                assert_close(got, fd, atol=1e-6, rtol=0, what=f"d psi_{t}/d h_{r}")


def test_ce_prox_deviations_vs_plain_form():
    """``z + V (s - 1/K) = a`` (deviations form) has the root of ``z + V s = a + V 1/K``."""
    k = 4
    v = _spd(k, 3.0, 11)
    a = np.random.default_rng(12).normal(scale=2.0, size=(25, k))
    z_dev = ce_prox(a, v, deviations=True)
    z_plain = ce_prox(a + v.sum(axis=1) / k, v)
    assert_close(z_dev, z_plain, atol=1e-10, rtol=0, what="deviations-form prox")


@pytest.mark.parametrize("size", [1e-8, 1e-20, 1e-40])
def test_ce_prox_deviations_vs_linearised_root_at_tiny_logits(size):
    """At logits of size ``eps_z`` the root is the linear one, ``z = (I + V H0)^{-1} a`` with
    ``H0 = (I - 11^T/K)/K`` the softmax Jacobian at uniform outputs, up to O(eps_z^2) relative:
    the deviations form resolves it to ~1e-10 *relative to the logits' own size* (a late round at
    large lam), where an absolute stopping rule or the common shift V 1/K would lose it."""
    k = 5
    v = _spd(k, 2e-4, 13)  # the bulk self-response v0 at lam ~ 1e2-1e4
    a = size * np.random.default_rng(14).normal(size=(20, k))
    z = ce_prox(a, v, deviations=True)
    h0 = (np.eye(k) - 1.0 / k) / k
    z_lin = np.linalg.solve(np.eye(k) + v @ h0, a.T).T
    assert_close(z, z_lin, atol=1e-10 * size, rtol=0, what="prox root at tiny logits")


def _cyclic_counts():
    return np.array([[6, 3, 1], [1, 6, 3], [3, 1, 6]])


@pytest.mark.parametrize("lam", [1e2, 1e4])
def test_finite_exact_large_lam_vs_block_limit(lam):
    """At ``p = 1e6`` the exact finite-ratio theory is the block limit (docs §16.4) at every
    round, also at large ``lam``, where each round's logits are ~``mu/(K lam N)`` times the
    previous round's (1e-30 and smaller by round 5). Every round's class-mean logits ``B_t``
    agree with the block limit's relative to their own size, and so do the accuracies. (Before
    the stopping rules, the cavity noise's diagonal load and ``psi`` were made relative to each
    round's own scale, rounds >= 3 came out at chance.)"""
    model = MixtureModel(3, 10, 1e6, 0.4, 0.1)
    counts = _cyclic_counts()
    big = predict_finite_exact(model, counts, lam, 5)
    block = predict_finite_exact(MixtureModel(3, 10, math.inf, 0.4, 0.1), counts, lam, 5)
    for t in range(6):
        scale = np.max(np.abs(block.b[t]))
        # p = 1e6 against p = inf: the bulk (N/p = 3e-5) and O(1/n) fluctuation terms.
        assert_close(big.b[t], block.b[t], atol=0.05 * scale, rtol=0, what=f"B_{t}")
    assert_close(big.train_acc, block.train_acc, atol=0.01, rtol=0, what="training accuracy")
    assert_close(
        big.population_acc, block.population_acc, atol=0.01, rtol=0, what="population accuracy"
    )


def test_finite_exact_large_lam_limit_is_lam_free():
    """At finite ratio and large ``lam`` the rounds' logits all scale by powers of ``1/lam`` (the
    self-responses by ``1/lam``), so the accuracies tend to a ``lam``-free limit: ``lam = 1e6``
    and ``1e8`` agree to O(1/lam) (here well below the quadrature error), on the same points."""
    model = MixtureModel(3, 10, 60, 0.4, 0.1)
    counts = _cyclic_counts()
    lo = predict_finite_exact(model, counts, 1e6, 4, points=16)
    hi = predict_finite_exact(model, counts, 1e8, 4, points=16)
    assert np.all(np.abs(lo.train_acc - 1.0 / 3) > 0.05), lo.train_acc  # not at chance
    assert_close(hi.train_acc, lo.train_acc, atol=2e-3, rtol=0, what="training accuracy")
    assert_close(hi.population_acc, lo.population_acc, atol=2e-3, rtol=0, what="population")


def test_finite_exact_refuses_equal_class_means():
    """At ``c = d > 0`` the class means coincide and Gamma is singular: a clear ValueError (it
    was a NotPSD LinAlgError from inside the fixed point)."""
    counts = exact_counts(transition_matrix("sym", 3, 0.3), 10)
    for c in (0.1, 0.4):
        with pytest.raises(ValueError, match="needs c > d"):
            predict_finite_exact(MixtureModel(3, 10, 60, c, c), counts, 1e-2, 1)
    # c = d = 0 (no class means at all) is a valid pure-noise model.
    pred = predict_finite_exact(MixtureModel(3, 10, 60, 0.0, 0.0), counts, 1e-2, 1, points=16)
    assert_close(pred.population_acc, np.full(2, 1.0 / 3), atol=1e-6, rtol=0, what="chance")


def test_finite_exact_at_the_largest_dim_vs_block_limit():
    """At ``p = 1e7 N`` (``MAX_DIM_RATIO``) the theory still solves (population variances ~1e-8;
    at ``3e7 N`` their 1-direction carried round-off of -1e-15, which the orthant's PSD check
    refused before the win probability was given the zero-sum part only) and its accuracies are
    the block limit's; beyond the ratio the model is refused with a ValueError naming dim."""
    from theory.finite.model import MAX_DIM_RATIO

    counts = exact_counts(transition_matrix("sym", 3, 0.3), 10)
    dim = int(MAX_DIM_RATIO * 30)
    big = predict_finite_exact(MixtureModel(3, 10, dim, 0.4, 0.1), counts, 1e-2, 2, points=16)
    block = predict_finite_exact(MixtureModel(3, 10, math.inf, 0.4, 0.1), counts, 1e-2, 2)
    assert_close(big.population_acc, block.population_acc, atol=1e-3, rtol=0, what="population")
    assert_close(big.train_acc, block.train_acc, atol=1e-3, rtol=0, what="training")
    with pytest.raises(ValueError, match=r"dim \(p\) must be <= 1e\+07 N"):
        MixtureModel(3, 10, dim + 1, 0.4, 0.1)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(tol=0.0), "tol must be a finite number > 0"),
        (dict(max_iter=0), "max_iter"),  # was FixedPointNotConverged 'in 0 iterations'
        (dict(points=4), "points"),
    ],
)
def test_finite_exact_bad_solver_options(kwargs, match):
    counts = exact_counts(transition_matrix("sym", 3, 0.3), 10)
    with pytest.raises(ValueError, match=match):
        predict_finite_exact(MixtureModel(3, 10, 60, 0.4, 0.1), counts, 1e-2, 1, **kwargs)
