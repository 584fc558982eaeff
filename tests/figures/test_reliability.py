"""Figures on a full disk, with planted links, an unwritable gallery and absurd explorer values
(issue 21): every write is atomic and link-safe, failures are one line with exit status 2."""

from __future__ import annotations

import errno
import os

import pytest

from figures.__main__ import main as figures_main
from selfdistill_cli import files, run_cli
from selfdistill_cli.limits import usable_cores
from tests.cli import assert_one_line_error, run_many

TINY = ["--only", "spectrum", "--preset", "tiny"]


@pytest.mark.slow
def test_planted_links_are_replaced_and_never_written_through(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("precious")
    (out / "spectrum.csv").symlink_to(outside)
    (out / "spectrum.png").symlink_to(tmp_path / "missing.png")
    assert figures_main([*TINY, "--out", str(out), "--workers", "64"]) == 0
    err = capsys.readouterr().err
    assert outside.read_text() == "precious" and not (tmp_path / "missing.png").exists()
    for name in ("spectrum.csv", "spectrum.png", "spectrum.pdf"):
        assert (out / name).is_file() and not (out / name).is_symlink()
    assert f"note: --workers 64 capped at {usable_cores()}" in err  # never more than the cores


@pytest.mark.slow
def test_full_disk_while_saving_keeps_the_previous_figure(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "spectrum.png").write_bytes(b"previous figure")

    def enospc(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", enospc)
    code = run_cli(figures_main, [*TINY, "--out", str(out)])
    monkeypatch.undo()
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert code == 2 and len(err) == 1 and "No space left on device" in err[0], err
    assert (out / "spectrum.png").read_bytes() == b"previous figure"
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_unwritable_targets_are_refused_before_any_figure_is_computed(tmp_path):
    # Refused before any work: 1e9 rounds or 1e5 trials would not end within run_many's
    # per-command limit (tests.cli.TIMEOUT); the empty output directories show nothing was drawn.
    procs = run_many(
        [
            ["figures", *TINY, "--out", str(tmp_path / "o"), "--gallery", "/proc/no-gallery"],
            ["figures", *TINY, "--out", ""],
            ["figures.gallery", "--dest", ""],
            ["figures", "explore", "--set", "N/p=1e308", "--snapshot", str(tmp_path / "x.png")],
            ["figures", "explore", "--set", "rounds=1e9", "--snapshot", str(tmp_path / "x.png")],
            ["figures", "explore", "--set", "lam=1e300", "--snapshot", str(tmp_path / "x.png")],
            ["figures", "explore", "--simulate", "--trials", "100000", "--snapshot", "x.png"],
        ]
    )
    assert_one_line_error(procs[0], "--gallery", "not writable")
    assert not list((tmp_path / "o").glob("*.png"))  # nothing computed before the refusal
    assert_one_line_error(procs[1], "--out", "empty string")
    assert_one_line_error(procs[2], "--dest", "empty string")
    assert_one_line_error(procs[3], "N/p (n_over_p) must lie in")
    assert_one_line_error(procs[4], "rounds must lie in")
    assert_one_line_error(procs[5], "lam must lie in")
    assert_one_line_error(procs[6], "100000 trials", "estimate", "reduce --trials")


@pytest.mark.parametrize("k", [2])
def test_explorer_monte_carlo_at_two_classes_has_no_pll_student(k):
    from figures.explorer_model import MonteCarloRun

    run = MonteCarloRun({"n_classes": k, "per_class": 4, "dim": 20, "trials": 2, "rounds": 1})
    summary = run.run()
    assert "pll-ce" not in run.configs and summary.trials_done == 2
    assert summary.pll_train_mean != summary.pll_train_mean  # NaN: undefined, not 0
