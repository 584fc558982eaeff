"""Benchmark: exact probe on large real-feature-sized problems in O(N p + p^2) memory.

Workload: a K = 10 class Gaussian mixture in ``R^p`` (rows L2-normalised, as after the probing
preprocessing), symmetric label noise ``eta = 0.3``, ``lam = 1e-3``. For every size we time

* ``factorize``: the eigendecomposition of ``X^T X`` (p x p), shared by every round;
* the teacher solve and one self-distillation round (warm-started), with their KKT certificates;

and record the peak of numpy/Python allocations during these steps with ``tracemalloc``, reported
in units of the feature matrix size ``8 N p`` bytes; an N x N float64 Gram matrix would need
``8 N^2`` bytes, printed for comparison. The process-wide ``ru_maxrss`` is printed at the end.

Baselines measured in the same run:

* **scaling**: the same pipeline at ``N / 10`` — time and memory ratios against the 10x larger N
  show linear scaling (a Gram-matrix method would be 100x in memory and >= 100x in time);
* **scikit-learn**: multinomial ``LogisticRegression(fit_intercept=False, C=1/(lam N),
  solver='lbfgs', tol=1e-8)`` on the smaller size (teacher only), the same optimum to ~1e-7.

Run from the repository root: ``python -m benchmarks.probe`` (N = 5,000 and 50,000, p = 2,048; a
few minutes) or ``python -m benchmarks.probe --quick`` (N = 1,000 and 10,000, p = 256; seconds).
(``-m`` keeps ``benchmarks/`` off ``sys.path``, where a ``benchmarks/theory.py`` would shadow the
``theory`` package.)
"""

from __future__ import annotations

import resource
import time
import tracemalloc

import numpy as np

from selfdistill_cli import ArgumentParser, float_in, int_in
from selfdistill_cli.memory import check_memory
from simulations.solver import factorize, solve_probe
from theory.validation import LAM_MAX, LAM_MIN, one_hot


def mixture_features(n, p, k, rng):
    """``x = mu_y + z`` with random unit-scale means and isotropic noise; rows L2-normalised."""
    y = np.arange(n) % k
    means = rng.standard_normal((k, p)) / np.sqrt(p)
    x = rng.standard_normal((n, p))
    x *= 4.0 / np.sqrt(p)  # noise norm ~4x the mean norm: classes overlap, accuracy < 1
    x += means[y]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, y


def sym_noise(y, k, eta, rng):
    flip = rng.random(y.size) < eta
    shift = rng.integers(1, k, y.size)
    return np.where(flip, (y + shift) % k, y)


def run_size(n, p, k, lam, eta, seed):
    """Factorize + teacher + 1 SD round; returns a dict of timings, peak memory and certificates."""
    rng = np.random.default_rng(seed)
    x, y = mixture_features(n, p, k, rng)
    noisy = sym_noise(y, k, eta, rng)
    targets = one_hot(noisy, k)
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    t0 = time.perf_counter()
    factor = factorize(features=x)
    t1 = time.perf_counter()
    teacher = solve_probe(targets, lam, factor=factor)
    t2 = time.perf_counter()
    student = solve_probe(teacher.outputs, lam, factor=factor, init=teacher)
    t3 = time.perf_counter()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    acc = [float(np.mean(np.argmax(s.outputs, axis=0) == y)) for s in (teacher, student)]
    return {
        "n": n,
        "p": p,
        "factorize_s": t1 - t0,
        "teacher_s": t2 - t1,
        "round_s": t3 - t2,
        "total_s": t3 - t0,
        "peak_bytes": peak - base,
        "x_bytes": x.nbytes,
        "residuals": (teacher.certificate.residual, student.certificate.residual),
        "newton": (teacher.certificate.iterations, student.certificate.iterations),
        "train_acc": acc,
        "x": x,
        "noisy": noisy,
        "weights": teacher.weights,
    }


