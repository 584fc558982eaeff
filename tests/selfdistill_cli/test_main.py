"""The ``selfdistill`` console script (:mod:`selfdistill_cli.main`): every sub-command is its
``python -m`` form (same stdout, stderr and exit status), under its own name in ``--help``.

The installed script is not needed: :func:`selfdistill_cli.main.main` runs in-process and
``python -m selfdistill_cli`` in a subprocess; ``pyproject.toml`` is checked to point at it.
"""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from selfdistill_cli.main import COMMANDS, help_text, main
from tests.cli import ROOT, run_many

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PREDICT = ["--classes", "3", "--per-class", "5", "--c", "0.5", "--d", "0.1", "--lam", "0.01"]
PREDICT += ["--counts", "4,1,0;1,3,1;0,0,5", "--rounds", "2"]


def test_help_lists_every_command_with_one_line(capsys):
    for flag in ("--help", "-h"):
        assert main([flag]) == 0
        out = capsys.readouterr().out
        assert out == help_text() + "\n"
    lines = out.splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    assert listed == ["predict", "run", "probe", "sweep", "figures", "explore"] == list(COMMANDS)


@pytest.mark.parametrize(
    ("argv", "words"),
    [([], "a command is required"), (["bogus"], "unknown command 'bogus'"), (["--lam"], "--lam")],
)
def test_missing_or_unknown_command_is_one_line_exit_2(argv, words, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: ") and words in captured.err


def _status(command, argv) -> int:
    """Exit status of ``command(argv)``: returned, or raised by argparse (``--help``)."""
    try:
        return command(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("name", list(COMMANDS))
def test_sub_command_help_is_named_selfdistill(name, capsys):
    assert _status(main, [name, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: selfdistill {name} ")
    # The alias ends with the command: the python -m form keeps its own name.
    command = COMMANDS[name]
    module = importlib.import_module(command.module)
    assert _status(module.main, [*command.prefix, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: {command.same_as} ")


def test_predict_is_python_m_theory_predict_in_process(capsys):
    from selfdistill_cli.predict import main as predict_main

    for extra in (["--json"], [], ["--lam", "-1e-3"], ["--classes", "1"]):
        expected_code = predict_main(["predict", *PREDICT, *extra])
        expected = capsys.readouterr()
        assert main(["predict", *PREDICT, *extra]) == expected_code
        assert capsys.readouterr() == expected, extra
        assert expected_code == (0 if extra in ([], ["--json"]) else 2)
    assert json.loads(predict_main_json(capsys))["config"]["n_classes"] == 3


def predict_main_json(capsys) -> str:
    assert main(["predict", *PREDICT, "--json"]) == 0
    return capsys.readouterr().out


@pytest.mark.slow
def test_sub_commands_are_their_python_m_forms_in_a_subprocess(tmp_path):
    """Byte-identical stdout, stderr and exit status, through ``python -m selfdistill_cli``."""
    run = ["--classes", "3", "--per-class", "4", "--dim", "30", "--rounds", "1", "--trials", "2"]
    pairs = [
        (["theory", "predict", *PREDICT, "--json"], ["predict", *PREDICT, "--json"]),
        (
            ["theory", "predict", *PREDICT, "--lam", "-1e-3"],
            ["predict", *PREDICT, "--lam", "-1e-3"],
        ),
        (["simulations", "run", *run, "--json"], ["run", *run, "--json"]),
        (["simulations", "probe", "--trials", "0"], ["probe", "--trials", "0"]),
        (["simulations", "sweep", str(tmp_path / "no.toml")], ["sweep", str(tmp_path / "no.toml")]),
        (["figures", "--only", "nope"], ["figures", "--only", "nope"]),
        (["figures", "explore", "--trials", "-1"], ["explore", "--trials", "-1"]),
    ]
    procs = run_many(
        [p[0] for p in pairs]
        + [["selfdistill_cli", *p[1]] for p in pairs]
        + [["selfdistill_cli"], ["selfdistill_cli", "--help"]]
    )
    n = len(pairs)
    for (argv, _), direct, via in zip(pairs, procs[:n], procs[n : 2 * n], strict=True):
        assert (via.returncode, via.stdout, via.stderr) == (
            direct.returncode,
            direct.stdout,
            direct.stderr,
        ), argv
    assert procs[0].returncode == 0 and procs[2].returncode == 0  # two real runs among them
    assert all(p.returncode == 2 for p in procs[3:n]), [p.stderr for p in procs[3:n]]
    bare, helped = procs[2 * n :]
    assert bare.returncode == 2 and bare.stdout == "" and bare.stderr.count("\n") == 1
    assert helped.returncode == 0 and helped.stdout == help_text() + "\n"


def test_pyproject_installs_the_console_script():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, attr = scripts["selfdistill"].partition(":")
    entry = getattr(importlib.import_module(module), attr)
    assert callable(entry) and module == "selfdistill_cli.main"
