"""Benchmark: the exact finite-ratio theory (theory.finite_exact), cost and scaling (issue 20).

1. Target: K = 10 with 5 rounds (rounds 0..4) in <= 10 s CPU. Symmetric noise eta = 0.5 with
   exact counts, c = 0.4, d = 0.1, n = 20, p = N, lam in {1e-2, 1e-3, 1e-4}, default quadrature.
   Baseline (same run): the exact-SD Monte Carlo that estimates the same accuracies
   (simulations.pipelines.run_trial, every round certified), 16 trials -- the ratio is the
   Monte Carlo's CPU over the theory's, and the largest |theory - Monte Carlo| is printed next
   to the Monte Carlo's standard error.
2. Scaling: CPU seconds over K (3, 4, 10, 20 at lam = 1e-3, 5 rounds) and over the number of
   rounds (1, 3, 5, 9 at K = 10), next to the up-front estimate (exact_resource_estimate).

Run ``python -m benchmarks.finite_exact [--quick] [--json]``. Timings on a shared machine are
noisy; CPU seconds are process time (single-threaded BLAS, as the theory runs).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
_ROOT = os.path.dirname(_HERE)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import numpy as np  # noqa: E402

from selfdistill_cli import ArgumentParser, int_in  # noqa: E402
from simulations.pipelines import TrialConfig, run_trial, trial_seed  # noqa: E402
from theory.finite import MixtureModel  # noqa: E402
from theory.finite_exact import exact_resource_estimate, predict_finite_exact  # noqa: E402
from theory.noise import exact_counts, transition_matrix  # noqa: E402

KEYS = ("train_acc", "train_acc_clean", "train_acc_mislabeled", "pop_acc")
C, D, ETA = 0.4, 0.1, 0.5


def _theory(k, n, p, lam, rounds):
    counts = exact_counts(transition_matrix("sym", k, ETA), n)
    model = MixtureModel(k, n, p, C, D)
    t0 = time.process_time()
    pred = predict_finite_exact(model, counts, lam, rounds)
    cpu = time.process_time() - t0
    est = exact_resource_estimate(model, counts, rounds)["seconds"]
    vals = np.column_stack(
        [pred.train_acc, pred.train_acc_clean, pred.train_acc_mislabeled, pred.population_acc]
    )
    return cpu, est, vals, pred


def _monte_carlo(k, n, p, lam, rounds, trials):
    cfg = TrialConfig(
        n_classes=k,
        per_class=n,
        dim=p,
        c=C,
        d=D,
        eta=ETA,
        lam=lam,
        rounds=rounds,
        noise="sym",
        sampling="exact-count",
        n_test=10,
    )
    t0 = time.process_time()
    vals = np.array(
        [
            [[row[key] for key in KEYS] for row in run_trial(cfg, trial_seed(1, i)).rows]
            for i in range(trials)
        ]
    )
    cpu = time.process_time() - t0
    return cpu, np.nanmean(vals, axis=0), np.nanstd(vals, axis=0, ddof=1) / math.sqrt(trials)


def main(argv=None) -> int:
    ap = ArgumentParser(  # one-line usage errors, defaults in --help
        prog="python -m benchmarks.finite_exact", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--quick", action="store_true", help="one lam, smaller scaling sweep")
    ap.add_argument(
        "--trials",
        type=int_in(2, 10**4),
        default=16,
        help="Monte Carlo trials of the baseline (>= 2: a standard error)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    out = {"target": [], "scaling_k": [], "scaling_rounds": []}
    lams = (1e-3,) if args.quick else (1e-2, 1e-3, 1e-4)
    k, n, rounds = 10, 20, 4
    for lam in lams:
        cpu, est, vals, pred = _theory(k, n, k * n, lam, rounds)
        mc_cpu, mean, se = _monte_carlo(k, n, k * n, lam, rounds, args.trials)
        err = np.abs(vals - mean)
        row = {
            "K": k,
            "rounds": rounds + 1,
            "lam": lam,
            "theory_cpu_s": cpu,
            "estimate_s": est,
            "iterations": pred.iterations.tolist(),
            "mc_cpu_s": mc_cpu,
            "mc_over_theory": mc_cpu / cpu,
            "max_abs_diff": float(np.nanmax(err)),
            "mc_se_at_max": float(se.ravel()[np.nanargmax(err)]),
        }
        out["target"].append(row)
        if not args.json:
            print(
                f"K={k} rounds 0..{rounds} lam={lam:g}: theory {cpu:.2f} s CPU (estimate "
                f"{est:.1f} s, budget 10 s) | MC {args.trials} trials {mc_cpu:.1f} s "
                f"({mc_cpu / cpu:.1f}x) | max |theory - MC| {row['max_abs_diff']:.3f} "
                f"(MC SE there {row['mc_se_at_max']:.3f})",
                flush=True,
            )
    for kk in (3, 4, 10) if args.quick else (3, 4, 10, 20):
        nn = 200 // kk
        cpu, est, _, _ = _theory(kk, nn, kk * nn, 1e-3, rounds)
        out["scaling_k"].append({"K": kk, "cpu_s": cpu, "estimate_s": est})
        if not args.json:
            print(f"scaling in K: K={kk:>2} n={nn:>3} 5 rounds: {cpu:.2f} s CPU (est {est:.1f})")
    for rr in (0, 2) if args.quick else (0, 2, 4, 8):
        cpu, est, _, _ = _theory(10, 20, 200, 1e-3, rr)
        out["scaling_rounds"].append({"rounds": rr + 1, "cpu_s": cpu, "estimate_s": est})
        if not args.json:
            print(f"scaling in rounds: K=10 {rr + 1} rounds: {cpu:.2f} s CPU (est {est:.1f})")
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
