"""The solver at many classes: routes agree, precision modes agree, memory stays O(N K + N p).

No timings here (benchmarks/solver_large_k.py measures speed); only results, certificates and
allocation sizes.
"""

import tracemalloc

import numpy as np
import pytest

import simulations.solver as solver_mod
from benchmarks import solver_large_k
from simulations.solver import factorize, solve_probe
from tests.tolerances import assert_close, solve_agreement_tol
from theory.validation import one_hot


def _mixture(n, p, k, seed):
    x, y, noisy = solver_large_k.mixture(n, p, k, 0.3, np.random.default_rng(seed))
    return x, y, noisy


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
    monkeypatch.setattr(solver_mod, "_available_memory", lambda: 1e3)
    with pytest.raises(ValueError, match="GB"):
        solve_probe(one_hot(noisy, 10), 1e-2, features=x)
    with pytest.raises(ValueError, match="GB"):
        factorize(features=x, method="spectral")


def test_auto_method_choice():
    assert solver_mod._auto_method(10_000, 64, 100) == "spectral"
    assert solver_mod._auto_method(50_000, 2048, 100) == "direct"
    assert solver_mod._auto_method(100, 500, 10) == "spectral"  # p > N: the dual route
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


def test_benchmark_quick_smoke(capsys):
    """The benchmark runs end to end at a tiny size (no timing assertions)."""
    from benchmarks import solver as bench_solver

    assert bench_solver.main(["--large-k", "--quick", "--sizes", "300x16", "--classes", "6"]) == 0
    out = capsys.readouterr().out
    for text in ("sklearn lbfgs", "ours direct", "SD round", "tracemalloc peak", "replication"):
        assert text in out


# --------------------------------------------------------------------------------------------
# The float32 phase (solver.py: '_softmax32', '_LineObjective32')
# --------------------------------------------------------------------------------------------

_EPS32 = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("spread", [1e-20, 1e-3, 1.0, 60.0])
def test_softmax32_deviations_vs_float64(spread):
    """Float32 deviations keep ~6 digits relative to the outputs' own spread, also when every
    output is within 1e-21 of 1/K (``P - 1/K`` in float32 would be 0 there)."""
    from simulations.softmax import softmax_with_deviation

    rng = np.random.default_rng(5)
    z = (spread * rng.standard_normal((50, 7))).astype(np.float32)
    probs32, dev32 = solver_mod._softmax32(z)
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
    ref = solver_mod._LineObjective(probs, dev_p, dev_t, y, coef, step, lam)
    low = solver_mod._LineObjective32(
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
