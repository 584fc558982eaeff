"""Benchmark: the orientation of the solver's products with the data matrix (issue 11).

The probe solver multiplies the (N, q) data matrix ``B`` by (q, K) coefficients (logits) and its
transpose by (N, K) residuals (gradients). BLAS libraries do not run the two orientations of the
same product equally fast: with OpenBLAS, float64 ``(M^T B^T)^T`` and ``(R^T B)^T`` beat the
plain ``B M`` and ``B^T R`` at the solver's large shapes, while float32 is level.
:func:`simulations.solver.basis_times` and :func:`simulations.solver.basis_t_times` choose the
orientation from these measurements; this script re-measures them on the current machine.

For each shape and dtype it prints the best of ``--repeat`` timed batches of the plain product
(baseline: ``b @ m`` and ``b.T @ r`` with NumPy's own dispatch) and of the solver's helper, and
the ratio baseline / helper (> 1: the helper is faster). Both results are compared entrywise
(they are the same product; differences are round-off).

Run: ``python -m benchmarks.blas_orientation`` (about 1 minute) or ``--quick`` (seconds).
"""

from __future__ import annotations

import time

import numpy as np

from selfdistill_cli import ArgumentParser, int_in
from simulations.solver import basis_t_times, basis_times

FULL_SHAPES = ((2_000, 64), (10_000, 128), (10_000, 512), (20_000, 1024), (50_000, 2048))
QUICK_SHAPES = ((2_000, 64), (10_000, 512))


def best_time(fn, repeat: int, clock=time.perf_counter) -> float:
    """Seconds per call: the smallest of ``repeat`` batches (the least disturbed by other load),
    each batch long enough (>= 20 ms, as ``timeit``'s autorange) to swamp the clock's noise.
    ``clock`` is the timer (``time.process_time`` for CPU seconds of this process)."""
    number = 1
    while True:
        t0 = clock()
        for _ in range(number):
            fn()
        first = clock() - t0
        if first >= 0.02 or number >= 10_000:
            break
        number *= 10
    best = first / number
    for _ in range(repeat - 1):
        t0 = clock()
        for _ in range(number):
            fn()
        best = min(best, (clock() - t0) / number)
    return best


def compare(n: int, p: int, k: int, dtype, repeat: int, rng) -> None:
    b = rng.standard_normal((n, p)).astype(dtype)
    m = rng.standard_normal((p, k)).astype(dtype)
    r = rng.standard_normal((n, k)).astype(dtype)
    t_plain = best_time(lambda: b @ m, repeat)
    t_ours = best_time(lambda: basis_times(b, m), repeat)
    tt_plain = best_time(lambda: b.T @ r, repeat)
    tt_ours = best_time(lambda: basis_t_times(b, r), repeat)
    # Two evaluations of a length-L dot product differ by at most 2 L eps (|b| . |m|)
    # (the standard bound gamma_L ~ L eps / 2 on each, any summation order).
    eps = np.finfo(dtype).eps
    same = np.all(np.abs(basis_times(b, m) - b @ m) <= 2 * p * eps * (np.abs(b) @ np.abs(m)))
    same &= np.all(np.abs(basis_t_times(b, r) - b.T @ r) <= 2 * n * eps * (np.abs(b).T @ np.abs(r)))
    print(
        f"  N={n:>6,} p={p:>5,} K={k:>3} {np.dtype(dtype).name:7s}  "
        f"B@M {t_plain * 1e3:8.2f} ms / ours {t_ours * 1e3:8.2f} ms = {t_plain / t_ours:4.2f}x   "
        f"B^T@R {tt_plain * 1e3:8.2f} ms / ours {tt_ours * 1e3:8.2f} ms = "
        f"{tt_plain / tt_ours:4.2f}x{'' if same else '  RESULTS DIFFER'}"
    )


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small shapes: seconds")
    parser.add_argument(
        "--repeat", type=int_in(1, 1000), default=5, help="timings per product (best kept)"
    )
    parser.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    rng = np.random.default_rng(args.seed)
    print("orientation of the solver's data products: plain NumPy / the solver's helpers")
    for n, p in QUICK_SHAPES if args.quick else FULL_SHAPES:
        for k in (10, 100):
            for dtype in (np.float64, np.float32):
                compare(n, p, k, dtype, args.repeat, rng)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
