"""Every figure has ``run(preset=, out=, seed=, workers=)``: its command line reads options and
calls it, and the runner (``python -m figures``) calls it directly, with no argv round-trip."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from figures import FIGURES
from figures import __main__ as runner

STANDARD = ("preset", "out", "seed", "workers")


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_has_a_keyword_run(name):
    params = inspect.signature(importlib.import_module(f"figures.{name}").run).parameters
    assert all(params[p].kind is inspect.Parameter.KEYWORD_ONLY for p in STANDARD), name
    assert all(params[p].default is not inspect.Parameter.empty for p in params), name


def test_runner_calls_run_with_its_options_not_main(tmp_path, monkeypatch):
    calls = {}
    for name in ("spectrum", "real_gain"):
        module = importlib.import_module(f"figures.{name}")

        def record(name=name, **kwargs):
            calls[name] = kwargs
            return 0

        monkeypatch.setattr(module, "run", record)
        monkeypatch.setattr(module, "main", lambda argv=None: pytest.fail("argv round-trip"))
    argv = ["--only", "spectrum,real_gain", "--preset", "tiny", "--seed", "3"]
    assert runner.main([*argv, "--out", str(tmp_path), "--workers", "1"]) == 0
    expected = {"preset": "tiny", "out": Path(tmp_path), "seed": 3, "workers": 1}
    assert calls == {"spectrum": expected, "real_gain": expected}


def test_runner_stops_at_a_failing_run(tmp_path, monkeypatch):
    module = importlib.import_module("figures.spectrum")
    monkeypatch.setattr(module, "run", lambda **kwargs: 3)
    argv = ["--only", "spectrum", "--preset", "tiny", "--out", str(tmp_path)]
    assert runner.main(argv) == 3


@pytest.mark.slow
def test_run_vs_main_same_csv(tmp_path):
    """Calling ``run`` and running the command line write byte-identical data."""
    module = importlib.import_module("figures.spectrum")
    assert module.run(preset="tiny", out=tmp_path / "run", seed=1) == 0
    assert module.main(["--preset", "tiny", "--out", str(tmp_path / "main"), "--seed", "1"]) == 0
    for path in sorted((tmp_path / "main").glob("*.csv")):
        assert (tmp_path / "run" / path.name).read_bytes() == path.read_bytes(), path.name
