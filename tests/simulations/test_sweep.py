"""Tests for simulations.sweep and the sweep CLI: specs, CIs, parallel backends, resumption."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import simulations.monte_carlo as monte_carlo
import simulations.sweep as sweep_mod
from simulations.cli_sweep import main as sweep_main
from simulations.monte_carlo import EXACT_ROW_FIELDS, run_spec, trial_config
from simulations.pipelines import TrialConfig, run_trial, trial_seed
from simulations.sweep import (
    ROW_FIELDS,
    load_spec,
    mean_ci,
    parse_spec,
    read_csv,
    run_config,
    run_sweep,
    summarize,
)
from simulations.sweep_files import to_csv
from tests.simulations._helpers import start_held_sweep

ROOT = Path(__file__).resolve().parents[2]

#: Small grid: 2 eta x 2 methods = 4 configs, 2 seeds; rows = 2 * (3 + 2) per eta.
SPEC = {
    "sweep": {"trials": 2, "base_seed": 5, "name": "test"},
    "grid": {
        "eta": [0.1, 0.3],
        "method": ["sd", "pll-ce"],
        "K": 3,
        "n": 5,
        "p": 30,
        "rounds": 2,
        "n_test": 10,
    },
}


def _spec_text(seeds=2, etas="[0.1, 0.3]", n=5, p=30):
    return (
        f'[sweep]\ntrials = {seeds}\nbase_seed = 5\nname = "test"\n[grid]\n'
        f'eta = {etas}\nmethod = ["sd", "pll-ce"]\nK = 3\nn = {n}\np = {p}\nrounds = 2\n'
        "n_test = 10\n"
    )


def test_parse_spec_grid_aliases_and_dedupe():
    spec = parse_spec(SPEC)
    assert len(spec.configs) == 4 and spec.seeds == 2 and spec.base_seed == 5
    assert {c.method for c in spec.configs} == {"sd", "pll-ce"}
    assert all(c.n_classes == 3 and c.per_class == 5 and c.dim == 30 for c in spec.configs)
    # rounds is irrelevant for PLL methods: a grid over it does not duplicate PLL configs.
    spec2 = parse_spec({**SPEC, "grid": {**SPEC["grid"], "rounds": [1, 2, 3]}})
    assert len(spec2.configs) == 2 * (3 + 1)
    assert len(set(spec2.keys)) == len(spec2.keys)


def test_parse_spec_groups_scalar_and_grid():
    base = {"sweep": {"trials": 1}, "grid": {"noise": "superclass", "K": 3}}
    one = parse_spec({**base, "grid": {**base["grid"], "groups": [[0, 1], [2]]}})
    assert [c.groups for c in one.configs] == [((0, 1), (2,))]
    two = parse_spec({**base, "grid": {**base["grid"], "groups": [[[0, 1], [2]], [[0], [1, 2]]]}})
    assert [c.groups for c in two.configs] == [((0, 1), (2,)), ((0,), (1, 2))]


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"grid": {}}, "trials"),
        ({"sweep": {"trials": 0}}, "trials"),
        ({"sweep": {"trials": 1, "base": 1}}, "unknown \\[sweep\\]"),
        ({"sweep": {"trials": 1}, "grid": {"etta": 0.1}}, "unknown \\[grid\\] parameter 'etta'"),
        ({"sweep": {"trials": 1}, "grid": {"eta": []}}, "non-empty"),
        ({"sweep": {"trials": 1}, "grid": {"K": 3, "n_classes": 4}}, "twice"),
        ({"sweep": {"trials": 1}, "grid": {"eta": [0.1, 1.5]}}, "invalid config.*eta"),
        ({"sweep": {"trials": 1}, "other": {}}, "unknown spec section"),
        ({"sweep": {"trials": 1, "seeds": 1}}, "old name"),
    ],
)
def test_parse_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_spec(spec)


def test_load_spec_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sweep\nseeds = 1\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_spec(bad)


def test_mean_ci_vs_scipy_t_interval():
    v = [0.2, 0.5, 0.4, 0.9]
    mean, half, m = mean_ci(v)
    lo, hi = stats.t.interval(0.95, 3, loc=np.mean(v), scale=stats.sem(v))
    assert m == 4 and mean == pytest.approx(np.mean(v))
    assert half == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert mean_ci([1.0, float("nan"), 3.0])[2] == 2
    assert np.isnan(mean_ci([1.0])[1]) and mean_ci([])[2] == 0
    assert mean_ci([0.5, 0.5, 0.5])[1] == 0.0


@pytest.mark.slow
def test_mean_ci_coverage_within_binomial_error():
    # Normal data: the t interval covers the true mean with probability exactly 0.95.
    rng = np.random.default_rng(0)
    reps = 4000
    hits = 0
    for _ in range(reps):
        mean, half, _ = mean_ci(rng.normal(1.0, 2.0, 5))
        hits += abs(mean - 1.0) <= half
    # Binomial(4000, 0.95) sd = 13.8; 5 sd.
    assert abs(hits - 0.95 * reps) <= 5 * np.sqrt(reps * 0.95 * 0.05)


def _files(out):
    res = Path(out) / "results"
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in res.glob("*.csv")}


def test_serial_sweep_outputs_and_summary(tmp_path):
    spec = parse_spec(SPEC)
    result = run_sweep(spec, tmp_path / "a", workers=1, quiet=True)
    assert (result.total, result.skipped, result.completed, result.failed) == (4, 0, 4, {})
    rows = read_csv(tmp_path / "a" / "results.csv")
    # sd: 3 rounds, pll-ce: 2 rows; 2 etas; 2 seeds.
    assert len(rows) == 2 * 2 * (3 + 2)
    assert {r["key"] for r in rows} == set(spec.keys)
    assert sorted(os.listdir(tmp_path / "a" / "results")) == sorted(f"{k}.csv" for k in spec.keys)
    summary = read_csv(tmp_path / "a" / "summary.csv")
    assert len(summary) == 2 * (3 + 2)
    for srow in summary:
        members = [r for r in rows if r["key"] == srow["key"] and r["round"] == srow["round"]]
        assert int(srow["n_seeds"]) == len(members) == 2
        vals = [float(r["train_acc"]) for r in members]
        assert float(srow["train_acc_mean"]) == pytest.approx(np.mean(vals))
        assert float(srow["train_acc_ci95"]) == pytest.approx(mean_ci(vals)[1], nan_ok=True)
    assert summarize(rows)[0]["n_seeds"] == 2


def _rows_from_run_trial(config, seeds, base_seed):
    """The tidy rows as the sweep built them before it went through simulate (the reference)."""
    base = config.to_dict()
    base["groups"] = json.dumps(base["groups"]) if base["groups"] is not None else ""
    out = []
    for i in range(seeds):
        for row in run_trial(config, trial_seed(base_seed, i)).rows:
            full = {"key": config.key(), "seed": i, "round": row["round"], **base}
            full.update({f: row[f] for f in ROW_FIELDS})
            out.append(full)
    return out


@pytest.mark.parametrize(
    "params",
    [
        dict(method="sd", sampling="random", temperature=0.5, rounds=2),
        dict(method="pll-gce", noise="superclass", groups=[[0, 2], [1]], features="exact-block"),
    ],
)
def test_run_config_vs_run_trial(params):
    config = TrialConfig(n_classes=3, per_class=4, dim=12, eta=0.3, n_test=5, **params)
    rows = run_config(config, 2, base_seed=3)
    reference = _rows_from_run_trial(config, 2, 3)
    # The same columns with values of the same Python types (1 stays '1', not '1.0') and the
    # same CSV text (exact floats, NaN as 'nan', which == would call unequal).
    assert [{k: type(v) for k, v in r.items()} for r in rows] == [
        {k: type(v) for k, v in r.items()} for r in reference
    ]
    assert to_csv(rows) == to_csv(reference)


def _blas_threads_now() -> int:
    import threadpoolctl

    blas = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library loaded under threadpoolctl")
    return max(blas)


@pytest.mark.parametrize("callers", [2, None])
def test_run_config_trials_run_under_the_callers_blas_limit(monkeypatch, callers):
    """run_sweep's blas_threads limit (2, or None: BLAS as the process has it) reaches the
    trials (run_config passes blas_threads=None to simulate), while simulate on its own pins one
    thread."""
    import threadpoolctl

    from theory import blas

    # A clean slate: an explorer test earlier in the session pins this process to one thread
    # (figures.explorer_job), which would make every limit below a no-op.
    monkeypatch.setattr(blas, "_ACTIVE", [])
    seen = []
    real = monte_carlo.run_trial

    def spy(config, seed):
        seen.append(_blas_threads_now())
        return real(config, seed)

    monkeypatch.setattr(monte_carlo, "run_trial", spy)
    config = TrialConfig(n_classes=3, per_class=4, dim=12, eta=0.3, n_test=5, rounds=1)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):  # the process' BLAS state
        if _blas_threads_now() < 2:
            pytest.skip("BLAS runs one thread here: a limit of 2 is not observable")
        with blas.blas_threads(callers):
            run_config(config, 1)
            monte_carlo.simulate(run_spec(config), 1, max_seconds=None, n_test=5)
    assert seen == [2, 1]


def test_simulate_blas_threads_is_checked():
    config = TrialConfig(n_classes=3, per_class=4, dim=12, eta=0.3, n_test=5, rounds=1)
    with pytest.raises(ValueError, match="blas_threads"):
        monte_carlo.simulate(run_spec(config), 1, blas_threads=0)


def test_sweep_configs_round_trip_through_their_spec():
    """run_config simulates run_spec(config): every kind of config must map back to itself."""
    axes = {
        "n_classes": [3, 4],
        "dim": [4, 9],
        "eta": [0, 0.25, 1],
        "noise": ["sym", "pair", "asym", "superclass"],
        "sampling": ["exact-count", "random"],
        "features": ["mixture", "exact-block"],
        "method": ["sd", "pll-ce", "pll-candidate", "pll-gce", "pll-gce-ref"],
        "rounds": [0, 3],
        "temperature": [1.0, 2.5],
    }
    configs = []
    for values in itertools.product(*axes.values()):
        params = dict(zip(axes, values, strict=True), per_class=2, q=0.3, tol=1e-8, n_test=7)
        if params["noise"] == "superclass":  # grouped by clustering (mixture) or given
            mixture = params["features"] == "mixture"
            params |= {"n_groups": 2} if mixture else {"groups": ((0, 2), (1,))}
        try:
            configs.append(TrialConfig(**params))
        except ValueError:  # e.g. dim < n_classes: not a config a sweep could hold
            continue
    assert len(configs) > 1000  # most of the grid is valid
    for config in configs:
        knobs = dict(n_test=config.n_test, tol=config.tol, temperature=config.temperature)
        assert trial_config(run_spec(config), **knobs) == config


def test_exact_backend_keeps_every_row_field():
    assert set(ROW_FIELDS) <= set(EXACT_ROW_FIELDS)


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_redoing(tmp_path):
    spec = parse_spec(SPEC)
    partial = run_sweep(spec, tmp_path / "r", workers=1, limit=2, quiet=True)
    assert partial.completed == 2
    before = _files(tmp_path / "r")
    assert len(before) == 2
    resumed = run_sweep(spec, tmp_path / "r", workers=1, quiet=True)
    assert (resumed.skipped, resumed.completed) == (2, 2)
    after = _files(tmp_path / "r")
    for name, (content, mtime) in before.items():
        assert after[name] == (content, mtime)  # finished configs are neither redone nor lost
    run_sweep(spec, tmp_path / "full", workers=1, quiet=True)
    assert (tmp_path / "r" / "results.csv").read_text() == (
        tmp_path / "full" / "results.csv"
    ).read_text()
    again = run_sweep(spec, tmp_path / "r", workers=1, quiet=True)
    assert (again.skipped, again.completed) == (4, 0)


@pytest.mark.slow
def test_killed_sweep_process_resumes(tmp_path):
    spec_file = tmp_path / "spec.toml"
    # 8 configs of ~0.2-0.5 s each, killed after the first result file.
    spec_file.write_text(_spec_text(seeds=3, etas="[0.0, 0.1, 0.2, 0.3]", n=20, p=200))
    out = tmp_path / "k"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # The last config is held back, so the kill lands mid-sweep however slow this loop is.
    held = [load_spec(spec_file).configs[-1].key()]
    proc = start_held_sweep(spec_file, out, held, workers=1, env=env)
    try:
        deadline = time.monotonic() + 60  # bounds a hang only: the held config never finishes
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "results").glob("*.csv"))) >= 1:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the sweep ended before it was killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()  # a no-op after the SIGKILL; ends the sweep if an assertion came first
        proc.wait()
    before = _files(out)
    assert 1 <= len(before) < 8, "the kill should land mid-sweep"
    spec = load_spec(spec_file)
    resumed = run_sweep(spec, out, workers=1, quiet=True)
    assert resumed.skipped == len(before) and resumed.completed == 8 - len(before)
    after = _files(out)
    assert all(after[name] == before[name] for name in before)
    assert not list((out / "results").glob(".*"))  # no stray temporaries
    run_sweep(spec, tmp_path / "full", workers=1, quiet=True)
    assert (out / "results.csv").read_text() == (tmp_path / "full" / "results.csv").read_text()


@pytest.mark.slow
def test_process_pool_matches_serial(tmp_path):
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "s", workers=1, quiet=True)
    run_sweep(spec, tmp_path / "p", workers=2, quiet=True)
    assert (tmp_path / "s" / "results.csv").read_text() == (
        tmp_path / "p" / "results.csv"
    ).read_text()


@pytest.mark.slow
def test_dask_local_cluster_matches_serial(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "s", workers=1, quiet=True)
    with distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None
    ) as cluster:
        res = run_sweep(spec, tmp_path / "d", scheduler=cluster.scheduler_address, quiet=True)
        # the CLI path: --scheduler ADDRESS
        spec_file = tmp_path / "spec.toml"
        spec_file.write_text(_spec_text())
        argv = [str(spec_file), "--out", str(tmp_path / "c"), "--quiet"]
        assert sweep_main(argv + ["--scheduler", cluster.scheduler_address]) == 0
    assert res.completed == 4
    serial = (tmp_path / "s" / "results.csv").read_text()
    assert serial == (tmp_path / "d" / "results.csv").read_text()
    assert serial == (tmp_path / "c" / "results.csv").read_text()


@pytest.mark.slow
def test_failed_config_recorded_and_retried(tmp_path, monkeypatch):
    spec = parse_spec(SPEC)
    real = monte_carlo.run_trial  # the trials run in simulate's exact backend

    def flaky(config, seed):
        if config.eta == 0.3:
            raise RuntimeError("boom")
        return real(config, seed)

    monkeypatch.setattr(monte_carlo, "run_trial", flaky)
    res = run_sweep(spec, tmp_path / "f", workers=1, quiet=True)
    assert res.completed == 2 and len(res.failed) == 2
    assert all(msg == "RuntimeError: boom" for msg in res.failed.values())
    assert (tmp_path / "f" / "errors.json").exists()
    monkeypatch.setattr(monte_carlo, "run_trial", real)
    res2 = run_sweep(spec, tmp_path / "f", workers=1, quiet=True)
    assert (res2.skipped, res2.completed, res2.failed) == (2, 2, {})
    assert not (tmp_path / "f" / "errors.json").exists()


@pytest.mark.slow
def test_blas_threads_validated_and_results_independent_of_it(tmp_path):
    spec = parse_spec(SPEC)
    with pytest.raises(ValueError, match="blas_threads"):
        run_sweep(spec, tmp_path / "b0", workers=1, blas_threads=0, quiet=True)
    assert not (tmp_path / "b0").exists()  # validated before any work
    run_sweep(spec, tmp_path / "b1", workers=1, blas_threads=1, quiet=True)
    run_sweep(spec, tmp_path / "bn", workers=1, blas_threads=None, quiet=True)
    a = read_csv(tmp_path / "b1" / "results.csv")
    b = read_csv(tmp_path / "bn" / "results.csv")
    # Accuracies are predicates far from ties here; BLAS threading may change round-off only.
    assert [(r["key"], r["train_acc"], r["pop_acc"]) for r in a] == [
        (r["key"], r["train_acc"], r["pop_acc"]) for r in b
    ]


def test_reusing_out_dir_with_other_seeds_is_refused(tmp_path):
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "o", workers=1, limit=1, quiet=True)
    other = parse_spec({**SPEC, "sweep": {**SPEC["sweep"], "trials": 3}})
    with pytest.raises(ValueError, match="trials=2"):
        run_sweep(other, tmp_path / "o", workers=1, quiet=True)


@pytest.mark.slow
def test_result_files_of_another_version_are_redone_not_mixed(tmp_path):
    """A results file with other columns (e.g. from before ``pop_acc`` became the exact
    population accuracy) must not be resumed and mixed with new results: it is set aside as
    ``.invalid`` and its config is run again."""
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path, workers=1, quiet=True, limit=1)
    done = next((tmp_path / "results").glob("*.csv"))
    fresh = done.read_text()
    lines = fresh.splitlines()
    old_columns = [c for c in lines[0].split(",") if c not in ("pop_acc_sampled", "pop_acc_err")]
    done.write_text("\n".join([",".join(old_columns)] + lines[1:]) + "\n")
    run_sweep(spec, tmp_path, workers=1, quiet=True)
    assert done.read_text() == fresh  # redone with the current columns, byte for byte
    assert (tmp_path / "results" / (done.name + ".invalid")).exists()


@pytest.mark.slow
def test_cli_sweep(tmp_path, capsys, monkeypatch):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(_spec_text())
    monkeypatch.setenv("SELFDISTILL_PROGRESS", "1")  # a progress bar as on a terminal
    assert sweep_main([str(spec_file), "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    out = capsys.readouterr()
    assert "4 configs" in out.out and "/4 [" in out.err and "config/s" in out.err  # stderr only
    monkeypatch.delenv("SELFDISTILL_PROGRESS")  # captured stderr is no terminal: no bar
    assert sweep_main([str(spec_file), "--out", str(tmp_path / "d"), "--workers", "1"]) == 0
    out = capsys.readouterr()
    assert "4 configs" in out.out and "/4 [" not in out.err and "sweep 'test'" in out.err
    bad = tmp_path / "bad.toml"
    bad.write_text(_spec_text(etas="[0.1, 7.0]"))
    assert sweep_main([str(bad), "--out", str(tmp_path / "never")]) == 2
    assert "eta" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()  # bad spec: no work, no directory
    assert sweep_main([str(spec_file), "--out", str(tmp_path / "w"), "--workers", "0"]) == 2
    assert sweep_main(["--help"]) == 0


def test_example_spec_is_valid():
    spec = load_spec(ROOT / "examples" / "sweep_quick.toml")
    assert len(spec.configs) >= 2 and all(isinstance(c, TrialConfig) for c in spec.configs)
    for path in (ROOT / "examples").glob("*.toml"):
        assert load_spec(path).duplicates == 0, path  # examples run every grid point


def test_duplicate_configs_are_counted_and_named():
    spec = parse_spec({**SPEC, "grid": {**SPEC["grid"], "rounds": [1, 2, 3]}})
    assert (spec.grid_points, len(spec.configs), spec.duplicates) == (12, 8, 4)
    assert spec.ignored_params == ("rounds",)
    assert "4 of 12 grid points repeat" in spec.duplicate_note()
    assert "rounds" in spec.duplicate_note()
    assert parse_spec(SPEC).duplicates == 0 and parse_spec(SPEC).duplicate_note() == ""


def _damage(path: Path, how: str) -> None:
    text = path.read_text()
    if how == "truncated":  # disk full: the file ends in the middle of a row
        path.write_text(text[: len(text) * 2 // 3])
    elif how == "edited":  # a manual edit broke a number
        lines = text.splitlines()
        cells = lines[1].split(",")
        cells[sweep_mod.COLUMNS.index("train_acc")] = "0.9x"
        path.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    elif how == "row dropped":
        path.write_text("\n".join(text.splitlines()[:-1]) + "\n")
    elif how == "empty":
        path.write_text("")


@pytest.mark.slow
def test_damaged_result_files_are_detected_and_redone(tmp_path):
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "ref", workers=1, quiet=True)
    run_sweep(spec, tmp_path / "d", workers=1, quiet=True)
    files = sorted((tmp_path / "d" / "results").glob("*.csv"))
    hows = ["truncated", "edited", "row dropped", "empty"]
    for path, how in zip(files, hows, strict=True):
        _damage(path, how)
        cfg = next(c for c in spec.configs if c.key() == path.stem)
        assert sweep_mod.check_result_file(path, cfg, spec.seeds) is not None, how
    res = run_sweep(spec, tmp_path / "d", workers=1, quiet=True)
    assert (res.skipped, res.completed) == (0, 4)  # every damaged config was run again
    assert len(list((tmp_path / "d" / "results").glob("*.csv.invalid"))) == 4  # kept aside
    for name in ("results.csv", "summary.csv"):
        assert (tmp_path / "d" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()
    for path in (tmp_path / "ref" / "results").glob("*.csv"):
        assert (tmp_path / "d" / "results" / path.name).read_bytes() == path.read_bytes()
        cfg = next(c for c in spec.configs if c.key() == path.stem)
        assert sweep_mod.check_result_file(path, cfg, spec.seeds) is None


@pytest.mark.slow
def test_reusing_out_with_another_grid_needs_extend(tmp_path):
    spec = parse_spec(SPEC)
    run_sweep(spec, tmp_path / "o", workers=1, quiet=True)
    manifest = (tmp_path / "o" / "sweep.json").read_text()
    other = parse_spec({**SPEC, "grid": {**SPEC["grid"], "eta": [0.1, 0.5]}})
    with pytest.raises(ValueError, match=r"another grid \(4 configs; 2 of this spec's 4 "):
        run_sweep(other, tmp_path / "o", workers=1, quiet=True)
    assert (tmp_path / "o" / "sweep.json").read_text() == manifest  # nothing overwritten
    res = run_sweep(other, tmp_path / "o", workers=1, quiet=True, extend=True)
    assert (res.skipped, res.completed) == (2, 2)
    assert len(json.loads((tmp_path / "o" / "sweep.json").read_text())["keys"]) == 6
    # a grid within the directory's (the first one, or part of it) resumes without a switch
    assert run_sweep(spec, tmp_path / "o", workers=1, quiet=True).skipped == 4


def test_sweep_memory_estimate_refuses_before_any_work(tmp_path):
    spec = parse_spec(SPEC)
    with pytest.raises(ValueError, match=r"needs about .* GB .*--max-memory"):
        run_sweep(spec, tmp_path / "m", workers=2, quiet=True, max_memory=1e3)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_cli_sweep_bad_inputs_one_line_errors(tmp_path):
    from tests.cli import assert_one_line_error, run_many

    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(_spec_text())
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(_spec_text().replace('"test"', '"caf\xe9"').encode("latin-1"))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    used = tmp_path / "used"
    run_sweep(parse_spec(SPEC), used, workers=1, limit=1, quiet=True)
    other = tmp_path / "other.toml"
    other.write_text(_spec_text(etas="[0.2]"))
    dup = tmp_path / "dup.toml"  # rounds does not apply to the PLL student: 2 points, 1 config
    dup.write_text(
        _spec_text(etas="[0.2]")
        .replace('["sd", "pll-ce"]', '"pll-ce"')
        .replace("rounds = 2", "rounds = [1, 2]")
    )
    sweep = ["simulations", "sweep", spec_file, "--out"]
    UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there
    procs = run_many(
        [
            [*sweep, a_file],
            ["simulations", "sweep", latin1, "--out", tmp_path / "l"],
            [*sweep, tmp_path / "s", "--scheduler", UNREACHABLE, "--scheduler-timeout", "0.5"],
            ["simulations", "sweep", other, "--out", used],
            [*sweep, tmp_path / "w", "--workers", "-1"],
            [*sweep, tmp_path / "x", "--max-memory", "1e-6", "--workers", "1"],
            ["simulations", "sweep", dup, "--out", tmp_path / "d", "--workers", "1"],
        ]
    )
    assert_one_line_error(procs[0], "is a file")
    assert_one_line_error(procs[1], "latin1.toml", "not UTF-8")
    assert_one_line_error(procs[2], "cannot reach the Dask scheduler", UNREACHABLE)
    assert_one_line_error(procs[3], "another grid", "--extend")
    assert_one_line_error(procs[4], "--workers", ">= 1")
    assert_one_line_error(procs[5], "needs about", "--max-memory")
    assert procs[6].returncode == 0, procs[6].stderr
    assert "1 configs (1 of 2 grid points repeat an earlier config" in procs[6].stdout
    assert "note: 1 of 2 grid points repeat" in procs[6].stderr and "rounds" in procs[6].stderr
    for p in (tmp_path / "l", tmp_path / "s", tmp_path / "w", tmp_path / "x"):
        assert not p.exists()  # refused before any work


def test_old_seeds_key_still_works_with_a_note(capsys):
    # [sweep] seeds was renamed trials (one vocabulary, issue 22); accepted for one release.
    spec = parse_spec({**SPEC, "sweep": {"seeds": 2, "base_seed": 5, "name": "test"}})
    assert spec.seeds == parse_spec(SPEC).seeds == 2
    assert "[sweep] seeds is deprecated" in capsys.readouterr().err
