"""Bad flags and values on every ``benchmarks.*`` script: one argparse line, exit status 2, before
any work (issue 21: seven of them ended in tracebacks)."""

from __future__ import annotations

import pkgutil

import pytest

import benchmarks
from tests.cli import assert_one_line_error, run_many

#: A value each script must refuse (a size, count or seed out of range).
BAD_VALUES = {
    "blas_orientation": ["--repeat", "0"],
    "certified_bound": ["--lams", "-1"],
    "estimator": ["--repeats", "0"],
    "explorer": ["--per-class", "0"],
    "figures": ["--workers", "0"],
    "finite_exact": ["--trials", "1"],
    "orthant": ["--cases", "-3"],
    "probe": ["--n", "10000000", "--p", "100000"],
    "reference_protocol": ["--out", ""],
    "solver": ["--max-iter", "0"],
    "solver_large_k": ["--sizes", "0x5"],
    "sweep": ["--workers", "0"],
    "theory": ["--quick", "extra"],
}
SCRIPTS = sorted(
    m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name != "dense_group_newton"
)


def test_every_script_has_a_bad_value_case():
    assert sorted(BAD_VALUES) == SCRIPTS


@pytest.mark.slow
def test_bad_flags_and_values_are_one_line_exit_2():
    commands = [[f"benchmarks.{name}", "--no-such-flag"] for name in SCRIPTS]
    commands += [[f"benchmarks.{name}", *BAD_VALUES[name]] for name in SCRIPTS]
    # No clock: a command that started the work would not end within run_many's per-command
    # limit (tests.cli.TIMEOUT), or would not print the one-line refusal checked below.
    procs = run_many(commands)
    for proc in procs[: len(SCRIPTS)]:
        assert_one_line_error(proc, "unrecognized arguments: --no-such-flag")
    for proc in procs[len(SCRIPTS) :]:
        assert_one_line_error(proc)
