"""Command line of the interactive regime explorer: ``python -m figures explore``.

Parses the options, checks the starting point and opens the window of
:class:`figures.explorer.ExplorerApp` (or renders one frame of it to a file and exits).

Options: ``--backend NAME`` (any matplotlib backend), ``--snapshot PATH`` (alias ``--out``: render
one frame to PNG and exit, Agg by default), ``--preset NAME``, ``--set key=value`` (repeatable),
``--seed`` / ``--trials`` / ``--dim`` (Monte Carlo), ``--simulate`` (with ``--snapshot``: run the
Monte Carlo to completion before saving).

The starting point is checked before any window opens: an invalid value or combination, ``K`` above
:data:`MAX_CLASSES`, a Monte Carlo that does not fit in memory, a snapshot path that cannot be
written or whose extension matplotlib cannot save, an unknown or unavailable backend each stop
with one line ``error: ...`` and exit status 2.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

from figures.explorer import NON_INTERACTIVE, ExplorerApp
from figures.explorer_model import (
    DEFAULT_PARAMS,
    PRESETS,
    MonteCarloRun,
    compute_state,
    normalise_params,
)
from selfdistill_cli import ArgumentParser, nonempty_path

__all__ = [
    "MAX_CLASSES",
    "SET_ALIASES",
    "build_parser",
    "check_snapshot",
    "check_start",
    "main",
    "parse_assignments",
    "set_names",
]

#: Largest K accepted from the command line. Every slider move recomputes the group theory, whose
#: K^2 x K^2 Newton systems grow like K^4 in memory and K^6 in time: measured 0.1 s at K = 10,
#: 0.8 s at K = 20, 2.9 s at K = 30, 10 s at K = 40 (2-core machine); at K = 200 they would need
#: tens of GB. Beyond 30 the window is no longer interactive.
MAX_CLASSES = 30


#: ``--set`` names as the README writes them -> the explorer's parameter names.
SET_ALIASES = {"K": "n_classes", "n": "per_class", "R": "rounds", "p": "dim", "N/p": "n_over_p"}


def set_names() -> list[str]:
    """The names ``--set`` accepts, as the README writes them (K, n, c, d, lam, ..., N/p)."""
    readme = {v: k for k, v in SET_ALIASES.items() if k != "R"}  # rounds keeps its own name
    return [readme.get(name, name) for name in DEFAULT_PARAMS]


def parse_assignments(items) -> dict:
    """``['K=5', 'lam=1e-2', 'noise=pair']`` -> parameter dict (aliases K, n; numbers parsed)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        given = key.strip()
        key = SET_ALIASES.get(given, given)
        if key not in DEFAULT_PARAMS:
            raise ValueError(
                f"unknown parameter {given!r} for --set; valid: {', '.join(set_names())}"
            )
        value = value.strip()
        if key != "noise":
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key} must be a number, got {value!r}") from None
        out[key] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = ArgumentParser(
        prog="python -m figures explore", description="Interactive regime explorer."
    )
    ap.add_argument("--backend", help="matplotlib backend (e.g. TkAgg, QtAgg, MacOSX)")
    ap.add_argument(
        "--snapshot",
        "--out",
        dest="snapshot",
        type=nonempty_path,
        metavar="PATH",
        help="render one frame to PNG and exit (Agg unless --backend)",
    )
    ap.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="named starting point: default; sd-fixes-noise (SD needs several rounds); "
        "pair-noise (the PLL student ties); plurality-fails (no round reaches 100%%)",
    )
    ap.add_argument(
        "--set",
        dest="assign",
        action="append",
        metavar="KEY=VALUE",
        help="parameter, e.g. --set K=5 --set lam=1e-2 --set noise=pair; names: "
        + ", ".join(set_names()),
    )
    ap.add_argument(
        "--seed", type=int, help=f"Monte Carlo base seed (default: {DEFAULT_PARAMS['seed']})"
    )
    ap.add_argument(
        "--trials", type=int, help=f"Monte Carlo trials (default: {DEFAULT_PARAMS['trials']})"
    )
    ap.add_argument(
        "--dim",
        type=int,
        help=f"Monte Carlo feature dimension p when N/p = 0 (default: {DEFAULT_PARAMS['dim']})",
    )
    ap.add_argument(
        "--simulate", action="store_true", help="with --snapshot: run the Monte Carlo before saving"
    )
    return ap


#: Tried in order when no --backend is given and the current backend cannot open a window
#: (e.g. another module switched to Agg on import); the first that loads is used.
INTERACTIVE_CANDIDATES = ("QtAgg", "TkAgg", "GTK4Agg", "GTK3Agg", "WXAgg", "MacOSX")


def _choose_interactive_backend() -> None:
    """Keep an interactive backend, or switch to the first candidate that loads (else stay)."""
    import os

    import matplotlib
    import matplotlib.pyplot as plt

    if os.environ.get("MPLBACKEND") or matplotlib.get_backend().lower() not in NON_INTERACTIVE:
        return
    for name in INTERACTIVE_CANDIDATES:
        try:
            plt.switch_backend(name)
            return
        except (ImportError, RuntimeError, ValueError):  # not installed, or headless machine
            continue


