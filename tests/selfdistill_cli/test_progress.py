"""Progress bars: stderr only, drawn when forced (as on a terminal), silent off one or quiet."""

from __future__ import annotations

import io

import pytest

from selfdistill_cli import progress
from tests.cli import run_many


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_enabled_rules(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert progress.progress_enabled(stream=_Tty()) is True
    assert progress.progress_enabled(stream=io.StringIO()) is False  # a pipe or a file
    assert progress.progress_enabled(quiet=True, stream=_Tty()) is False
    monkeypatch.setenv(progress.ENV, "1")
    assert progress.progress_enabled(stream=io.StringIO()) is True
    assert progress.progress_enabled(quiet=True, stream=io.StringIO()) is False
    monkeypatch.setenv(progress.ENV, "0")
    assert progress.progress_enabled(stream=_Tty()) is False


@pytest.mark.slow
def test_long_commands_draw_a_bar_with_an_eta_only_when_asked():
    # Forced on (SELFDISTILL_PROGRESS=1 stands for a terminal): a tqdm bar with elapsed<remaining
    # on stderr, and stdout identical to the run without it; piped (no terminal): no bar.
    run = ["simulations", "run", "-K", "3", "-n", "4", "-p", "30", "--rounds", "1", "--trials", "3"]
    probe = ["simulations", "probe", "--trials", "2", "--rounds", "1", "--no-theory"]
    env_on = {progress.ENV: "1"}
    procs = run_many(
        [run, run, [*run, "--quiet"], probe, probe], envs=[env_on, {}, env_on, env_on, {}]
    )
    for proc in procs:
        assert proc.returncode == 0, (proc.args, proc.stderr)
    run_on, run_off, run_quiet, probe_on, probe_off = procs
    # tqdm redraws at most every mininterval (0.5 s): which counts are drawn depends on timing,
    # so only the first frame (0/3, always drawn) and the ETA marker are asserted.
    assert "trials: " in run_on.stderr and "0/3" in run_on.stderr and "<" in run_on.stderr
    assert run_on.stdout == run_off.stdout  # the bar never touches stdout
    assert run_off.stderr == "" and run_quiet.stderr == ""
    assert "probe (trial x lam)" in probe_on.stderr
    assert "probe (trial x lam)" not in probe_off.stderr
    assert probe_on.stdout.splitlines()[0].startswith("verdict:")
