"""``python -m simulations {run,sweep,probe} ...`` — dispatch to the sub-command modules."""

from __future__ import annotations

import importlib
import sys

_COMMANDS = {
    "run": ("simulations.cli_run", "one configuration, per-round accuracies with theory alongside"),
    "sweep": ("simulations.cli_sweep", "Monte Carlo grid from a TOML spec, resumable"),
    "probe": ("simulations.cli_probe", "SD and PLL on real (or bundled digits) features"),
}


def main(argv=None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``); ``--help`` lists the commands (status 0), a
    missing or unknown command is one line ``error: ...`` on stderr (status 2), as everywhere."""
    argv = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(_COMMANDS)
    if argv[:1] in (["-h"], ["--help"]):
        lines = [f"  {name:<6} {doc}" for name, (_, doc) in _COMMANDS.items()]
        print("usage: python -m simulations {run,sweep,probe} [options]\n\n" + "\n".join(lines))
        return 0
    if not argv or argv[0] not in _COMMANDS:
        what = f"unknown command {argv[0]!r}" if argv else "a command is required"
        print(
            f"error: {what}; choose from: {names} ('python -m simulations --help')",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(_COMMANDS[argv[0]][0])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    from selfdistill_cli import run_cli

    sys.exit(run_cli(main))
