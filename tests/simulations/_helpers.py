"""Sweeps that cannot finish before a test kills them (for the kill-and-resume tests).

A test that kills a running sweep "after some configs" used to race the sweep: on a busy or a
fast machine the sweep could end before the kill, or between two polls. Here the sweep runs with
some configs held back: whatever computes them (the process itself with ``--workers 1``, or its
forked workers) waits for ever before starting them, so the sweep is still running whenever the
test decides to kill it. Held configs write nothing, so every finished result is unchanged.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys

from tests.cli import ROOT, cli_env

#: ``python -c HOLD_BACK KEY... -- ARGV...``: ``python -m simulations ARGV...`` with the configs
#: keyed ``KEY...`` held back (``simulations.sweep.run_config`` looked up at call time).
HOLD_BACK = """
import sys, time
import simulations.sweep as sweep
from simulations.__main__ import main

held = set(sys.argv[1 : sys.argv.index("--")])
run_config = sweep.run_config

def held_back(config, *args, **kwargs):
    while config.key() in held:
        time.sleep(0.05)  # until the test kills the sweep (workers: the parent-death signal)
    return run_config(config, *args, **kwargs)

sweep.run_config = held_back
sys.exit(main(sys.argv[sys.argv.index("--") + 1 :]))
"""


def start_held_sweep(spec_file, out, held, workers: int = 1, env=None) -> subprocess.Popen:
    """Start ``python -m simulations sweep SPEC --out OUT --workers W --quiet`` with ``held`` back.

    Parameters
    ----------
    spec_file, out : path
        The sweep's spec and output directory.
    held : iterable of str
        Keys (``TrialConfig.key()``) of the configs that never start; submit them last, so that
        the others can finish first.
    workers : int, default=1
        Local worker processes. With more than one, the workers must be forked to inherit the
        hold (Linux before Python 3.14); anything else fails here, loudly, rather than racing.
    env : dict, optional
        The subprocess environment (default :func:`tests.cli.cli_env`).
    """
    if workers > 1:
        method = multiprocessing.get_start_method()
        assert method == "fork", f"held-back configs need forked workers, not {method!r}"
    argv = ["sweep", str(spec_file), "--out", str(out), "--workers", str(workers), "--quiet"]
    cmd = [sys.executable, "-c", HOLD_BACK, *held, "--", *argv]
    return subprocess.Popen(cmd, cwd=ROOT, env=cli_env() if env is None else env)
