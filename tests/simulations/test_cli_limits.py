"""``python -m simulations run | probe`` on hostile input (issue 21): supported ranges, sizes and
times refused before anything runs, K = 2 PLL refused in the shared words, unbounded and special
input files, a planted symbolic link at an output."""

from __future__ import annotations

import os

import numpy as np
import pytest

from simulations.cli_probe import main as probe_main
from simulations.pipelines import TrialConfig
from tests.cli import assert_one_line_error, run, run_many
from theory.partial_labels import pll_undefined_reason

SMALL = ["-K", "3", "-n", "5", "-p", "30", "--rounds", "1", "--n-test", "5"]


@pytest.mark.slow
def test_run_refuses_out_of_range_and_oversized_input_at_once():
    # No allocation, no loop: a command that started the work would not end within run_many's
    # per-command limit (tests.cli.TIMEOUT), which turns it into a failure; no clock is read.
    procs = run_many(
        [
            ["simulations", "run", "--lam", "1e300"],
            ["simulations", "run", "--lam", "1e-300"],
            ["simulations", "run", "--temperature", "1e308"],
            ["simulations", "run", "--classes", "2", "--method", "pll-ce"],
            ["simulations", "run", "--trials", "10000000"],
            ["simulations", "run", "--rounds", "1000000"],
            ["simulations", "run", "--rounds", "1000000", "--max-memory", "1e6"],
            ["simulations", "run", "-K", "100000", "-p", "100000", "-n", "1"],
        ]
    )
    assert_one_line_error(procs[0], "lam must lie in [1e-12, 1e+12]")
    assert_one_line_error(procs[1], "lam must lie in [1e-12, 1e+12]")
    assert_one_line_error(procs[2], "temperature must lie in [0.001, 1000]")
    assert_one_line_error(procs[3], pll_undefined_reason("pll-ce", 2))
    assert_one_line_error(procs[4], "10000000 trial(s)", "estimate", "--max-time")
    assert_one_line_error(procs[5])  # ~15 GB: memory (where less is available), else time
    assert "--max-memory" in procs[5].stderr or "1000000 round(s)" in procs[5].stderr
    assert_one_line_error(procs[6], "1000000", "--max-time")  # then the time estimate
    assert_one_line_error(procs[7], "GB", "--max-memory")


@pytest.mark.slow
def test_run_degenerate_but_valid_inputs_work_with_notes():
    """p = K (the simulation is fine; the finite-p theory has no bulk) and lam = 1e-12 (its
    covariance cannot be resolved): notes, not tracebacks."""
    procs = run_many(
        [
            ["simulations", "run", "-K", "2", "-n", "1", "-p", "2", "--n-test", "5"],
            ["simulations", "run", *SMALL, "--lam", "1e-12"],
        ]
    )
    for proc in procs:
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "finite-p theory not available: dim (p) must be > K" in procs[0].stdout


@pytest.mark.slow
def test_run_uncertifiable_solve_is_one_line():
    """lam = 1e8: the SD round's outputs sit within 1e-25 of 1/K, beyond what float64 gradients
    resolve; the solver refuses to certify, the command says so in one line (exit 2)."""
    proc = run("simulations", "run", *SMALL, "--lam", "1e8")
    assert_one_line_error(proc, "did not converge", "uncertified solve is never reported")


def test_trial_config_refuses_pll_at_two_classes_in_the_shared_words():
    for method in ("pll-ce", "pll-candidate", "pll-gce", "pll-gce-ref"):
        with pytest.raises(ValueError) as exc:
            TrialConfig(n_classes=2, method=method)
        assert str(exc.value) == pll_undefined_reason(method, 2)
    assert TrialConfig(n_classes=2, method="sd").n_classes == 2


# ---------------------------------------------------------------------------------------------
# probe: files


def _probe(*args):
    return ["simulations", "probe", "--trials", "1", "--rounds", "1", "--no-theory", *args]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "zero.npz").symlink_to("/dev/zero")
    (root / "zero.csv").symlink_to("/dev/zero")
    with open(root / "sparse.csv", "wb") as fh:  # 2 GB of NUL bytes, no line break, no blocks
        fh.truncate(2 * 10**9)
    (root / "empty.npz").write_bytes(b"")
    (root / "dir.npz").mkdir()
    np.save(root / "x.npy", np.ones((6, 2)))
    labels = np.array([0, 1, 2, 0, 1, 10**12])
    np.savez(root / "huge_label.npz", features=np.ones((6, 2)), labels=labels)
    np.savez(root / "complex.npz", features=np.ones((6, 2)) * 1j, labels=labels % 3)
    (root / "label_1e300.csv").write_text("1,2,0\n3,4,1\n5,6,1e300\n")
    return root


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_probe_input_files_are_checked_before_reading(bad_files):
    # Nothing endless is read: /dev/zero would not end within run_many's per-command limit.
    r = bad_files
    procs = run_many(
        [
            _probe("--features", r / "zero.npz"),
            _probe("--features", r / "zero.csv"),
            _probe("--features", r / "sparse.csv"),
            _probe("--features", r / "empty.npz"),
            _probe("--features", r / "dir.npz"),
            _probe("--features", r / "x.npy", "--labels", r / "missing.npy"),
            _probe("--features", r / "huge_label.npz"),
            _probe("--features", r / "complex.npz"),
            _probe("--features", r / "label_1e300.csv"),
        ]
    )
    assert_one_line_error(procs[0], "character device (through a symbolic link)")
    assert_one_line_error(procs[1], "character device (through a symbolic link)")
    assert_one_line_error(procs[2], "line 1 is longer than 64 MB")
    assert_one_line_error(procs[3], "not a valid .npz archive")
    assert_one_line_error(procs[4], "is a directory")
    assert_one_line_error(procs[5], "labels file", "does not exist")
    assert_one_line_error(procs[6], "got maximum 1000000000000")
    assert_one_line_error(procs[7], "complex")
    assert_one_line_error(procs[8], "got maximum 1e+300")


