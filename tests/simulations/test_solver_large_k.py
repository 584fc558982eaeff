"""The solver at many classes: routes agree, precision modes agree, memory stays O(N K + N p).

No timings here (benchmarks/solver_large_k.py measures speed); only results, certificates and
allocation sizes.
"""

import tracemalloc

import numpy as np
import pytest

import simulations.solver.factorisation as factorisation_mod
import simulations.solver.kernels as kernels_mod
from benchmarks import solver_large_k
from simulations.solver import factorize, solve_probe
from tests.tolerances import assert_close, solve_agreement_tol
from theory.validation import one_hot


def _mixture(n, p, k, seed):
    x, y, noisy = solver_large_k.mixture(n, p, k, 0.3, np.random.default_rng(seed))
    return x, y, noisy


@pytest.mark.slow
@pytest.mark.parametrize("lam", [1e-2, 1e-4])
def test_routes_and_precisions_agree(lam):
    """Spectral, direct and Gram routes, float32 or float64 Hessian products: one optimum."""
    x, _, noisy = _mixture(600, 40, 20, 0)
    t = one_hot(noisy, 20)
    sols = [
        solve_probe(t, lam, factor=factorize(features=x, method="spectral")),
        solve_probe(t, lam, factor=factorize(features=x, method="direct")),
        solve_probe(t, lam, gram=x @ x.T),
        solve_probe(t, lam, features=x, single_precision=True),
        solve_probe(t, lam, features=x, single_precision=False),
    ]
    for sol in sols:
        assert sol.certificate.converged
    # Single-precision passes are counted apart: none in a double-precision solve; in a
    # single-precision one the float64 finish (logits, gradient, certificate) adds at least three.
    single, double = sols[3].certificate, sols[4].certificate
    assert double.single_passes == 0 and double.passes > 0
    assert 0 < single.single_passes <= single.passes - 3
    ref = sols[0]
    for sol in sols[1:]:
        tol = solve_agreement_tol(ref, sol)
        assert tol < 1e-6
        assert_close(sol.outputs, ref.outputs, atol=tol, rtol=0, what=sol.certificate.method)
        # Logits agree up to the same bound (softmax is 1/2-Lipschitz: |dZ| <= 2 |dP| fails only
        # through column constants, which the optimum's zero-sum logits do not have).
        assert np.max(np.abs(sol.logits.sum(axis=0))) <= 1e-8 * np.abs(sol.logits).max()


def test_sd_round_warm_start_matches_cold_start():
    x, _, noisy = _mixture(500, 30, 25, 1)
    factor = factorize(features=x, method="direct")
    teacher = solve_probe(one_hot(noisy, 25), 1e-3, factor=factor, single_precision=True)
    warm = solve_probe(teacher.soft_targets(), 1e-3, factor=factor, init=teacher)
    cold = solve_probe(teacher.outputs, 1e-3, features=x)
    assert_close(warm.outputs, cold.outputs, atol=solve_agreement_tol(warm, cold), rtol=0)
    assert warm.certificate.iterations <= cold.certificate.iterations


def test_no_n_by_k_by_k_arrays():
    """Peak allocations of a K = 100 solve stay a small multiple of one (N, K) array.

    The solver keeps ~14 (N, K) float64 arrays plus the float32 basis (4 N p bytes); the earlier
    block preconditioner built (K^2, N) arrays, 8 N K^2 bytes = 160 MB here.
    """
    n, p, k = 2000, 16, 100
    x, _, noisy = _mixture(n, p, k, 2)
    factor = factorize(features=x, method="direct")
    targets = one_hot(noisy, k)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    sol = solve_probe(targets, 1e-3, factor=factor)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sol.certificate.converged
    nk = 8 * n * k
    assert peak - base <= 24 * nk, f"peak {(peak - base) / nk:.1f} (N, K) arrays"
    assert peak - base < 8 * n * k * k / 4


def test_memory_refused_up_front(monkeypatch):
    x, _, noisy = _mixture(300, 20, 10, 3)
    monkeypatch.setattr(factorisation_mod, "available_memory", lambda: 1e3)
    with pytest.raises(ValueError, match="GB"):
        solve_probe(one_hot(noisy, 10), 1e-2, features=x)
    with pytest.raises(ValueError, match="GB"):
        factorize(features=x, method="spectral")


