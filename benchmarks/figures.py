"""Benchmark: CPU seconds and wall time of every figure, as ``python -m figures`` produces them.

Runs the figure runner's own steps in this process, one figure after the other (same arguments
as ``python -m figures --preset P``: ``--workers`` defaults to ``min(2, CPUs)``, single-threaded
BLAS), into a temporary directory, and prints per figure

* ``cpu_s``  CPU seconds of this process *and* of its finished child processes (the Monte Carlo
  worker pools end with each figure and are waited for, so ``resource.getrusage(RUSAGE_CHILDREN)``
  counts them), user + system;
* ``wall_s`` elapsed time.

The first line is the one-time start-up (importing numpy, scipy, matplotlib and the toolkit),
which ``python -m figures`` pays once. Budgets (issue 24): the quick preset in at most 45 s of CPU,
``pll_conditions`` at most 15 s. On a shared machine wall time depends on the load; CPU seconds
much less (read the ratio CPU / wall to see how much of the run was waiting).

Usage (from the repository root)::

    python -m benchmarks.figures [--preset quick|paper|tiny] [--only NAME,...] [--workers W]
                                 [--seed S] [--json] [--out DIR] [--repeat N]

``--json`` prints one JSON object: ``{"preset": ..., "figures": {name: {"cpu_s", "wall_s"}},
"startup": {...}, "total": {...}, "budget": {...}}``.

``--repeat N`` (N >= 2) runs the benchmark N times, one after the other, each in a fresh Python
process (as ``python -m figures`` would: nothing imported or cached by an earlier run), and prints
the median of every number with the range of the totals; with ``--json`` the object has the
medians as above plus ``"runs"``, the N runs' objects. The machine's speed drifts by 10-15% within
a day: compare two versions of the code by runs interleaved in the same hour, as ratios.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from selfdistill_cli import ArgumentParser, int_in, nonempty_path
from selfdistill_cli.limits import cap_workers, usable_cores


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its waited-for descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


#: Issue 24's budgets for the quick preset (CPU seconds).
BUDGETS = {"quick": {"total": 45.0, "pll_conditions": 15.0}}


def run(preset: str, names, workers: int, seed: int, out_dir) -> dict:
    """Time every figure in ``names``; returns ``{name: {"cpu_s", "wall_s"}}``."""
    from figures.__main__ import run_figure

    out = {}
    for name in names:
        cpu0, wall0 = _cpu(), time.perf_counter()
        status = run_figure(name, preset=preset, out=out_dir, seed=seed, workers=workers)
        if status:
            raise RuntimeError(f"figure {name} failed with status {status}")
        out[name] = {"cpu_s": _cpu() - cpu0, "wall_s": time.perf_counter() - wall0}
        print(
            f"  {name}: {out[name]['cpu_s']:.1f} s CPU, {out[name]['wall_s']:.1f} s wall",
            file=sys.stderr,
            flush=True,
        )
    return out


def repeat(argv: list[str], n: int) -> dict:
    """Run ``python -m benchmarks.figures ARGV --json`` ``n`` times in fresh processes; the medians.

    Returns the object of one run (:func:`main`'s ``--json``) with every ``cpu_s`` / ``wall_s``
    replaced by its median over the runs, plus ``"runs"`` (the ``n`` objects) and
    ``"total_range"`` (``{"cpu_s": [min, max], "wall_s": [min, max]}``).
    """
    runs = []
    for i in range(n):
        print(f"  run {i + 1}/{n} ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.figures", *argv, "--json"],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"run {i + 1} failed with status {proc.returncode}:\n{tail}")
        runs.append(json.loads(proc.stdout))

    def med(get):
        return {key: statistics.median(get(r)[key] for r in runs) for key in ("cpu_s", "wall_s")}

    out = dict(runs[0])
    out["startup"] = med(lambda r: r["startup"])
    out["figures"] = {name: med(lambda r, n=name: r["figures"][n]) for name in runs[0]["figures"]}
    out["total"] = med(lambda r: r["total"])
    out["total_range"] = {
        key: [min(r["total"][key] for r in runs), max(r["total"][key] for r in runs)]
        for key in ("cpu_s", "wall_s")
    }
    out["runs"] = runs
    return out


def report(result: dict, complete: bool) -> None:
    """Print ``result`` (one run's object or :func:`repeat`'s medians) as a table."""
    budget = result["budget"]
    startup, per, total = result["startup"], result["figures"], result["total"]
    runs = len(result.get("runs", [])) or 1
    what = f"median of {runs} runs" if runs > 1 else "one run"
    print(
        f"figures, preset {result['preset']}, workers {result['workers']}, "
        f"{result['cpu_count']} CPUs ({what})"
    )
    print(f"{'figure':<20} {'CPU s':>8} {'wall s':>8}")
    print(f"{'(start-up)':<20} {startup['cpu_s']:>8.1f} {startup['wall_s']:>8.1f}")
    for name, v in per.items():
        mark = ""
        if name in budget:
            mark = "  ok" if v["cpu_s"] <= budget[name] else f"  OVER {budget[name]:g} s"
        print(f"{name:<20} {v['cpu_s']:>8.1f} {v['wall_s']:>8.1f}{mark}")
    mark = ""
    if "total" in budget and complete:
        mark = "  ok" if total["cpu_s"] <= budget["total"] else f"  OVER {budget['total']:g} s"
    print(f"{'total':<20} {total['cpu_s']:>8.1f} {total['wall_s']:>8.1f}{mark}")
    if runs > 1:
        lo, hi = result["total_range"]["cpu_s"]
        wlo, whi = result["total_range"]["wall_s"]
        print(f"{'(range of totals)':<20} {f'{lo:.1f}-{hi:.1f}':>8} {f'{wlo:.1f}-{whi:.1f}':>8}")


def main(argv=None) -> int:
    ap = ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=("quick", "paper", "tiny"), default="quick")
    ap.add_argument("--only", default=None, help="comma-separated figure names (default: all)")
    ap.add_argument(
        "--workers",
        type=int_in(1, 10**4),
        default=None,
        help="default min(2, usable cores); capped at the usable cores, with a note",
    )
    ap.add_argument("--seed", type=int_in(0, 2**32 - 1), default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--out",
        type=nonempty_path,
        default=None,
        help="keep the figures in this folder (default: a temporary one)",
    )
    ap.add_argument(
        "--repeat",
        type=int_in(1, 100),
        default=1,
        help="run N times, each in a fresh process, and report the medians (default 1)",
    )
    args = ap.parse_args(argv)
    import figures  # the lazy public API: the figure names only

    if args.only:
        bad = [x.strip() for x in args.only.split(",") if x.strip() not in figures.FIGURES]
        if bad or not args.only.strip(", "):
            ap.error(f"--only: unknown figure(s) {bad}; valid: {', '.join(figures.FIGURES)}")
    if args.repeat > 1 and args.out is not None:
        ap.error("--repeat runs in temporary folders: leave out --out")
    if args.repeat > 1:  # the same options for every run, in a fresh process each
        child = ["--preset", args.preset, "--seed", str(args.seed)]
        child += ["--only", args.only] if args.only else []
        child += ["--workers", str(args.workers)] if args.workers is not None else []
        result = repeat(child, args.repeat)
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            report(result, complete=not args.only)
        return 0
    if args.out is not None:  # before any figure is computed, not after all of them
        from simulations.outdir import check_out_dir

        try:
            check_out_dir(args.out)
        except ValueError as exc:
            ap.error(str(exc))
    cpu0, wall0 = _cpu(), time.perf_counter()
    import matplotlib

    matplotlib.use("Agg")
    import figures.__main__  # noqa: F401  (the runner and, through it, numpy/scipy/matplotlib)
    from figures import style  # noqa: F401

    startup = {"cpu_s": _cpu() - cpu0, "wall_s": time.perf_counter() - wall0}
    names = list(figures.FIGURES)
    if args.only:
        names = [x.strip() for x in args.only.split(",") if x.strip()]
    if args.workers is None:
        workers = max(1, min(2, usable_cores()))
    else:  # the Monte Carlo pools never start more processes than usable cores
        workers = cap_workers(args.workers, override=None)
    if args.out is not None:
        per = run(args.preset, names, workers, args.seed, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            per = run(args.preset, names, workers, args.seed, tmp)
    total = {
        "cpu_s": startup["cpu_s"] + sum(v["cpu_s"] for v in per.values()),
        "wall_s": startup["wall_s"] + sum(v["wall_s"] for v in per.values()),
    }
    budget = dict(BUDGETS.get(args.preset, {}))
    result = {
        "preset": args.preset,
        "workers": workers,
        "cpu_count": os.cpu_count(),
        "startup": startup,
        "figures": per,
        "total": total,
        "budget": budget,
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    report(result, complete=len(names) == len(figures.FIGURES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
