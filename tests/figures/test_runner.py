"""The ``python -m figures`` runner: options, dispatch to the explorer, gallery output."""

import sys
import types

import pytest

from figures import FIGURES
from figures import __main__ as runner
from figures.gallery import make_gallery
from tests.figures._helpers import assert_outputs


def test_runner_only_one_figure_with_gallery(tmp_path, capsys):
    out, gallery = tmp_path / "out", tmp_path / "gallery"
    argv = ["--preset", "tiny", "--out", str(out), "--only", "label_averaging"]
    assert runner.main(argv + ["--gallery", str(gallery), "--workers", "1"]) == 0
    assert_outputs(out, "label_averaging")
    png = gallery / "label_averaging.png"
    assert png.exists() and png.stat().st_size < 100 * 1024
    err = capsys.readouterr().err
    assert "[1/1] label_averaging done" in err  # progress on stderr


def test_runner_default_output_is_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.main(["--preset", "tiny", "--only", "spectrum", "--workers", "1"]) == 0
    assert_outputs(tmp_path / "figures" / "output", "spectrum")


def test_runner_rejects_unknown_figure_and_bad_seed():
    with pytest.raises(SystemExit):
        runner.main(["--only", "nope"])
    with pytest.raises(SystemExit):
        runner.main(["--seed", "-1", "--only", "spectrum"])


def test_runner_dispatches_explore_lazily(monkeypatch):
    seen = {}
    fake = types.ModuleType("figures.explorer")
    fake.main = lambda argv: seen.setdefault("argv", argv) and 0
    monkeypatch.setitem(sys.modules, "figures.explorer", fake)
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
