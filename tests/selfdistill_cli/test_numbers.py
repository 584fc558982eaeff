"""Negative numbers as option values through argparse's public interface
(:mod:`selfdistill_cli.numbers`): the argument list is rewritten, argparse's private number
pattern is left alone."""

from __future__ import annotations

import argparse

import pytest

from selfdistill_cli import ArgumentParser
from selfdistill_cli.numbers import OptionKinds

TOKENS = ["-1", "-0.5", "-.5", "-1.", "-1e-3", "-2.5E+04", "-inf", "-nan"]


def _parser():
    p = ArgumentParser(prog="p")
    p.add_argument("-K", "--classes", type=int)
    p.add_argument("--lam", type=float)
    p.add_argument("--many", type=float, nargs="+")
    p.add_argument("--two", type=int, nargs=2)
    p.add_argument("--flag", action="store_true")
    p.add_argument("--name")
    return p


def test_private_number_pattern_is_not_replaced():
    # The standard library's own pattern, whatever it is in this Python version.
    assert (
        ArgumentParser()._negative_number_matcher.pattern
        == argparse.ArgumentParser()._negative_number_matcher.pattern
    )


@pytest.mark.parametrize("token", TOKENS)
def test_negative_number_after_an_option_is_its_value(token):
    args = _parser().parse_args(["-K", "-3", "--lam", token, "--many", token, "2", token])
    assert args.classes == -3
    assert str(args.lam) == str(float(token))
    assert [str(v) for v in args.many] == [str(float(token)), "2.0", str(float(token))]


@pytest.mark.parametrize("token", ["-1", "-1e-3", "-inf"])
def test_short_abbreviated_and_grouped_options(token):
    p = _parser()
    group = p.add_argument_group("extra")
    group.add_argument("--grouped", type=float)
    exclusive = p.add_mutually_exclusive_group()
    exclusive.add_argument("--either", type=float)
    args = p.parse_args(["--la", token, "--grouped", token, "--either", token])
    assert str(args.lam) == str(args.grouped) == str(args.either) == str(float(token))


def test_marked_value_errors_read_as_typed(capsys):
    """An int option given a non-integer negative number: argparse's own wording, token as typed
    (no trace of the leading space that made it a value)."""
    for argv, expected in [
        (["-K", "-1.5"], "error: argument -K/--classes: invalid int value: '-1.5'"),
        (["--two", "1", "-1e3"], "error: argument --two: invalid int value: '-1e3'"),
    ]:
        with pytest.raises(SystemExit) as exc:
            _parser().parse_args(argv)
        assert exc.value.code == 2
        assert capsys.readouterr().err == expected + "\n"


def test_strings_flags_help_and_double_dash(capsys):
    p = _parser()
    assert p.parse_args(["--name", "-5"]).name == "-5"  # a string option keeps the token
    assert p.parse_args(["--flag", "--lam", "-2"]).lam == -2.0
    p.add_argument("rest", nargs="*")
    assert p.parse_args(["--", "-1e-3"]).rest == ["-1e-3"]  # after --: untouched
    with pytest.raises(SystemExit) as exc:
        p.parse_args(["--lam", "-1", "-h"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("usage: p")


def test_rewrite_leaves_everything_else_alone():
    kinds = OptionKinds()
    kinds.kinds.update({"--lam": "one", "--many": "several", "--flag": "flag", "-K": "one"})
    argv = ["--flag", "-1", "--lam", "0.5", "--lam=-1", "-K", "-2", "--many", "1", "-2", "--flag"]
    assert kinds.rewrite(argv) == [
        "--flag",
        "-1",  # after a flag: a positional's business, not rewritten
        "--lam",
        "0.5",
        "--lam=-1",
        "-K=-2",
        "--many",
        "1",
        " -2",
        "--flag",
    ]
    ambiguous = OptionKinds()
    ambiguous.kinds.update({"--lam": "one", "--lams": "several"})
    assert ambiguous.rewrite(["--la", "-1"]) == ["--la", "-1"]  # argparse reports it


def test_a_minus_digit_value_of_a_one_valued_option_reaches_its_check(capsys):
    """``--counts -1,2;3,4`` (not one number) was argparse's 'expected one argument': no option
    starts with '-' and a digit, so it is the option's value and gets the option's own error."""
    kinds = OptionKinds()
    kinds.kinds.update({"--counts": "one", "--many": "several"})
    assert kinds.rewrite(["--counts", "-1,2;3,4"]) == ["--counts=-1,2;3,4"]
    assert kinds.rewrite(["--many", "1", "-2,3"]) == ["--many", "1", "-2,3"]  # not a number
    from selfdistill_cli.predict import main as predict_main

    assert predict_main(["predict", "--classes", "2", "--counts", "-1,2;3,4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: counts entries must be integers") and "got -1" in err


def test_subparsers_record_their_own_options():
    parser = ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    q = sub.add_parser("q")
    q.add_argument("--lam", type=float)
    q.add_argument("--lams", type=float, nargs="+")
    args = parser.parse_args(["q", "--lam", "-1e-3", "--lams", "-1e-3", "-inf"])
    assert args.lam == -1e-3 and args.lams[0] == -1e-3 and args.lams[1] == float("-inf")


def _command_parsers():
    from tests.selfdistill_cli.test_vocabulary import _parsers

    return _parsers()


@pytest.mark.parametrize("token", TOKENS)
def test_every_command_takes_negative_numbers_as_values(token, capsys):
    """Every value-taking option of every command: a negative number reaches the option's type
    and checks (its value or their error), never "expected one argument"."""
    for name, parser in _command_parsers().items():
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0:
                continue
            argv = [action.option_strings[-1], token]
            argv = ["spec.toml", *argv] if name == "sweep" else argv
            try:
                parser.parse_args(argv)
                message = ""
            except SystemExit:
                message = capsys.readouterr().err
            except Exception as exc:  # predict's parser raises its usage error
                message = str(exc)
            assert "expected one argument" not in message, (name, argv, message)