@pytest.mark.slow
def test_probe_refusals_before_any_work():
    procs = run_many(
        [
            _probe("--out", ""),
            _probe("--lam", "1e300"),
            ["simulations", "probe", "--rounds", "1000000", "--trials", "1"],
            ["simulations", "probe", "--rounds", "1000", "--trials", "1000"],
        ]
    )
    assert_one_line_error(procs[0], "--out must name a folder")
    assert_one_line_error(procs[1], "lam must lie in [1e-12, 1e+12]")
    assert_one_line_error(procs[2], "GB", "--max-memory")
    assert_one_line_error(procs[3], "this probe would take", "--max-time")


@pytest.mark.slow
def test_probe_refuses_pll_at_two_classes_before_starting(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "k2.npz", features=rng.standard_normal((40, 3)), labels=np.arange(40) % 2)
    proc = run(*_probe("--features", tmp_path / "k2.npz", "--pll-losses", "gce"))
    assert_one_line_error(proc, pll_undefined_reason("pll-gce", 2))  # no "[probe]" line before


def test_probe_replaces_a_planted_symlink_and_never_writes_through_it(tmp_path, capsys):
    outside = tmp_path / "elsewhere.json"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "probe.json").symlink_to(outside)
    (out / "probe.csv").symlink_to(tmp_path / "missing.csv")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 4)) + np.repeat(np.eye(3, 4), 20, axis=0)
    np.savez(tmp_path / "f.npz", features=x, labels=np.repeat(np.arange(3), 20))
    argv = ["--features", str(tmp_path / "f.npz"), "--trials", "1", "--rounds", "1"]
    assert probe_main([*argv, "--no-theory", "--lam", "1e-2", "--out", str(out)]) == 0
    capsys.readouterr()
    assert outside.read_text() == "precious"
    assert not (out / "probe.json").is_symlink() and (out / "probe.json").read_text()[0] == "{"
    assert not (out / "probe.csv").is_symlink() and not (tmp_path / "missing.csv").exists()


@pytest.mark.slow
def test_run_skips_the_finite_theory_beyond_its_rounds_with_a_note():
    proc = run("simulations", "run", *SMALL[:-4], "--rounds", "45", "--n-test", "5")
    assert proc.returncode == 0, proc.stderr
    assert "note: finite-p theory skipped: 45 rounds > 40" in proc.stdout


@pytest.mark.slow
def test_probe_on_a_full_disk_keeps_the_previous_results(small_tmpfs):
    """A real full file system: the up-front check passes (an empty file fits), the results do
    not; both previous files stay as they were, one error line, exit 2."""
    out = small_tmpfs / "out"
    out.mkdir()
    (out / "probe.json").write_text('{"previous": true}')
    (out / "probe.csv").write_text("previous\n")
    filler = small_tmpfs / "filler"
    free = os.statvfs(small_tmpfs)
    filler.write_bytes(b"x" * max(free.f_bavail * free.f_frsize - 8192, 0))
    proc = run(*_probe("--out", out))
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and "No space left on device" in errors[0]
    assert (out / "probe.json").read_text() == '{"previous": true}'
    assert (out / "probe.csv").read_text() == "previous\n"
    assert sorted(p.name for p in out.iterdir()) == ["probe.csv", "probe.json"]


@pytest.mark.slow
def test_run_time_estimate_includes_the_exact_finite_ratio_theory():
    """The exact finite-ratio theory run prints (issue 20) is part of the up-front estimate
    (issue 21): once per distinct count matrix, 0 where it is not computed or skipped."""
    from simulations.cli_run import FINITE_EXACT_SECONDS, _finite_exact_budget

    exact = _finite_exact_budget(TrialConfig(n_classes=4, per_class=25, dim=100))
    rand = _finite_exact_budget(TrialConfig(n_classes=4, per_class=25, dim=100, sampling="random"))
    # exact counts are circulant (class 0's groups only); random draws integrate every group
    assert 0 < exact[0] < rand[0] <= FINITE_EXACT_SECONDS and exact[1] > 0
    assert _finite_exact_budget(TrialConfig(n_classes=4, per_class=25, features="exact-block")) == (
        0.0,
        0.0,
    )
    assert _finite_exact_budget(TrialConfig(n_classes=4, per_class=25, dim=4)) == (0.0, 0.0)
    proc = run(
        "simulations", "run", "-K", "4", "-n", "25", "-p", "100", "--sampling", "random",
        "--trials", "100", "--max-time", "60",
    )  # fmt: skip
    assert_one_line_error(proc, "100 trial(s)", "estimate", "--max-time")


def test_simulations_dispatch_errors_are_one_line(capsys):
    """``python -m simulations nosuch`` and a missing command: one ``error:`` line on stderr and
    status 2, nothing on stdout (the usage went to stdout, the error after a blank line)."""
    from simulations.__main__ import main

    for argv, what in ((["nosuch"], "unknown command 'nosuch'"), ([], "a command is required")):
        assert main(argv) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and err.startswith(f"error: {what}")
        assert "run, sweep, probe" in err
    assert main(["--help"]) == 0
    assert "usage: python -m simulations" in capsys.readouterr().out