def test_auto_method_choice():
    assert factorisation_mod._auto_method(10_000, 64, 100) == "spectral"
    assert factorisation_mod._auto_method(50_000, 2048, 100) == "direct"
    assert factorisation_mod._auto_method(100, 500, 10) == "spectral"  # p > N: the dual route
    with pytest.raises(ValueError, match="method"):
        factorize(features=np.eye(3), method="qr")


def test_predict_logits_consistent_with_predict():
    x, _, noisy = _mixture(300, 12, 8, 4)
    sol = solve_probe(one_hot(noisy, 8), 1e-2, features=x)
    new = np.random.default_rng(0).standard_normal((7, 12))
    z = sol.predict_logits(features=new)
    p = np.exp(z - z.max(axis=0))
    p /= p.sum(axis=0)
    assert_close(sol.predict(features=new), p, atol=1e-15, rtol=0)
    # Kernel rows use the dual weights (T - P) X / (lam N) = W - grad / lam: logits differ by at
    # most |x_new| ||grad|| / lam (plus rounding).
    cert = sol.certificate
    tol = np.linalg.norm(new, axis=1).max() * cert.gradient_norm / sol.lam + 1e-13
    assert_close(sol.predict_logits(kernel_rows=new @ x.T), z, atol=tol, rtol=0)


@pytest.mark.slow
def test_benchmark_quick_smoke(capsys):
    """The benchmark runs end to end at a tiny size (no timing assertions)."""
    from benchmarks import solver as bench_solver

    assert bench_solver.main(["--large-k", "--quick", "--sizes", "300x16", "--classes", "6"]) == 0
    out = capsys.readouterr().out
    texts = ("sklearn lbfgs", "ours direct", "SD round", "tracemalloc peak", "replication")
    for text in (*texts, "at equal KKT accuracy: lbfgs tol 1e-12"):
        assert text in out


# --------------------------------------------------------------------------------------------
# Products with the data matrix and the row-blocked kernels (solver/kernels.py: 'basis_times',
# 'basis_t_times', 'row_blocks', '_BLOCK_ELEMENTS')
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("orient_min_work", [0.0, np.inf])
def test_basis_products_vs_plain_matmul(monkeypatch, dtype, orient_min_work):
    """Both orientations (forced with ``_ORIENT_MIN_WORK``) give ``B M`` and ``B^T R`` within the
    round-off bound of two evaluations of a length-L dot product, ``2 L eps (|B| |M|)``."""
    monkeypatch.setattr(kernels_mod, "_ORIENT_MIN_WORK", orient_min_work)
    monkeypatch.setattr(kernels_mod, "_BLOCK_ELEMENTS", 50)  # several blocks, a ragged last one
    rng = np.random.default_rng(5)
    n, q, k = 203, 17, 7
    b = rng.standard_normal((n, q)).astype(dtype)
    m = rng.standard_normal((q, k))  # float64 coefficients, as the solver passes them
    r = rng.standard_normal((n, k)).astype(dtype)
    eps = float(np.finfo(dtype).eps)
    ref = b.astype(float) @ m.astype(dtype).astype(float)
    out = np.full((n, k), np.nan, dtype)
    got = kernels_mod.basis_times(b, m, out=out)
    assert got is out and got.dtype == dtype and got.flags.c_contiguous
    bound = 2 * q * eps * (np.abs(b).astype(float) @ np.abs(m))
    assert np.all(np.abs(got - ref) <= bound)
    got_t = kernels_mod.basis_t_times(b, r)
    ref_t = b.T.astype(float) @ r.astype(float)
    assert got_t.shape == (q, k)
    assert np.all(np.abs(got_t - ref_t) <= 2 * n * eps * (np.abs(b).T @ np.abs(r)).astype(float))


