"""Sweeps on hostile input (issue 21): a worker-count bomb, oversized grids and seeds, damaged
manifests and result files on resume, planted links and devices."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from selfdistill_cli.limits import usable_cores
from simulations.sweep import check_result_file, load_spec, read_csv, run_sweep
from tests.cli import ROOT, assert_one_line_error, cli_env, run_many
from theory.partial_labels import pll_undefined_reason

SPEC = """
[sweep]
trials = 2
[grid]
K = 3
n = 5
p = 30
eta = [0.0, 0.1, 0.2, 0.3]
rounds = 1
n_test = 5
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(SPEC)
    return path


def _sweep_cli(spec, out, *args):
    return ["simulations", "sweep", str(spec), "--out", str(out), *args]


# ---------------------------------------------------------------------------------------------
# workers


def _children(pid: int) -> list[int]:
    """Live worker children of ``pid`` (not multiprocessing's resource tracker)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z" and b"resource_tracker" not in cmd:
            out.append(int(entry.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts children in /proc")
def test_worker_count_bomb_is_capped_at_the_usable_cores(tmp_path, spec_file):
    """--workers 100000 used to start one process per requested worker (load 285)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", *_sweep_cli(spec_file, tmp_path / "o", "--workers", "100000")],
        cwd=ROOT,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    most = 0
    while proc.poll() is None:
        most = max(most, len(_children(proc.pid)))
        time.sleep(0.02)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert most <= usable_cores()
    note = [line for line in err.splitlines() if line.startswith("note: --workers 100000")]
    assert len(note) == 1 and f"capped at {usable_cores()}" in note[0]
    assert "--allow-oversubscribe" in note[0]


