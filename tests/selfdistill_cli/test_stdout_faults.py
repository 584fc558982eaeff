"""Standard output that is full (/dev/full) or closed (``>&-``): one line on stderr, exit status 2,
never a traceback, for every command line (issue 21)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli import ROOT, TIMEOUT, cli_env

pytestmark = pytest.mark.skipif(
    not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fill standard output"
)

THEORY = ["theory", "predict", "--classes", "3", "--per-class", "5", "--c", "0.5", "--d", "0.1"]
THEORY += ["--lam", "1e-2", "--noise", "sym", "--eta", "0.3", "--rounds", "2"]
RUN = ["simulations", "run", "-K", "3", "-n", "5", "-p", "30", "--rounds", "1", "--n-test", "5"]
COMMANDS = {
    "theory": THEORY,
    "theory-json": [*THEORY, "--json"],
    "theory-help": ["theory", "--help"],
    "run": RUN,
    "run-json": [*RUN, "--json"],
    "run-help": ["simulations", "run", "--help"],
    "figures-help": ["figures", "--help"],
}


def _start(argv, *, stdout=None, close_stdout=False):
    return subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=ROOT,
        env=cli_env(),
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=(lambda: os.close(1)) if close_stdout else None,
    )


def _finish(proc):
    _, err = proc.communicate(timeout=TIMEOUT)
    return proc.returncode, err


def _check(code, err, *words):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error:"), err
    for w in words:
        assert w in err, err


@pytest.mark.slow
def test_full_stdout_is_one_line_and_exit_2():
    with open("/dev/full", "w") as full:
        procs = [_start(argv, stdout=full) for argv in COMMANDS.values()]
        results = [_finish(p) for p in procs]
    for code, err in results:
        _check(code, err, "cannot write to standard output", "No space left on device")


@pytest.mark.slow
def test_closed_stdout_is_one_line_and_exit_2():
    procs = [_start(argv, close_stdout=True) for argv in COMMANDS.values()]
    for proc in procs:
        code, err = _finish(proc)
        _check(code, err, "standard output is closed")


@pytest.mark.slow
def test_full_stdout_of_probe_and_sweep(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text("[sweep]\ntrials = 1\n[grid]\nK = 3\nn = 4\np = 20\nrounds = 0\nn_test = 4\n")
    probe = ["simulations", "probe", "--trials", "1", "--rounds", "1", "--no-theory"]
    sweep = ["simulations", "sweep", str(spec), "--out", str(tmp_path / "o"), "--workers", "1"]
    with open("/dev/full", "w") as full:
        procs = [_start(probe, stdout=full), _start(sweep, stdout=full)]
        results = [_finish(p) for p in procs]
    for code, err in results:
        lines = [ln for ln in err.strip().splitlines() if ln.startswith("error:")]
        assert code == 2 and "Traceback" not in err, err
        assert lines == ["error: cannot write to standard output: No space left on device"], err
    assert (tmp_path / "o" / "results.csv").exists()  # the sweep's files were written first
