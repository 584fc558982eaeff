"""Smoke tests of the figure and explorer benchmarks (no timings are asserted: only that they run
and report what the README quotes)."""

import json

import pytest


@pytest.mark.slow
def test_figures_benchmark_reports_cpu_and_wall_per_figure(capsys):
    from benchmarks import figures as bench

    assert bench.main(["--preset", "tiny", "--only", "label_averaging", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    fig = out["figures"]["label_averaging"]
    assert fig["cpu_s"] > 0 and fig["wall_s"] > 0
    assert out["total"]["cpu_s"] >= fig["cpu_s"] and out["preset"] == "tiny"


@pytest.mark.slow
def test_figures_benchmark_repeat_reports_medians_of_fresh_runs(capsys):
    from benchmarks import figures as bench

    args = ["--preset", "tiny", "--only", "label_averaging", "--repeat", "3", "--json"]
    assert bench.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 3 and list(out["figures"]) == ["label_averaging"]
    for key in ("cpu_s", "wall_s"):
        per_run = sorted(r["figures"]["label_averaging"][key] for r in out["runs"])
        assert out["figures"]["label_averaging"][key] == per_run[1]  # the median of three
        totals = [r["total"][key] for r in out["runs"]]
        assert out["total_range"][key] == [min(totals), max(totals)]


def test_figures_benchmark_repeat_refuses_out(tmp_path):
    from benchmarks import figures as bench

    with pytest.raises(SystemExit):
        bench.main(["--preset", "tiny", "--repeat", "2", "--out", str(tmp_path)])


def test_figures_benchmark_rejects_unknown_figure():
    from benchmarks import figures as bench

    with pytest.raises(SystemExit):
        bench.main(["--preset", "tiny", "--only", "nope"])


@pytest.mark.slow
def test_explorer_benchmark_measures_a_blitted_update():
    import matplotlib

    matplotlib.use("Agg")
    from benchmarks import explorer as bench

    res = bench.app_update_ms(bench._params(3, 5) | {"n_over_p": 1.0}, repeats=1)
    assert res["finite"] and res["update"] > 0 and res["redraw"] > 0
    assert sum(res["kinds"].values()) == 1 and res["range"][0] <= res["update"] <= res["range"][1]
