"""Benchmark: a lower bound on the time of any certified teacher solve, against lbfgs (issue 11).

Issue 11 asks for the teacher at least 3x faster than scikit-learn's lbfgs at K = 100,
N = 10k-50k, p = 512-2048, with certificates kept. On well-conditioned (isotropic) features
lbfgs stops after a handful of iterations, and this script measures how little time *any* solve
certified like ours could take there, from the costs of its unavoidable parts on this machine.

Model of the cheapest certified solve (every assumption favours the solver):

1. **Certificate** of the final coefficients ``W`` (p, K): float64 logits ``X W`` and softmax,
   ``W' = X^T (T - P) / (lam N)`` and ``X W'`` (float32 products err by ~1e-7 of their
   terms, a hundred times the certified 1e-9 of ``max|P - 1/K|``), and a second softmax:
   three float64 products with the (N, p) data and two float64 softmaxes over (N, K).
2. **Reaching** ``W``: to leading order the optimum solves the problem linearised at ``W = 0``
   (outputs near uniform, which they are at these ``lam``), whose Hessian on the class-mean-free
   coefficients is ``H0 S = X^T X S / (K N) + lam S``. Conjugate gradients, the optimal Krylov
   method for it in the energy norm, needs ``m`` product pairs ``X S``, ``X^T Y`` to bring its
   residual from ``W = 0`` down by the certificate's 1e-9 (the smaller of plain and Jacobi-
   preconditioned counts; any preconditioner built from ``X^T X`` itself costs more than the whole
   budget at p = 2048). All ``m`` pairs are charged at float32 prices (float32 cannot reach 1e-9 by
   itself, so this is generous), plus the float32 copy of ``X``; no line search, no other
   element-wise work.

Lower bound ``t_min = copy + m * pair32 + certificate``; at most ``lbfgs / t_min`` faster than
lbfgs. (At N = 50,000, p = 2,048, lam = 1e-3 already ``copy + pair32 + certificate``, one pair,
exceeds a third of lbfgs's time, so the conclusion there does not hang on the count ``m``.) The
script also times our certified solver (``solve_probe``, direct route, default ``tol = 1e-9``) on
the same fit, before scikit-learn (a solve that follows scikit-learn's fit pays for the memory the
fit freed). Every solve time is the best of ``--repeat`` runs; a component's cost is the best of at
least 3 timed batches (as in :mod:`benchmarks.blas_orientation`).

Run: ``python -m benchmarks.certified_bound`` (about 1.5 minutes on 2 idle cores) or ``--quick``;
``--sizes 10000x512`` repeats one of the two cells (on a busy machine, for medians over runs);
``--cpu`` times every part, ours and lbfgs in CPU seconds with one thread per pool (on a shared
machine wall-clock times with two BLAS threads vary several-fold with the load, mostly through
BLAS threads waiting for each other; CPU seconds of one thread count the work).
"""

from __future__ import annotations

import math
import time

import numpy as np

from benchmarks.blas_orientation import best_time as best_time_wall
from benchmarks.solver_large_k import mixture, sklearn_teacher
from selfdistill_cli import ArgumentParser, float_in, int_in
from simulations.solver import (
    basis_t_times,
    basis_times,
    factorize,
    pcg,
    softmax64,
    solve_probe,
)
from theory.validation import LAM_MAX, LAM_MIN, one_hot

FULL_SIZES = ((10_000, 512), (50_000, 2048))
QUICK_SIZES = ((2_000, 128),)
#: Relative accuracy of the certificate the solver gives by default (``solve_probe(tol=1e-9)``).
CERT_RTOL = 1e-9


def linearised_hessian(x: np.ndarray, s: np.ndarray, lam: float) -> np.ndarray:
    r"""Hessian of the objective at ``W = 0`` applied to class-mean-free coefficients.

    At uniform outputs every softmax Jacobian is ``(I - 11^T / K) / K``; for ``S`` (p, K) with
    zero row sums, ``(X S)(I - 11^T/K) = X S``, so

    .. math::  H_0 S = X^\top X S / (K N) + \lambda S .

    Parameters
    ----------
    x : ndarray, shape (N, p)
    s : ndarray, shape (p, K)
        Rows summing to zero.
    lam : float
    """
    n = x.shape[0]
    k = s.shape[1]
    return x.T @ (x @ s) / (k * n) + lam * s


