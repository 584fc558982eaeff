"""The shared command-line parser (theory/cli_util.py): negative numbers and one-line errors."""

import pytest

from theory.cli_util import NEGATIVE_NUMBER, ArgumentParser


@pytest.mark.parametrize(
    "token", ["-1", "-0.5", "-.5", "-1.", "-1e-3", "-2.5E+04", "-1e5", "-inf", "-Infinity", "-nan"]
)
def test_negative_numbers_are_values(token):
    assert NEGATIVE_NUMBER.match(token)
    parser = ArgumentParser()
    parser.add_argument("--x", type=float)
    parser.add_argument("--many", type=float, nargs="+")
    args = parser.parse_args(["--x", token, "--many", "1", token])
    assert str(args.x) == str(float(token)) and str(args.many[1]) == str(float(token))


@pytest.mark.parametrize("token", ["-x", "--lam", "-e5", "-1e", "-1-2", "-", "-K"])
def test_options_are_not_numbers(token):
    assert not NEGATIVE_NUMBER.match(token)


def test_usage_error_is_one_line_exit_2(capsys):
    parser = ArgumentParser(prog="p")
    parser.add_argument("--n", type=int, required=True)
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--n", "x"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: argument --n: invalid int value") and err.count("\n") == 1


def test_subparsers_inherit_the_number_rule():
    parser = ArgumentParser()
    sub = parser.add_subparsers(dest="cmd")
    q = sub.add_parser("q")
    q.add_argument("--lam", type=float)
    assert parser.parse_args(["q", "--lam", "-1e-3"]).lam == -1e-3