def sklearn_baseline(x, noisy, lam):
    from sklearn.linear_model import LogisticRegression

    n = x.shape[0]
    clf = LogisticRegression(fit_intercept=False, C=1.0 / (lam * n), tol=1e-8, max_iter=10_000)
    t0 = time.perf_counter()
    clf.fit(x, noisy)
    return time.perf_counter() - t0, clf.coef_


def _report(r):
    gb = 1e9
    print(
        f"N={r['n']:>6} p={r['p']:>5}: factorize {r['factorize_s']:7.2f}s  teacher "
        f"{r['teacher_s']:7.2f}s ({r['newton'][0]} Newton)  1 round {r['round_s']:7.2f}s "
        f"({r['newton'][1]} Newton)  total {r['total_s']:7.2f}s"
    )
    print(
        f"{'':>16}peak alloc {r['peak_bytes'] / gb:6.2f} GB = {r['peak_bytes'] / r['x_bytes']:.2f}"
        f" x (8 N p = {r['x_bytes'] / gb:.2f} GB); an N x N Gram would be "
        f"{8 * r['n'] ** 2 / gb:.1f} GB; residuals {r['residuals'][0]:.1e}, "
        f"{r['residuals'][1]:.1e}; train acc (true labels) {r['train_acc'][0]:.3f} -> "
        f"{r['train_acc'][1]:.3f}"
    )


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 / 10,000, p = 256")
    parser.add_argument(
        "--n", type=int_in(10, 10**7), default=None, help="large N (default 50,000)"
    )
    parser.add_argument(
        "--p", type=int_in(1, 10**5), default=None, help="feature dimension (default 2,048)"
    )
    parser.add_argument("--lam", type=float_in(LAM_MIN, LAM_MAX), default=1e-3)
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    parser.add_argument(
        "--threads",
        type=int_in(1, 1024),
        default=None,
        help="BLAS threads (default: library default)",
    )
    args = parser.parse_args(argv)
    n_big = args.n or (10_000 if args.quick else 50_000)
    p = args.p or (256 if args.quick else 2048)
    try:  # the features, their preprocessed copy and the solver's work (~6 N p numbers)
        check_memory(8 * 6 * n_big * p, f"N={n_big}, p={p}", option=None)
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads is not None:
        from theory.blas import blas_threads

        with blas_threads(args.threads):
            return _run(args)
    return _run(args)


def _run(args) -> int:
    n_big = args.n or (10_000 if args.quick else 50_000)
    p = args.p or (256 if args.quick else 2048)
    k, eta = 10, 0.3
    n_small = n_big // 10
    print(
        f"probe benchmark: K={k}, eta={eta}, lam={args.lam:g}; sizes N={n_small}, {n_big}; "
        f"BLAS threads {args.threads or 'default'}"
    )
    small = run_size(n_small, p, k, args.lam, eta, args.seed)
    _report(small)
    sk_s, sk_w = sklearn_baseline(small["x"], small["noisy"], args.lam)
    dw = float(np.max(np.abs(sk_w - small["weights"])))
    print(
        f"{'':>16}sklearn LogisticRegression (lbfgs, tol 1e-8), teacher only: {sk_s:.2f}s "
        f"(ours teacher+factorize {small['factorize_s'] + small['teacher_s']:.2f}s; ratio "
        f"{sk_s / (small['factorize_s'] + small['teacher_s']):.2f}x); max|dW| = {dw:.1e}"
    )
    del small["x"]
    big = run_size(n_big, p, k, args.lam, eta, args.seed + 1)
    _report(big)
    del big["x"]
    print(
        f"scaling N x{n_big / n_small:.0f}: time x{big['total_s'] / small['total_s']:.1f}, "
        f"peak memory x{big['peak_bytes'] / small['peak_bytes']:.1f} "
        f"(N x N Gram memory would be x{(n_big / n_small) ** 2:.0f})"
    )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux -> GB
    print(f"process max RSS {maxrss:.2f} GB")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
