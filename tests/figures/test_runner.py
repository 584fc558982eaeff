"""The ``python -m figures`` runner: options, dispatch to the explorer, gallery output."""

import os
import subprocess
import sys
import types

import pytest

from figures import FIGURES
from figures import __main__ as runner
from figures.common import DEFAULT_OUT_NAME
from figures.gallery import make_gallery
from tests.cli import ROOT, assert_one_line_error, run_many
from tests.figures._helpers import assert_outputs


@pytest.mark.slow
def test_runner_only_one_figure_with_gallery(tmp_path, capsys):
    out, gallery = tmp_path / "out", tmp_path / "gallery"
    argv = ["--preset", "tiny", "--out", str(out), "--only", "label_averaging"]
    assert runner.main(argv + ["--gallery", str(gallery), "--workers", "1"]) == 0
    assert_outputs(out, "label_averaging")
    png = gallery / "label_averaging.png"
    assert png.exists() and png.stat().st_size < 100 * 1024
    err = capsys.readouterr().err
    assert "[1/1] label_averaging done" in err  # progress on stderr


@pytest.mark.slow
def test_runner_default_output_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.main(["--preset", "tiny", "--only", "spectrum", "--workers", "1"]) == 0
    assert_outputs(tmp_path / DEFAULT_OUT_NAME, "spectrum")
    assert not DEFAULT_OUT_NAME.isidentifier()  # so it can never be imported as a package


# What setuptools' editable install puts on sys.meta_path (after the path-based finder): the
# packages are found by name, the repository is NOT on sys.path (PYTHONPATH is unset). A folder
# named like a package in the working directory is then found first, as a namespace package, and
# shadows it ("ImportError: cannot import name 'FIGURES' from 'figures'" on the second run).
_EDITABLE_RUN = """
import importlib.machinery, importlib.util, runpy, sys
ROOT = {root!r}
class EditableFinder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name in ("figures", "simulations", "theory", "selfdistill_cli"):
            pkg = f"{{ROOT}}/{{name}}"
            return importlib.util.spec_from_file_location(
                name, pkg + "/__init__.py", submodule_search_locations=[pkg]
            )
        return None
# right after the path-based finder (and before any editable install of another checkout)
at = sys.meta_path.index(importlib.machinery.PathFinder) + 1
sys.meta_path.insert(at, EditableFinder)
sys.argv = ["figures", *sys.argv[1:]]
runpy.run_module("figures", run_name="__main__", alter_sys=True)
"""


@pytest.mark.slow
def test_runner_twice_outside_the_repo_with_editable_install_is_reproducible(tmp_path):
    # Run twice from a directory outside the repo: the first run's default output folder must not
    # shadow the package, and the second run must write the same bytes (PNG, PDF and CSV).
    code = _EDITABLE_RUN.format(root=str(ROOT))
    argv = ["--preset", "tiny", "--only", "label_averaging", "--workers", "1"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPLBACKEND")}
    outputs = []
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", code, *argv],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert proc.returncode == 0, proc.stderr
        out = tmp_path / DEFAULT_OUT_NAME
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert set(outputs[0]) == {f"label_averaging.{ext}" for ext in ("png", "pdf", "csv")}
    assert outputs[0] == outputs[1]
    assert b"CreationDate" not in outputs[0]["label_averaging.pdf"]


@pytest.mark.slow
def test_runner_and_modules_refuse_an_out_that_is_a_file(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    procs = run_many(
        [
            ["figures", "--preset", "tiny", "--only", "spectrum", "--out", a_file],
            ["figures.spectrum", "--preset", "tiny", "--out", a_file / "sub"],
            ["figures", "--seed", "-1e0"],  # parsed as a value, rejected as not an integer
            ["figures.sd_vs_pll", "--seed", "-1", "--out", tmp_path / "x"],
            ["figures.gallery", "--width", "-100", "--src", tmp_path, "--dest", tmp_path / "g"],
        ],
        cwd=tmp_path,
    )
    assert_one_line_error(procs[0], "--out", "is a file")
    assert_one_line_error(procs[1], "--out", "not writable")
    assert_one_line_error(procs[2], "--seed", "-1e0")
    assert_one_line_error(procs[3], "--seed must be >= 0")
    assert_one_line_error(procs[4], "--width must be >= 100")
    assert not (tmp_path / "x").exists()


def test_runner_rejects_unknown_figure_and_bad_seed():
    with pytest.raises(SystemExit):
        runner.main(["--only", "nope"])
    with pytest.raises(SystemExit):
        runner.main(["--seed", "-1", "--only", "spectrum"])


def test_runner_dispatches_explore_lazily(monkeypatch):
    seen = {}
    fake = types.ModuleType("figures.explorer_cli")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "figures.explorer_cli", fake)
    assert runner.main(["explore", "--foo", "1"]) == 0
    assert seen["argv"] == ["--foo", "1"]


def test_every_registered_figure_has_main():
    import importlib

    for name in FIGURES:
        module = importlib.import_module(f"figures.{name}")
        assert callable(module.main)
        assert {"quick", "paper", "tiny"} <= set(module.PRESETS), name


def test_gallery_skips_missing_png(tmp_path):
    assert make_gallery(tmp_path, tmp_path / "g", ["spectrum"]) == []


@pytest.mark.slow
def test_runner_progress_bar_forced_on_off_and_quiet(tmp_path):
    # SELFDISTILL_PROGRESS=1 stands for a terminal: a weighted bar with elapsed<remaining on
    # stderr; without it (stderr is a pipe) only the per-figure lines; --quiet: nothing.
    base = ["figures", "--preset", "tiny", "--only", "spectrum", "--workers", "1"]
    on, off, quiet = run_many(
        [
            [*base, "--out", tmp_path / "a"],
            [*base, "--out", tmp_path / "b"],
            [*base, "--out", tmp_path / "c", "--quiet"],
        ],
        envs=[{"SELFDISTILL_PROGRESS": "1"}, {}, {"SELFDISTILL_PROGRESS": "1"}],
    )
    for proc in (on, off, quiet):
        assert proc.returncode == 0, proc.stderr
    assert "figures (spectrum)" in on.stderr and "100%|" in on.stderr and "<" in on.stderr
    assert "%|" not in off.stderr and "[1/1] spectrum done" in off.stderr
    assert quiet.stderr == ""