def optimum_hessian(x: np.ndarray, probs: np.ndarray, s: np.ndarray, lam: float) -> np.ndarray:
    r"""Hessian of the objective at outputs ``probs`` (N, K) applied to ``S`` (p, K).

    .. math::  H S = X^\top D_P[X S] / N + \lambda S, \qquad
               (D_P[Y])_i = p_i \odot (y_i - (p_i \cdot y_i) \mathbf 1) ,

    the per-sample softmax Jacobians ``diag(p_i) - p_i p_i^T``; at uniform outputs it is
    :func:`linearised_hessian` (on class-mean-free ``S``).
    """
    y = x @ s
    m = probs * (y - np.einsum("ik,ik->i", probs, y)[:, None])
    return x.T @ m / x.shape[0] + lam * s


def cg_pairs(x, rhs, lam, rtol, precond=None, max_pairs=10_000, hessian=None):
    """Conjugate gradients on ``H0 S = rhs`` (:func:`linearised_hessian`) from ``S = 0``.

    The solver's own CG (:func:`simulations.solver.pcg`). Returns the number ``m`` of Hessian
    products (each one pair ``X S``, ``X^T Y``) after which ``||rhs - H0 S||_F <= rtol ||rhs||_F``
    first holds, and ``S``. ``precond`` (p,) divides the residual row-wise (Jacobi) when given;
    ``hessian(S)`` replaces ``H0`` when given (:func:`optimum_hessian`).
    """
    if precond is None:
        pre = lambda r: r  # noqa: E731
    else:
        pre = lambda r: r / precond[:, None]  # noqa: E731
    if hessian is None:
        hessian = lambda d: linearised_hessian(x, d, lam)  # noqa: E731
    sol, m, _ = pcg(lambda d: (hessian(d), None), rhs, pre, rtol, max_pairs)
    # pcg returns after max_pairs products whether or not it converged: check that case.
    target = rtol * float(np.linalg.norm(rhs))
    if m >= max_pairs and np.linalg.norm(rhs - hessian(sol)) > target:
        raise RuntimeError(f"CG did not reach rtol={rtol:g} in {max_pairs} products")
    return m, sol


def best_cpu_time(fn, repeat: int) -> float:
    """:func:`benchmarks.blas_orientation.best_time` in CPU seconds of this process."""
    return best_time_wall(fn, repeat, clock=time.process_time)


def component_costs(x: np.ndarray, k: int, repeat: int, rng, cpu=False) -> dict[str, float]:
    """Seconds of the model's parts on this machine (module docstring); CPU seconds if ``cpu``."""
    best_time = best_cpu_time if cpu else best_time_wall
    n, p = x.shape
    w = rng.standard_normal((p, k)) * 1e-2
    r = rng.standard_normal((n, k)) * 1e-2
    x32, w32, r32 = x.astype(np.float32), w.astype(np.float32), r.astype(np.float32)
    logits = np.empty((n, k))
    probs, dev = np.empty((n, k)), np.empty((n, k))
    costs = {
        "copy32": best_time(lambda: x.astype(np.float32), repeat),
        "pair32": best_time(lambda: basis_times(x32, w32), repeat)
        + best_time(lambda: basis_t_times(x32, r32), repeat),
        "xw64": best_time(lambda: basis_times(x, w, out=logits), repeat),
        "xtr64": best_time(lambda: basis_t_times(x, r), repeat),
        "softmax64": best_time(lambda: softmax64(logits, probs, dev), repeat),
    }
    costs["certificate"] = 2 * costs["xw64"] + costs["xtr64"] + 2 * costs["softmax64"]
    return costs


