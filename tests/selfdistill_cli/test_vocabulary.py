"""One vocabulary across the command lines (issue 22): the same flag means the same thing.

Trial count ``--trials``, superclass groups ``--n-groups``, ``--rounds`` = the last round R, the
same noise choices, every ``--help`` with its defaults, the same top-level JSON key ``config``,
and the old spellings still accepted for one release with a note on stderr.
"""

from __future__ import annotations

import json

import pytest

from selfdistill_cli import ArgumentParser, add_deprecated_alias
from tests.cli import run_many
from theory.names import NOISE_KINDS, ROUNDS_HELP


def _help(parser) -> str:
    return " ".join(parser.format_help().split())  # argparse wraps lines


def _parsers():
    from figures.__main__ import _parser as figures_parser
    from figures.explorer_cli import build_parser as explorer_parser
    from selfdistill_cli.predict import build_parser as theory_parser
    from simulations.cli_probe import build_parser as probe_parser
    from simulations.cli_run import build_parser as run_parser
    from simulations.cli_sweep import build_parser as sweep_parser

    predict = theory_parser()._subparsers._group_actions[0].choices["predict"]
    return {
        "predict": predict,
        "run": run_parser(),
        "probe": probe_parser(),
        "sweep": sweep_parser(),
        "figures": figures_parser(),
        "explore": explorer_parser(),
    }


def test_every_help_states_defaults_and_choices():
    parsers = _parsers()
    for name, parser in parsers.items():
        text = _help(parser)
        for action in parser._actions:
            if not action.option_strings or action.help == "==SUPPRESS==":
                continue
            assert action.help, f"{name} {action.option_strings[0]} has no help text"
            if action.choices:
                assert "{" + ",".join(map(str, action.choices)) + "}" in text, (name, action.dest)
        assert "(default:" in text, name
    # --preset is explained, including the tiny preset
    assert "tiny: the smallest problems, for smoke tests" in _help(parsers["figures"])
    assert "plurality-fails" in _help(parsers["explore"])


def test_same_flags_mean_the_same_thing():
    parsers = _parsers()
    dests = {name: {a.dest: a for a in p._actions} for name, p in parsers.items()}
    for name in ("run", "probe", "explore"):  # one trial count everywhere
        assert "trials" in dests[name], name
    for name in ("run", "probe"):  # one name for the superclass group count
        assert "n_groups" in dests[name], name
    for name in ("predict", "run", "probe"):  # what --rounds counts, and the noise choices
        assert dests[name]["rounds"].help == ROUNDS_HELP, name
        assert tuple(dests[name]["noise"].choices) == NOISE_KINDS, name


def test_deprecated_alias_stores_the_new_option_and_notes_it(capsys):
    p = ArgumentParser(prog="x")
    p.add_argument("--trials", type=int, default=1, help="trials")
    add_deprecated_alias(p, "--seeds", "--trials", dest="trials", type=int)
    p.add_argument("--preprocess", choices=("center-l2", "raw"), default="center-l2", help="pre")
    add_deprecated_alias(p, "--no-preprocess", "--preprocess raw", dest="preprocess", const="raw")
    assert p.parse_args([]).trials == 1 and capsys.readouterr().err == ""
    args = p.parse_args(["--seeds", "4", "--no-preprocess"])
    assert (args.trials, args.preprocess) == (4, "raw")
    err = capsys.readouterr().err
    assert "note: --seeds is deprecated" in err and "use --trials" in err
    assert "use --preprocess raw" in err
    assert "--seeds" not in p.format_help()  # hidden from --help


@pytest.mark.slow
def test_old_spellings_and_one_json_key_across_commands(tmp_path):
    point = ["--classes", "3", "--per-class", "4", "--rounds", "1"]
    probe = ["simulations", "probe", "--rounds", "1", "--lam", "1e-2", "--no-theory", "--json"]
    procs = run_many(
        [
            ["theory", "predict", *point, "--json"],
            ["simulations", "run", *point, "--dim", "30", "--seeds", "2", "--json"],
            [*probe, "--seeds", "1", "--noise", "superclass", "--n-superclasses", "3"],
            [*probe, "--trials", "1", "--no-preprocess"],
        ]
    )
    for proc in procs:
        assert proc.returncode == 0, (proc.args, proc.stderr)
    docs = [json.loads(p.stdout) for p in procs]
    assert all("config" in d and "params" not in d for d in docs)
    assert docs[1]["trials"] == 2 and "note: --seeds is deprecated" in procs[1].stderr
    cfg = docs[2]["config"]
    assert (cfg["trials"], cfg["n_groups"], cfg["superclass_rule"]) == (1, 3, "correlation")
    assert len(docs[2]["groups"]) == 3
    assert "--n-superclasses is deprecated" in procs[2].stderr
    assert docs[3]["config"]["preprocess"] == "raw"
    assert "--no-preprocess is deprecated" in procs[3].stderr


@pytest.mark.parametrize("item", ["foo=1", "classes=3"])
def test_explorer_set_error_lists_the_readme_names(item):
    from figures.explorer_cli import parse_assignments

    with pytest.raises(ValueError) as info:
        parse_assignments([item])
    msg = str(info.value)
    assert "K, n, c, d, lam" in msg and "N/p" in msg and "n_classes" not in msg