@pytest.mark.slow
def test_orientation_benchmark_quick_smoke(capsys):
    """``python -m benchmarks.blas_orientation --quick`` runs; its helpers match plain NumPy."""
    from benchmarks import blas_orientation

    assert blas_orientation.main(["--quick", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "B^T@R" in out and "RESULTS DIFFER" not in out
    with pytest.raises(SystemExit):
        blas_orientation.main(["--repeat", "0"])


def test_row_blocks_cover_every_row_once():
    for n, k in [(1, 1), (7, 3), (1000, 100), (5, 10**6)]:
        rows = np.concatenate([np.arange(n)[s] for s in kernels_mod.row_blocks(n, k)])
        assert np.array_equal(rows, np.arange(n))


@pytest.mark.parametrize("single", [True, False])
def test_row_blocked_kernels_vs_whole_arrays(monkeypatch, single):
    """Blocks of a few rows (ragged last block) give the same solve as one block per array.

    The kernels are row-wise, so only the order of sums over samples can differ: the solutions
    agree to round-off (1e-12 of the outputs' spread) with the same Newton path.
    """
    x, _, noisy = _mixture(301, 12, 9, 6)
    t = one_hot(noisy, 9)

    def teacher_and_round():
        factor = factorize(features=x, method="direct")
        teacher = solve_probe(t, 1e-3, factor=factor, single_precision=single)
        student = solve_probe(
            teacher.soft_targets(), 1e-3, factor=factor, init=teacher, single_precision=single
        )
        return teacher, student

    monkeypatch.setattr(kernels_mod, "_BLOCK_ELEMENTS", 10**9)
    whole = teacher_and_round()
    monkeypatch.setattr(kernels_mod, "_BLOCK_ELEMENTS", 4 * 9 + 5)  # 4 rows per block
    blocked = teacher_and_round()
    for a, b in zip(whole, blocked, strict=True):
        assert a.certificate.converged and b.certificate.converged
        assert a.certificate.iterations == b.certificate.iterations
        assert_close(b.deviations, a.deviations, atol=1e-12 * a.certificate.scale, rtol=0)


def test_line_objective_blocked_vs_whole(monkeypatch):
    """The line objectives' row blocks change nothing but the grouping of per-row terms."""
    rng = np.random.default_rng(7)
    n, k = 57, 6
    z = rng.standard_normal((n, k))
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    dev_p = probs - 1.0 / k
    t = rng.dirichlet(np.ones(k), size=n)
    y = rng.standard_normal((n, k))
    coef, step = rng.standard_normal((4, k)), rng.standard_normal((4, k))
    args = (probs, dev_p, t - 1.0 / k, y, coef, step, 0.1)
    args32 = tuple(a.astype(np.float32) if a.shape[0] == n else a for a in args[:4]) + args[4:]
    values = {}
    for block in (10**9, 13):
        monkeypatch.setattr(kernels_mod, "_BLOCK_ELEMENTS", block)
        line, line32 = kernels_mod.LineObjective(*args), kernels_mod.LineObjective32(*args32)
        values[block] = [line(a) for a in (1.0, 0.3, 1e-6)] + [line32(a) for a in (1.0, 0.3)]
    for whole, blocked in zip(values[10**9], values[13], strict=True):
        assert_close(np.array(blocked), np.array(whole), atol=0, rtol=1e-12)


@pytest.mark.parametrize("spread", [1e-300, 1e-8, 9.9e-4, 1e-3, 1.0, 60.0, 800.0])
@pytest.mark.parametrize("mixed", [False, True])
def test_softmax64_vs_softmax_with_deviation_bit_for_bit(spread, mixed):
    """The fused float64 kernel gives the bits of the general function (same operations in the
    same order), on rows all near uniform, none, or both (``mixed``: every third row 1e-6 of
    the spread), either side of the expm1 threshold (spread 1e-3), and with outputs below the
    smallest normal double (spread 800: set to 0 by both)."""
    from simulations.softmax import softmax_with_deviation

    rng = np.random.default_rng(8)
    z = spread * rng.standard_normal((300, 7))
    if mixed:
        z[::3] *= 1e-6
    probs, dev = np.empty_like(z), np.empty_like(z)
    kernels_mod.softmax64(z, probs, dev)
    ref_probs, ref_dev = softmax_with_deviation(z, axis=1)
    assert np.array_equal(probs, ref_probs) and np.array_equal(dev, ref_dev)
    if spread == 800.0:
        assert np.any(probs == 0.0)  # the subnormal branch ran


# --------------------------------------------------------------------------------------------
# The float32 phase (solver/kernels.py: 'softmax32', 'LineObjective32')
# --------------------------------------------------------------------------------------------

_EPS32 = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("spread", [1e-20, 1e-3, 1.0, 60.0])
def test_softmax32_deviations_vs_float64(spread):
    """Float32 deviations keep ~6 digits relative to the outputs' own spread, also when every
    output is within 1e-21 of 1/K (``P - 1/K`` in float32 would be 0 there)."""
    from simulations.softmax import softmax_with_deviation

    rng = np.random.default_rng(5)
    z = (spread * rng.standard_normal((50, 7))).astype(np.float32)
    probs32, dev32 = kernels_mod.softmax32(z)
    probs, dev = softmax_with_deviation(z.astype(np.float64))  # the same (float32) logits
    assert probs32.dtype == dev32.dtype == np.float32
    # Budget: ~10 float32 roundings per entry (shift, expm1, mean, sum, two divisions).
    scale = np.abs(dev).max()
    assert np.abs(dev32 - dev).max() <= 10 * _EPS32 * scale
    assert np.abs(probs32 - probs).max() <= 10 * _EPS32 * probs.max()


def test_line_objective32_vs_float64():
    """The float32 objective change agrees with the float64 one to float32 round-off of its
    magnitude, at alpha with small and with overflowing steps (then it rejects: inf/nan)."""
    from simulations.softmax import softmax_with_deviation

    rng = np.random.default_rng(6)
    n, p, k = 400, 12, 6
    x = rng.standard_normal((n, p)) / np.sqrt(p)
    coef = rng.standard_normal((p, k))
    coef -= coef.mean(axis=1, keepdims=True)
    step = rng.standard_normal((p, k))
    step -= step.mean(axis=1, keepdims=True)
    dev_t = one_hot(rng.integers(0, k, n), k).T - 1.0 / k
    probs, dev_p = softmax_with_deviation(x @ coef)
    y = x @ step
    lam = 1e-2
    ref = kernels_mod.LineObjective(probs, dev_p, dev_t, y, coef, step, lam)
    low = kernels_mod.LineObjective32(
        *(a.astype(np.float32) for a in (probs, dev_p, dev_t, y)), coef, step, lam
    )
    for alpha in (1.0, 0.3, 1e-3):
        change, magnitude = ref(alpha)
        change32, magnitude32 = low(alpha)
        # Inputs rounded to float32 (relative 6e-8) and per-sample sums of K terms in float32.
        assert abs(change32 - change) <= 8 * k * _EPS32 * magnitude, alpha
        assert magnitude32 >= 0.5 * magnitude
    change, _ = low(1e4)  # expm1 overflows in float32: the change must not read as finite
    assert not (np.isfinite(change) and change < 0)


def test_single_precision_rounds_near_uniform_match_double():
    """lam = 1: ten rounds drive the deviations to ~1e-22; the float32 phase works on
    deviations (never on P - 1/K), so single- and double-precision solves agree to their
    certified bounds and keep every positive gap."""
    x, _, noisy = _mixture(300, 20, 6, 7)
    factor = factorize(features=x, method="direct")
    sols = {}
    for single in (True, False):
        sol = solve_probe(one_hot(noisy, 6), 1.0, factor=factor, single_precision=single)
        for _ in range(10):
            sol = solve_probe(
                sol.soft_targets(), 1.0, factor=factor, init=sol, single_precision=single
            )
            assert sol.certificate.converged
        sols[single] = sol
    a, b = sols[True], sols[False]
    assert np.abs(b.deviations).max() < 1e-6
    scale = np.abs(b.deviations).max()
    tol = solve_agreement_tol(a, b)
    assert tol <= 1e-8 * scale
    assert_close(a.deviations, b.deviations, atol=tol, rtol=0, what="deviations")
    assert np.array_equal(np.argmax(a.logits, axis=0), np.argmax(b.logits, axis=0))


# --------------------------------------------------------------------------------------------
# Nonlinear CG steps of the float32 phase (solver/ncg.py)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_curvature_along_vs_finite_difference_of_gradient(dtype):
    """``curvature_along(P, X d) / N + lam |d|^2`` is ``d^T H d`` at ``W``.

    Central differences of the exact gradient err by ``eps^2 / 6`` times its third derivative
    (O(1): rows of norm <= 2, ``|d| = 1``) plus ~1e-16 / eps of round-off: below 1e-8 with
    eps = 1e-4. Float32 inputs err by ~1e-6 relative (a few float32 roundings per term).
    """
    from simulations.solver import ncg

    rng = np.random.default_rng(9)
    n, p, k, lam = 80, 6, 5, 0.05
    x = rng.standard_normal((n, p))
    x /= np.linalg.norm(x, axis=1, keepdims=True) / rng.uniform(0.5, 2.0, (n, 1))
    targets = np.eye(k)[rng.integers(0, k, n)]
    coef = rng.standard_normal((p, k))
    d = rng.standard_normal((p, k))
    d -= d.mean(axis=1, keepdims=True)
    d /= np.linalg.norm(d)
    eps = 1e-4
    fd = solver_large_k.gradient((coef + eps * d).T, x, targets.T, lam).T
    fd -= solver_large_k.gradient((coef - eps * d).T, x, targets.T, lam).T
    want = float(np.sum(d * fd)) / (2 * eps)
    z = x @ coef
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    got = ncg.curvature_along(probs.astype(dtype), (x @ d).astype(dtype)) / n + lam
    rtol = 1e-6 if dtype == np.float64 else 1e-5
    assert abs(got - want) <= rtol * abs(want), (got, want)


def test_curvature_along_scale_free():
    """Images 1e-25 (outputs that close to uniform) give the curvature to float32 accuracy,
    not 0 (their float32 squares would underflow): it scales as the square of the image."""
    from simulations.solver import ncg

    rng = np.random.default_rng(10)
    probs = rng.dirichlet(np.ones(7), size=40)
    y = rng.standard_normal((40, 7))
    ref = ncg.curvature_along(probs, y)
    tiny = ncg.curvature_along(probs.astype(np.float32), (1e-25 * y).astype(np.float32))
    assert abs(tiny / 1e-50 - ref) <= 1e-5 * ref


@pytest.mark.parametrize("lam", [1e-2, 1e-3])
def test_ncg_steps_vs_newton_steps(monkeypatch, lam):
    """Float32 phase by nonlinear CG (default) or by Newton steps after one CG step
    (``MAX_RATE = 0`` hands over at once): the same certified optimum, to the sum of the two
    solves' certified distances; nonlinear CG uses fewer passes on this soft, isotropic probe
    (the case it is for, ``simulations/solver/ncg.py``)."""
    from simulations.solver import ncg

    x, _, noisy = _mixture(1000, 32, 20, 11)
    t = one_hot(noisy, 20)
    factor = factorize(features=x, method="direct")
    cg_sol = solve_probe(t, lam, factor=factor, single_precision=True)
    monkeypatch.setattr(ncg, "MAX_RATE", 0.0)
    newton_sol = solve_probe(t, lam, factor=factor, single_precision=True)
    for sol in (cg_sol, newton_sol):
        assert sol.certificate.converged
        assert sol.certificate.single_passes > 0
    tol = solve_agreement_tol(cg_sol, newton_sol)
    assert tol < 1e-6
    assert_close(cg_sol.outputs, newton_sol.outputs, atol=tol, rtol=0, what="outputs")
    assert cg_sol.certificate.passes < newton_sol.certificate.passes


# --------------------------------------------------------------------------------------------
# Cheaper steps near the optimum: trusted model steps, float32 certificate product, and the
# float32 softmax of spread rows (solver/ncg.py, solver/newton.py, solver/kernels.py)
# --------------------------------------------------------------------------------------------


def test_softmax32_spread_rows_vs_float64(monkeypatch):
    """Rows spread by >= 2 take deviations from ``e^w`` alone: within 5 float32 roundings of
    each row's own largest deviation (``kernels.softmax32``); the path of a row depends on that
    row alone, so the blocking changes no bit."""
    from simulations.softmax import softmax_with_deviation

    rng = np.random.default_rng(12)
    n, k = 400, 37
    z = rng.standard_normal((n, k))
    spreads = np.where(rng.random(n) < 0.5, rng.uniform(2.0, 40.0, n), rng.uniform(0.0, 1.9, n))
    z *= (spreads / (z.max(axis=1) - z.min(axis=1)))[:, None]
    z = z.astype(np.float32)
    probs32, dev32 = kernels_mod.softmax32(z)
    _, dev = softmax_with_deviation(z.astype(np.float64), axis=1)
    row_err = np.abs(dev32 - dev).max(axis=1) / np.abs(dev).max(axis=1)
    spread = (z.max(axis=1) - z.min(axis=1)) >= 2.0
    assert spread.any() and (~spread).any()
    assert row_err[spread].max() <= 5 * _EPS32
    assert row_err[~spread].max() <= 10 * _EPS32  # the expm1 path (test above)
    monkeypatch.setattr(kernels_mod, "_BLOCK_ELEMENTS", 7 * k + 3)  # 7 rows per block
    probs_b, dev_b = kernels_mod.softmax32(z)
    assert np.array_equal(probs_b, probs32) and np.array_equal(dev_b, dev32)


@pytest.mark.parametrize("lam", [1e-2, 1e-3, 1e-4])
@pytest.mark.parametrize("float32_product", [True, False])
def test_single_precision_certificate_vs_float64_residual(monkeypatch, lam, float32_product):
    """The certificate of a single-precision solve (its float32 product ``B (grad / lam)``,
    ``newton._fixed_logits``) holds when the residual is evaluated again from the outputs
    alone with float64 products (``fixed_point_residual``, exact floor): the outputs are
    certified, whatever route computed their residual. With float32 a million times coarser
    (``_EPS32 = 1e-1``) the product's error bound exceeds its budget and the float64 product
    is used instead."""
    from simulations.solver import fixed_point_residual
    from simulations.solver import newton as newton_mod

    extras = []
    fixed_logits = newton_mod._fixed_logits

    def recorded(*args):
        fixed, extra, single = fixed_logits(*args)
        assert single == (extra > 0)
        extras.append(extra)
        return fixed, extra, single

    monkeypatch.setattr(newton_mod, "_fixed_logits", recorded)
    if not float32_product:
        monkeypatch.setattr(newton_mod, "_EPS32", 1e-1)
    x, _, noisy = _mixture(2000, 64, 20, 13)
    factor = factorize(features=x, method="direct")
    sol = solve_probe(one_hot(noisy, 20), lam, factor=factor, single_precision=True)
    cert = sol.certificate
    assert cert.converged
    assert extras and (extras[-1] > 0) == float32_product
    res, floor = fixed_point_residual(sol.outputs, one_hot(noisy, 20), lam, factor=factor)
    # fixed_point_residual forms P - 1/K from the outputs (rounding ~eps of them).
    assert res <= cert.target + floor + 4 * np.finfo(float).eps
    # The float32 product's error bound is part of the floor and far below the target.
    assert cert.floor <= 0.5 * cert.target


@pytest.mark.parametrize("lam", [1e-3, 1e-4])
def test_trusted_steps_vs_line_searched_steps(monkeypatch, lam):
    """Model steps taken without the Armijo test near the optimum (nonlinear CG below
    ``ncg.TRUST_RTOL``, the first float64 Newton step) reach the same certified optimum as
    line-searched ones, to the two solves' certified distances."""
    from simulations.solver import ncg
    from simulations.solver import newton as newton_mod

    x, _, noisy = _mixture(2000, 64, 20, 14)
    t = one_hot(noisy, 20)
    factor = factorize(features=x, method="direct")
    trusted = solve_probe(t, lam, factor=factor, single_precision=True)
    monkeypatch.setattr(ncg, "TRUST_RTOL", 0.0)
    monkeypatch.setattr(newton_mod, "_TRUST_FIRST_FLOAT64_STEP", False)
    searched = solve_probe(t, lam, factor=factor, single_precision=True)
    for sol in (trusted, searched):
        assert sol.certificate.converged
    tol = solve_agreement_tol(trusted, searched)
    assert tol < 1e-6
    assert_close(trusted.outputs, searched.outputs, atol=tol, rtol=0, what="outputs")


def test_failed_trusted_step_is_undone(monkeypatch):
    """A trusted nonlinear CG step that does not reduce the gradient (here forced: its length
    multiplied by 50) is undone -- the Newton steps start from the iterate before it -- and the
    solve is still certified, at the same optimum."""
    from simulations.solver import ncg

    x, _, noisy = _mixture(2000, 64, 20, 15)
    t = one_hot(noisy, 20)
    factor = factorize(features=x, method="direct")
    ref = solve_probe(t, 1e-2, factor=factor, single_precision=True)
    steps, ratios = [], []
    leading_bits, gradient = ncg._leading_bits, ncg.outputs_and_gradient

    def overshoot(alpha, bits=12):
        steps.append(alpha)
        return leading_bits(alpha, bits) * (50.0 if len(steps) == 3 else 1.0)

    def recorded(setup, state, low):
        g = gradient(setup, state, low)
        ratios.append(g.ratio)
        return g

    monkeypatch.setattr(ncg, "_leading_bits", overshoot)
    monkeypatch.setattr(ncg, "outputs_and_gradient", recorded)
    sol = solve_probe(t, 1e-2, factor=factor, single_precision=True)
    # ratios: after steps 1, 2 and the overshooting step 3, then again after the undo.
    assert len(steps) == 3 and len(ratios) == 4
    assert ratios[1] <= ncg.TRUST_RTOL  # step 3 was taken without the Armijo test
    assert ratios[2] >= ratios[1]  # ... and made no progress
    assert abs(ratios[3] - ratios[1]) <= 1e-3 * ratios[1]  # undone (float32 logits)
    assert sol.certificate.converged
    tol = solve_agreement_tol(ref, sol)
    assert_close(sol.outputs, ref.outputs, atol=tol, rtol=0, what="outputs")
