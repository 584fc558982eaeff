"""The ``selfdistill`` console script: one command with the toolkit's command lines as sub-commands.

Usage::

    selfdistill predict [options]    # = python -m theory predict
    selfdistill run [options]        # = python -m simulations run
    selfdistill probe [options]      # = python -m simulations probe
    selfdistill sweep SPEC [options] # = python -m simulations sweep
    selfdistill figures [options]    # = python -m figures
    selfdistill explore [options]    # = python -m figures explore

Each sub-command runs the same ``main(argv)`` as its ``python -m`` form, with the same arguments,
so its output, files and exit status are identical; only the name in its usage and ``--help``
reads ``selfdistill <command>`` (:func:`selfdistill_cli.prog_alias`). ``selfdistill --help``
lists the commands; a missing or unknown command is one line ``error: ...`` and exit status 2,
like every other usage error of the project. ``python -m selfdistill_cli`` is the same command
without installing the script (``[project.scripts]`` in ``pyproject.toml`` installs it).

The command modules are imported only when their command runs: ``selfdistill --help`` starts
without numpy, and the figures' plotting stack loads only for ``figures`` and ``explore``.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import NamedTuple

from selfdistill_cli import prog_alias, run_cli

__all__ = ["COMMANDS", "Command", "entry_point", "help_text", "main"]

#: Name of the console script (``[project.scripts]``).
PROG = "selfdistill"


class Command(NamedTuple):
    """One sub-command of ``selfdistill``: where its ``main(argv)`` lives and how it is called.

    Attributes
    ----------
    module : str
        The module whose ``main(argv)`` runs (the one ``python -m`` runs).
    prefix : tuple of str
        Arguments put before the user's (``("run",)`` for ``python -m simulations run``).
    progs : dict
        Parser name the command uses (``prog=``) -> the name shown under ``selfdistill``.
    summary : str
        The line ``selfdistill --help`` shows.
    same_as : str
        The equivalent ``python -m`` command.
    """

    module: str
    prefix: tuple[str, ...]
    progs: dict
    summary: str
    same_as: str


COMMANDS: dict[str, Command] = {
    "predict": Command(
        "selfdistill_cli.predict",
        ("predict",),
        # The theory parser's sub-command is named after its parent: "selfdistill predict".
        {"python -m theory": PROG},
        "block-model theory per round: accuracies, PLL students, conditions",
        "python -m theory predict",
    ),
    "run": Command(
        "simulations.__main__",
        ("run",),
        {"python -m simulations run": f"{PROG} run"},
        "Monte Carlo of one configuration, per-round accuracies with theory alongside",
        "python -m simulations run",
    ),
    "probe": Command(
        "simulations.__main__",
        ("probe",),
        {"python -m simulations probe": f"{PROG} probe"},
        "SD and PLL on real (or the bundled digits) features",
        "python -m simulations probe",
    ),
    "sweep": Command(
        "simulations.__main__",
        ("sweep",),
        {"python -m simulations sweep": f"{PROG} sweep"},
        "Monte Carlo grid from a TOML spec, resumable",
        "python -m simulations sweep",
    ),
    "figures": Command(
        "figures.__main__",
        (),
        {
            "python -m figures": f"{PROG} figures",
            "python -m figures explore": f"{PROG} figures explore",
        },
        "regenerate every figure (PNG and the CSV of its data; PDF with --preset paper)",
        "python -m figures",
    ),
    "explore": Command(
        "figures.__main__",
        ("explore",),
        {"python -m figures explore": f"{PROG} explore"},
        "interactive regime explorer (theory, and Monte Carlo on demand)",
        "python -m figures explore",
    ),
}


def help_text() -> str:
    """What ``selfdistill --help`` prints: usage, one line per command, where to read more.

    Returns
    -------
    str
        The text, without a final newline.
    """
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: {PROG} <command> [options]",
        "",
        "Self-distillation as label averaging: theory, Monte Carlo and figures. Each command is",
        "its 'python -m' form under one name (same options, output and exit status).",
        "",
        "commands:",
        *(f"  {name:<{width}}  {cmd.summary}" for name, cmd in COMMANDS.items()),
        "",
        f"'{PROG} <command> --help' shows a command's options.",
    ]
    return "\n".join(lines)


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Run ``selfdistill <command> [options]``: the command's own ``main(argv)``.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The command's exit status (0 for ``--help``; 2 for a missing or unknown command). Like
        every ``main`` of the project, a command's ``--help`` or argparse usage error raises
        ``SystemExit``; :func:`entry_point` turns it into the process's status.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(COMMANDS)
    if argv[:1] in (["-h"], ["--help"]):
        print(help_text())
        return 0
    if not argv:
        return _usage_error(f"a command is required, one of: {names} ('{PROG} --help')")
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        return _usage_error(f"unknown command {name!r}; choose from: {names} ('{PROG} --help')")
    command = COMMANDS[name]
    module = importlib.import_module(command.module)  # lazy: see the module docstring
    with contextlib.ExitStack() as names_shown:
        for prog, alias in command.progs.items():
            names_shown.enter_context(prog_alias(prog, alias))
        return int(module.main([*command.prefix, *rest]) or 0)


def entry_point() -> int:
    """The console script: :func:`main` on ``sys.argv[1:]`` through :func:`run_cli` (a closed
    pipe or a full disk ends the command with one line, as for ``python -m``)."""
    return run_cli(main)
