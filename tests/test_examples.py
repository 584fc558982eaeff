"""The documented examples run as their documentation says (docs/property_testing.md)."""

import subprocess
import sys

import pytest

from tests.cli import ROOT, TIMEOUT, cli_env


@pytest.mark.slow
def test_property_condition_example_runs_with_pytest():
    # Exactly the command of docs/property_testing.md, from the repository root.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "examples/property_condition.py",
        ],
        cwd=ROOT,
        env=cli_env(HYPOTHESIS_PROFILE="ci"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed, 1 xfailed" in proc.stdout


@pytest.mark.slow
def test_hypothesis_profile_takes_effect():
    # HYPOTHESIS_PROFILE selects the settings (tests/conftest.py loads it for the suite).
    code = "from theory.strategies import load_profile; print(load_profile().max_examples)"
    counts = {}
    for name in ("ci", "dev", "thorough"):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=cli_env(HYPOTHESIS_PROFILE=name),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert proc.returncode == 0, proc.stderr
        counts[name] = int(proc.stdout)
    assert counts == {"ci": 30, "dev": 100, "thorough": 1000}
    bad = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=cli_env(HYPOTHESIS_PROFILE="nightly"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert (
        bad.returncode != 0 and "HYPOTHESIS_PROFILE must be one of ci, dev, thorough" in bad.stderr
    )


def test_the_suite_runs_under_the_loaded_profile():
    import os

    from hypothesis import settings

    from theory.strategies import PROFILES

    name = os.environ.get("HYPOTHESIS_PROFILE") or "ci"
    assert settings.default.max_examples == PROFILES[name]["max_examples"]
