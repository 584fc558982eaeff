"""``python -m theory predict``: JSON contract, table output and one-line errors (exit code 2)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from theory.cli import main, parse_counts
from theory.groups import BlockModel, predict_exact, predict_linear
from theory.noise import exact_counts, transition_matrix

BASE = [
    "predict",
    "--classes",
    "3",
    "--per-class",
    "5",
    "--c",
    "0.5",
    "--d",
    "0.1",
    "--lam",
    "0.01",
]
COUNTS = "4,1,0;1,3,1;0,0,5"
ACC = {"train_acc", "train_acc_clean", "train_acc_mislabeled", "population_acc"}


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_contract(capsys):
    code, out, _ = run([*BASE, "--counts", COUNTS, "--rounds", "3", "--json"], capsys)
    assert code == 0
    rep = json.loads(out)
    assert [r["round"] for r in rep["rounds"]] == [0, 1, 2, 3]
    for row in rep["rounds"]:
        assert ACC <= set(row["linear"]) and ACC <= set(row["exact"])
    assert ACC <= set(rep["pll"]["linear"]) and ACC <= set(rep["pll"]["exact"])
    cond = rep["conditions"]
    assert set(cond) >= {"plurality", "margin", "rho", "t_min_linear", "window_linear"}
    assert cond["plurality"] is True and cond["margin"] == pytest.approx(0.4)
    # The JSON equals the library predictions.
    model, counts = BlockModel(3, 5, 0.5, 0.1), parse_counts(COUNTS)
    lin, ex = predict_linear(model, counts, 0.01, 3), predict_exact(model, counts, 0.01, 3)
    for t, row in enumerate(rep["rounds"]):
        assert row["linear"]["train_acc"] == pytest.approx(lin.train_acc[t])
        assert row["exact"]["population_acc"] == pytest.approx(ex.population_acc[t])
    if cond["window_linear"] is not None:
        assert cond["window_linear"][0] == cond["t_min_linear"]


def test_json_has_no_nan_and_null_for_undefined(capsys):
    code, out, _ = run([*BASE, "--counts", "5,0,0;0,5,0;0,0,5", "--rounds", "1", "--json"], capsys)
    assert code == 0
    assert "NaN" not in out and "Infinity" not in out
    rep = json.loads(out)
    assert rep["rounds"][0]["linear"]["train_acc_mislabeled"] is None  # no mislabeled points


def test_noise_option_uses_exact_counts(capsys):
    code, out, _ = run(
        [*BASE[:2], "4", *BASE[3:], "--noise", "asym", "--eta", "0.4", "--json", "--rounds", "1"],
        capsys,
    )
    assert code == 0
    rep = json.loads(out)
    expected = exact_counts(transition_matrix("asym", 4, 0.4), 5)
    np.testing.assert_array_equal(rep["params"]["counts"], expected)


def test_table_output(capsys):
    code, out, _ = run([*BASE, "--counts", COUNTS, "--rounds", "2"], capsys)
    assert code == 0
    lines = out.splitlines()
    # header, counts (title, column labels, 3 rows), 2 table heads, 3 rounds, 2 PLL, conditions
    assert "PLL exact" in out and "plurality=True" in out and len(lines) == 1 + 5 + 2 + 3 + 2 + 1
    assert max(len(line) for line in lines) <= 100  # readable in a terminal


def test_table_is_readable_rho_rounded_counts_as_a_grid(capsys):
    code, out, _ = run([*BASE, "--counts", COUNTS, "--rounds", "1"], capsys)
    assert code == 0
    rho = out.split("rho=")[1].split()[0]
    assert len(rho.replace(".", "")) <= 4 and float(rho) == pytest.approx(
        json.loads(run([*BASE, "--counts", COUNTS, "--rounds", "1", "--json"], capsys)[1])[
            "conditions"
        ]["rho"],
        rel=1e-3,
    )
    grid = out.splitlines()[2:6]  # column labels, then one row per true class
    assert grid[0].split() == ["0", "1", "2"]
    assert [row.split() for row in grid[1:]] == [
        ["0", "4", "1", "0"],
        ["1", "1", "3", "1"],
        ["2", "0", "0", "5"],
    ]
    assert "[[" not in out  # no Python list repr
    # large K: a one-line summary instead of a K x K grid
    big = ["predict", "--classes", "20", "--per-class", "5", "--c", "0.5", "--d", "0.1"]
    code, out, _ = run(
        [*big, "--lam", "0.01", "--noise", "sym", "--eta", "0.4", "--rounds", "0"], capsys
    )
    assert code == 0 and "20x20" in out and max(len(line) for line in out.splitlines()) <= 100


@pytest.mark.parametrize(
    "argv, word",
    [
        (
            ["--classes", "3", "--per-class", "5", "--c", "0.1", "--d", "0.1", "--lam", "1"],
            "c must be > d",
        ),
        (
            ["--classes", "3", "--per-class", "5", "--c", "1.2", "--d", "0.1", "--lam", "1"],
            "c must be <= 1",
        ),
        (["--classes", "3", "--per-class", "5", "--c", "0.5", "--d", "-0.9", "--lam", "1"], "PSD"),
        (["--classes", "3", "--per-class", "5", "--c", "0.5", "--d", "0.1", "--lam", "0"], "lam"),
        (
            ["--classes", "1", "--per-class", "5", "--c", "0.5", "--d", "0.1", "--lam", "1"],
            "classes",
        ),
        (
            ["--classes", "3", "--per-class", "6", "--c", "0.5", "--d", "0.1", "--lam", "1"],
            "per_class",
        ),
    ],
)
def test_invalid_parameters_one_line_exit_2(argv, word, capsys):
    code, out, err = run(["predict", *argv, "--counts", COUNTS], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:") and word in err


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--counts", "4,1;1,3,1;0,0,5"], "same length"),
        (["--counts", "a,b"], "integers"),
        (["--noise", "sym"], "eta"),
        ([], "exactly one"),
        (["--counts", COUNTS, "--rounds", "-1"], "rounds"),
    ],
)
def test_invalid_counts_and_options(extra, word, capsys):
    code, _, err = run([*BASE, *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and word in err


def test_module_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "theory", *BASE, "--counts", COUNTS, "--rounds", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["conditions"]["plurality"] is True
    bad = subprocess.run(
        [sys.executable, "-m", "theory", "predict", "--classes", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_negative_numbers_reach_validation_in_a_subprocess():
    from tests.cli import assert_one_line_error, run_many

    base = ["theory", "predict", "--classes", "3", "--per-class", "5", "--c", "0.5"]
    neg_lam, neg_d = run_many(
        [
            [*base, "--d", "0.1", "--lam", "-1e-3", "--counts", COUNTS],
            [*base, "--d", "-1e-2", "--lam", "1e-2", "--counts", COUNTS, "--rounds", "0"],
        ]
    )
    assert_one_line_error(neg_lam, "lam must be", "> 0", "-0.001")  # rejected for its sign
    assert neg_d.returncode == 0 and "d=-0.01" in neg_d.stdout  # a valid negative value
