"""``python -m figures``: regenerate every figure (PNG and CSV; the PDF too, except in quick).

Usage::

    python -m figures [--preset quick|paper|tiny] [--out DIR] [--only NAME[,NAME...]] [--seed S]
                      [--workers W] [--gallery [DIR]] [--quiet]
    python -m figures explore [...]          # interactive explorer (figures.explorer_cli)

``--out`` defaults to ``./selfdistill-figures`` relative to the working directory (a name that can
never shadow a Python package) and is checked for writability before any work. ``--preset quick``
(default) produces all figures in well under 3 minutes on 2 cores; ``paper`` uses more trials,
finer grids and larger dimensions; ``tiny`` is the smallest problem each figure accepts (seconds
for all of them; what the smoke tests run, not a figure to read). ``--gallery`` additionally
writes small PNGs for the README (default ``docs/gallery``, see :mod:`figures.gallery`). Progress
goes to stderr: one line per figure, and on a terminal a progress bar with an ETA weighted by
each figure's measured cost (:data:`COST`); ``--quiet`` keeps only errors. A figure whose
theory-vs-simulation check fails stops the run with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

from figures import FIGURES
from figures.common import DEFAULT_OUT_NAME, default_out, log, set_quiet
from selfdistill_cli import ArgumentParser, nonempty_path, progress
from selfdistill_cli.limits import cap_workers, usable_cores
from simulations.outdir import check_out_dir
from theory.blas import single_thread_blas

#: Presets every figure understands ('tiny' is for smoke tests).
PRESETS = ("quick", "paper", "tiny")
#: What each preset is (the --preset help).
PRESET_HELP = (
    "quick: every figure in about half a minute of CPU on 2 idle cores; paper: publication "
    "quality (more trials, finer grids, larger p; minutes per figure); tiny: the smallest "
    "problems, for smoke tests"
)
#: Relative cost of each figure (CPU seconds of the quick preset on the 2-core development machine,
#: rounded): weights of the runner's progress bar, so that its ETA is not a count of figures.
COST = {
    "label_averaging": 1,
    "spectrum": 1,
    "exact_vs_linear": 1,
    "sd_vs_pll": 3,
    "phase_diagram": 4,
    "finite_dimension": 3,
    "sd_generalization": 3,
    "finite_phase": 2,
    "real_gain": 3,
    "pll_real": 2,
    "pll_conditions": 3,
}


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m figures",
        description="Regenerate every figure of selfdistill-lab (theory and simulation).",
        epilog="Sub-command: 'python -m figures explore [...]' starts the explorer.",
    )
    parser.add_argument("--preset", choices=PRESETS, default="quick", help=PRESET_HELP)
    parser.add_argument(
        "--out",
        type=nonempty_path,
        default=None,
        help=f"output directory (default ./{DEFAULT_OUT_NAME})",
    )
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of: {', '.join(FIGURES)}"
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (>= 0)")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes for Monte Carlo trials (default: min(2, usable cores); capped at the "
        "usable cores, i.e. the CPU affinity and cgroup quota, with a note)",
    )
    parser.add_argument(
        "--gallery",
        nargs="?",
        const="docs/gallery",
        default=None,
        metavar="DIR",
        help="also write small README PNGs (default docs/gallery)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr (errors only)")
    return parser


def _select(only: str | None, parser) -> list[str]:
    if only is None:
        return list(FIGURES)
    names = [x.strip() for x in only.split(",") if x.strip()]
    unknown = [x for x in names if x not in FIGURES]
    if unknown or not names:
        parser.error(f"--only must name figures among {', '.join(FIGURES)}; got {only!r}")
    return names


def run_figure(name: str, *, preset: str, out, seed: int, workers: int) -> int:
    """Produce figure ``name`` with the runner's options: its ``run(...)``, one BLAS thread.

    Parameters
    ----------
    name : str
        A figure among :data:`figures.FIGURES`.
    preset, out, seed, workers
        As for every figure's ``run(...)`` (``python -m figures.<name>``'s options), already
        checked by the caller (``out`` writable, ``workers`` capped at the usable cores).

    Returns
    -------
    int
        The figure's exit status (0 on success).
    """
    module = importlib.import_module(f"figures.{name}")
    with single_thread_blas():  # small problems: threads only add overhead (common.py)
        status = module.run(preset=preset, out=out, seed=seed, workers=workers)
    return int(status or 0)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "explore":
        explorer = importlib.import_module("figures.explorer_cli")  # lazy: optional dependencies
        return int(explorer.main(argv[1:]) or 0)
    parser = _parser()
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if args.workers is None:
        args.workers = max(1, min(2, usable_cores()))
    elif args.workers < 1:
        parser.error("--workers must be >= 1")
    else:  # the Monte Carlo pools never start more processes than usable cores
        args.workers = cap_workers(args.workers, override=None)
    args.out = Path(args.out) if args.out is not None else default_out()
    names = _select(args.only, parser)
    try:
        check_out_dir(args.out)
        if args.gallery is not None:  # before any figure is computed, not after all of them
            check_out_dir(args.gallery, "--gallery")
    except ValueError as exc:
        parser.error(str(exc))
    if args.quiet:  # the figures' own progress bars and lines too
        os.environ[progress.ENV] = "0"
        set_quiet(True)
    log(f"figures: preset={args.preset}, seed={args.seed}, out={args.out}, {len(names)} figure(s)")
    start = time.perf_counter()
    timings = {}
    bar = progress.progress_bar(
        total=sum(COST.get(n, 1) for n in names),
        desc="figures",
        quiet=args.quiet,
        leave=True,
        # the total is weighted cost, not a count: show the share done and the times only
        bar_format="{desc}{percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
    )
    for i, name in enumerate(names, 1):
        log(f"[{i}/{len(names)}] {name} ...")
        bar.set_description(f"figures ({name})")
        t0 = time.perf_counter()
        status = run_figure(
            name, preset=args.preset, out=args.out, seed=args.seed, workers=args.workers
        )
        if status:
            bar.close()
            log(f"[{i}/{len(names)}] {name} FAILED with status {status}", force=True)
            return int(status)
        timings[name] = time.perf_counter() - t0
        bar.update(COST.get(name, 1))
        log(f"[{i}/{len(names)}] {name} done in {timings[name]:.1f} s")
    bar.close()
    if args.gallery is not None:
        from figures.gallery import make_gallery

        paths = make_gallery(args.out, args.gallery, names)
        log(f"gallery: wrote {len(paths)} PNG(s) to {args.gallery}")
    log(f"figures: all done in {time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    raise SystemExit(run_cli(main))
