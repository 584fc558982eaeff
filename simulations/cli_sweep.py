"""``python -m simulations sweep SPEC.toml --out DIR`` — resumable Monte Carlo grid.

The spec is read and every config validated before any work starts (exit status 2 with a one-line
message otherwise: bad spec, a grid above ``--max-grid-points``, ``--out`` a file or not writable,
``--out`` holding another grid without ``--extend``, an unreachable ``--scheduler``, a sweep whose
memory or time estimate exceeds the limit). ``--workers`` is capped at the usable cores unless
``--allow-oversubscribe``. Re-running the same command resumes: finished configs are skipped,
damaged result files (and a damaged ``sweep.json``) are redone or rebuilt. Exit status 0 when every
config finished, 1 when some failed (listed in ``DIR/errors.json``), 2 for bad input or a file that
could not be written (one line; finished configs are kept).
"""

from __future__ import annotations

import argparse
import sys

from selfdistill_cli import ArgumentParser
from selfdistill_cli.limits import parse_max_time
from simulations.memory import parse_max_memory
from simulations.runtime import DEFAULT_SWEEP_MAX_SECONDS
from simulations.sweep import MAX_GRID_POINTS, SCHEDULER_TIMEOUT, load_spec, run_sweep

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m simulations sweep",
        description="Run (or resume) a Monte Carlo sweep described by a TOML spec.",
    )
    parser.add_argument("spec", help="TOML spec file with [sweep] and [grid] sections")
    parser.add_argument("--out", required=True, help="output directory (created; resumable)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: the usable cores, i.e. the CPU affinity and "
        "cgroup quota; 1 = serial in this process). A larger number is capped at the usable "
        "cores, with a note, unless --allow-oversubscribe",
    )
    parser.add_argument(
        "--allow-oversubscribe",
        action="store_true",
        help="start --workers processes even beyond the usable cores (still bounded by the "
        "number of configs and the memory check)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask distributed scheduler address, e.g. tcp://127.0.0.1:8786",
    )
    parser.add_argument(
        "--scheduler-timeout",
        type=float,
        default=SCHEDULER_TIMEOUT,
        metavar="SECONDS",
        help="give up on an unreachable --scheduler after this many seconds",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="run at most this many pending configs now"
    )
    parser.add_argument(
        "--extend",
        action="store_true",
        help="allow an --out directory holding another grid: add this spec's configs to it",
    )
    parser.add_argument(
        "--max-memory",
        type=float,
        default=None,
        metavar="GB",
        help="refuse sweeps estimated above this many GB (default: the memory available now)",
    )
    parser.add_argument(
        "--max-time",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"refuse sweeps estimated to take longer with their workers (default "
        f"{DEFAULT_SWEEP_MAX_SECONDS:g} s, a day)",
    )
    parser.add_argument(
        "--max-grid-points",
        type=int,
        default=MAX_GRID_POINTS,
        metavar="N",
        help="refuse specs whose [grid] has more points, before building them",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return parser


def main(argv=None) -> int:
    """Entry point; returns the exit status (0 ok, 1 some configs failed, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help / usage errors; keep main() -> int
        return int(exc.code or 0)
    try:
        if args.max_grid_points < 1:
            raise ValueError(f"--max-grid-points must be >= 1, got {args.max_grid_points}")
        if str(args.out).strip() == "":
            raise ValueError("--out must name a folder, got an empty string")
        max_time = parse_max_time(args.max_time)
        spec = load_spec(args.spec, max_grid_points=args.max_grid_points)
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be an integer >= 1, got {args.workers}")
        if args.limit is not None and args.limit < 0:
            raise ValueError(f"--limit must be an integer >= 0, got {args.limit}")
        if not 0 < args.scheduler_timeout <= 3600:  # also NaN; an hour is the longest wait
            raise ValueError(
                f"--scheduler-timeout must lie in (0, 3600] seconds, got {args.scheduler_timeout}"
            )
        result = run_sweep(
            spec,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            limit=args.limit,
            quiet=args.quiet,
            extend=args.extend,
            max_memory=parse_max_memory(args.max_memory),
            scheduler_timeout=args.scheduler_timeout,
            max_time=max_time,
            allow_oversubscribe=args.allow_oversubscribe,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the disk filled up while writing a result
        print(
            f"error: {' '.join(str(exc).split())}; finished configs are kept, run the same "
            "command again to resume",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted: finished configs are kept; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    dup = f" ({spec.duplicate_note()})" if spec.duplicates else ""
    print(
        f"{result.total} configs{dup}: {result.skipped} already done, {result.completed} run, "
        f"{len(result.failed)} failed; results in {args.out}/results.csv and summary.csv"
    )
    return 1 if result.failed else 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
