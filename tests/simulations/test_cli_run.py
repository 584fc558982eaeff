"""``python -m simulations run`` from outside: negative numbers, memory refusal (subprocesses)."""

import pytest

from tests.cli import assert_one_line_error, run_many


@pytest.mark.slow
def test_cli_run_negative_numbers_and_memory_estimate():
    run = ["simulations", "run", "--classes", "3", "--per-class", "4", "--dim", "30"]
    neg_lam, neg_d, huge, capped = run_many(
        [
            [*run, "--lam", "-1e-3"],
            [*run, "--d", "-1e-1", "--rounds", "1"],
            ["simulations", "run", "--per-class", "1000000"],  # ~40 GB: refused before allocating
            [*run, "--max-memory", "1e-4"],  # an explicit limit (0.1 MB) below the estimate
        ]
    )
    assert_one_line_error(neg_lam, "lam", "-0.001")
    assert neg_d.returncode == 0, neg_d.stderr  # parsed and valid: d may be negative
    assert "d=-0.1" in neg_d.stdout
    assert_one_line_error(huge, "needs about", "GB", "limit", "--max-memory")
    assert_one_line_error(capped, "needs about", "limit is 0.0001 GB (--max-memory)")
