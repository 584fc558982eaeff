"""``python -m simulations sweep SPEC.toml --out DIR`` — resumable Monte Carlo grid.

The spec is read and every config validated before any work starts (exit status 2 with a clear
message otherwise). Re-running the same command resumes: finished configs are skipped. Exit status
0 when every config finished, 1 when some failed (listed in ``DIR/errors.json``).
"""

from __future__ import annotations

import argparse
import sys

from simulations.sweep import load_spec, run_sweep

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulations sweep",
        description="Run (or resume) a Monte Carlo sweep described by a TOML spec.",
    )
    parser.add_argument("spec", help="TOML spec file with [sweep] and [grid] sections")
    parser.add_argument("--out", required=True, help="output directory (created; resumable)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local worker processes (default: all cores; 1 = serial in this process)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="Dask distributed scheduler address, e.g. tcp://127.0.0.1:8786",
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="run at most this many pending configs now"
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
        spec = load_spec(args.spec)
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be an integer >= 1, got {args.workers}")
        if args.limit is not None and args.limit < 0:
            raise ValueError(f"--limit must be an integer >= 0, got {args.limit}")
        result = run_sweep(
            spec,
            args.out,
            workers=args.workers,
            scheduler=args.scheduler,
            limit=args.limit,
            quiet=args.quiet,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{result.total} configs: {result.skipped} already done, {result.completed} run, "
        f"{len(result.failed)} failed; results in {args.out}/results.csv and summary.csv"
    )
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
