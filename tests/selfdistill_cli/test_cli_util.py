"""The shared command-line shell (selfdistill_cli): negative numbers, one-line errors, and a
reader that closes the pipe early."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfdistill_cli import EXIT_BROKEN_PIPE, NEGATIVE_NUMBER, ArgumentParser

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "token", ["-1", "-0.5", "-.5", "-1.", "-1e-3", "-2.5E+04", "-1e5", "-inf", "-Infinity", "-nan"]
)
def test_negative_numbers_are_values(token):
    assert NEGATIVE_NUMBER.match(token)
    parser = ArgumentParser()
    parser.add_argument("--x", type=float)
    parser.add_argument("--many", type=float, nargs="+")
    args = parser.parse_args(["--x", token, "--many", "1", token])
    assert str(args.x) == str(float(token)) and str(args.many[1]) == str(float(token))


@pytest.mark.parametrize("token", ["-x", "--lam", "-e5", "-1e", "-1-2", "-", "-K"])
def test_options_are_not_numbers(token):
    assert not NEGATIVE_NUMBER.match(token)


def test_usage_error_is_one_line_exit_2(capsys):
    parser = ArgumentParser(prog="p")
    parser.add_argument("--n", type=int, required=True)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--n", "x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --n: invalid int value") and err.count("\n") == 1


def test_subparsers_inherit_the_number_rule():
    parser = ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    q = sub.add_parser("q")
    q.add_argument("--lam", type=float)
    assert parser.parse_args(["q", "--lam", "-1e-3"]).lam == -1e-3


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        [
            "-m",
            "theory",
            "predict",
            "--classes",
            "3",
            "--per-class",
            "4",
            "--c",
            "0.4",
            "--d",
            "0.1",
            "--lam",
            "1e-2",
            "--noise",
            "sym",
            "--eta",
            "0.3",
            "--rounds",
            "2",
        ],
        ["-m", "simulations", "--help"],  # the dispatcher's own usage (print, not argparse)
        # A table printed after a Monte Carlo run (argparse's --help swallows the error itself).
        ["-m", "simulations", "run", "--classes", "3", "--per-class", "4", "--dim", "60"]
        + ["--c", "0.5", "--d", "0.1", "--eta", "0.3", "--lam", "1e-2", "--rounds", "1"]
        + ["--trials", "2"],
    ],
    ids=["theory predict", "simulations usage", "simulations run"],
)
def test_closed_stdout_ends_quietly(command):
    """``... | head`` with the reader gone before the command prints: no traceback on stderr, the
    shell's status for a command stopped by SIGPIPE (141). Deterministic: the pipe's read end is
    closed before the process starts, so its first write fails."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            timeout=120,
            text=True,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == EXIT_BROKEN_PIPE, (proc.returncode, proc.stderr)