def check_start(params: dict, simulate: bool = False, max_memory=None) -> dict:
    """Validate a command-line starting point; the normalised parameters or ``ValueError``.

    Checks what the window would otherwise only show as a message (or crash on): types and
    ranges (:func:`~figures.explorer_model.normalise_params`), ``K <= MAX_CLASSES``, the theory's
    own validity (e.g. a PSD Gram matrix) and, with ``simulate``, the Monte Carlo's memory.
    """
    from simulations.memory import check_memory, trial_bytes

    p = normalise_params(params)
    if not 2 <= p["n_classes"] <= MAX_CLASSES:
        raise ValueError(
            f"K (n_classes) must lie in [2, {MAX_CLASSES}] in the explorer (its theory is "
            f"recomputed on every move and grows like K^4), got {p['n_classes']}"
        )
    state = compute_state(p)
    if not state.ok:
        raise ValueError(" ".join(str(state.error).split()))
    if simulate:
        from selfdistill_cli.limits import check_time
        from simulations.runtime import DEFAULT_MAX_SECONDS, trial_seconds

        run = MonteCarloRun(p)
        need = max(trial_bytes(c) for c in run.configs.values())
        check_memory(need, "the Monte Carlo (one trial)", max_memory, option=None)
        seconds = run.total * sum(trial_seconds(c) for c in run.configs.values())
        what = f"the Monte Carlo ({run.total} trials; reduce --trials)"
        check_time(seconds, what, DEFAULT_MAX_SECONDS, None)
    return p


def check_snapshot(path) -> Path:
    """The snapshot path if matplotlib writes its format and its folder is writable (ValueError)."""
    from matplotlib.backend_bases import FigureCanvasBase

    from simulations.outdir import check_out_dir

    out = Path(path)
    formats = FigureCanvasBase.get_supported_filetypes()
    ext = out.suffix.lower().lstrip(".")
    if ext not in formats:
        got = f"'.{ext}'" if ext else "no extension"
        raise ValueError(
            f"--snapshot {str(out)!r}: {got} is not an image format matplotlib writes; use one "
            f"of {', '.join('.' + f for f in sorted(formats))}"
        )
    if out.is_dir():
        raise ValueError(f"--snapshot {str(out)!r} is a directory; give a file name")
    check_out_dir(out.parent, "--snapshot folder")
    return out


def _use_backend(name: str) -> None:
    """Select and load matplotlib backend ``name``, or ``ValueError`` (one line)."""
    import matplotlib
    import matplotlib.pyplot as plt

    try:
        matplotlib.use(name)
        plt.switch_backend(name)  # imports the toolkit now, so a missing one fails here
    except (ValueError, ImportError, RuntimeError) as exc:
        if isinstance(exc, ValueError) and "is not a valid value for backend" in str(exc):
            raise ValueError(
                f"--backend {name!r} is not a matplotlib backend; e.g. TkAgg, QtAgg, GTK4Agg, "
                "MacOSX, or Agg with --snapshot"
            ) from None
        raise ValueError(
            f"--backend {name!r} cannot be used here: {' '.join(str(exc).split())}"
        ) from None


def main(argv=None) -> int:
    """Entry point of ``python -m figures explore``; returns an exit code."""
    args = build_parser().parse_args(argv)
    try:
        params = dict(PRESETS[args.preset]) | parse_assignments(args.assign)
        for name in ("seed", "trials", "dim"):
            if getattr(args, name) is not None:
                params[name] = getattr(args, name)
        if args.simulate and not args.snapshot:
            raise ValueError("--simulate renders a snapshot: pass --snapshot PATH too")
        params = check_start(params, simulate=args.simulate)
        snapshot = check_snapshot(args.snapshot) if args.snapshot else None
        if args.backend:
            _use_backend(args.backend)
        elif snapshot is not None:
            _use_backend("Agg")
        else:
            _choose_interactive_backend()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import matplotlib
    import matplotlib.pyplot as plt

    if snapshot is None and matplotlib.get_backend().lower() in NON_INTERACTIVE:
        print(
            f"error: backend {matplotlib.get_backend()!r} cannot open a window; pass --backend "
            "(e.g. TkAgg or QtAgg) or use --snapshot PATH",
            file=sys.stderr,
        )
        return 2
    app = ExplorerApp(params)
    if snapshot is not None:
        app.compute_exact_now()  # a snapshot shows the exact finite-ratio theory when affordable
        if args.simulate:
            app.start_simulation(blocking=True)
        try:  # rendered in memory, written atomically (selfdistill_cli.files)
            app.save(snapshot, dpi=100)
        except OSError as exc:  # checked above; e.g. the disk filled up meanwhile
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            plt.close(app.fig)
        print(snapshot)
        return 0
    # This process only runs the window: move the objects built so far (matplotlib's, the
    # window's) out of the garbage collector's reach, so that a collection during a drag scans
    # only what the moves allocate (full collections of the window cost 13-56 ms, landing on a
    # random slider move; measured by benchmarks.explorer --drag).
    gc.collect()
    gc.freeze()
    plt.show()
    return 0


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
