"""``python -m theory predict``: JSON contract, table output and one-line errors (exit code 2)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from selfdistill_cli.predict import main, parse_counts
from theory.finite_exact.state import STATE_TOL
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
    np.testing.assert_array_equal(rep["config"]["counts"], expected)


def test_table_output(capsys):
    code, out, _ = run([*BASE, "--counts", COUNTS, "--rounds", "2"], capsys)
    assert code == 0
    lines = out.splitlines()
    # header, counts (title, column labels, 3 rows), 2 table heads, 3 rounds, 2 PLL,
    # 3 candidate-set loss lines, conditions
    assert "PLL exact" in out and "plurality=True" in out
    assert len(lines) == 1 + 5 + 2 + 3 + 2 + 3 + 1
    assert "PLL candidate" in out and "PLL gce (q=0.7)" in out and "*" not in out
    assert max(len(line) for line in lines) <= 100  # readable in a terminal


def test_population_ties_are_marked_not_shown_as_plain_zero(capsys):
    """Pair noise at eta = 0.5: every class's population point ties between its class and the
    next (50/50 label histograms), so population accuracy is 0 by the tie rule. The table marks
    those entries ``t`` with a note, and the JSON carries ``population_ties`` (it read as a
    teacher that learned nothing)."""
    base = ["predict", "--classes", "3", "--per-class", "20", "--lam", "1e-3", "--rounds", "1"]
    code, out, _ = run([*base, "--noise", "pair", "--eta", "0.5"], capsys)
    assert code == 0
    assert "0.000t" in out and "t: population points tied between classes" in out
    code, out, _ = run([*base, "--noise", "pair", "--eta", "0.5", "--json"], capsys)
    row = json.loads(out)["rounds"][0]
    for source in ("linear", "exact"):
        assert row[source]["population_acc"] == 0.0 and row[source]["population_ties"] == 3
    code, out, _ = run([*base, "--noise", "sym", "--eta", "0.3"], capsys)  # no ties
    assert "t: population" not in out and "0.000t" not in out


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
        (["--counts", COUNTS, "--noise", "sym"], "not both"),
        (["--noise", "superclass"], "--groups"),
        (["--noise", "sym", "--groups", "[[0, 1], [2]]"], "superclass only"),
        (["--noise", "superclass", "--groups", "[[0, 1]"], "JSON"),
        (["--counts", COUNTS, "--rounds", "-1"], "rounds"),
    ],
)
def test_invalid_counts_and_options(extra, word, capsys):
    code, _, err = run([*BASE, *extra], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and word in err


@pytest.mark.slow
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
        [sys.executable, "-m", "theory", "predict", "--classes", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_json_pll_losses_contract(capsys):
    code, out, _ = run([*BASE, "--counts", COUNTS, "--rounds", "1", "--json", "--q", "0.5"], capsys)
    assert code == 0
    rep = json.loads(out)
    assert rep["config"]["q"] == 0.5
    assert set(rep["pll_losses"]) == {"ce", "candidate", "gce"}
    fields = set(rep["pll"]["exact"])
    assert fields >= ACC | {"ties", "candidate_ties", "residual", "converged"}
    for loss, entry in rep["pll_losses"].items():
        assert fields <= set(entry["exact"]), loss
        assert ("linear" in entry) != ("linear_undefined" in entry)
    # ce is today's PLL student, field by field.
    assert rep["pll_losses"]["ce"]["exact"] == rep["pll"]["exact"]
    assert rep["pll_losses"]["ce"]["linear"] == rep["pll"]["linear"]
    assert rep["unconverged"] == [] and rep["max_exact_residual"] <= 1e-12
    # The non-convex students report their second-order status.
    assert "second_order" in rep["pll_losses"]["candidate"]["exact"]


@pytest.mark.parametrize("q", ["0", "1.5", "-0.2", "nan"])
def test_invalid_q(q, capsys):
    code, out, err = run([*BASE, "--counts", COUNTS, "--q", q], capsys)
    assert code == 2 and out == "" and err.startswith("error:") and "q" in err


def test_lam_one_example_reads_100_percent_every_round(capsys):
    # Issue 11: outputs approach 1/K geometrically at lam = 1; the gaps must still be resolved
    # (100% in every round, consistent with the unbounded window_linear = [0, null]).
    argv = ["predict", "--classes", "4", "--per-class", "50", "--c", "0.4", "--d", "0.1"]
    argv += ["--lam", "1", "--noise", "sym", "--eta", "0.3", "--rounds", "10", "--json"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    rep = json.loads(out)
    assert rep["conditions"]["window_linear"] == [0, None]
    assert rep["conditions"]["window_unbounded"] is True
    for row in rep["rounds"]:
        for method in ("linear", "exact"):
            assert row[method]["train_acc"] == 1.0 and row[method]["ties"] == 0, (row, method)
            assert row[method]["population_acc"] == 1.0


def test_partial_results_are_marked_not_dropped(capsys, monkeypatch):
    # Force the round-0 solve to stop after one Newton step: the report is still printed, every
    # round trained on the uncertified teacher is marked, the exit code stays 0.
    import theory.groups as groups

    real = groups.solve_loss_groups

    def one_step(*args, **kwargs):
        kwargs["max_iter"] = 1
        return real(*args, **kwargs)

    monkeypatch.setattr(groups, "solve_loss_groups", one_step)
    argv = [*BASE[:-1], "1e-4", "--counts", COUNTS, "--rounds", "2"]
    code, out, err = run([*argv, "--json"], capsys)
    assert code == 0
    rep = json.loads(out)
    entries = [u["entry"] for u in rep["unconverged"]]
    assert entries[:3] == ["rounds[0].exact", "rounds[1].exact", "rounds[2].exact"]
    assert all(not row["exact"]["converged"] for row in rep["rounds"])
    first = rep["unconverged"][0]
    assert (
        first["residual"] > first["target"]
        and first["residual"] == rep["rounds"][0]["exact"]["residual"]
    )
    assert "warning:" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(argv, capsys)
    assert code == 0 and "* not converged: rounds[0].exact" in out
    round0 = next(line for line in out.splitlines() if line.lstrip().startswith("0 |"))
    assert round0.rstrip().endswith("*")  # round 0's exact cells are marked


@pytest.mark.slow
def test_resource_refusal_one_line_with_estimates(capsys):
    from selfdistill_cli.predict import check_resources
    from theory.report import resource_estimate

    model = BlockModel(100, 50, 0.4, 0.1)
    counts = exact_counts(transition_matrix("sym", 100, 0.3), 50)
    mem, flops = resource_estimate(model, counts, 10)
    assert 1e8 < mem < 1e9 and flops > 1e9  # K^3 = 1e6 unknowns: a few hundred MB
    with pytest.raises(ValueError, match=r"GB .* available\) and about .* operations"):
        check_resources(model, counts, 10, available=mem // 2)
    check_resources(model, counts, 10, available=2 * mem)
    # K = 1500: 11 rounds of K^3 = 3.4e9 group entries (~600 GB) cannot fit; refused before any
    # (K, K, K) allocation.
    argv = ["predict", "--classes", "1500", "--per-class", "1", "--c", "0.5", "--d", "0.1"]
    code, out, err = run(
        [
            *argv,
            "--lam",
            "1e-2",
            "--counts",
            ";".join(",".join("1" if j == i else "0" for j in range(1500)) for i in range(1500)),
        ],
        capsys,
    )
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: K=1500") and "GB" in err


def test_long_runs_print_progress_on_stderr(capsys, monkeypatch):
    import selfdistill_cli.predict as cli

    monkeypatch.setattr(cli, "PROGRESS_FLOPS", 0.0)  # treat this small problem as a long run
    code, out, err = run([*BASE, "--counts", COUNTS, "--rounds", "2", "--json"], capsys)
    assert code == 0 and json.loads(out)["unconverged"] == []
    lines = err.strip().splitlines()
    assert lines[0] == "progress: linear rounds done"
    assert sum(line.startswith("progress: exact round") for line in lines) == 3
    assert lines[-1] == "progress: PLL student gce done"


@pytest.mark.slow
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


@pytest.mark.slow
def test_dim_adds_the_finite_p_theory(capsys):
    """--dim P: rounds[t].finite (linearised, with its error indicator) and rounds[t].finite_exact
    with their summaries, equal to theory.finite.predict_finite and
    theory.finite_exact.predict_finite_exact on the same counts (both deterministic); without
    --dim nothing changes."""
    from theory.finite import MixtureModel, predict_finite
    from theory.finite_exact import predict_finite_exact

    argv = [*BASE, "--counts", COUNTS, "--rounds", "2", "--json"]
    code, plain, _ = run(argv, capsys)
    assert code == 0
    code, out, _ = run([*argv, "--dim", "40"], capsys)
    assert code == 0
    rep, base = json.loads(out), json.loads(plain)
    assert "finite" not in base and all("finite" not in row for row in base["rounds"])
    added = {"finite", "finite_exact", "spec"}
    assert rep["spec"] == base.pop("spec") | {"dim": 40}  # the spec differs by its dimension
    pll_exact = rep["pll"].pop("finite_exact")
    assert {k: v for k, v in rep.items() if k not in added} | {"rounds": None} == base | {
        "rounds": None
    }
    mix = MixtureModel(3, 5, 40, 0.5, 0.1)
    pred = predict_finite(mix, parse_counts(COUNTS), 1e-2, 2)
    exact = predict_finite_exact(mix, parse_counts(COUNTS), 1e-2, 2, points=64)
    for t, row in enumerate(rep["rounds"]):
        assert set(row["finite"]) == ACC | {"error_indicator", "validated"}
        assert set(row["finite_exact"]) == ACC
        assert row["finite"]["population_acc"] == pytest.approx(pred.population_acc[t], abs=1e-12)
        assert row["finite_exact"]["train_acc"] == pytest.approx(exact.train_acc[t], abs=1e-12)
        gap = max(
            abs(row["finite"][k] - row["finite_exact"][k])
            for k in ACC
            if row["finite"][k] is not None and row["finite_exact"][k] is not None
        )
        assert row["finite"]["error_indicator"] == pytest.approx(gap, abs=1e-15)
        assert row["finite"]["validated"] == (gap <= 0.03)
        assert row["linear"] == base["rounds"][t]["linear"]
    fin = rep["finite"]
    assert fin["dim"] == 40 and fin["ratio"] == pytest.approx(15 / 40) and fin["linearised"]
    cond = fin["conditions"]
    assert 0 <= cond["best_population_round"] <= 2 and cond["delta"] == 0.01
    student = predict_finite_exact(mix, parse_counts(COUNTS), 1e-2, 1, points=64, student="pll")
    assert pll_exact["train_acc"] == pytest.approx(student.train_acc[1], abs=1e-12)
    fe = rep["finite_exact"]
    assert fe["fixed_point"]["converged"] and fe["fixed_point"]["max_residual"] <= STATE_TOL
    assert fe["conditions"]["best_population_round"] == int(np.argmax(exact.population_acc))
    code, table, _ = run([*BASE, "--counts", COUNTS, "--rounds", "2", "--dim", "40"], capsys)
    assert code == 0 and "finite p=40" in table and "best population round" in table
    assert "finite-exact p=40" in table


def test_dim_refuses_an_exact_finite_theory_that_would_take_minutes(capsys):
    """A non-circulant count matrix at K = 12 integrates all its 25 nonzero groups: with many
    points and rounds that is refused up front, one line with the estimate and the override;
    --no-finite-exact keeps the linearised theory, whose error indicator is then unknown."""
    k = 12
    counts = 10 * np.eye(k, dtype=int)
    for i in range(k):
        counts[i, (i + 1) % k] = 2
    counts[0, 1], counts[0, 5] = 1, 1  # breaks the cyclic symmetry
    text = ";".join(",".join(map(str, row)) for row in counts)
    argv = ["predict", "--classes", "12", "--per-class", "12", "--c", "0.4", "--d", "0.1",
            "--lam", "1e-3", "--counts", text, "--rounds", "10", "--dim", "200",
            "--points", "4096"]  # fmt: skip
    code, _, err = run(argv, capsys)
    assert code == 2 and "exact finite-ratio theory" in err and "--no-finite-exact" in err
    assert err.count("\n") == 1
    code, out, _ = run([*argv[:-4], "--dim", "200", "--rounds", "1", "--no-finite-exact",
                        "--json"], capsys)  # fmt: skip
    assert code == 0
    rep = json.loads(out)
    assert "finite_exact" not in rep and "finite" in rep
    assert all(row["finite"]["error_indicator"] is None for row in rep["rounds"])


@pytest.mark.parametrize(
    "extra, word",
    [
        (["--dim", "2"], "dim"),
        (["--dim", "40", "--delta", "0"], "delta"),
        (["--dim", "40", "--d", "0.6"], "d"),
        # Options of the finite-p theories without --dim were ignored silently.
        (["--delta", "0.1"], "--delta: only with --dim"),
        (["--points", "32"], "--points: only with --dim"),
        (["--no-finite-exact"], "--no-finite-exact: only with --dim"),
    ],
)
def test_dim_bad_input(extra, word, capsys):
    code, out, err = run([*BASE, "--counts", COUNTS, *extra], capsys)
    assert code == 2 and out == "" and err.startswith("error:") and word in err


def _general_counts(k, n):
    """Counts without a class symmetry: n - 2 clean, one flip to k + 1, one to k + 2 + (k % 3)."""
    counts = np.zeros((k, k), dtype=int)
    for row in range(k):
        counts[row, row] = n - 2
        counts[row, (row + 1) % k] += 1
        counts[row, (row + 2 + row % 3) % k] += 1
    return counts


def test_dim_refused_up_front_at_large_k(capsys):
    """General counts: the K^4 path is refused at K = 60; symmetric counts take the orbit path."""
    from theory.class_symmetry import class_symmetry

    argv = ["predict", "--classes", "60", "--per-class", "4", "--c", "0.4", "--d", "0.1"]
    counts = _general_counts(60, 4)
    assert class_symmetry(counts) is None
    text = ";".join(",".join(map(str, row)) for row in counts)
    code, out, err = run([*argv, "--lam", "1e-3", "--counts", text], capsys)
    assert code == 0  # the block-model report alone is fine at K = 60
    code, out, err = run([*argv, "--lam", "1e-3", "--counts", text, "--dim", "500"], capsys)
    # Refused by its memory or its time estimate, with the override (issues 21, 24): general
    # counts take the K^4 path.
    assert code == 2 and out == "" and "finite-p theory at K=60" in err
    assert ("GB" in err and "--max-memory" in err) or "--max-time" in err


def test_window_is_never_clipped_to_rounds(capsys):
    # Issue 22: the 100%-window used to read [1, R] for every --rounds R, as if it ended at R.
    argv = [*BASE, "--counts", COUNTS]
    texts, reps = [], []
    for rounds in ("1", "7"):
        code, out, _ = run([*argv, "--rounds", rounds, "--json"], capsys)
        assert code == 0
        reps.append(json.loads(out)["conditions"])
        code, out, _ = run([*argv, "--rounds", rounds], capsys)
        texts.append(out)
    assert reps[0] == reps[1]  # the window does not depend on how many rounds are printed
    cond = reps[0]
    if cond["window_unbounded"]:
        assert cond["window_linear"][1] is None
        assert all(f"window_linear=[{cond['window_linear'][0]}, ∞)" in t for t in texts)
    else:
        assert cond["window_linear"] is None or cond["window_linear"][1] is not None


def test_predict_has_the_defaults_of_simulations_run(capsys):
    from selfdistill_cli.predict import build_parser as _build_parser
    from simulations.cli_run import build_parser as run_parser

    pred = _build_parser().parse_args(["predict"])
    sim = run_parser().parse_args([])
    assert (pred.classes, pred.per_class, pred.c, pred.d, pred.lam, pred.rounds, pred.q) == (
        sim.n_classes,
        sim.per_class,
        sim.c,
        sim.d,
        sim.lam,
        sim.rounds,
        sim.q,
    )
    code, out, _ = run(["predict", "--json"], capsys)
    cfg = json.loads(out)["config"]
    assert code == 0 and (cfg["noise"], cfg["eta"]) == (sim.noise, sim.eta)
    assert cfg["counts"] == exact_counts(transition_matrix("sym", 3, sim.eta), 20).tolist()


def test_help_shows_defaults_and_choices(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(default: 0.001)" in out and "{sym,pair,asym,superclass}" in out
    assert "(default: sym unless --counts is given)" in out


@pytest.mark.slow
def test_dim_refuses_the_linearised_theory_where_its_random_matrix_part_fails(capsys):
    """lam = 1e-4 with p <= N/2 (docs §11.9): no linearised numbers, the reason instead; the
    exact finite-ratio theory is still reported."""
    argv = ["predict", "-K", "4", "-n", "10", "--c", "0.4", "--d", "0.1", "--lam", "1e-4"]
    argv += ["--noise", "sym", "--eta", "0.3", "--rounds", "1", "--dim", "20", "--json"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    rep = json.loads(out)
    assert "random-matrix part fails" in rep["finite"]["refused"] and not rep["finite"]["validated"]
    for row in rep["rounds"]:
        assert all(row["finite"][key] is None for key in ACC)
        assert all(0 <= row["finite_exact"][key] <= 1 for key in ACC if row["finite_exact"][key])
    code, table, _ = run(argv[:-1], capsys)
    assert code == 0 and "refused" in table


def test_check_finite_resources_symmetric_counts(capsys):
    """K = 100 with exchangeable (or circulant) counts is accepted, K = 1000 refused up front
    (memory here; its time counts in the report's estimate, checked by the command)."""
    from selfdistill_cli.predict import check_finite_resources
    from theory.noise import exact_counts, transition_matrix

    sym = exact_counts(transition_matrix("sym", 100, 0.5), 198)  # 1 count per other label
    pair = exact_counts(transition_matrix("pair", 100, 0.3), 20)
    for counts in (sym, pair):
        check_finite_resources(100, 10, available=4e9, counts=counts)
    with pytest.raises(ValueError, match="finite-p theory at K=100"):
        check_finite_resources(100, 10, available=4e9, counts=_general_counts(100, 4))
    with pytest.raises(ValueError, match="finite-p theory at K=100"):
        check_finite_resources(100, 10, available=4e9)  # counts unknown: the general path
    argv = ["predict", "-K", "1000", "-n", "1998", "--noise", "sym", "--eta", "0.5"]
    code, out, err = run([*argv, "--rounds", "10", "--dim", "4000"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--max-time" in err or "--max-memory" in err


def test_finite_precision_error_is_one_line(monkeypatch, capsys):
    """A finite-p covariance below the contour rule's round-off: one line, exit 2 (a
    FiniteResolutionError: the parameters are outside what the theory resolves), no traceback."""
    import selfdistill_cli.predict as cli
    from theory.finite import FinitePrecisionError

    def spent(*args, **kwargs):
        raise FinitePrecisionError("finite-p covariance is not positive semidefinite; use fewer")

    monkeypatch.setattr(cli, "predict_report", spent)
    code, out, err = run([*BASE, "--counts", COUNTS, "--dim", "40"], capsys)
    assert code == 2 and out == "" and err.startswith("error: finite-p covariance")
    assert len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# One model of a run (issue 23, item 2): the JSON's numbers are theory.spec.predict's


def _assert_bits(entries, values):
    """Each entry's accuracies equal the Result's row bit for bit (JSON keeps every float of a
    ``repr``), ``None`` exactly where the value is NaN (undefined)."""
    from theory.names import THEORY_FIELDS
    from theory.spec import METRICS

    assert len(entries) == len(values)
    for entry, row in zip(entries, values, strict=True):
        for metric, value in zip(METRICS, row, strict=True):
            got = entry[THEORY_FIELDS[metric]]
            assert got is None if np.isnan(value) else got == float(value), (metric, entry, row)


def _spec(**kw):
    from theory.spec import Spec

    return Spec(**kw)


_SUPER = [[0, 1], [2, 3]]
CROSS_CHECKS = [
    pytest.param(
        [*BASE, "--counts", COUNTS, "--rounds", "3", "--q", "0.5"],
        dict(n_classes=3, per_class=5, c=0.5, d=0.1, lam=0.01, rounds=3, q=0.5,
             counts=parse_counts(COUNTS)),
        id="counts-q",
    ),
    pytest.param(  # the saddle example of tests/theory/test_group_descent.py
        ["predict", "-K", "4", "-n", "10", "--c", "0.4", "--d", "0.1", "--lam", "4.64e-3",
         "--noise", "pair", "--eta", "0.3", "--rounds", "1"],
        dict(n_classes=4, per_class=10, c=0.4, d=0.1, lam=4.64e-3, rounds=1, noise="pair",
             eta=0.3),
        id="pair-saddle",
    ),
    pytest.param(  # uncertified PLL students (partial results) are compared too
        ["predict", "-K", "4", "-n", "10", "--c", "0.4", "--d", "0", "--lam", "1e-12",
         "--noise", "sym", "--eta", "0.3", "--rounds", "2"],
        dict(n_classes=4, per_class=10, c=0.4, d=0.0, lam=1e-12, rounds=2, noise="sym",
             eta=0.3),
        id="uncertified",
        marks=pytest.mark.slow,  # ~2 s: the lam = 1e-12 students run to their iteration limits
    ),
    pytest.param(
        ["predict", "-K", "4", "--noise", "superclass", "--groups", json.dumps(_SUPER),
         "--eta", "0.4"],
        dict(n_classes=4, noise="superclass", eta=0.4, groups=tuple(map(tuple, _SUPER))),
        id="superclass",
    ),
    pytest.param(
        ["predict", "-K", "2", "-n", "10", "--noise", "asym", "--eta", "0.3"],
        dict(n_classes=2, per_class=10, noise="asym", eta=0.3),
        id="two-classes",
    ),
    pytest.param(
        [*BASE, "--counts", COUNTS, "--rounds", "2", "--dim", "40"],
        dict(n_classes=3, per_class=5, c=0.5, d=0.1, lam=0.01, rounds=2,
             counts=parse_counts(COUNTS), dim=40),
        id="dim",
        marks=pytest.mark.slow,
    ),
]  # fmt: skip


@pytest.mark.parametrize("argv, spec_kw", CROSS_CHECKS)
def test_predict_cli_vs_spec_predict(argv, spec_kw, capsys):
    """Every accuracy of ``theory predict --json`` is ``predict(Spec(...), source)``'s, bit for
    bit; each PLL student here solves its own teacher (the command line shares one)."""
    import math
    from dataclasses import replace

    from theory.names import LOSS_METHOD
    from theory.pll import LinearisationUndefinedError
    from theory.spec import predict

    code, out, _ = run([*argv, "--json"], capsys)
    assert code == 0
    rep = json.loads(out)
    spec = _spec(**spec_kw)
    block = replace(spec, dim=math.inf)
    for source in ("linear", "exact"):
        res = predict(block, source, allow_unconverged=True)
        _assert_bits([row[source] for row in rep["rounds"]], res.values)
    students = {} if "undefined" in rep["pll"] else rep["pll_losses"]
    assert students or spec.n_classes == 2
    for loss, entry in students.items():
        student = replace(block, method=LOSS_METHOD[loss])
        _assert_bits([entry["exact"]], predict(student, "exact").values[1:])
        if "linear" in entry:
            _assert_bits([entry["linear"]], predict(student, "linear").values[1:])
        else:
            with pytest.raises(LinearisationUndefinedError):
                predict(student, "linear")
    if spec.finite:
        _assert_bits([row["finite"] for row in rep["rounds"]], predict(spec, "finite").values)
        exact = predict(spec, "finite_exact")  # the command line's 64 points are the default
        _assert_bits([row["finite_exact"] for row in rep["rounds"]], exact.values)
        student = predict(replace(spec, method=LOSS_METHOD["ce"]), "finite_exact")
        _assert_bits([rep["pll"]["finite_exact"]], student.values[1:])
    # the added key is this run's spec
    assert type(spec).from_dict(rep["spec"]) == spec


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["predict", "--rounds", "2"], id="defaults"),
        pytest.param([*BASE, "--counts", COUNTS, "--q", "0.5"], id="counts"),
        pytest.param(
            [*BASE, "--counts", COUNTS, "--rounds", "1", "--dim", "40", "--points", "16"],
            id="dim",
            marks=pytest.mark.slow,
        ),  # fmt: skip
    ],
)
def test_predict_json_spec_round_trip(argv, capsys):
    """``--json``'s ``spec`` rebuilds the run: ``predict(Spec.from_dict(rep['spec']), source)``
    gives the report's numbers (with ``--points``, pass ``points`` too)."""
    import math
    from dataclasses import replace

    from theory.names import LOSS_METHOD
    from theory.spec import Spec, predict

    code, out, _ = run([*argv, "--json"], capsys)
    assert code == 0
    rep = json.loads(out)
    spec = Spec.from_dict(rep["spec"])
    assert spec.to_dict() == rep["spec"] and spec.count_matrix().tolist() == rep["config"]["counts"]
    block = replace(spec, dim=math.inf)
    _assert_bits([row["exact"] for row in rep["rounds"]], predict(block).values)
    gce = predict(replace(block, method=LOSS_METHOD["gce"]))
    _assert_bits([rep["pll_losses"]["gce"]["exact"]], gce.values[1:])
    if spec.finite:
        points = int(argv[argv.index("--points") + 1])  # not in the spec: a theory option
        _assert_bits(
            [row["finite_exact"] for row in rep["rounds"]], predict(spec, points=points).values
        )