def top_eigenvalue(x: np.ndarray) -> float:
    """Largest eigenvalue of ``X^T X`` (Lanczos, products with ``X`` only)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    p = x.shape[1]
    op = LinearOperator((p, p), matvec=lambda v: x.T @ (x @ v), dtype=np.float64)
    return float(eigsh(op, k=1, which="LA", return_eigenvectors=False, tol=1e-6)[0])


def bound_cell(x, noisy, k, lam, costs, repeat, cpu=False) -> dict[str, float]:
    """Print and return the bound of one (N, p, lam) cell (CPU seconds if ``cpu``)."""
    clock = time.process_time if cpu else time.perf_counter
    n, p = x.shape
    targets = one_hot(noisy, k)
    # Ours first: a solve that follows scikit-learn's fit pays for the memory the fit freed
    # (fresh page faults on this VM), which is not the solver's cost.
    t_ours = math.inf
    for _ in range(repeat):
        t0 = clock()
        ours = solve_probe(targets, lam, factor=factorize(features=x, method="direct"))
        t_ours = min(t_ours, clock() - t0)
    cert = ours.certificate
    t_sk, clf = sklearn_teacher(x, noisy, lam, repeat, clock=clock)
    # Gradient at W = 0: X^T (1/K - T)^T / N, class-mean-free; CG solves H0 S = -g0.
    dev_t = targets.T - 1.0 / k
    rhs = x.T @ dev_t / n
    rhs -= rhs.mean(axis=1, keepdims=True)
    m_plain, _ = cg_pairs(x, rhs, lam, CERT_RTOL)
    m_jacobi, _ = cg_pairs(x, rhs, lam, CERT_RTOL, np.einsum("ij,ij->j", x, x) / (k * n) + lam)
    m = min(m_plain, m_jacobi)
    s_max = top_eigenvalue(x)
    t_min = costs["copy32"] + m * costs["pair32"] + costs["certificate"]
    verdict = "excluded" if t_min > t_sk / 3 else "not excluded by this bound"
    print(f"  N={n:,} p={p:,} K={k} lam={lam:g}")
    print(
        f"    lbfgs {t_sk:.3g} s ({int(clf.n_iter_[0])} iterations): the 3x budget is "
        f"{t_sk / 3:.3g} s"
    )
    print(
        f"    linearised Hessian: s_max(X^T X) = {s_max:.2f}, s_max / (K lam N) = "
        f"{s_max / (k * lam * n):.4f}; CG product pairs to {CERT_RTOL:g}: {m_plain} plain, "
        f"{m_jacobi} Jacobi"
    )
    print(
        f"    lower bound {costs['copy32']:.3g} (float32 copy) + {m} x {costs['pair32']:.3g} "
        f"(float32 pairs) + {costs['certificate']:.3g} (certificate) = {t_min:.3g} s  -> at "
        f"most {t_sk / t_min:.2f}x: 3x {verdict}"
    )
    print(
        f"    ours (certified, direct) {t_ours:.3g} s -> {t_sk / t_ours:.2f}x  (rel. residual "
        f"{cert.relative_residual:.1e}, {cert.passes} passes)"
    )
    # Issue 24: ours against the bound, and what our data passes alone cost at the bound's
    # prices (float32 passes at half a float32 pair, float64 ones at the mean of X W and X^T R).
    # The bound's CG runs on the Hessian at uniform outputs. At the optimum the outputs are not
    # uniform (at lam = 1e-4 the labelled class gets ~0.15 against 0.01), the per-sample
    # Jacobians differ, and the last Newton systems of any Newton-Krylov solve are the
    # optimum's: the same model with CG on that Hessian (not a lower bound: a measure of what
    # the Krylov part of such a solve needs).
    probs = np.ascontiguousarray(ours.outputs.T)
    m_opt, _ = cg_pairs(x, rhs, lam, CERT_RTOL, hessian=lambda d: optimum_hessian(x, probs, d, lam))
    t_opt = costs["copy32"] + m_opt * costs["pair32"] + costs["certificate"]
    print(
        f"    at the optimum CG needs {m_opt} pairs to {CERT_RTOL:g} (Hessian at the certified "
        f"outputs, max P {float(probs.max()):.3f}): the model with them {t_opt:.3g} s, ours / "
        f"that {t_ours / t_opt:.2f}x"
    )
    # The issue-24 target (1.5x the bound) against what the Krylov part alone needs there.
    reach = "cannot" if t_opt > 1.5 * t_min else "can"
    print(
        f"    that model is {t_opt / t_min:.2f}x the lower bound: a solve that needs the optimum's "
        f"CG count {reach} reach 1.5x the bound at this cell"
    )
    single, double = cert.single_passes, cert.passes - cert.single_passes
    t_passes = single * costs["pair32"] / 2 + double * (costs["xw64"] + costs["xtr64"]) / 2
    print(
        f"    ours / lower bound {t_ours / t_min:.2f}x (target 1.5x: "
        f"{'met' if t_ours <= 1.5 * t_min else 'NOT met'}); its {cert.passes} passes "
        f"({single} float32, {double} float64) alone cost {t_passes:.3g} s at these prices "
        f"= {t_passes / t_min:.2f}x the bound, the rest ({max(t_ours - t_passes, 0.0):.3g} s) is "
        "element-wise work, preconditioner and line searches"
    )
    return {
        "lbfgs": t_sk,
        "bound": t_min,
        "ours": t_ours,
        "pairs": m,
        "pairs_at_optimum": m_opt,
        "bound_at_optimum": t_opt,
        "ours_passes": t_passes,
    }


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2,000, p = 128, K = 20: seconds")
    parser.add_argument(
        "--lams", type=float_in(LAM_MIN, LAM_MAX), nargs="+", default=None, help="default 1e-3 1e-4"
    )
    parser.add_argument(
        "--repeat", type=int_in(1, 1000), default=2, help="runs per timing (best kept)"
    )
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated NxP among the defaults, e.g. 10000x512 (default: 10000x512,"
        "50000x2048; quick 2000x128): to repeat a cell on a busy machine",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time in CPU seconds with every thread pool pinned to one thread (a busy machine)",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    default_sizes = QUICK_SIZES if args.quick else FULL_SIZES
    sizes = default_sizes
    if args.sizes is not None:
        try:
            sizes = tuple(
                tuple(int(v) for v in item.lower().split("x")) for item in args.sizes.split(",")
            )
        except ValueError:
            sizes = ()
        if not sizes or any(size not in default_sizes for size in sizes):
            parser.error(
                f"--sizes must list sizes among {','.join(f'{n}x{p}' for n, p in default_sizes)}"
                f", got {args.sizes!r}"
            )
    lams = args.lams or ([1e-3] if args.quick else [1e-3, 1e-4])
    if any(not (lam > 0 and math.isfinite(lam)) for lam in lams):
        parser.error(f"--lams must be positive and finite, got {lams}")
    k = 20 if args.quick else 100
    print(
        f"certified-solve lower bound vs lbfgs: isotropic workload, K={k}, eta=0.3, lams {lams}, "
        f"best of {args.repeat}"
        + (", CPU seconds with one thread (BLAS and OpenMP)" if args.cpu else "")
    )
    if args.cpu:
        # One thread for every pool: CPU seconds then count work, not the spinning of idle
        # BLAS threads (which a busy machine inflates).
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            return _run(args, k, lams, sizes)
    return _run(args, k, lams, sizes)


def _run(args, k, lams, sizes) -> int:
    rng = np.random.default_rng(args.seed)
    for size in sizes:
        x, _, noisy = mixture(*size, k, 0.3, np.random.default_rng(args.seed), "isotropic")
        # Component costs: at least 3 timed batches each (the bound takes the least disturbed).
        costs = component_costs(x, k, max(args.repeat, 3), rng, cpu=args.cpu)
        print(
            f"  costs at N={size[0]:,} p={size[1]:,}: float32 copy {costs['copy32']:.3g} s, "
            f"float32 pair {costs['pair32']:.3g} s, float64 X W {costs['xw64']:.3g} s, "
            f"X^T R {costs['xtr64']:.3g} s, float64 softmax {costs['softmax64']:.3g} s"
        )
        for lam in lams:
            bound_cell(x, noisy, k, lam, costs, args.repeat, cpu=args.cpu)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
