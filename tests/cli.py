"""Run the project's command lines in subprocesses, as a user would (for CLI tests).

Each call uses ``sys.executable -m MODULE`` with ``PYTHONPATH`` = the repository root and an
explicit working directory, so the code under test is imported whatever the caller's cwd.
:func:`run_many` starts several commands at once: most of each command's time is the import of
numpy/scipy/matplotlib, which overlaps.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Generous per-command limit: a bad-input command exits during argument checking (~1-3 s on a
#: busy 2-core machine); the limit only turns a hang into a failure.
TIMEOUT = 120


def cli_env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    env.pop("MPLBACKEND", None)
    return env


def run(*argv, cwd=ROOT, timeout=TIMEOUT, **env) -> subprocess.CompletedProcess:
    """``python -m ARGV...`` in ``cwd``; returns the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", *map(str, argv)],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_many(commands, cwd=ROOT, timeout=TIMEOUT, envs=None) -> list[subprocess.CompletedProcess]:
    """Run every ``argv`` of ``commands`` concurrently (``python -m argv...``); results in order.

    ``envs``: optional list of extra environment variables, one dict per command.
    """
    envs = [{}] * len(commands) if envs is None else envs
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", *map(str, argv)],
            cwd=cwd,
            env=cli_env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, extra in zip(commands, envs, strict=True)
    ]
    out = []
    for argv, proc in zip(commands, procs, strict=True):
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        out.append(subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr))
    return out


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    """Exit status 2, one stderr line ``error: ...`` containing every word, nothing on stdout."""
    err = proc.stderr.strip()
    assert proc.returncode == 2, (proc.args, proc.returncode, proc.stderr)
    assert len(err.splitlines()) == 1 and err.startswith("error:"), (proc.args, proc.stderr)
    for w in words:
        assert w in err, (proc.args, w, err)
    assert proc.stdout == "", (proc.args, proc.stdout)
    assert "Traceback" not in proc.stderr