@pytest.mark.slow
def test_oversubscription_needs_the_flag(tmp_path, spec_file):
    cores = usable_cores()
    want = cores + 2  # 4 configs: at most 4 workers either way
    res = run_sweep(load_spec(spec_file), tmp_path / "a", workers=want, quiet=True)
    assert res.completed == 4
    capped = subprocess.run(
        [sys.executable, "-m", *_sweep_cli(spec_file, tmp_path / "b", "--workers", str(want))],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    allowed = subprocess.run(
        [
            sys.executable,
            "-m",
            *_sweep_cli(spec_file, tmp_path / "c", "--workers", str(want), "--allow-oversubscribe"),
        ],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert capped.returncode == allowed.returncode == 0
    assert f"(processes, {cores})" in capped.stderr and "note: --workers" in capped.stderr
    assert f"(processes, {min(want, 4)})" in allowed.stderr and "note:" not in allowed.stderr


# ---------------------------------------------------------------------------------------------
# sizes and ranges, before any work


@pytest.mark.slow
def test_oversized_and_invalid_specs_are_refused_at_once(tmp_path):
    specs = {
        "trials": "[sweep]\ntrials = 100000000\n[grid]\nK = 3\n",
        "grid": "[sweep]\ntrials = 1\n[grid]\n"
        + "".join(f"{k} = {list(range(1, 1001))}\n" for k in ("rounds", "n_test", "n")),
        "pll": "[sweep]\ntrials = 1\n[grid]\nK = 2\nmethod = 'pll-ce'\n",
        "lam": "[sweep]\ntrials = 1\n[grid]\nlam = 1e-300\n",
    }
    argv = []
    for name, text in specs.items():
        (tmp_path / f"{name}.toml").write_text(text)
        argv.append(_sweep_cli(tmp_path / f"{name}.toml", tmp_path / f"o-{name}"))
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    argv.append(_sweep_cli(tmp_path / "zero.toml", tmp_path / "o-zero"))
    # Refused at once: reading /dev/zero or running 1e8 trials would not end within run_many's
    # per-command limit (tests.cli.TIMEOUT), which turns it into a failure.
    procs = run_many(argv)
    assert_one_line_error(procs[0], "100000000 trial(s)", "estimate", "--max-time")
    assert_one_line_error(procs[1], "1,000,000,000 points", "--max-grid-points")
    assert_one_line_error(procs[2], pll_undefined_reason("pll-ce", 2))
    assert_one_line_error(procs[3], "lam must lie in [1e-12, 1e+12]")
    assert_one_line_error(procs[4], "character device (through a symbolic link)")
    for name in specs:
        assert not (tmp_path / f"o-{name}").exists()  # refused before the folder was made


def test_max_grid_points_overrides(tmp_path, spec_file):
    with pytest.raises(ValueError, match="4 points"):
        load_spec(spec_file, max_grid_points=3)
    assert len(load_spec(spec_file, max_grid_points=4).configs) == 4


# ---------------------------------------------------------------------------------------------
# resume


@pytest.fixture
def finished(tmp_path, spec_file):
    out = tmp_path / "done"
    run_sweep(load_spec(spec_file), out, workers=1, quiet=True)
    return spec_file, out


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong fields", "link to /dev/zero"])
def test_damaged_manifest_is_rebuilt_from_intact_results(finished, damage, capsys):
    spec_file, out = finished
    manifest = out / "sweep.json"
    before = (out / "results.csv").read_bytes()
    if damage == "truncate":
        manifest.write_bytes(manifest.read_bytes()[:40])
    elif damage == "garbage":
        manifest.write_bytes(b"\x00\xff not json")
    elif damage == "wrong fields":
        manifest.write_text('{"keys": 3}')
    else:
        manifest.unlink()
        manifest.symlink_to("/dev/zero")
    res = run_sweep(load_spec(spec_file), out, workers=1)
    err = capsys.readouterr().err
    assert res.skipped == 4 and res.completed == 0  # every intact result was kept
    assert "rebuilt from 4 intact result file(s)" in err
    assert (out / "sweep.json.invalid").exists() or (out / "sweep.json.invalid").is_symlink()
    assert (out / "results.csv").read_bytes() == before


def _edit(path: Path, column: str, value: str) -> None:
    rows = list(csv.reader(path.open(newline="")))
    rows[1][rows[0].index(column)] = value
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    "column, value, words",
    [
        ("train_acc", "7.5", "train_acc = '7.5' outside [0, 1]"),
        ("pop_acc", "-0.1", "pop_acc = '-0.1' outside [0, 1]"),
        ("top2_coverage", "nan", "top2_coverage = 'nan' outside [0, 1]"),
        ("residual", "inf", "residual = 'inf'"),
        ("converged", "maybe", "converged = 'maybe'"),
    ],
)
def test_result_values_are_validated_on_resume(finished, capsys, column, value, words):
    spec_file, out = finished
    spec = load_spec(spec_file)
    path = out / "results" / f"{spec.keys[0]}.csv"
    _edit(path, column, value)
    assert check_result_file(path, spec.configs[0], spec.seeds).startswith(f"row 1: {words}")
    run_sweep(spec, out, workers=1)
    err = capsys.readouterr().err
    assert str(path) in err and words in err  # the refused file is named
    assert all(0 <= float(r["train_acc"]) <= 1 for r in read_csv(out / "results.csv"))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_result_file_replaced_by_an_endless_link_is_not_read(finished, capsys):
    spec_file, out = finished
    spec = load_spec(spec_file)
    path = out / "results" / f"{spec.keys[1]}.csv"
    path.unlink()
    path.symlink_to("/dev/zero")
    res = run_sweep(spec, out, workers=1)
    assert res.completed == 1 and "character device" in capsys.readouterr().err
    assert not path.is_symlink() and check_result_file(path, spec.configs[1], spec.seeds) is None


def test_planted_links_in_the_output_folder(finished, tmp_path):
    spec_file, out = finished
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("precious")
    (out / "results.csv").unlink()
    (out / "results.csv").symlink_to(outside)
    run_sweep(load_spec(spec_file), out, workers=1, quiet=True)
    assert outside.read_text() == "precious" and not (out / "results.csv").is_symlink()
    other = tmp_path / "other"
    (other / "x").mkdir(parents=True)
    (other / "results").symlink_to(other / "x")
    with pytest.raises(ValueError, match="is a symbolic link"):
        run_sweep(load_spec(spec_file), other, workers=1, quiet=True)
    assert not list((other / "x").iterdir())
