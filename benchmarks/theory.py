"""Benchmark: block-model group-level theory (linearised + exact + PLL) vs the full N x N solve.

Configuration (issue 3): K = 10 classes, R = 10 rounds, c = 0.4, d = 0.1, symmetric noise
eta = 0.5 with exact counts (theory.noise), lam in {1e-2, 1e-3, 1e-4}. The group-level cost is
independent of n; the budget is <= 0.5 s for linear + exact + PLL (both methods) + conditions.

Baseline (same run): the full N x N exact computation -- simulations.distill.self_distill on the
explicit block Gram matrix (n = 20, N = 200) for the same rounds, plus simulations.distill.train_pll
-- whose outputs are also compared with the group-level prediction (max abs difference printed).

Run: ``python benchmarks/theory.py [--quick]`` (or ``python -m benchmarks.theory``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# Running this file as a script puts benchmarks/ first on sys.path, where this very file would
# shadow the ``theory`` package; drop that entry before importing the toolkit.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np  # noqa: E402

from simulations.distill import self_distill, train_pll  # noqa: E402
from simulations.solver import factorize  # noqa: E402
from theory.conditions import collapse_window_linear, min_rounds_linear, plurality_condition  # noqa: E402
from theory.groups import BlockModel, predict_exact, predict_linear  # noqa: E402
from theory.noise import exact_counts, transition_matrix  # noqa: E402
from theory.pll import pll_condition, predict_pll  # noqa: E402


def group_run(model, counts, lam, rounds):
    lin = predict_linear(model, counts, lam, rounds)
    ex = predict_exact(model, counts, lam, rounds)
    pll = (predict_pll(model, counts, lam), predict_pll(model, counts, lam, method="exact"))
    plurality_condition(counts)
    min_rounds_linear(model, counts, lam)
    collapse_window_linear(model, counts, lam, rounds)
    pll_condition(model, counts, lam)
    return lin, ex, pll


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one lam, fewer repeats")
    args = parser.parse_args(argv)
    k, c, d, eta, rounds = 10, 0.4, 0.1, 0.5, 10
    lams = [1e-3] if args.quick else [1e-2, 1e-3, 1e-4]
    repeats = 2 if args.quick else 5
    n_full = 20
    print(f"K={k} R={rounds} c={c} d={d} sym eta={eta}; budget 0.5 s (linear+exact+PLL+conditions)")
    print(
        f"{'lam':>8} {'n':>8} {'group [s]':>10} {'full NxN [s]':>13} {'ratio':>8} {'max|diff|':>10}"
    )
    worst = 0.0
    for lam in lams:
        for n in (n_full, 10**6):
            model = BlockModel(k, n, c, d)
            counts = exact_counts(transition_matrix("sym", k, eta), n)
            args_ = (model, counts, lam, rounds)
            t_group, (lin, ex, pll) = best_of(lambda a=args_: group_run(*a), repeats)
            worst = max(worst, t_group)
            if n != n_full:
                print(f"{lam:8.0e} {n:8d} {t_group:10.4f} {'-':>13} {'-':>8} {'-':>10}")
                continue
            labels = np.concatenate([np.repeat(np.arange(k), row) for row in counts])
            true = np.repeat(np.arange(k), n)
            start = time.perf_counter()
            factor = factorize(gram=model.gram())
            full = self_distill(labels, k, lam, rounds, factor=factor, tol=1e-11)
            student = train_pll(full.solutions[0], lam, factor=factor, tol=1e-11)
            t_full = time.perf_counter() - start
            diff = max(
                np.abs(full.outputs - ex.outputs[:, true, labels].transpose(0, 2, 1)).max(),
                np.abs(student.outputs - pll[1].outputs[0][true, labels].T).max(),
            )
            ratio = t_full / t_group
            print(f"{lam:8.0e} {n:8d} {t_group:10.4f} {t_full:13.4f} {ratio:8.1f}x {diff:10.2e}")
    verdict = "OK" if worst <= 0.5 else "OVER BUDGET"
    print(f"worst group-level time {worst:.4f} s vs budget 0.5 s: {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
