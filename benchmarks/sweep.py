"""Benchmark: sweep throughput (configs per second) at N = 400, serial vs local processes.

Runs the same small grid into fresh temporary directories: serially with numpy's default
multi-threaded BLAS, serially with one BLAS thread (the baseline, measured in this run) and with a
``ProcessPoolExecutor`` of ``--workers`` single-BLAS-thread processes; prints configs/s and the
ratios to the baseline. Usage::

    python benchmarks/sweep.py [--configs 8] [--workers 2] [--seeds 1] [--rounds 2]

Each config: K = 4 classes x n = 100 points (N = 400), Gaussian mixture with p = 800, exact-count
symmetric noise, teacher + ``--rounds`` SD rounds, ``--seeds`` trials.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfdistill_cli import ArgumentParser, int_in
from simulations.sweep import parse_spec, run_sweep  # noqa: E402


def _spec(n_configs: int, seeds: int, rounds: int):
    etas = [round(0.05 + 0.4 * i / max(n_configs - 1, 1), 6) for i in range(n_configs)]
    return parse_spec(
        {
            "sweep": {"trials": seeds, "name": "bench"},
            "grid": {"K": 4, "n": 100, "p": 800, "eta": etas, "rounds": rounds, "lam": 1e-3},
        }
    )


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int_in(1, 10**4), default=8)
    parser.add_argument("--workers", type=int_in(1, 1024), default=2)
    parser.add_argument("--seeds", type=int_in(1, 10**4), default=1)
    parser.add_argument("--rounds", type=int_in(0, 100), default=2)
    args = parser.parse_args(argv)
    spec = _spec(args.configs, args.seeds, args.rounds)
    n = len(spec.configs)
    print(
        f"sweep benchmark: {n} configs x {args.seeds} seeds, N = 400, p = 800, "
        f"rounds = {args.rounds}, cpu_count = {os.cpu_count()}"
    )
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = (
            ("serial-blas", 1, None),  # serial, BLAS left multi-threaded (numpy default)
            ("serial", 1, 1),  # the baseline: serial, one BLAS thread (run_sweep default)
            (f"processes({args.workers})", args.workers, 1),
        )
        for label, workers, blas in runs:
            start = time.perf_counter()
            res = run_sweep(spec, Path(tmp) / label, workers=workers, quiet=True, blas_threads=blas)
            seconds = time.perf_counter() - start
            assert res.completed == n and not res.failed
            rates[label] = n / seconds
            print(f"  {label:<14} {seconds:7.2f} s  {rates[label]:6.2f} configs/s")
    base, par = rates["serial"], rates[f"processes({args.workers})"]
    print(f"  speed-up of processes vs serial baseline: {par / base:.2f}x")
    print(f"  serial with multi-threaded BLAS vs baseline: {rates['serial-blas'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
